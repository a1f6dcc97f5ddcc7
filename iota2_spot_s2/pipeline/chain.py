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
    spot_s2/<TILE>/product/<strategy>/oso_*         OSO-style product (``oso_product: True``)
    spot_s2/comparison.{json,md,png}                one row per tile and strategy

Every strategy is scored on the same test blocks of the SPOT grid (see
:func:`~iota2_spot_s2.pipeline.prepared.prepare_reference`).

Every step is skipped or resumed when its output is already complete, so a killed run restarts
where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iota2_spot_s2.devices import resolve_cfg_precision
from iota2_spot_s2.errors import InputError
from iota2_spot_s2.evaluation.map_scoring import present_codes, score_map
from iota2_spot_s2.io import atomic_output
from iota2_spot_s2.nomenclature import Nomenclature
from iota2_spot_s2.pipeline.prepared import prepare_reference
from iota2_spot_s2.pipeline.report import comparison_markdown, plot_comparison, plot_maps
from iota2_spot_s2.pipeline.stages import image_grid, load_nomenclature
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
    # a device this machine lacks, or fp16 on a CPU, refused before anything is trained
    resolve_cfg_precision(plugin.map_precision, plugin.device, run.source,
                          training=plugin.recipe("fcn")["precision"])  # fmt: skip
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
    codes = list(nomenclature.codes) if nomenclature else present_codes(prepared.labels_path)
    recode = _oso_recode(run, codes, nomenclature)
    ctx = TileContext(tile, tile_dir, image, s2, prepared, codes, nomenclature, plugin, run.source)
    outputs = _run_strategies(ctx)
    label = "simulated" if plugin.simulated else "real"
    runs = [_score(ctx, out, label) for out in outputs]
    if plugin.oso_product:
        for out in outputs:
            _write_product(ctx, out, recode)
    plot_maps(
        plugin.spot_images[tile], prepared.labels_path,
        {out.name: out.class_map for out in outputs}, tile_dir / "maps_overview.png",
        title=f"{tile} — {label} data", nomenclature=nomenclature,
    )  # fmt: skip
    return runs


def _oso_recode(
    run: RunConfig, codes: list[int], nomenclature: Nomenclature | None
) -> dict[int, int] | None:
    """The map-to-OSO recoding of ``spot_s2_fusion.product_recode``, checked before training.

    Without a table the chain's nomenclature must be OSO's (``plugin_config/
    nomenclature_oso.txt``: same codes and names), so that no map is relabelled silently.

    Raises:
        InputError: ``oso_product`` on another nomenclature without a recode table, or a
            table that leaves a class of the chain unmapped.
    """
    from iota2_spot_s2.product import OSO_CLASSES, read_recode_table

    plugin = run.plugin
    if not plugin.oso_product:
        return None
    if plugin.product_recode is None:
        oso = {code: name.casefold() for code, name, _ in OSO_CLASSES}
        ours = (
            dict(zip(nomenclature.codes, nomenclature.names, strict=True)) if nomenclature else {}
        )
        other = [c for c in codes if oso.get(c) != str(ours.get(c, "")).casefold()]
        if other:
            raise InputError(
                run.source, f"spot_s2_fusion.oso_product needs product_recode (a map-to-OSO "
                f"code table): class codes {other[:8]} are not OSO's classes"
            )  # fmt: skip
        return None
    recode = read_recode_table(plugin.product_recode)
    missing = sorted(set(codes) - set(recode))
    if missing:
        raise InputError(plugin.product_recode, f"gives no OSO code for class codes {missing[:8]}")
    return recode


def _write_product(ctx: TileContext, out: StrategyOutput, recode: dict[int, int] | None) -> None:
    """The OSO-style product of one strategy (skipped when already newer than its map)."""
    from iota2_spot_s2.analysis.complementarity_inputs import CLEAR_DATES_FILE
    from iota2_spot_s2.product import write_oso_product

    confidence = out.class_map.with_name(out.class_map.name.replace("_classes", "_confidence"))
    if not confidence.is_file():
        print(f"OSO product skipped for {out.name}: no confidence raster beside {out.class_map}")
        return
    folder = ctx.tile_dir / "product" / out.name.replace(":", "_").replace("-", "_")
    report = folder / "oso_product.json"
    if report.is_file() and report.stat().st_mtime >= out.class_map.stat().st_mtime:
        return
    clear = ctx.tile_dir / "reference" / CLEAR_DATES_FILE
    write_oso_product(
        out.class_map, confidence, clear if clear.is_file() else None, folder,
        mmu_ha=ctx.plugin.product_mmu_ha, majority_radius=ctx.plugin.product_majority_radius,
        recode=recode,
    )  # fmt: skip


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
    Read window by window from the label, split and map rasters (memory flat in the scene size).
    """
    prepared = ctx.prepared
    return score_map(
        prepared.labels_path, class_map, ctx.codes, split_path=prepared.split_path, subset=subset
    ).matrix


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
