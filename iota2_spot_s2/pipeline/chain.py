"""Run the SPOT segmentation chain described by an iota2 cfg, tile by tile, model by model.

Output tree under ``chain.output_path``::

    spot_s2/<TILE>/reference/{labels,split}.tif     labels on the SPOT grid, 1/2/3 = train/val/test
    spot_s2/<TILE>/models/<model>.pt                resumable checkpoint (best weights inside)
    spot_s2/<TILE>/maps/<model>_{classes,confidence,proba}.tif + .qml   COGs
    spot_s2/<TILE>/evaluation/<model>/              JSON, OTB-layout CSV, PNG confusion heatmap
    spot_s2/comparison.{json,md,png}                one row per tile and model

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
from iota2_spot_s2.pipeline.stages import load_nomenclature, prepare_reference
from iota2_spot_s2.settings import RunConfig, TrainingSettings


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
    return runs


def run_tile(run: RunConfig, tile: str, nomenclature: Nomenclature | None) -> list[ModelRun]:
    """Labels, split, then train/map/evaluate each configured model on one tile."""
    from iota2_spot_s2.sensors import open_spot

    chain, plugin = run.chain, run.plugin
    assert chain.ground_truth is not None
    image = open_spot(plugin.spot_images[tile])
    tile_dir = chain.output_path / "spot_s2" / tile
    prepared = prepare_reference(
        image,
        chain.ground_truth,
        chain.data_field,
        tile_dir / "reference",
        block_m=plugin.split_block_m,
        seed=plugin.seed,
        mapping=plugin.mapping_table,
        nomenclature=nomenclature,
    )
    codes = (
        list(nomenclature.codes)
        if nomenclature
        else sorted(int(c) for c in np.unique(prepared.labels) if c)
    )
    runs = []
    for model_name in plugin.models:
        runs.append(_run_model(run, tile, model_name, image, prepared, codes, nomenclature))
    label = "simulated" if plugin.simulated else "real"
    plot_maps(
        plugin.spot_images[tile],
        prepared.labels_path,
        {r.model: Path(r.paths["class_map"]) for r in runs},
        tile_dir / "maps_overview.png",
        title=f"{tile} — {label} data",
        nomenclature=nomenclature,
    )
    return runs


def _run_model(
    run: RunConfig,
    tile: str,
    model_name: str,
    image: Any,
    prepared: Any,
    codes: list[int],
    nomenclature: Nomenclature | None,
) -> ModelRun:
    from iota2_spot_s2.inference import predict_map
    from iota2_spot_s2.training import load_model, train

    plugin = run.plugin
    tile_dir = run.chain.output_path / "spot_s2" / tile
    recipe: TrainingSettings = plugin.training
    result = train(
        image,
        prepared.labels,
        prepared.split,
        model_name=model_name,
        class_codes=codes,
        checkpoint_path=tile_dir / "models" / f"{model_name}.pt",
        seed=plugin.seed,
        **asdict(recipe),
    )
    outputs = predict_map(
        load_model(result.checkpoint_path),
        image,
        tile_dir / "maps",
        tile=plugin.tile_size,
        write_proba=plugin.write_probabilities,
        nomenclature=nomenclature,
        prefix=model_name,
    )
    label = "simulated" if plugin.simulated else "real"
    title = f"{model_name} on {tile} — {label} data, test split"
    scores, n_test = _evaluate_test(
        outputs.class_map,
        prepared,
        codes,
        tile_dir / "evaluation" / model_name,
        title,
        nomenclature,
    )
    return ModelRun(
        tile=tile,
        model=model_name,
        overall_accuracy=scores.overall_accuracy,
        kappa=scores.kappa,
        mean_f1=scores.mean_f1,
        per_class_f1={c: float(f) for c, f in zip(codes, scores.f1, strict=True)},
        train_seconds=result.train_seconds,
        best_epoch=result.best_epoch,
        map_pixels_per_second=outputs.pixels_per_second,
        test_pixels=n_test,
        paths={"checkpoint": str(result.checkpoint_path), "class_map": str(outputs.class_map)},
    )


def _evaluate_test(
    class_map: Path,
    prepared: Any,
    codes: list[int],
    out_dir: Path,
    title: str,
    nomenclature: Nomenclature | None,
) -> tuple[Any, int]:
    from iota2_spot_s2.evaluation import confusion_matrix, scores, write_report

    with rasterio.open(class_map) as src:
        produced = src.read(1)
    reference = np.where(prepared.split == 3, prepared.labels, 0)
    cm = confusion_matrix(reference, produced, codes)
    result = scores(cm, codes)
    names = [nomenclature.name_of(c) for c in codes] if nomenclature else None
    write_report(result, cm, codes, out_dir, names=names, title=title)
    return result, int((reference > 0).sum())


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
