"""Labels on a grid written and checked window by window: memory flat in the scene size.

- :func:`rasterize_to_file` burns a reference layer into a label raster one window at a time,
  with the rules and the report of :func:`~iota2_spot_s2.reference.rasterize_reference` (same
  pixels: each window burns the features that reach it, in layer order, last one wins). The
  raster is ``uint8`` when every burned code fits, else ``uint16``; nodata 0.
- :func:`check_label_raster` applies the checks of a user's label raster (integer codes in
  0..65535, 0 not used as a class beside another nodata value) window by window.
"""

from __future__ import annotations

from collections import Counter
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.grid import Grid, iter_windows
from iota2_spot_s2.io import atomic_output
from iota2_spot_s2.nomenclature import Nomenclature
from iota2_spot_s2.reference.rasterize import (
    RasterizeReport,
    _burn,
    _conflict_pixels,
    features_to_burn,
    label_profile,
)

#: Side of the windows burned or checked at once.
WINDOW_SIZE = 1024


def rasterize_to_file(
    vector_path: str | PathLike[str],
    grid: Grid,
    field: str,
    path: str | PathLike[str],
    *,
    layer: str | int | None = None,
    mapping: Any = None,
    nomenclature: Nomenclature | None = None,
    all_touched: bool = False,
    window_size: int = WINDOW_SIZE,
) -> RasterizeReport:
    """Rasterize ``field`` of a vector layer into the label raster ``path``, window by window.

    Arguments as :func:`~iota2_spot_s2.reference.rasterize_reference` (whose pixels and report
    this reproduces), plus the output ``path`` and the ``window_size``.

    Raises:
        InputError: unreadable file, missing layer/field, non-integer values without mapping.
    """
    _, report, geoms, codes, idx = features_to_burn(vector_path, grid, field, layer, mapping)
    geoms, codes = geoms[idx], codes[idx]
    report.conflict_pixels = _conflict_pixels(geoms, codes, grid, all_touched)
    known = None if nomenclature is None else np.asarray(nomenclature.codes)
    if known is not None:
        unknown = codes[(codes != 0) & ~np.isin(codes, known)]
        report.unknown_code_features = dict(sorted(Counter(int(c) for c in unknown).items()))
    kept = codes if known is None else codes[np.isin(codes, known)]
    dtype = "uint8" if kept.size == 0 or int(kept.max()) <= 255 else "uint16"
    counts: Counter[int] = Counter()
    dropped: Counter[int] = Counter()
    profile = label_profile(grid, dtype)
    tree = shapely.STRtree(geoms)
    with atomic_output(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        for win in iter_windows(grid.height, grid.width, window_size):
            labels = _burn_window(tree, geoms, codes, grid, win, all_touched)
            if known is not None:
                unknown_px = (labels != 0) & ~np.isin(labels, known)
                dropped.update(_histogram(labels[unknown_px]))
                labels[unknown_px] = 0
            counts.update(_histogram(labels))
            dst.write(labels.astype(dtype), 1, window=win)
        if nomenclature is not None and dtype == "uint8":
            dst.write_colormap(1, nomenclature.color_table())
    report.unknown_code_pixels = dict(sorted(dropped.items()))
    report.class_pixel_counts = {c: n for c, n in sorted(counts.items()) if c}
    report.labelled_pixels = sum(report.class_pixel_counts.values())
    report.nodata_pixels = grid.width * grid.height - report.labelled_pixels
    return report


def _burn_window(
    tree: shapely.STRtree,
    geoms: np.ndarray,
    codes: np.ndarray,
    grid: Grid,
    win: Window,
    all_touched: bool,
) -> np.ndarray:
    """uint16 labels of one window: the features whose box reaches it, burned in layer order."""
    sub_transform = window_transform(win, grid.transform)
    sub = Grid(grid.crs, sub_transform, int(win.width), int(win.height))
    left, bottom, right, top = sub.bounds
    pad = float(np.hypot(*grid.res))  # features just outside may touch an edge pixel
    members = np.sort(tree.query(shapely.box(left - pad, bottom - pad, right + pad, top + pad)))
    return _burn(geoms[members], codes[members], sub, all_touched, "uint16")


def _histogram(values: np.ndarray) -> dict[int, int]:
    present, counts = np.unique(values, return_counts=True)
    return {int(v): int(n) for v, n in zip(present, counts, strict=True)}


def check_label_raster(
    path: Path, *, ignore_label: int | None = None, window_size: int = WINDOW_SIZE
) -> dict[str, Any]:
    """Check a user's label raster window by window; its report (what ``ignore`` removed).

    The rules of :func:`~iota2_spot_s2.pipeline.stages.read_label_raster`: integer codes in
    0..65535; the nodata tag and ``ignore_label`` are no-data; 0 may not be used as a class
    while another value is the raster's no-data.

    Raises:
        InputError: Non-integer or out-of-range codes, or 0 used as a class.
    """
    with rasterio.Env(GDAL_CACHEMAX=64), rasterio.open(path) as src:  # each block read once
        if not np.issubdtype(np.dtype(src.dtypes[0]), np.integer):
            raise InputError(path, f"label raster must hold integer codes, not {src.dtypes[0]}")
        ignored = {int(v) for v in (src.nodata, ignore_label) if v is not None}
        zero_used = bool(ignored) and 0 not in ignored
        n_ignored = 0
        for win in iter_windows(src.height, src.width, window_size):
            raw = src.read(1, window=win)
            if raw.size and (raw.min() < 0 or raw.max() > np.iinfo(np.uint16).max):
                raise InputError(path, "label codes must lie in 0..65535")
            if zero_used and (raw == 0).any():
                raise InputError(
                    path,
                    f"uses 0 as a class while {sorted(ignored)} is its "
                    "no-data: recode the classes to 1.. (0 is no-data here)",
                )
            n_ignored += int(np.isin(raw, sorted(ignored - {0})).sum())
    return {
        "source": str(path),
        "kind": "raster",
        "ignored": sorted(ignored),
        "ignored_pixels": n_ignored,
    }
