"""One runner per strategy: each returns a class map on the SPOT grid (plus its probabilities).

Strategies (``spot_s2_fusion.strategies``):

- ``spot``: each SPOT model of ``models`` (``patch_cnn``, ``fcn``) on the SPOT image alone;
- ``s2-rf`` / ``s2-tempcnn``: a Sentinel-2 classifier on the gap-filled 10 m series; its
  probabilities are brought onto the SPOT grid by GDAL warping (bilinear) for scoring;
- ``early``: the early-fusion network (FCN branch + S2 temporal branch concatenated inside);
- ``late-<rule>``: decision-level fusion of the ``fusion_model`` SPOT map and the
  ``s2_classifier`` map (rules of :mod:`iota2_spot_s2.fusion`), masses and weights from each
  source's validation confusion matrix.

Every map (SPOT, S2, early, the S2 map warped onto the SPOT grid, late fusion) is produced with
the cfg's ``spot_s2_fusion.scheduler`` / ``workers``: one process by default, else tile or window
tasks on a dask cluster (:mod:`iota2_spot_s2.inference.distributed`), with the same maps.

Every runner skips work whose output already exists (checkpoints, saved classifiers, COGs), so
a killed chain resumes. A checkpoint or saved classifier is reused only when its
``data_fingerprint`` names the tile's current labels and split: one trained on other labels or
another split (a changed reference, field, mapping table, block size or seed), or without a
fingerprint, is moved aside to ``<name>.stale-<hash><suffix>`` and trained again from scratch,
so no weights that saw today's TEST pixels are scored
(:mod:`iota2_spot_s2.training.checkpoint_fingerprint`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from iota2_spot_s2.grid import Grid
from iota2_spot_s2.nomenclature import Nomenclature
from iota2_spot_s2.pipeline.prepared import PreparedReference
from iota2_spot_s2.settings import PluginSettings


@dataclass
class TileContext:
    """What every strategy of one tile shares."""

    tile: str
    tile_dir: Path
    spot: xr.DataArray
    s2: xr.DataArray | None
    prepared: PreparedReference
    codes: list[int]
    nomenclature: Nomenclature | None
    plugin: PluginSettings
    source: Path  # the cfg file, named in device errors

    @property
    def device(self) -> str:
        """The torch device of the networks (``spot_s2_fusion.device`` resolved here)."""
        from iota2_spot_s2.devices import resolve_cfg_device

        return str(resolve_cfg_device(self.plugin.device, self.source))

    @property
    def precision(self) -> str:
        """The maps' arithmetic (``spot_s2_fusion.map_precision``; fp16 needs a CUDA device)."""
        from iota2_spot_s2.devices import resolve_cfg_precision

        return resolve_cfg_precision(self.plugin.map_precision, self.plugin.device, self.source)


@dataclass
class StrategyOutput:
    """A strategy's map on the SPOT grid and what it cost."""

    name: str
    class_map: Path
    proba: Path | None
    train_seconds: float = 0.0
    best_epoch: int = 0
    map_pixels_per_second: float = 0.0


def run_spot(ctx: TileContext, model_name: str) -> StrategyOutput:
    """Train (or resume) one SPOT model and map the tile with it."""
    from iota2_spot_s2.inference import predict_map
    from iota2_spot_s2.training import load_model, train

    path = ctx.tile_dir / "models" / f"{model_name}.pt"
    with _training_data(ctx, path):
        result = train(
            ctx.spot, ctx.prepared.labels, ctx.prepared.split, model_name=model_name,
            class_codes=ctx.codes, checkpoint_path=path, seed=ctx.plugin.seed,
            device=ctx.device, **ctx.plugin.recipe(model_name),
        )  # fmt: skip
    model = load_model(result.checkpoint_path)
    model.model.to(ctx.device)
    outputs = predict_map(
        model, ctx.spot, ctx.tile_dir / "maps", tile=ctx.plugin.tile_size, write_proba=True,
        nomenclature=ctx.nomenclature, prefix=model_name, scheduler=ctx.plugin.scheduler,
        workers=ctx.plugin.workers, precision=ctx.precision,
    )  # fmt: skip
    return StrategyOutput(
        f"spot:{model_name}", outputs.class_map, outputs.proba, result.train_seconds,
        result.best_epoch, outputs.pixels_per_second,
    )  # fmt: skip


def run_s2(ctx: TileContext, kind: str) -> StrategyOutput:
    """Train (or reload) a Sentinel-2 classifier, map at 10 m, resample onto the SPOT grid."""
    import time

    from iota2_spot_s2.timeseries import (
        FitOptions,
        load_classifier,
        save_classifier,
        train_s2_classifier,
        write_s2_maps,
    )
    from iota2_spot_s2.training.checkpoint_fingerprint import data_fingerprint

    assert ctx.s2 is not None and ctx.prepared.s2_labels is not None
    assert ctx.prepared.s2_split is not None
    path = ctx.tile_dir / "models" / f"s2_{kind}.joblib"
    tic = time.perf_counter()
    labels, split = ctx.prepared.s2_labels, ctx.prepared.s2_split
    provenance = {**(ctx.prepared.provenance or {}), "grid": "sentinel2"}
    clf = load_classifier(path) if path.is_file() else None
    if clf is not None:
        clf = _same_data_classifier(clf, path, data_fingerprint(labels, split, provenance))
    if clf is not None and (
        tuple(clf.class_codes) != tuple(ctx.codes) or clf.config.get("seed") != ctx.plugin.seed
    ):
        clf = None  # trained for other classes or another seed: train again
    if clf is None:
        clf = train_s2_classifier(
            ctx.s2, labels, split, kind=kind, class_codes=ctx.codes, seed=ctx.plugin.seed,
            tempcnn=FitOptions(epochs=ctx.plugin.tempcnn_epochs), provenance=provenance,
        )  # fmt: skip
        save_classifier(clf, path)
    train_seconds = time.perf_counter() - tic
    tic = time.perf_counter()
    maps = write_s2_maps(clf, ctx.s2, ctx.tile_dir / "maps_s2", nomenclature=ctx.nomenclature,
                         scheduler=ctx.plugin.scheduler, workers=ctx.plugin.workers)  # fmt: skip
    speed = ctx.s2.sizes["y"] * ctx.s2.sizes["x"] / max(time.perf_counter() - tic, 1e-9)
    on_spot = _fuse(ctx, [maps["proba"]], "mean", f"s2_{kind}_on_spot_grid", confusions=None)
    return StrategyOutput(f"s2-{kind}", on_spot["classes"], maps["proba"], train_seconds, 0, speed)


def run_early(ctx: TileContext) -> StrategyOutput:
    """Train (or resume) the early-fusion network and map the tile with SPOT + S2."""
    from iota2_spot_s2.inference.paired import predict_early_fusion_map
    from iota2_spot_s2.training.paired import load_early_fusion, train_early_fusion

    assert ctx.s2 is not None
    recipe = ctx.plugin.recipe("early_fusion")
    recipe["crop"] = max(40, recipe["crop"] // 40 * 40)  # a whole number of S2 pixels
    path = ctx.tile_dir / "models" / "early_fusion.pt"
    with _training_data(ctx, path):
        result = train_early_fusion(
            ctx.spot, ctx.s2, ctx.prepared.labels, ctx.prepared.split, checkpoint_path=path,
            class_codes=ctx.codes, seed=ctx.plugin.seed, device=ctx.device, **recipe,
        )  # fmt: skip
    model = load_early_fusion(result.checkpoint_path)
    model.model.to(ctx.device)
    outputs = predict_early_fusion_map(
        model, ctx.spot, ctx.s2, ctx.tile_dir / "maps",
        tile=ctx.plugin.tile_size, write_proba=True, nomenclature=ctx.nomenclature,
        prefix="early_fusion", scheduler=ctx.plugin.scheduler, workers=ctx.plugin.workers,
        precision=ctx.precision,
    )  # fmt: skip
    return StrategyOutput(
        "early", outputs.class_map, outputs.proba, result.train_seconds, result.best_epoch,
        outputs.pixels_per_second,
    )  # fmt: skip


@contextmanager
def _training_data(ctx: TileContext, path: Path) -> Iterator[None]:
    """Around a SPOT-grid training: retire a checkpoint of other labels/split, record provenance."""
    from iota2_spot_s2.training.checkpoint_fingerprint import retraining_on_other_data

    labels, split = ctx.prepared.labels, ctx.prepared.split
    with retraining_on_other_data(path, labels, split, ctx.prepared.provenance):
        yield


def _same_data_classifier(clf: Any, path: Path, current: dict[str, Any]) -> Any:
    """``clf`` when trained on the data of ``current``, else None (its file moved aside)."""
    from iota2_spot_s2.training.checkpoint_fingerprint import FINGERPRINT_KEY, retire, same_data

    saved = clf.config.get(FINGERPRINT_KEY)
    if same_data(saved, current):
        return clf
    retire(path, saved, current)
    return None


def run_late(
    ctx: TileContext, rule: str, sources: list[StrategyOutput], confusions: list[np.ndarray]
) -> StrategyOutput:
    """Fuse the sources' probabilities (first = SPOT) on the SPOT grid with one rule."""
    import time

    tic = time.perf_counter()
    probas = [s.proba for s in sources]
    assert all(p is not None for p in probas)
    fused = _fuse(ctx, [p for p in probas if p is not None], rule, f"late_{rule}", confusions)
    pixels = ctx.prepared.grid.width * ctx.prepared.grid.height
    speed = pixels / max(time.perf_counter() - tic, 1e-9)
    return StrategyOutput(f"late-{rule}", fused["classes"], fused.get("proba"), 0.0, 0, speed)


def _fuse(
    ctx: TileContext, probas: list[Path], rule: str, prefix: str, confusions: Any
) -> dict[str, Path]:
    from iota2_spot_s2.fusion import fuse_rasters

    grid: Grid = ctx.prepared.grid
    fused = fuse_rasters(
        probas, ctx.tile_dir / "maps_fused", codes=ctx.codes, rule=rule, grid=grid,
        confusions=confusions, mob=ctx.plugin.mob, prefix=prefix,
        nomenclature=ctx.nomenclature, scheduler=ctx.plugin.scheduler, workers=ctx.plugin.workers,
    )  # fmt: skip
    return dict(fused.paths)
