"""``fuse-classify demo``: the whole chain on the embedded simulated landscape.

The demo writes the seeded simulated scene in real formats (SPOT-like GeoTIFF, Theia L2A
folders, GeoPackage reference, iota2 nomenclature files), then an iota2 cfg file pointing at it,
then runs :func:`~iota2_spot_s2.pipeline.chain.run_chain` on that cfg — exactly what a user does
with ``fuse-classify run`` on real data. Every report it writes says "simulated".
"""

from __future__ import annotations

import json
from pathlib import Path

from iota2_spot_s2.inference.tiling import DEFAULT_TILE
from iota2_spot_s2.pipeline.chain import ModelRun, run_chain
from iota2_spot_s2.settings import PLUGIN_SECTION, STRATEGIES, format_cfg, load_config
from iota2_spot_s2.simulation import SceneInfo

DEMO_CFG = "demo.cfg"
#: Every strategy, each fused strategy built from the FCN and the random forest.
DEFAULT_STRATEGIES = (
    "spot", "s2-rf", "s2-tempcnn", "early",
    "late-mean", "late-weighted_mean", "late-product", "late-vote", "late-dempster_shafer",
)  # fmt: skip


#: Demo step budgets: about 2 minutes each on 2 CPU cores (a dense patch_cnn step costs ~9
#: FCN steps); machine-independent, unlike minutes.
DEMO_STEPS = {"fcn": 160, "patch_cnn": 18, "early_fusion": 120}


def write_demo_config(
    scene: SceneInfo,
    out_dir: Path,
    *,
    seed: int,
    minutes_per_model: float | None,
    models: tuple[str, ...],
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES,
    model_steps: dict[str, int] | None = None,
    cluster: dict[str, str | int] | None = None,
) -> Path:
    """Write the iota2 cfg (``chain`` + ``spot_s2_fusion``) describing the simulated scene.

    ``cluster``: ``scheduler`` / ``workers`` keys of the plugin section (dask tile tasks).
    """
    sections = {
        "chain": {
            "output_path": str(out_dir / "outputs"),
            "list_tile": scene.tile,
            "s2_path": str(scene.sensor_data),
            "ground_truth": str(scene.reference),
            "data_field": "code",
            "nomenclature_path": str(scene.nomenclature),
            "color_table": str(scene.color_file),
            "spatial_resolution": 10,
            "proj": "EPSG:2154",
        },
        PLUGIN_SECTION: {
            "spot_images": {scene.tile: str(scene.spot_image)},
            "models": list(models),
            "strategies": list(strategies),
            "s2_classifier": "rf",
            "fusion_model": "fcn" if "fcn" in models else models[0],
            "seed": seed,
            "split_block_m": 120.0,
            "simulated": True,
            "tile_size": DEFAULT_TILE,
            "training": {
                "max_minutes": minutes_per_model,
                "epochs": 400,
                "patience": 400,
            },
            "model_steps": dict(DEMO_STEPS if model_steps is None else model_steps),
            **(cluster or {}),
        },
    }
    path = out_dir / DEMO_CFG
    path.write_text(
        "# fuse-classify demo on a SIMULATED landscape (not real data)\n" + format_cfg(sections)
    )
    return path


def run_demo(
    out_dir: Path,
    *,
    seed: int = 0,
    size_m: float = 1536.0,
    minutes_per_model: float | None = None,
    models: tuple[str, ...] = ("patch_cnn", "fcn"),
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES,
    model_steps: dict[str, int] | None = None,
    cluster: dict[str, str | int] | None = None,
) -> list[ModelRun]:
    """Generate (or reuse) the simulated scene and run the chain on it; return the table rows.

    Each network trains for its step budget (``model_steps``, default :data:`DEMO_STEPS`), so a
    seed gives the same table on any machine; ``minutes_per_model`` adds a time budget (the first
    budget reached stops training; with ``model_steps={}`` only time counts). ``cluster``
    (``{"scheduler": ..., "workers": ...}``) maps as dask tile tasks, written into the cfg.
    """
    from iota2_spot_s2.simulation import generate_scene, load_scene

    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; known: {', '.join(STRATEGIES)}")
    out_dir = Path(out_dir).resolve()
    scene_dir = out_dir / "scene"
    scene = None
    if (scene_dir / "scene.json").is_file():
        recorded = json.loads((scene_dir / "scene.json").read_text())
        if recorded.get("seed") == seed and float(recorded.get("size_m", -1)) == float(size_m):
            scene = load_scene(scene_dir)
    if scene is None:
        print(f"writing the simulated landscape (seed {seed}, {size_m:.0f} m) to {scene_dir}")
        scene = generate_scene(scene_dir, size_m=size_m, seed=seed)
    cfg = write_demo_config(
        scene, out_dir, seed=seed, minutes_per_model=minutes_per_model, models=models,
        strategies=strategies, model_steps=model_steps, cluster=cluster,
    )  # fmt: skip
    print(f"iota2 cfg written to {cfg}; running the chain (SIMULATED data)")
    return run_chain(load_config(cfg))
