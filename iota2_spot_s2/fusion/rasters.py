"""Raster-level fusion: read sources window by window on one grid, fuse, write COGs.

Example::

    fuse_rasters(
        ["spot/PROBAMAP_T31TCJ_model_1_seed_0.tif", "s2/PROBAMAP_T31TCJ_model_1_seed_0.tif"],
        "classif", codes=[11, 12, 31, 34], rule="dempster_shafer",
        confusions=["spot_val.csv", "s2_val.csv"], names=iota2_names("T31TCJ", 1, 0),
        nomenclature=nom,
    )

Sources are aligned onto the first source's grid (or ``grid``) by GDAL warping; see
:mod:`iota2_spot_s2.fusion._sources` for the resampling (average when coarsening, bilinear when
refining probabilities; mode / nearest for class maps) and :mod:`iota2_spot_s2.fusion._writer`
for the files written.

Like the maps of :mod:`iota2_spot_s2.inference`, a fusion is journaled window by window (a killed
run resumes; finished outputs of the same inputs and options are kept, see
:func:`~iota2_spot_s2.fusion._work.fusion_fingerprint`) and runs in one process by default, or
as window tasks on a dask cluster with ``scheduler=`` / ``workers=``
(:mod:`iota2_spot_s2.inference.distributed`; the outputs are the same).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.enums import Resampling
from tqdm import tqdm

from iota2_spot_s2.fusion._inputs import CodeMismatchError, ConfusionInput
from iota2_spot_s2.fusion._sources import RasterSource, SourceReader, inspect_source, windows
from iota2_spot_s2.fusion._work import FusionWork, as_window, fuse_window, fusion_fingerprint
from iota2_spot_s2.fusion._writer import KINDS, FusionWriter, output_specs
from iota2_spot_s2.fusion.core import LABEL_RULES, make_plan
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.inference.distributed import write_units
from iota2_spot_s2.inference.tiling import PixelWindow
from iota2_spot_s2.inference.writers import FINGERPRINT_TAG, is_complete
from iota2_spot_s2.io import output_lock
from iota2_spot_s2.nomenclature import Nomenclature
from iota2_spot_s2.sensors._raster import resolution_ratio

__all__ = ["FusedRasters", "default_names", "fuse_rasters", "fuse_window", "iota2_names"]


@dataclass(frozen=True)
class FusedRasters:
    """What :func:`fuse_rasters` wrote.

    Attributes:
        paths: ``{"classes", "confidence", "proba", "choice"}`` -> file (``proba`` optional).
        grid: The grid of every output.
        rule: The fusion rule used.
        resumed_windows: Windows an interrupted earlier pass had written (not fused again).

    """

    paths: dict[str, Path]
    grid: Grid
    rule: str
    resumed_windows: int = 0


def iota2_names(tile: str, model: str | int, seed: int) -> dict[str, str]:
    """iota2's file names of a Dempster–Shafer fusion (``classif/`` folder).

    Returns:
        ``{"classes": "Classif_<TILE>_model_<M>_seed_<S>_DS.tif",
        "confidence": "<TILE>_model_<M>_confidence_seed_<S>_DS.tif",
        "proba": "PROBAMAP_<TILE>_model_<M>_seed_<S>_DS.tif",
        "choice": "DSchoice_<TILE>_model_<M>_seed_<S>.tif"}``

    """
    return {
        "classes": f"Classif_{tile}_model_{model}_seed_{seed}_DS.tif",
        "confidence": f"{tile}_model_{model}_confidence_seed_{seed}_DS.tif",
        "proba": f"PROBAMAP_{tile}_model_{model}_seed_{seed}_DS.tif",
        "choice": f"DSchoice_{tile}_model_{model}_seed_{seed}.tif",
    }


def default_names(prefix: str) -> dict[str, str]:
    """``<prefix>_classes.tif``, ``<prefix>_confidence.tif``, ``<prefix>_proba.tif``, ..."""
    return {kind: f"{prefix}_{kind}.tif" for kind in KINDS}


def _check_nomenclature(nomenclature: Nomenclature | None, codes: Sequence[int]) -> None:
    if nomenclature is None:
        return
    missing = sorted(set(codes) - set(nomenclature.codes))
    if missing:
        raise CodeMismatchError(f"class codes {missing} are not in the nomenclature")


def fuse_rasters(
    prob_paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    codes: Sequence[int],
    rule: str = "mean",
    grid: Grid | None = None,
    confusions: Sequence[ConfusionInput] | None = None,
    weights: np.ndarray | None = None,
    mob: str = "precision",
    ties: str = "probability",
    epsilon: float = 1e-6,
    prefix: str = "fused",
    names: Mapping[str, str] | None = None,
    nomenclature: Nomenclature | None = None,
    nodata_label: int = 0,
    undecided_label: int = 0,
    resampling: str | Resampling | None = None,
    write_proba: bool = True,
    block: int | None = None,
    kinds: Sequence[str] | None = None,
    encoding: str = "cog",
    tags: Mapping[str, str] | None = None,
    scheduler: Any = None,
    workers: int | None = None,
    progress: bool = True,
) -> FusedRasters:
    """Fuse probability rasters (or class maps) into class, confidence, probability, choice COGs.

    Args:
        prob_paths: Sources in priority order: ``PROBAMAP``-like rasters (K bands, 0–1000 or
            float [0, 1]) or one-band class maps (told apart by band count).
        out_dir: Output folder (created).
        codes: Class codes, increasing; probability bands must follow them (checked against
            the band ``code`` tags when present).
        rule: See :func:`iota2_spot_s2.fusion.fuse_probabilities`. With ``vote`` and
            ``dempster_shafer_otb`` and only class maps, the raw labels are fused like OTB.
        grid: Target grid (default: the first source's).
        confusions: Per-source validation confusion matrices (arrays on ``codes`` or OTB CSVs).
        weights: Explicit ``(S, K)`` weights for ``weighted_mean``.
        mob: Mass of belief measure for the Dempster–Shafer rules.
        ties: Tie rule of ``vote``.
        epsilon: Probability floor of ``product``.
        prefix: Output names ``<prefix>_<kind>.tif`` (kinds: classes, confidence, proba, choice).
        names: Per-kind file names overriding the prefix names, e.g. :func:`iota2_names`.
        nomenclature: For the colour table and band names.
        nodata_label: Class map value where no source has data (and class-map input nodata).
        undecided_label: Class value where a label rule cannot decide.
        resampling: Force the GDAL resampling used to warp probability sources.
        write_proba: Write the fused probabilities.
        block: Window size in target pixels (default 512, smaller when a source is finer than
            the target, so that the source pixels read per window stay about 512 x 512).
        kinds: Outputs to write, among classes, confidence, proba, choice (default all;
            ``proba`` only with ``write_proba``).
        encoding: ``"cog"`` (our maps' layout) or ``"iota2"`` (confidence float 0-1 and
            ``PROBAMAP`` 0-1000 without nodata, as in iota2's ``classif/``; see
            :mod:`iota2_spot_s2.fusion._writer`).
        tags: Extra dataset tags of every output (besides ``FUSION_RULE`` / ``FUSION_SOURCES``).
        scheduler: ``None`` (one process), ``"local"``, a scheduler address or file, a
            ``distributed.Client`` or cluster object: window tasks on a dask cluster
            (:mod:`iota2_spot_s2.inference.distributed`; the sources and ``out_dir`` must be on
            a filesystem the workers share). The outputs are the same.
        workers: Worker processes of a local cluster (alone it means ``"local"``).
        progress: Show a progress bar.

    Raises:
        InputError: If a source is unreadable or its bands do not match ``codes``.
        CodeMismatchError / ValueError: On inconsistent codes, matrices or options.

    """
    paths = [Path(p) for p in prob_paths]
    if not paths:
        raise ValueError("no source raster to fuse")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    plan = make_plan(
        codes, rule, len(paths), confusions=confusions, weights=weights, mob=mob, ties=ties,
        epsilon=epsilon, nodata_label=nodata_label, undecided_label=undecided_label,
    )  # fmt: skip
    _check_nomenclature(nomenclature, plan.codes)
    sources = [inspect_source(p, plan.codes) for p in paths]
    target = grid or sources[0].grid
    out_paths = _output_paths(Path(out_dir), prefix, names, kinds, write_proba)
    specs = output_specs(out_paths, plan.codes, plan.nodata_label, plan.undecided_label, encoding)
    labels_only = rule in LABEL_RULES and all(s.kind == "labels" for s in sources)
    work = FusionWork(plan, sources, target, resampling, labels_only, encoding)
    size = block or window_size(sources, target)
    all_tags = {
        "FUSION_RULE": rule, "FUSION_SOURCES": ";".join(str(p) for p in paths), **(tags or {}),
    }  # fmt: skip
    extra = [all_tags, repr(nomenclature)]
    all_tags[FINGERPRINT_TAG] = fusion_fingerprint(work, size, list(out_paths), extra)
    cores = [PixelWindow(int(w.row_off), int(w.col_off), int(w.height), int(w.width))
             for w in windows(target, size)]  # fmt: skip
    distributed = scheduler is not None or workers is not None
    with output_lock(Path(out_dir), specs[0].path.stem):
        pending = [s for s in specs if not is_complete(s, target, all_tags[FINGERPRINT_TAG])]
        if not pending:
            return FusedRasters(out_paths, target, rule, len(cores))
        writer = FusionWriter(pending, target, plan.codes, nomenclature, all_tags,
                              plan.undecided_label, encoding, n_tiles=len(cores),
                              keep_on_failure=distributed)  # fmt: skip
        with contextlib.ExitStack() as stack, writer.session():

            def local(todo: list[PixelWindow]) -> None:
                readers = [SourceReader(s, target, stack, resampling, plan.nodata_label)
                           for s in sources]  # fmt: skip
                bar = tqdm(todo, desc=f"fusion ({rule})", disable=None if progress else True)
                for core in bar:
                    window = as_window(core)
                    writer.write_fused(window, fuse_window(plan, readers, window, labels_only))

            resumed = write_units(writer, cores, core_of=lambda c: c, local=local,
                                  work=lambda: work, scheduler=scheduler, workers=workers,
                                  progress=progress)  # fmt: skip
    return FusedRasters(out_paths, target, rule, resumed)


def _output_paths(
    out_dir: Path, prefix: str, names: Mapping[str, str] | None, kinds: Sequence[str] | None,
    write_proba: bool,
) -> dict[str, Path]:  # fmt: skip
    """The file of each output kind asked for."""
    chosen = {**default_names(prefix), **(names or {})}
    wanted = KINDS if kinds is None else tuple(kinds)
    unknown = sorted(set(wanted) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown output kinds {unknown} (known: {', '.join(KINDS)})")
    return {
        kind: out_dir / chosen[kind]
        for kind in KINDS
        if kind in wanted and (kind != "proba" or write_proba)
    }


def window_size(sources: Sequence[RasterSource], target: Grid, base: int = 512) -> int:
    """Target window side reading about ``base`` x ``base`` pixels of the finest source."""
    ratio = max([1.0, *(resolution_ratio(s.grid, target) for s in sources)])
    return int(min(base, max(64, base / ratio)))
