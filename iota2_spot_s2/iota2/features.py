"""Feature-level fusion inside iota2: SPOT-derived features on each tile's 10 m grid.

Written as an iota2 userFeat tree (``<user_feat_path>/<TILE>/<TILE>_<PATTERN>.tif``, found by
iota2 through ``userFeat: { arbo, patterns }``), one file per kind:

- ``SPOT_FCN_PROBA``: the SPOT FCN's class probabilities averaged per tile pixel (the step's
  ``PROBAMAP_<TILE>_model_<M>_seed_0_SPOT.tif``), uint16 0-1000, one band per class in
  increasing code order;
- ``SPOT_TEXTURE``: per tile pixel, the mean and standard deviation of every SPOT band over the
  1.5 m pixels it covers, the same for the SPOT NDVI (4-band images), and the covered fraction,
  float32. Means and means of squares are aggregated by GDAL ``average`` warping;
  ``std = sqrt(max(E[x^2] - E[x]^2, 0))``.

iota2 wants userFeat rasters without nodata: pixels SPOT does not cover hold 0 (the covered
fraction says where). Band descriptions name every band (``<PATTERN>_band_<n>`` in iota2).

Temporary files never lie in the userFeat tree: iota2 finds userFeat files with
``FileSearch_AND`` (a walk of the tile folder that sees dot-files too) and takes the tile folder
as the first entry of the userFeat root whose name holds the tile name. Each file is built in
the staging folder ``<root>.tmp/<TILE>/`` beside the userFeat root ``<root>`` (same filesystem),
then moved into the tree with ``os.replace``. A rerun first removes what a killed run left:
``.<stem>.*.partial*`` files in the tree (older versions built there) and the staging files of
the same stem. One run per tile at a time.
"""

from __future__ import annotations

import math
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import xarray as xr
from affine import Affine
from rasterio.warp import Resampling, reproject, transform_bounds
from tqdm import tqdm

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.io import atomic_output, finalize_cog, open_tiled_gtiff
from iota2_spot_s2.iota2.classify import crop_to_grid

TEXTURE_BLOCK = 256


def texture_band_names(bands: list[str]) -> list[str]:
    """Names of the ``SPOT_TEXTURE`` bands for SPOT bands ``bands`` (in file order)."""
    names = [f"{b}_{stat}" for b in bands for stat in ("mean", "std")]
    if _has_ndvi(bands):
        names += ["NDVI_mean", "NDVI_std"]
    return [*names, "valid_fraction"]


def _has_ndvi(bands: list[str]) -> bool:
    return {"B2", "B3"} <= set(bands)  # SPOT red = B2, NIR = B3


def texture_window(spot: np.ndarray, bands: list[str], src: Grid, dst: Grid) -> np.ndarray:
    """``SPOT_TEXTURE`` bands of one window: ``spot`` (C, h, w) on ``src`` onto ``dst``."""
    layers = [spot[i] for i in range(len(bands))]
    if _has_ndvi(bands):
        red, nir = spot[bands.index("B2")], spot[bands.index("B3")]
        with np.errstate(invalid="ignore", divide="ignore"):
            layers.append((nir - red) / (nir + red))
    valid = np.isfinite(spot).all(axis=0)
    stack = [np.where(valid, x, np.nan) for x in layers]
    means = _average(np.stack(stack), src, dst)
    squares = _average(np.stack([x * x for x in stack]), src, dst)
    fraction = _average(valid[None].astype(np.float32), src, dst, nodata=None)[0]
    std = np.sqrt(np.maximum(squares - means * means, 0.0))
    out = np.empty((2 * len(stack) + 1, *dst.shape), np.float32)
    out[0:-1:2], out[1:-1:2], out[-1] = means, std, fraction
    return np.nan_to_num(out, nan=0.0)


def _average(array: np.ndarray, src: Grid, dst: Grid, nodata: float | None = np.nan) -> np.ndarray:
    out = np.full((array.shape[0], *dst.shape), np.nan, np.float32)
    reproject(
        array.astype(np.float32), out, src_transform=src.transform, src_crs=src.crs,
        dst_transform=dst.transform, dst_crs=dst.crs, resampling=Resampling.average,
        src_nodata=nodata, dst_nodata=np.nan,
    )  # fmt: skip
    return out


def write_texture(spot: xr.DataArray, grid: Grid, path: Path, spot_path: Path) -> Path:
    """Write the ``SPOT_TEXTURE`` raster of a lazy SPOT image onto ``grid``, window by window."""
    bands = [str(b) for b in spot["band"].values]
    names = texture_band_names(bands)
    remove_stale(path)
    staged = staging_path(path)
    tmp = staged.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.build.tif")
    staged.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open_tiled_gtiff(tmp, grid, len(names), "float32") as dst:
            dst.update_tags(SOURCE=str(spot_path), FEATURES="SPOT_TEXTURE")
            for band, name in enumerate(names, start=1):
                dst.set_band_description(band, name)
            for win in tqdm(list(grid.windows(TEXTURE_BLOCK)), desc="SPOT texture", disable=None):
                sub = grid.window_grid(win)
                values = np.zeros((len(names), *sub.shape), np.float32)
                part = _overlap(spot, sub, spot_path)
                if part is not None:
                    pixels, part_grid = _padded(part, sub)
                    values = texture_window(pixels, bands, part_grid, sub)
                dst.write(values, window=win)
        finalize_cog(tmp, staged)
        _publish(staged, path)
    finally:
        tmp.unlink(missing_ok=True)
        staged.unlink(missing_ok=True)
    return path


def staging_path(path: Path) -> Path:
    """Where ``<root>/<TILE>/<name>`` is built: ``<root>.tmp/<TILE>/<name>``, outside the tree."""
    tile_dir = path.parent
    root = tile_dir.parent
    return root.parent / f"{root.name}.tmp" / tile_dir.name / path.name


def remove_stale(path: Path) -> list[Path]:
    """Remove the temporaries a killed run left for ``path``; return them.

    In the userFeat tree: ``.<stem>.*.partial*`` (what ``atomic_output`` names); in the staging
    folder: every file of that stem.
    """
    staged = staging_path(path)
    found = [*path.parent.glob(f".{path.stem}.*.partial*")]
    if staged.parent.is_dir():
        found += [*staged.parent.glob(f".{path.stem}.*"), *staged.parent.glob(f"{path.stem}*")]
    for leftover in found:
        leftover.unlink(missing_ok=True)
    return found


def _publish(staged: Path, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, path)


def _padded(part: xr.DataArray, sub: Grid) -> tuple[np.ndarray, Grid]:
    """The SPOT pixels of ``part`` padded with NaN (no data) to cover ``sub`` whole.

    So that a tile pixel half outside the SPOT image gets a covered fraction of about 0.5.
    """
    from iota2_spot_s2.pipeline.stages import image_grid

    grid = image_grid(part)
    left, bottom, right, top = transform_bounds(sub.crs, grid.crs, *sub.bounds)
    res_x, res_y = grid.res
    c0 = min(0, math.floor((left - grid.transform.c) / res_x + 1e-6))
    r0 = min(0, math.floor((grid.transform.f - top) / res_y + 1e-6))
    c1 = max(grid.width, math.ceil((right - grid.transform.c) / res_x - 1e-6))
    r1 = max(grid.height, math.ceil((grid.transform.f - bottom) / res_y - 1e-6))
    out = np.full((part.sizes["band"], r1 - r0, c1 - c0), np.nan, np.float32)
    out[:, -r0 : -r0 + grid.height, -c0 : -c0 + grid.width] = part.to_numpy()
    shifted = grid.transform @ Affine.translation(c0, r0)
    return out, Grid(grid.crs, shifted, c1 - c0, r1 - r0)


def _overlap(spot: xr.DataArray, sub: Grid, spot_path: Path) -> xr.DataArray | None:
    try:
        return crop_to_grid(spot, sub, spot_path)
    except InputError:
        return None  # this window is outside the SPOT image: zeros


def copy_probabilities(probamap: Path, path: Path) -> Path:
    """The step's ``PROBAMAP_..._SPOT.tif`` as the ``SPOT_FCN_PROBA`` userFeat file."""
    remove_stale(path)
    staged = staging_path(path)
    try:
        with atomic_output(staged) as tmp:
            shutil.copyfile(probamap, tmp)
        _publish(staged, path)
    finally:
        staged.unlink(missing_ok=True)
    return path
