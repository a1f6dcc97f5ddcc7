"""Labels and the 64/16/20 split of a scene, prepared window by window into two rasters.

:func:`prepare_reference` never holds the scene: the reference is burned (or a label raster
checked) window by window, cleaned (ignored codes and image no-data become 0) and written as
``labels.tif``; the blocks' class counts gathered on the way
(:class:`~iota2_spot_s2.reference.split.BlockCounts`) decide each block's subset; a second pass
writes ``split.tif`` and counts the summary. Peak memory is a few windows whatever the scene
size (``benchmarks/bench_memory.py``). The result, :class:`PreparedReference`, names the two
files; its ``labels`` / ``split`` arrays are read from them only when asked (training).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import xarray as xr
from rasterio.windows import Window

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.grid import Grid, iter_windows
from iota2_spot_s2.io import WRITE_CACHE_MB, atomic_output, undo_on_failure
from iota2_spot_s2.nomenclature import Nomenclature
from iota2_spot_s2.pipeline.stages import (
    RASTER_SUFFIXES,
    _as_dict,
    check_on_grid,
    image_grid,
    read_labels,
    unlabelled_error,
    write_band,
)
from iota2_spot_s2.reference.split import TEST, BlockCounts, SplitCounts, split_blocks

#: Side of the windows read, cleaned and written at once.
WINDOW_SIZE = 1024


@dataclass(frozen=True)
class PreparedReference:
    """Labels and split on an image's grid, as written (``labels_path``, ``split_path``).

    ``labels`` and ``split`` read the whole rasters on first use (training samples from them);
    mapping and scoring use the files window by window. ``s2_labels`` / ``s2_split`` are the
    (44 times smaller) Sentinel-2 grid's arrays when the split was drawn there.
    """

    grid: Grid
    labels_path: Path
    split_path: Path
    report: dict[str, Any]
    s2_grid: Grid | None = None
    s2_labels: np.ndarray | None = None
    s2_split: np.ndarray | None = None
    provenance: dict[str, Any] | None = None

    def moved_to(self, folder: Path) -> PreparedReference:
        """The same reference once its two rasters were moved into ``folder``."""
        return replace(
            self,
            labels_path=Path(folder) / self.labels_path.name,
            split_path=Path(folder) / self.split_path.name,
        )

    @cached_property
    def labels(self) -> np.ndarray:
        """The label raster as an array (0 = no-data), read on first use."""
        with rasterio.open(self.labels_path) as src:
            return src.read(1)

    @cached_property
    def split(self) -> np.ndarray:
        """The split raster as an array (0 unassigned, 1 train, 2 validation, 3 test)."""
        with rasterio.open(self.split_path) as src:
            return src.read(1)


def prepare_reference(
    image: xr.DataArray,
    reference: Path,
    field: str,
    out_dir: Path,
    *,
    block_m: float,
    seed: int,
    mapping: Path | None = None,
    nomenclature: Nomenclature | None = None,
    s2_grid: Grid | None = None,
    layer: str | None = None,
    holdout: np.ndarray | None = None,
    ignore_label: int | None = None,
    window_size: int = WINDOW_SIZE,
) -> PreparedReference:
    """Rasterize the reference on the image grid, split it 64/16/20 by blocks, write both.

    Pixels where any image band is no-data get no label. ``holdout`` (bool, on the grid the
    blocks are drawn on) forces pixels into the test subset, whatever their block: e.g. iota2's
    validation polygons, so that no model trained here sees the pixels iota2 validates on.

    With ``s2_grid`` the blocks are drawn on the Sentinel-2 grid (labels rasterized there too)
    and carried onto the image grid by nearest neighbour: every SPOT pixel takes the subset of
    the 10 m pixel holding its centre, so no 10 m pixel straddles two subsets and the SPOT,
    Sentinel-2 and fused strategies are all scored on the same test blocks.

    The result's ``provenance`` (reference, field, layer, mapping table, ignored label, block
    size, split seed and grid, held-out pixels) goes into the fingerprint of the models trained
    on it (:mod:`iota2_spot_s2.training.checkpoint_fingerprint`).

    Raises:
        InputError: An unreadable or off-grid reference, or no labelled pixel on the grid.
    """
    grid, out_dir = image_grid(image), Path(out_dir)
    split_grid = s2_grid or grid
    block = max(4, int(round(block_m / split_grid.res[0])))
    counts = BlockCounts(grid.shape, block) if s2_grid is None else None
    with undo_on_failure(out_dir, on=(InputError,)):  # a refused reference leaves no folder
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".reference-", dir=out_dir) as tmp:
            raw, ignored, report = _raw_labels(
                reference, grid, field, Path(tmp), mapping, nomenclature, layer, ignore_label
            )
            labels_path = _write_labels(
                raw, ignored, image, grid, out_dir / "labels.tif", counts, nomenclature,
                window_size, unlabelled_error(reference, field),
            )  # fmt: skip
    s2_labels = s2_split = None
    if counts is not None:
        subsets = counts.assign(seed=seed)

        def place(labels: np.ndarray, win: Window) -> np.ndarray:
            split = counts.split_window(subsets, labels, win.row_off, win.col_off)
            if holdout is None:
                return split
            rows, cols = win.toslices()
            return _hold_out(split, labels, holdout[rows, cols], TEST)
    else:
        s2_labels, _ = read_labels(
            reference, s2_grid, field, mapping=mapping, nomenclature=nomenclature, layer=layer
        )
        s2_split = split_blocks(s2_labels, block_size=block, seed=seed)
        whole_blocks = _hold_out(spread_over_blocks(s2_split, block), None, holdout, TEST)
        s2_split = _hold_out(s2_split, s2_labels, holdout, TEST)
        write_band(out_dir / "s2_labels.tif", s2_labels, s2_grid, nomenclature=nomenclature)
        write_band(out_dir / "s2_split.tif", s2_split.astype(np.uint8), s2_grid)

        def place(labels: np.ndarray, win: Window) -> np.ndarray:
            carried = warp_nearest(whole_blocks, s2_grid, grid.window_grid(win))
            return np.where(labels > 0, carried, 0).astype(np.uint8)

    split_path, summary = _write_split(labels_path, out_dir / "split.tif", place, window_size)
    report = {
        "rasterize": report,
        "split": summary,
        "block_size_px": block,
        "split_grid": "sentinel2" if s2_grid is not None else "image",
    }
    provenance = {
        "reference": str(reference), "field": field, "layer": layer,
        "mapping": None if mapping is None else str(mapping), "ignore_label": ignore_label,
        "block_m": float(block_m), "block_px": block, "split_seed": int(seed),
        "split_grid": report["split_grid"],
        "holdout_pixels": None if holdout is None else int(np.count_nonzero(holdout)),
    }  # fmt: skip
    return PreparedReference(
        grid, labels_path, split_path, report, s2_grid, s2_labels, s2_split, provenance
    )


def _raw_labels(
    reference: Path,
    grid: Grid,
    field: str,
    tmp: Path,
    mapping: Path | None,
    nomenclature: Nomenclature | None,
    layer: str | None,
    ignore_label: int | None,
) -> tuple[Path, list[int], dict[str, Any]]:
    """The reference's codes on ``grid`` as a raster, the codes that mean no-data, the report.

    A label raster is checked (window by window) and used as it is; a vector layer is burned
    into ``tmp``.
    """
    from iota2_spot_s2.reference.windowed import check_label_raster, rasterize_to_file

    if reference.suffix.lower() in RASTER_SUFFIXES:
        check_on_grid(reference, grid, "reference raster")
        report = check_label_raster(reference, ignore_label=ignore_label)
        return reference, [int(v) for v in report["ignored"]], report
    burned = rasterize_to_file(
        reference, grid, field, tmp / "burned.tif", layer=layer, mapping=mapping,
        nomenclature=nomenclature,
    )  # fmt: skip
    ignored = [] if ignore_label is None else [int(ignore_label)]
    return tmp / "burned.tif", ignored, _as_dict(burned)


def _write_labels(
    raw: Path,
    ignored: list[int],
    image: xr.DataArray,
    grid: Grid,
    path: Path,
    counts: BlockCounts | None,
    nomenclature: Nomenclature | None,
    window_size: int,
    empty: InputError,
) -> Path:
    """``labels.tif``: ``raw`` with ignored codes and image no-data set to 0, window by window.

    ``uint8`` when the raw raster is, else ``uint16`` (codes are checked to fit). Raises
    ``empty`` (nothing written) when the reference labels no pixel.
    """
    labelled = 0
    cache = rasterio.Env(GDAL_CACHEMAX=WRITE_CACHE_MB)  # GDAL's default grows with the scene
    with cache, rasterio.open(raw) as src, atomic_output(path) as tmp:
        dtype = "uint8" if src.dtypes[0] == "uint8" else "uint16"
        profile = grid.profile(
            driver="GTiff", count=1, dtype=dtype, nodata=0, compress="DEFLATE", tiled=True
        )
        with rasterio.open(tmp, "w", **profile) as dst:
            for win in iter_windows(grid.height, grid.width, window_size):
                labels = src.read(1, window=win)
                if ignored:
                    labels = np.where(np.isin(labels, ignored), 0, labels)
                labelled += int(np.count_nonzero(labels))
                rows, cols = win.toslices()
                invalid = np.asarray(image[:, rows, cols].isnull().any("band"))
                labels = np.where(invalid, 0, labels).astype(dtype)
                dst.write(labels, 1, window=win)
                if counts is not None:
                    counts.add(labels, win.row_off, win.col_off)
            if labelled == 0:
                raise empty
            if nomenclature is not None and dtype == "uint8":
                dst.write_colormap(1, nomenclature.color_table())
    return path


def _write_split(
    labels_path: Path,
    path: Path,
    place: Callable[[np.ndarray, Window], np.ndarray],
    window_size: int,
) -> tuple[Path, dict[str, object]]:
    """``split.tif`` from ``place(labels_window, window)``, and the split's summary."""
    summary = SplitCounts()
    cache = rasterio.Env(GDAL_CACHEMAX=WRITE_CACHE_MB)
    with cache, rasterio.open(labels_path) as src, atomic_output(path) as tmp:
        profile = {**src.profile, "dtype": "uint8", "nodata": 0}
        with rasterio.open(tmp, "w", **profile) as dst:
            for win in iter_windows(src.height, src.width, window_size):
                labels = src.read(1, window=win)
                split = place(labels, win)
                summary.add(labels, split)
                dst.write(split, 1, window=win)
    return path, summary.summary()


def _hold_out(
    split: np.ndarray, labels: np.ndarray | None, holdout: np.ndarray | None, test: int
) -> np.ndarray:
    """``split`` with the ``holdout`` pixels moved to the test subset (labelled ones only)."""
    if holdout is None:
        return split
    if holdout.shape != split.shape:
        raise ValueError(f"holdout {holdout.shape} is not on the split grid {split.shape}")
    forced = holdout if labels is None else holdout & (labels > 0)
    return np.where(forced, test, np.where(holdout, 0, split)).astype(split.dtype)


def spread_over_blocks(split: np.ndarray, block: int) -> np.ndarray:
    """Give every pixel of a block its block's subset, labelled or not.

    Carried to the finer SPOT grid, this keeps the labelled SPOT pixels that fall in a 10 m
    pixel whose centre is unlabelled (polygon edges, small buildings).
    """
    from iota2_spot_s2.reference import block_ids

    ids = block_ids(split.shape, block)
    subset = np.zeros(int(ids.max()) + 1, np.uint8)
    np.maximum.at(subset, ids.ravel(), split.ravel().astype(np.uint8))
    return subset[ids]


def warp_nearest(array: np.ndarray, src: Grid, dst: Grid) -> np.ndarray:
    """Carry a categorical band from one grid onto another (GDAL nearest neighbour)."""
    from rasterio.warp import Resampling, reproject

    out = np.zeros(dst.shape, dtype=array.dtype)
    reproject(
        array, out, src_transform=src.transform, src_crs=src.crs, dst_transform=dst.transform,
        dst_crs=dst.crs, resampling=Resampling.nearest, src_nodata=None, dst_nodata=0,
    )  # fmt: skip
    return out
