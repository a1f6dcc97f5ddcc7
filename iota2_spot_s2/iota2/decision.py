"""Decision-level fusion inside iota2: iota2's classification of a tile with the SPOT FCN's.

Sources, on the tile grid, in this order (the choice map follows it):

1. the SPOT step's ``spot_s2/classif/PROBAMAP_<TILE>_model_<M>_seed_<S>_SPOT.tif``;
2. iota2's own classification: its ``PROBAMAP_<TILE>_model_<M>_seed_<S>.tif`` when present,
   its bands spread onto the SPOT FCN's classes by iota2's class order (below); else its class
   map softened by its confidence (the chosen class gets the confidence, the others share the
   rest equally); else its class map alone.

iota2's class order (``Classification/ImageClassifier.py``): every PROBAMAP has one band per
class of the sorted union of the classes of *all* its models and seeds (a model that learnt
fewer classes has its bands reordered onto that union). Read, in this order, from the
class dictionaries of ``model/model_*_seed_*.txt`` (what iota2 itself reads when it writes
PROBAMAPs), the ``learningSamples/Samples_region_*_seed*_learn.sqlite`` files, or the
``dataAppVal/*_seed_*_learn.sqlite`` polygons of every tile and seed
(:func:`iota2_class_order`). When none exists, or the band count differs from the union's
size, fusing the PROBAMAP is refused with one :class:`InputError`: bands are never matched to
classes by count.

The label rules (``vote``, ``dempster_shafer_otb``) fuse the two class maps themselves
(``Classif_..._SPOT.tif`` and ``Classif_...tif``), as iota2 and OTB's FusionOfClassifications do.

Masses (Dempster–Shafer) and per-class weights (weighted mean) come from each source's confusion
matrix on validation pixels that neither model learnt from: when iota2's sampling ran, its
validation polygons (``dataAppVal/<TILE>_seed_<S>_val.sqlite``, which the SPOT step held out of
training) cut into two spatially disjoint halves of blocks — one half for the masses, the other
for the scores below; else the SPOT step's validation blocks (masses) and test blocks (scores),
which iota2's own classifier may have learnt from (the report says which was used).

Outputs, with iota2's names (:func:`~iota2_spot_s2.iota2.names.fused_paths`):
``Classif_..._DS.tif``, ``..._confidence_seed_<S>_DS.tif`` (float32 0-1), ``PROBAMAP_..._DS.tif``
and ``DSchoice_<TILE>_model_<M>_seed_<S>.tif`` (0 none, 1 both agree, 2 SPOT alone, 3 iota2
alone); the rule is recorded in the ``FUSION_RULE`` tag. Where they go decides what iota2's
``final/`` holds (its mosaic sums every ``Classif*seed_<S>*.tif`` of ``classif/``, or only the
``*DS.tif`` ones under ``argTrain.dempster_shafer_SAR_Opt_fusion``):

- the cfg sets ``dempster_shafer_SAR_Opt_fusion : True``: ``classif/`` and
  ``final/TMP/DSchoice_*``, like iota2's own SAR/optical fusion, so iota2's mosaic puts the
  fused map in ``final/`` in place of its own. A ``_DS`` class map already in ``classif/``
  without our ``FUSION_RULE`` tag is iota2's SAR/optical fusion: refused, never overwritten;
- otherwise: ``spot_s2/classif/`` (choice map included), which iota2's mosaic never reads, so
  ``final/`` stays iota2's own map; ``_DS`` files an earlier run of ours left in ``classif/``
  (``FUSION_RULE`` tag) are removed, since they would be summed into it.

Each source and the fused map are scored on those held-out pixels:
``spot_s2/<TILE>/iota2_fusion/seed_<S>_<rule>.json``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.io import atomic_output, finalize_cog, open_tiled_gtiff
from iota2_spot_s2.iota2.classify import TileJob, require_s2_path, validation_labels
from iota2_spot_s2.iota2.names import fused_paths, spot_paths
from iota2_spot_s2.iota2.tree import (
    Iota2Classification,
    iota2_classification,
    iota2_field,
    iota2_validation,
)
from iota2_spot_s2.iota2.tree import tile_grid as iota2_tile_grid
from iota2_spot_s2.nomenclature import Nomenclature
from iota2_spot_s2.reference import TEST, TRAIN, VAL
from iota2_spot_s2.settings import RunConfig

CONFUSION_RULES = ("weighted_mean", "dempster_shafer", "dempster_shafer_otb")


@dataclass
class DecisionFusion:
    """What :func:`fuse_tile` wrote and measured."""

    tile: str
    seed: int
    rule: str
    paths: dict[str, Path]
    iota2_source: str
    validation: str
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)


def fuse_tile(
    run: RunConfig,
    job: TileJob,
    *,
    rule: str | None = None,
    nomenclature: Nomenclature | None = None,
) -> DecisionFusion:
    """Fuse iota2's classification of one tile and seed with the SPOT FCN's (module docstring)."""
    from iota2_spot_s2.fusion import fuse_rasters
    from iota2_spot_s2.fusion.core import LABEL_RULES

    chain, plugin = run.chain, run.plugin
    if plugin.mapping_table is not None:
        raise InputError(
            run.source,
            "spot_s2_fusion.mapping_table: iota2 classifies the chain.data_field codes as they "
            "are, so the SPOT FCN's mapped classes could not be fused with iota2's",
        )
    rule = rule or plugin.decision_rule
    grid = iota2_tile_grid(require_s2_path(run), job.tile, chain.spatial_resolution)
    spot = spot_paths(chain.output_path, job.tile, plugin.iota2_model, job.seed)
    if not spot["proba"].is_file():
        raise InputError(spot["proba"], "missing: run 'fuse-classify iota2 step' first")
    codes = _band_codes(spot["proba"])
    iota = iota2_classification(chain.output_path, job.tile, plugin.iota2_model, job.seed)
    for path in (iota.classes, spot["classes"]):
        _check_grid(path, grid)
    work = chain.output_path / "spot_s2" / job.tile / "iota2_fusion"
    reference, val_mask, test_mask, validation = _reference(run, job, grid, nomenclature)
    maps = {"spot": spot["classes"], "iota2": iota.classes}
    confusions = None
    if rule in CONFUSION_RULES:
        if reference is None or not val_mask.any():
            raise InputError(run.source, f"rule {rule} needs validation pixels: {validation}")
        confusions = [_confusion(reference, maps[s], val_mask, codes) for s in ("spot", "iota2")]
    into_iota2 = iota2_takes_ds(run.source)
    out = fused_paths(chain.output_path, job.tile, plugin.iota2_model, job.seed,
                      into_iota2=into_iota2)  # fmt: skip
    _clear_ds(fused_paths(chain.output_path, job.tile, plugin.iota2_model, job.seed,
                          into_iota2=True), keep_ours=into_iota2)  # fmt: skip
    if rule in LABEL_RULES:  # like iota2 / OTB: the class maps themselves are fused
        sources, kind = [spot["classes"], iota.classes], "class map"
    else:
        source, kind = _iota2_source(run, iota, codes, grid, work)
        sources = [spot["proba"], source]
    fuse_rasters(
        sources, out["classes"].parent, codes=codes, rule=rule, grid=grid,
        confusions=confusions, mob=plugin.mob, names={k: str(p) for k, p in out.items()},
        encoding="iota2", nomenclature=nomenclature, scheduler=plugin.scheduler,
        workers=plugin.workers,
    )  # fmt: skip
    if nomenclature is not None:  # QGIS style beside the class map (it has a colour table)
        nomenclature.write_qml(out["classes"].with_suffix(".qml"))
    result = DecisionFusion(job.tile, job.seed, rule, out, kind, validation)
    if reference is not None and test_mask.any():
        for name, path in {**maps, "fused": out["classes"]}.items():
            result.scores[name] = _scores(reference, path, test_mask, codes)
        _complementarity(run, job, np.where(test_mask, reference, 0), maps, out, codes,
                         grid.res[0], work / f"seed_{job.seed}_{rule}", nomenclature)  # fmt: skip
    _write_report(result, work / f"seed_{job.seed}_{rule}.json")
    return result


def _complementarity(
    run: RunConfig, job: TileJob, reference: np.ndarray, maps: dict[str, Path],
    fused: dict[str, Path], codes: list[int], pixel_m: float, out_dir: Path,
    nomenclature: Nomenclature | None,
) -> None:  # fmt: skip
    """Per-class report: the SPOT step's map vs iota2's (Sentinel-2) map vs the fused one."""
    from iota2_spot_s2.analysis.complementarity import Comparison, Options, Strategy, analyse
    from iota2_spot_s2.analysis.complementarity_report import write_complementarity

    choice = _read(fused["choice"]) if fused["choice"].is_file() else None
    comp = Comparison(
        reference, codes, pixel_size_m=pixel_m,
        names=dict(zip(nomenclature.codes, nomenclature.names, strict=True)) if nomenclature
        else {},
        strategies=[Strategy("spot", frozenset({"spot"}), _read(maps["spot"])),
                    Strategy("iota2", frozenset({"s2"}), _read(maps["iota2"])),
                    Strategy("fused", frozenset({"spot", "s2"}), _read(fused["classes"]), choice)],
    )  # fmt: skip
    block = max(2, round(run.plugin.split_block_m / pixel_m))
    result = analyse(comp, Options(block_px=block, seed=job.seed))
    write_complementarity(
        result, out_dir, data_kind="simulated" if run.plugin.simulated else "real",
        title=f"iota2 tile {job.tile} seed {job.seed}: SPOT step vs iota2 vs fused",
    )  # fmt: skip


def _band_codes(path: Path) -> list[int]:
    from iota2_spot_s2.fusion._sources import _tag_codes

    with rasterio.open(path) as src:
        codes = _tag_codes([src.tags(b).get("code") for b in range(1, src.count + 1)])
    if codes is None:
        raise InputError(path, "bands carry no class 'code' tags (not written by the SPOT step)")
    return codes


def _check_grid(path: Path, grid: Grid) -> None:
    found = Grid.from_raster(path)
    if (found.crs, found.transform, found.shape) != (grid.crs, grid.transform, grid.shape):
        raise InputError(path, f"not on the tile grid ({grid.shape} px, {grid.transform})")


def iota2_takes_ds(cfg: Path) -> bool:
    """Whether ``argTrain.dempster_shafer_SAR_Opt_fusion`` is on: iota2 mosaics ``_DS`` alone."""
    from iota2_spot_s2.settings import read_cfg

    raw = read_cfg(cfg)
    for section in ("argTrain", "arg_train"):
        values = raw.get(section)
        if isinstance(values, dict):
            for key, value in values.items():
                if key.lower() == "dempster_shafer_sar_opt_fusion" and value is True:
                    return True
    return False


def _clear_ds(iota2_ds: dict[str, Path], *, keep_ours: bool) -> None:
    """Refuse to overwrite iota2's own ``_DS`` files; drop ours from ``classif/`` if unwanted.

    Raises:
        InputError: If ``keep_ours`` (we are about to write there) and ``classif/`` holds a
            ``_DS`` class map without our ``FUSION_RULE`` tag (iota2's SAR/optical fusion).

    """
    classes = iota2_ds["classes"]
    if not classes.is_file():
        return
    with rasterio.open(classes) as src:
        ours = "FUSION_RULE" in src.tags()
    if not ours:
        if keep_ours:
            raise InputError(classes, "iota2's own SAR/optical fusion: not overwritten")
        return
    if not keep_ours:  # left by an earlier run: iota2's mosaic would add it to its own map
        for path in iota2_ds.values():
            path.unlink(missing_ok=True)
        classes.with_suffix(".qml").unlink(missing_ok=True)


def iota2_class_order(output_path: Path, data_field: str) -> tuple[list[int] | None, str]:
    """iota2's PROBAMAP classes (sorted union, all models and seeds) and whence; None: unknown."""
    import pyogrio.raw

    models = sorted((output_path / "model").glob("model_*_seed_*.txt"))
    classes = [c for m in models for c in _model_dictionary(m)]
    if classes:
        return sorted(set(classes)), "the class dictionaries of model/model_*_seed_*.txt"
    for folder, pattern in (("learningSamples", "Samples_region_*_seed*_learn.sqlite"),
                            ("dataAppVal", "*_seed_*_learn.sqlite")):  # fmt: skip
        values: set[int] = set()
        for path in sorted((output_path / folder).glob(pattern)):
            field = iota2_field(path, data_field)
            if field is None:
                continue
            _, _, _, columns = pyogrio.raw.read(path, columns=[field], read_geometry=False)
            values |= {int(v) for v in columns[0] if v is not None and int(v) != 0}
        if values:
            return sorted(values), f"the union of {folder}/{pattern}"
    return None, "no model/*.txt dictionary, learningSamples/ or dataAppVal/ learn file"


def _model_dictionary(path: Path) -> list[int]:
    """Classes of an OTB model file written ``with_dictionary``: line 2 = count, then codes."""
    lines = path.read_text(errors="replace").splitlines()
    ok = len(lines) > 1 and "#" in lines[0] and "with_dictionary" in lines[0]
    tokens = lines[1].split() if ok else []
    ok = ok and all(t.lstrip("-").isdigit() for t in tokens) and len(tokens) > int(tokens[0])
    return [int(t) for t in tokens[1 : 1 + int(tokens[0])]] if ok else []


def _iota2_source(
    run: RunConfig, iota: Iota2Classification, codes: list[int], grid: Grid, work: Path
) -> tuple[Path, str]:
    """The iota2 source to fuse and what it is (see the module docstring).

    Raises:
        InputError: If iota2's PROBAMAP exists but its class order cannot be known.

    """
    if iota.proba is not None:
        with rasterio.open(iota.proba) as src:
            count = src.count
        order, whence = iota2_class_order(run.chain.output_path, run.chain.data_field)
        if order is None or len(order) != count:
            found = whence if order is None else f"{len(order)} classes {order} in {whence}"
            raise InputError(
                iota.proba,
                f"which class each of its {count} bands holds is unknown (iota2 orders them by "
                f"the sorted classes of all its models and seeds; found: {found}); restore "
                "iota2's model/ or learningSamples/ files, or remove the PROBAMAP to fuse "
                "iota2's class map and confidence",
            )
        if order == codes:
            return iota.proba, "PROBAMAP"
        out = work / f"iota2_proba_seed_{iota.seed}.tif"
        return expand_probamap(iota.proba, order, codes, grid, out), "PROBAMAP (expanded)"
    if iota.confidence is not None:
        out = work / f"iota2_soft_seed_{iota.seed}.tif"
        return soften(iota.classes, iota.confidence, codes, grid, out), "class map+confidence"
    return iota.classes, "class map"


def iota2_learnt_codes(run: RunConfig, tile: str, seed: int) -> list[int] | None:
    """The classes of iota2's learning polygons (its model's PROBAMAP bands), if known."""
    import pyogrio.raw

    from iota2_spot_s2.iota2.names import learning_vector

    path = learning_vector(run.chain.output_path, tile, seed)
    if not path.is_file():
        return None
    field = iota2_field(path, run.chain.data_field)
    if field is None:
        return None
    _, _, _, columns = pyogrio.raw.read(path, columns=[field], read_geometry=False)
    return sorted({int(v) for v in columns[0] if v is not None and int(v) != 0})


def expand_probamap(
    proba: Path, learnt: list[int], codes: list[int], grid: Grid, out: Path
) -> Path:
    """iota2's ``PROBAMAP`` over its learnt classes as float32 bands over ``codes`` (0 elsewhere).

    Raises:
        InputError: If iota2 learnt a class the SPOT FCN does not know.

    """
    extra = sorted(set(learnt) - set(codes))
    if extra:
        raise InputError(proba, f"classes {extra} are not among the SPOT FCN's {codes}")
    bands = [codes.index(c) for c in learnt]
    with rasterio.open(proba) as src:

        def block(win: Window) -> np.ndarray:
            values = np.zeros((len(codes), int(win.height), int(win.width)), np.float32)
            values[bands] = src.read(window=win).astype(np.float32) / 1000.0
            return values

        return _write_probabilities(out, grid, len(codes), block)


def soften(classes: Path, confidence: Path, codes: list[int], grid: Grid, out: Path) -> Path:
    """A float32 probability raster from a class map and its confidence (0-1, or 0-100 ints).

    The chosen class gets the confidence, the other classes share ``1 - confidence`` equally;
    pixels without a known class get an all-zero vector (no data for the fusion).
    """
    k = len(codes)
    lookup = np.full(max(max(codes), 255) + 1, -1, np.int64)
    lookup[codes] = np.arange(k)
    with rasterio.open(classes) as cls_src, rasterio.open(confidence) as conf_src:
        scale = 1.0 if np.dtype(conf_src.dtypes[0]).kind == "f" else 100.0

        def block(win: Window) -> np.ndarray:
            labels = cls_src.read(1, window=win).astype(np.int64)
            conf = np.clip(conf_src.read(1, window=win).astype(np.float32) / scale, 0, 1)
            index = np.where(labels < lookup.size, lookup[np.minimum(labels, lookup.size - 1)], -1)
            values = np.repeat(((1 - conf) / max(k - 1, 1))[None], k, axis=0)
            rows, cols = np.nonzero(index >= 0)
            values[index[rows, cols], rows, cols] = conf[rows, cols]
            values[:, index < 0] = 0.0
            return values

        return _write_probabilities(out, grid, k, block)


def _write_probabilities(
    out: Path, grid: Grid, count: int, block: Callable[[Window], np.ndarray]
) -> Path:
    """A float32 ``count``-band COG on ``grid`` from ``block(window)``, written atomically."""
    tmp = out.with_name(f".{out.stem}.{uuid.uuid4().hex[:8]}.partial.tif")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open_tiled_gtiff(tmp, grid, count, "float32") as dst:
            for win in grid.windows(512):
                dst.write(block(win), window=win)
        finalize_cog(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _reference(
    run: RunConfig, job: TileJob, grid: Grid, nomenclature: Nomenclature | None
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, str]:
    """Labels on the tile grid, validation and test masks, and where validation came from."""
    vector = iota2_validation(run.chain.output_path, job.tile, job.seed)
    if vector is not None:
        val_labels = validation_labels(run, vector, grid, nomenclature)
        halves = _halves(val_labels, run.plugin.split_block_m / grid.res[0], job.seed)
        where = f"half of iota2's validation polygons {vector.name} (scores: the other half)"
        return val_labels, halves == TRAIN, halves == TEST, where
    split_dir = run.chain.output_path / "spot_s2" / job.tile / f"reference_seed_{job.seed}"
    if not (split_dir / "s2_split.tif").is_file():
        empty = np.zeros(grid.shape, bool)
        return None, empty, empty, "no dataAppVal polygons and no SPOT step split"
    labels, split = _read(split_dir / "s2_labels.tif"), _read(split_dir / "s2_split.tif")
    return labels, split == VAL, split == TEST, "validation blocks of the SPOT step"


def _halves(labels: np.ndarray, block: float, seed: int) -> np.ndarray:
    """iota2's validation pixels in two spatially disjoint halves (blocks): masses / scores."""
    from iota2_spot_s2.reference import split_blocks

    size = max(2, int(round(block)))
    return split_blocks(labels, block_size=size, seed=seed, fractions=(0.5, 0.0, 0.5))


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def _confusion(
    reference: np.ndarray, produced: Path, mask: np.ndarray, codes: list[int]
) -> np.ndarray:
    from iota2_spot_s2.evaluation import confusion_matrix

    return confusion_matrix(np.where(mask, reference, 0), _read(produced), codes)


def _scores(
    reference: np.ndarray, produced: Path, mask: np.ndarray, codes: list[int]
) -> dict[str, Any]:
    from iota2_spot_s2.evaluation import confusion_matrix, scores

    # unmapped pixels (nodata, undecided) count as errors: a "no decision" column
    no_decision = max(codes) + 1
    values = _read(produced)
    values = np.where(np.isin(values, codes), values, no_decision)
    cm = confusion_matrix(np.where(mask, reference, 0), values, [*codes, no_decision])
    result = scores(cm, [*codes, no_decision])
    cm = cm[: len(codes)]
    present = cm.sum(axis=1) > 0
    return {
        "overall_accuracy": float(result.overall_accuracy),
        "kappa": float(result.kappa),
        "mean_f1": float(result.mean_f1),
        "pixels": int(cm.sum()),
        "per_class_f1": {
            str(c): float(f) for c, f, p in zip(codes, result.f1, present, strict=False) if p
        },
    }


def _write_report(result: DecisionFusion, path: Path) -> None:
    data = asdict(result)
    data["paths"] = {k: str(p) for k, p in result.paths.items()}
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2))
