"""Raster inputs and outputs of the OSO-style product, strip by strip where the data allows.

Outputs are COGs on the class map's grid:

- classes: uint8 OSO codes, no-data 0, the nomenclature's colour table and band description,
  plus a ``.qml`` QGIS style beside it (:meth:`Nomenclature.write_qml`);
- confidence: uint8 0-100, no-data 255. An integer input is taken as 0-100 already (our maps),
  a float input as 0-1 (iota2's ``*_confidence_seed_*.tif``) and multiplied by 100;
- validity: uint16 number of cloud-free Sentinel-2 dates, no-data 65535 (outside the S2
  coverage). A validity raster on another grid (e.g. 10 m) is carried onto the map's grid by
  nearest neighbour: a count belongs to the S2 pixel holding the map pixel.
"""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from pathlib import Path

import numpy as np
import rasterio
from rasterio.warp import Resampling, reproject
from rasterio.windows import Window

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.io import finalize_cog, open_tiled_gtiff
from iota2_spot_s2.nomenclature import Nomenclature
from iota2_spot_s2.product.vectorize import CONFIDENCE_NODATA, VALIDITY_NODATA

ROWS = 1024


def read_class_map(path: str | PathLike[str]) -> tuple[np.ndarray, Grid]:
    """The class codes (band 1, its no-data value turned into 0) and the grid of a class map."""
    grid = Grid.from_raster(path)
    with rasterio.open(path) as src:
        if not np.issubdtype(np.dtype(src.dtypes[0]), np.integer):
            raise InputError(path, f"class map must hold integer codes, not {src.dtypes[0]}")
        data = src.read(1)
        nodata = src.nodata
    if nodata is not None and nodata != 0:
        data = np.where(data == nodata, 0, data)
    if data.min(initial=0) < 0 or data.max(initial=0) > 65535:
        raise InputError(path, "class codes must be in 0..65535")
    return data.astype(np.uint16), grid


def recode_classes(
    classes: np.ndarray, recode: Mapping[int, int], path: str | PathLike[str]
) -> np.ndarray:
    """Map every code of ``classes`` through ``recode`` (0 stays 0); all codes must be listed."""
    present = [int(c) for c in np.unique(classes) if c]
    missing = [c for c in present if c not in recode]
    if missing:
        raise InputError(path, f"class code(s) {missing} of the map are not in the recode table")
    lut = np.zeros(max(present, default=0) + 1, dtype=np.uint16)
    for code in present:
        lut[code] = recode[code]
    return lut[classes]


def check_codes(classes: np.ndarray, nom: Nomenclature, path: str | PathLike[str]) -> np.ndarray:
    """``classes`` as uint8 after checking every code is a class of ``nom``."""
    present = {int(c) for c in np.unique(classes) if c}
    unknown = sorted(present - set(nom.codes))
    if unknown:
        raise InputError(path, f"class code(s) {unknown} are not OSO classes (give a recode table)")
    if max(nom.codes) > 255:
        raise InputError(path, "the product writes uint8 codes: nomenclature codes must be <= 255")
    return classes.astype(np.uint8)


def write_class_raster(classes: np.ndarray, grid: Grid, path: Path, nom: Nomenclature) -> Path:
    """COG of OSO codes with colour table, band description and a ``.qml`` beside it."""
    partial = path.with_name(f".{path.name}.partial")
    with open_tiled_gtiff(partial, grid, 1, "uint8", nodata=0) as dst:
        for top in range(0, grid.height, ROWS):
            rows = min(ROWS, grid.height - top)
            dst.write(classes[top : top + rows], 1, window=Window(0, top, grid.width, rows))
        dst.write_colormap(1, nom.color_table())
        dst.set_band_description(1, "OSO class code")
    finalize_cog(partial, path)
    nom.write_qml(path.with_suffix(".qml"))
    return path


def write_confidence(src_path: str | PathLike[str], grid: Grid, path: Path) -> Path:
    """Confidence 0-100 (uint8, no-data 255) on ``grid`` from our or iota2's confidence map."""
    _check_same_grid(src_path, grid, "confidence")
    partial = path.with_name(f".{path.name}.partial")
    with (
        rasterio.open(src_path) as src,
        open_tiled_gtiff(partial, grid, 1, "uint8", nodata=CONFIDENCE_NODATA) as dst,
    ):
        is_float = np.issubdtype(np.dtype(src.dtypes[0]), np.floating)
        for window in _strips(grid):
            raw = src.read(1, window=window, masked=True)
            data = raw.astype(np.float64).filled(np.nan)
            scaled = np.rint(data * 100.0) if is_float else data
            bad = ~np.isfinite(scaled) | (scaled < 0) | (scaled > 100)
            out = np.where(bad, CONFIDENCE_NODATA, np.nan_to_num(scaled)).astype(np.uint8)
            dst.write(out, 1, window=window)
        dst.set_band_description(1, "confidence (0-100)")
    return finalize_cog(partial, path)


def write_validity(src_path: str | PathLike[str], grid: Grid, path: Path) -> Path:
    """Clear-date counts (uint16, no-data 65535) on ``grid``, warped by nearest if needed."""
    partial = path.with_name(f".{path.name}.partial")
    with (
        rasterio.open(src_path) as src,
        open_tiled_gtiff(partial, grid, 1, "uint16", nodata=VALIDITY_NODATA) as dst,
    ):
        if src.crs is None:
            raise InputError(src_path, "validity raster has no CRS")
        same = (src.crs, src.transform, src.shape) == (grid.crs, grid.transform, grid.shape)
        for window in _strips(grid):
            out = np.full((window.height, window.width), VALIDITY_NODATA, dtype=np.uint16)
            if same:
                data = src.read(1, window=window, masked=True)
                out = data.astype(np.uint16).filled(VALIDITY_NODATA)
            else:
                reproject(
                    rasterio.band(src, 1), out, dst_transform=grid.window_grid(window).transform,
                    dst_crs=grid.crs, dst_nodata=VALIDITY_NODATA, resampling=Resampling.nearest,
                )  # fmt: skip
            dst.write(out, 1, window=window)
        dst.set_band_description(1, "cloud-free Sentinel-2 dates")
    return finalize_cog(partial, path)


def read_strip(path: Path | None, top: int, stop: int) -> np.ndarray | None:
    """Rows ``top:stop`` of band 1 of ``path`` (None when there is no such raster)."""
    if path is None:
        return None
    with rasterio.open(path) as src:
        return src.read(1, window=Window(0, top, src.width, stop - top))


def _strips(grid: Grid) -> list[Window]:
    return [
        Window(0, top, grid.width, min(ROWS, grid.height - top))
        for top in range(0, grid.height, ROWS)
    ]


def _check_same_grid(path: str | PathLike[str], grid: Grid, what: str) -> None:
    other = Grid.from_raster(path)
    if (other.crs, other.transform, other.shape) != (grid.crs, grid.transform, grid.shape):
        raise InputError(path, f"{what} raster is not on the class map's grid")
