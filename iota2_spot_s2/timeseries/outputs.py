"""Sentinel-2 classifier maps on the 10 m grid: probabilities, class map, confidence (COGs).

The files have the layout of :mod:`iota2_spot_s2.inference.writers` (which writes them):

- ``<prefix>_proba.tif``: uint16 ``round(1000 * p)``, one band per class in increasing code
  order like iota2's ``PROBAMAP`` (band descriptions ``"<code> <name>"``), nodata 65535;
- ``<prefix>_classes.tif``: class codes, nodata 0, colour table from the nomenclature;
- ``<prefix>_confidence.tif``: uint8 ``round(100 * max p)``, nodata 255.

Every file carries the gap-filling provenance as dataset tags: ``GAPFILL_METHOD`` (``linear``),
``GAPFILL_STEP_DAYS``, ``GAPFILL_DATES`` (space-separated ``YYYYMMDD``), ``S2_INPUT_DATES`` (the
acquisitions of the predicted series), plus ``S2_CLASSIFIER`` (``rf``/``tempcnn``),
``CLASS_CODES`` and ``N_FEATURES``. Pixels without any valid Sentinel-2 sample are nodata.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
import xarray as xr
from rasterio.windows import Window
from tqdm.auto import tqdm

from iota2_spot_s2.grid import Grid, iter_windows
from iota2_spot_s2.inference.tiling import PixelWindow
from iota2_spot_s2.inference.writers import MapWriter, output_files
from iota2_spot_s2.nomenclature import Nomenclature
from iota2_spot_s2.timeseries.classifiers import S2Classifier, check_bands, predict_window
from iota2_spot_s2.timeseries.gapfill import format_dates
from iota2_spot_s2.timeseries.samples import DEFAULT_WINDOW, series_grid


def provenance_tags(clf: S2Classifier, series: xr.DataArray | None = None) -> dict[str, str]:
    """Dataset tags recording the gap-filling and the classifier."""
    tags = {
        "GAPFILL_METHOD": clf.gapfill_method,
        "GAPFILL_STEP_DAYS": str(clf.spec.step_days),
        "GAPFILL_DATES": " ".join(clf.spec.dates),
        "S2_CLASSIFIER": clf.kind,
        "CLASS_CODES": " ".join(str(c) for c in clf.class_codes),
        "N_FEATURES": str(len(clf.feature_names)),
        "S2_BANDS": " ".join(clf.spec.bands),
    }
    if series is not None:
        tags["S2_INPUT_DATES"] = " ".join(format_dates(series["time"].values))
    return tags


def write_proba_maps(
    proba: np.ndarray,
    grid: Grid,
    out_dir: str | PathLike[str],
    class_codes: list[int] | tuple[int, ...],
    *,
    prefix: str = "s2",
    tags: dict[str, str] | None = None,
    nomenclature: Nomenclature | None = None,
) -> dict[str, Path]:
    """Write in-memory ``(K, H, W)`` probabilities (NaN = nodata) as the three COGs."""
    if proba.shape != (len(class_codes), grid.height, grid.width):
        raise ValueError(f"probabilities {proba.shape} do not match {len(class_codes)} classes "
                         f"on a {grid.height}x{grid.width} grid")  # fmt: skip
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    specs = output_files(Path(out_dir), prefix, list(class_codes), True)
    writer = MapWriter(specs, grid, class_codes, nomenclature, tags or {})
    with writer.session():
        for win in iter_windows(grid.height, grid.width, 1024):
            rows, cols = win.toslices()
            _write(writer, win, proba[:, rows, cols])
    return _finish(specs, nomenclature)


def write_s2_maps(
    clf: S2Classifier,
    series: xr.DataArray,
    out_dir: str | PathLike[str],
    *,
    prefix: str | None = None,
    window: int = DEFAULT_WINDOW,
    nomenclature: Nomenclature | None = None,
) -> dict[str, Path]:
    """Predict ``series`` window by window and write the three COGs (bounded memory).

    Returns:
        ``{"classes": path, "confidence": path, "proba": path}`` (plus ``"qml"`` with a
        nomenclature).
    """
    check_bands(clf, series)
    grid = series_grid(series)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    specs = output_files(Path(out_dir), prefix or f"s2_{clf.kind}", list(clf.class_codes), True)
    writer = MapWriter(specs, grid, clf.class_codes, nomenclature, provenance_tags(clf, series))
    windows = list(iter_windows(grid.height, grid.width, window))
    with writer.session():
        for win in tqdm(windows, desc=f"S2 {clf.kind} map", disable=None, leave=False):
            _write(writer, win, predict_window(clf, series, win))
    return _finish(specs, nomenclature)


def _write(writer: MapWriter, win: Window, proba: np.ndarray) -> None:
    invalid = ~np.isfinite(proba).all(axis=0)
    core = PixelWindow(int(win.row_off), int(win.col_off), int(win.height), int(win.width))
    writer.write(core, np.nan_to_num(proba, nan=0.0), invalid)


def _finish(specs: list, nomenclature: Nomenclature | None) -> dict[str, Path]:
    paths = {spec.kind: spec.path for spec in specs}
    if nomenclature is not None:
        paths["qml"] = nomenclature.write_qml(paths["classes"].with_suffix(".qml"))
    return paths
