"""Run the chain described by an iota2 cfg, tile by tile, strategy by strategy.

Output tree under ``chain.output_path``::

    spot_s2/<TILE>/reference/{labels,split}.tif     labels on the SPOT grid, 1/2/3 = train/val/test
    spot_s2/<TILE>/reference/s2_{labels,split}.tif  the same on the S2 grid (blocks drawn there)
    spot_s2/<TILE>/reference/s2_clear_dates.tif     cloud-free S2 dates per SPOT pixel
    spot_s2/<TILE>/models/                          checkpoints (.pt) and S2 classifiers (.joblib)
    spot_s2/<TILE>/maps/<model>_{classes,confidence,proba}.tif + .qml   SPOT-grid COGs
    spot_s2/<TILE>/maps_s2/                         S2 classifier maps on the 10 m grid
    spot_s2/<TILE>/maps_fused/                      late fusion (+ choice map), S2 on SPOT grid
    spot_s2/<TILE>/evaluation/<strategy>/           JSON, OTB-layout CSV, PNG confusion heatmap
    spot_s2/<TILE>/maps_overview.png                image, reference and every map side by side
    spot_s2/<TILE>/complementarity.{json,md,html}   per-class SPOT / S2 / fusion gains (+ PNGs)
    spot_s2/comparison.{json,md,png}                one row per tile and strategy

Every strategy is scored on the same test blocks of the SPOT grid (see
:func:`~iota2_spot_s2.pipeline.stages.prepare_reference`).

Every step is skipped or resumed when its output is already complete, so a killed run restarts
where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.io import atomic_output
from iota2_spot_s2.nomenclature import Nomenclature
from iota2_spot_s2.pipeline.report import comparison_markdown, plot_comparison, plot_maps
from iota2_spot_s2.pipeline.stages import image_grid, load_nomenclature, prepare_reference
from iota2_spot_s2.pipeline.strategies import (
    StrategyOutput,
    TileContext,
    run_early,
    run_late,
    run_s2,
    run_spot,
)
from iota2_spot_s2.settings import RunConfig


@dataclass
class ModelRun:
    """Scores and costs of one model on one tile's test split."""

    tile: str
    model: str
    overall_accuracy: float
    kappa: float
    mean_f1: float
    per_class_f1: dict[int, float]
    train_seconds: float
    best_epoch: int
    map_pixels_per_second: float
    test_pixels: int
    paths: dict[str, str] = field(default_factory=dict)


def run_chain(run: RunConfig) -> list[ModelRun]:
    """Run every tile that has a SPOT image; write and print the comparison table."""
    chain, plugin = run.chain, run.plugin
    if chain.ground_truth is None:
        raise InputError(run.source, "chain.ground_truth is required to train")
    tiles = [t for t in chain.list_tile if t in plugin.spot_images]
    if not tiles:
        raise InputError(
            run.source, "no tile of chain.list_tile has an entry in spot_s2_fusion.spot_images"
        )
    nomenclature = load_nomenclature(chain.nomenclature_path, chain.color_table)
    label = "simulated" if plugin.simulated else "real"
    runs: list[ModelRun] = []
    for tile in tiles:
        runs += run_tile(run, tile, nomenclature)
    out = chain.output_path / "spot_s2"
    _write_comparison(
        runs,
        out,
        title=f"{label} data, test split (20 %, spatially disjoint blocks)",
        nomenclature=nomenclature,
    )
    for tile in tiles:
        _complementarity(out / tile, plugin, nomenclature)
    return runs


def _complementarity(tile_dir: Path, plugin: Any, nomenclature: Nomenclature | None) -> None:
    """The class-complementarity report of a tile, when it has SPOT, S2 and a fused map."""
    from iota2_spot_s2.analysis.complementarity import Options
    from iota2_spot_s2.analysis.complementarity_cli import report_tile

    kinds = {"spot" if s == "spot" else "s2" if s.startswith("s2-") else "fused"
             for s in plugin.strategies}  # fmt: skip
    if kinds != {"spot", "s2", "fused"}:
        print(f"complementarity report skipped for {tile_dir.name}: needs a SPOT, an S2 and a "
              "fused strategy")  # fmt: skip
        return
    names = dict(zip(nomenclature.codes, nomenclature.names, strict=True)) if nomenclature else None
    prefer = (f"spot:{plugin.fusion_model}", f"s2-{plugin.s2_classifier}")
    report_tile(tile_dir, tile_dir, Options(seed=plugin.seed), names=names, prefer=prefer)


def run_tile(run: RunConfig, tile: str, nomenclature: Nomenclature | None) -> list[ModelRun]:
    """Labels, split, then every configured strategy on one tile, scored on the same test split."""
    from iota2_spot_s2.sensors import open_s2_timeseries, open_spot

    chain, plugin = run.chain, run.plugin
    assert chain.ground_truth is not None
    image = open_spot(plugin.spot_images[tile])
    s2 = None
    if chain.s2_path is not None and any(s != "spot" for s in plugin.strategies):
        s2 = open_s2_timeseries(chain.s2_path / tile)
    tile_dir = chain.output_path / "spot_s2" / tile
    prepared = prepare_reference(
        image, chain.ground_truth, chain.data_field, tile_dir / "reference",
        block_m=plugin.split_block_m, seed=plugin.seed, mapping=plugin.mapping_table,
        nomenclature=nomenclature, s2_grid=image_grid(s2) if s2 is not None else None,
        layer=plugin.reference_layer,
    )  # fmt: skip
    if s2 is not None:
        from iota2_spot_s2.analysis.complementarity_inputs import (
            CLEAR_DATES_FILE,
            write_clear_dates,
        )

        if not (tile_dir / "reference" / CLEAR_DATES_FILE).is_file():
            write_clear_dates(s2, prepared.grid, tile_dir / "reference" / CLEAR_DATES_FILE)
    codes = (
        list(nomenclature.codes)
        if nomenclature
        else sorted(int(c) for c in np.unique(prepared.labels) if c)
    )
    ctx = TileContext(tile, tile_dir, image, s2, prepared, codes, nomenclature, plugin)
    outputs = _run_strategies(ctx)
    label = "simulated" if plugin.simulated else "real"
    runs = [_score(ctx, out, label) for out in outputs]
    plot_maps(
        plugin.spot_images[tile], prepared.labels_path,
        {out.name: out.class_map for out in outputs}, tile_dir / "maps_overview.png",
        title=f"{tile} — {label} data", nomenclature=nomenclature,
    )  # fmt: skip
    return runs


def _run_strategies(ctx: TileContext) -> list[StrategyOutput]:
    """Run the strategies in the configured order; fused ones reuse their sources' outputs."""
    plugin = ctx.plugin
    done: dict[str, StrategyOutput] = {}

    def need(name: str) -> StrategyOutput:
        if name not in done:
            if name.startswith("spot:"):
                done[name] = run_spot(ctx, name.split(":", 1)[1])
            elif name.startswith("s2-"):
                done[name] = run_s2(ctx, name[3:])
            elif name == "early":
                done[name] = run_early(ctx)
            else:
                sources = [need(f"spot:{plugin.fusion_model}"), need(f"s2-{plugin.s2_classifier}")]
                confusions = [_confusion(ctx, s.class_map, subset=2) for s in sources]
                done[name] = run_late(ctx, name[5:], sources, confusions)
        return done[name]

    names: list[str] = []
    for strategy in plugin.strategies:
        names += [f"spot:{m}" for m in plugin.models] if strategy == "spot" else [strategy]
    return [need(name) for name in dict.fromkeys(names)]


def _confusion(ctx: TileContext, class_map: Path, *, subset: int) -> np.ndarray:
    """Confusion on one subset, ``K x K`` on the class codes (for fusion masses and weights)."""
    return _scored_confusion(ctx, class_map, subset=subset)[: len(ctx.codes), : len(ctx.codes)]


def _scored_confusion(ctx: TileContext, class_map: Path, *, subset: int) -> np.ndarray:
    """Confusion on ``codes + [NO_DECISION]``: unmapped map pixels (nodata, undecided) are errors.

    Without the extra column a map with holes would be scored on fewer pixels than the others.
    """
    from iota2_spot_s2.evaluation import confusion_matrix

    with rasterio.open(class_map) as src:
        produced = src.read(1).astype(np.int64)
    no_decision = max(ctx.codes) + 1
    produced = np.where(np.isin(produced, ctx.codes), produced, no_decision)
    reference = np.where(ctx.prepared.split == subset, ctx.prepared.labels, 0)
    return confusion_matrix(reference, produced, [*ctx.codes, no_decision])


def _score(ctx: TileContext, out: StrategyOutput, label: str) -> ModelRun:
    from iota2_spot_s2.evaluation import scores, write_report

    codes = [*ctx.codes, max(ctx.codes) + 1]
    cm = _scored_confusion(ctx, out.class_map, subset=3)
    result = scores(cm, codes)  # mean F1 over reference classes: the extra column never counts
    nomenclature = ctx.nomenclature
    names = (
        [nomenclature.name_of(c) for c in ctx.codes]
        if nomenclature
        else [str(c) for c in ctx.codes]
    )
    write_report(
        result, cm, codes, ctx.tile_dir / "evaluation" / out.name.replace(":", "_"),
        names=[*names, "no decision"],
        title=f"{out.name} on {ctx.tile} — {label} data, test split",
    )  # fmt: skip
    return ModelRun(
        tile=ctx.tile, model=out.name, overall_accuracy=result.overall_accuracy,
        kappa=result.kappa, mean_f1=result.mean_f1,
        per_class_f1={c: float(f) for c, f in zip(ctx.codes, result.f1, strict=False)},
        train_seconds=out.train_seconds, best_epoch=out.best_epoch,
        map_pixels_per_second=out.map_pixels_per_second, test_pixels=int(cm.sum()),
        paths={"class_map": str(out.class_map), "proba": str(out.proba)},
    )  # fmt: skip


def _write_comparison(
    runs: list[ModelRun], out: Path, *, title: str, nomenclature: Nomenclature | None
) -> None:
    table = comparison_markdown(runs, title=title, nomenclature=nomenclature)
    print(table)
    with atomic_output(out / "comparison.md") as tmp:
        tmp.write_text(table + "\n")
    with atomic_output(out / "comparison.json") as tmp:
        tmp.write_text(json.dumps({"title": title, "runs": [asdict(r) for r in runs]}, indent=2))
    plot_comparison(runs, out / "comparison.png", title=title, nomenclature=nomenclature)
