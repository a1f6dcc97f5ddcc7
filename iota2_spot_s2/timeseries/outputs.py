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

:func:`write_s2_maps` maps window by window like :func:`~iota2_spot_s2.inference.predict_map`:
journaled per window (a killed run resumes), finished maps of the same classifier and series
kept (``IOTA2_SPOT_S2_FINGERPRINT`` tag), and with ``scheduler=`` / ``workers=`` the windows run
as tasks on a dask cluster (:class:`S2Work`; the series' graph or file paths are sent to the
workers, never pixels already read): the maps are the same as in one process.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import xarray as xr
from dask.base import tokenize
from rasterio.windows import Window
from tqdm.auto import tqdm

from iota2_spot_s2.arrays import zero_nonfinite
from iota2_spot_s2.grid import Grid, iter_windows
from iota2_spot_s2.inference.distributed import write_units
from iota2_spot_s2.inference.tiling import PixelWindow
from iota2_spot_s2.inference.writers import (
    FINGERPRINT_TAG,
    KINDS,
    MapWriter,
    encode,
    is_complete,
    output_files,
)
from iota2_spot_s2.io import output_lock
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
    scheduler: Any = None,
    workers: int | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """Predict ``series`` window by window and write the three COGs (bounded memory).

    Args:
        clf: The trained classifier.
        series: The ``(time, band, y, x)`` series (lazy: read window by window).
        out_dir: Output folder (created).
        prefix: File-name prefix (default ``s2_<kind>``).
        window: Window side in pixels (the maps do not depend on it).
        nomenclature: Colours and class names.
        scheduler: ``None`` (one process), ``"local"``, a scheduler address or file, a
            ``distributed.Client`` or cluster object: window tasks on a dask cluster
            (:mod:`iota2_spot_s2.inference.distributed`); the maps are the same.
        workers: Worker processes of a local cluster (alone it means ``"local"``).
        progress: Show a progress bar.

    Returns:
        ``{"classes": path, "confidence": path, "proba": path}`` (plus ``"qml"`` with a
        nomenclature).
    """
    check_bands(clf, series)
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    grid = series_grid(series)
    out, name = Path(out_dir), prefix or f"s2_{clf.kind}"
    specs = output_files(out, name, list(clf.class_codes), True)
    tags = provenance_tags(clf, series)
    tags[FINGERPRINT_TAG] = s2_fingerprint(clf, series, window, [tags, repr(nomenclature)])
    cores = [_core(win) for win in iter_windows(grid.height, grid.width, window)]
    with output_lock(out, name):
        pending = [s for s in specs if not is_complete(s, grid, tags[FINGERPRINT_TAG])]
        if not pending:
            return _finish(specs, nomenclature)
        writer = MapWriter(pending, grid, clf.class_codes, nomenclature, tags, len(cores))
        with writer.session():

            def local(todo: list[PixelWindow]) -> None:
                bar = tqdm(todo, desc=f"S2 {clf.kind} map", disable=None if progress else True,
                           leave=False)  # fmt: skip
                for core in bar:
                    _write(writer, _window(core), predict_window(clf, series, _window(core)))

            work = S2Work(clf, series)
            write_units(writer, cores, core_of=lambda c: c, local=local, work=lambda: work,
                        scheduler=scheduler, workers=workers, progress=progress)  # fmt: skip
    return _finish(specs, nomenclature)


@dataclass
class S2Work:
    """Windows of a Sentinel-2 classifier's map, sent to each dask worker once.

    Attributes:
        clf: The classifier (a random forest predicts with the worker's threads).
        series: The lazy series (its graph; each task reads its own window).

    """

    clf: S2Classifier
    series: xr.DataArray

    def build(self, threads: int) -> S2Classifier:
        """The worker's classifier (a copy: the forest's ``n_jobs`` set to ``threads``)."""
        clf = copy.copy(self.clf)
        if clf.kind == "rf":
            clf.estimator = copy.copy(clf.estimator)
            clf.estimator.n_jobs = threads
        return clf

    def compute(
        self, clf: S2Classifier, group: list[PixelWindow], kinds: Sequence[str]
    ) -> list[tuple[PixelWindow, dict[str, np.ndarray]]]:
        """Predict each window of ``group`` and encode its ``kinds``."""
        codes = np.asarray(clf.class_codes)
        return [(core, _encode(predict_window(clf, self.series, _window(core)), codes, kinds))
                for core in group]  # fmt: skip


def s2_fingerprint(clf: S2Classifier, series: xr.DataArray, window: int, extra: Any) -> str:
    """Hash of what sets an S2 map: the fitted classifier, the series, the windows, ``extra``."""
    h = hashlib.sha256()
    if clf.kind == "rf":
        h.update(joblib.hash(clf.estimator).encode())
    else:
        for key, tensor in sorted(clf.estimator.state_dict().items()):
            h.update(key.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    for array in (clf.channel_mean, clf.channel_std):
        h.update(b"-" if array is None else np.asarray(array, np.float64).tobytes())
    desc = {
        "format": 1, "kind": clf.kind, "codes": [int(c) for c in clf.class_codes],
        "spec": repr(clf.spec), "gapfill": clf.gapfill_method, "series": tokenize(series),
        "window": window, "extra": extra,
    }  # fmt: skip
    h.update(json.dumps(desc, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _core(win: Window) -> PixelWindow:
    return PixelWindow(int(win.row_off), int(win.col_off), int(win.height), int(win.width))


def _window(core: PixelWindow) -> Window:
    return Window(core.col, core.row, core.width, core.height)


def _encode(
    proba: np.ndarray, codes: np.ndarray, kinds: Sequence[str] = KINDS
) -> dict[str, np.ndarray]:
    """Encoded outputs ``kinds`` of ``(K, h, w)`` probabilities, NaN = nodata."""
    invalid = ~np.isfinite(proba).all(axis=0)
    # a copy: write_proba_maps passes views of the caller's array (NaN = nodata there)
    return encode(zero_nonfinite(np.array(proba, np.float32)), invalid, codes, kinds)


def _write(writer: MapWriter, win: Window, proba: np.ndarray) -> None:
    writer.write_encoded(_core(win), _encode(proba, writer.codes, writer.kinds))


def _finish(specs: list, nomenclature: Nomenclature | None) -> dict[str, Path]:
    paths = {spec.kind: spec.path for spec in specs}
    if nomenclature is not None:
        paths["qml"] = nomenclature.write_qml(paths["classes"].with_suffix(".qml"))
    return paths
