"""The three iota2 routes, each one call (what ``fuse-classify iota2 ...`` runs).

- :func:`run_step`: the SPOT FCN step on every tile and seed (``classif/*_SPOT.tif``);
- :func:`feature_fusion`: feature level — SPOT features as a userFeat tree on each tile's grid,
  and a cfg registering them as userFeat and external features, for iota2 to learn from;
- :func:`decision_fusion`: decision level — iota2's classifications fused with the SPOT FCN's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from iota2_spot_s2.iota2.classify import (
    SpotClassification,
    TileJob,
    classify_tile,
    crop_to_grid,
    require_s2_path,
    spot_image_of,
    tiles_with_spot,
)
from iota2_spot_s2.iota2.decision import DecisionFusion, fuse_tile
from iota2_spot_s2.iota2.names import user_feat_file
from iota2_spot_s2.iota2.step import StandaloneSpotFCNClassification
from iota2_spot_s2.iota2.tree import tile_grid
from iota2_spot_s2.nomenclature import Nomenclature
from iota2_spot_s2.settings import RunConfig

FEATURE_CFG = "iota2_feature_fusion.cfg"


@dataclass
class FeatureRoute:
    """What :func:`feature_fusion` wrote."""

    user_feat_path: Path
    cfg: Path
    files: dict[str, dict[str, Path]] = field(default_factory=dict)


def _nomenclature(run: RunConfig) -> Nomenclature | None:
    from iota2_spot_s2.pipeline.stages import load_nomenclature

    return load_nomenclature(run.chain.nomenclature_path, run.chain.color_table)


def run_step(run: RunConfig, tiles: list[str] | None = None) -> list[SpotClassification]:
    """Run the step standalone (never through iota2's scheduler, even where iota2 imports)."""
    step = StandaloneSpotFCNClassification(str(run.source), tiles=tiles_with_spot(run, tiles))
    return step.run_standalone()


def feature_fusion(
    run: RunConfig,
    *,
    tiles: list[str] | None = None,
    seed: int = 0,
    generation: str | None = None,
) -> FeatureRoute:
    """Write the SPOT userFeat tree (FCN of ``seed``) and the cfg registering it.

    The cfg is written in the iota2 generation of ``run``'s cfg (2020 camelCase or current
    snake_case), or in ``generation`` (``'2020'``, ``'current'``) when given.
    """
    from iota2_spot_s2.iota2.cfg import write_feature_cfg
    from iota2_spot_s2.iota2.features import copy_probabilities, texture_band_names, write_texture
    from iota2_spot_s2.sensors import open_spot

    nomenclature = _nomenclature(run)
    root = run.chain.user_feat_path or run.chain.output_path / "spot_s2" / "userFeat"
    route = FeatureRoute(root, run.chain.output_path / "spot_s2" / FEATURE_CFG)
    features = run.plugin.spot_features
    ndvi = True
    for tile in tqdm(tiles_with_spot(run, tiles), desc="SPOT features", disable=None):
        files: dict[str, Path] = {}
        if "probabilities" in features:
            done = classify_tile(run, TileJob(tile, seed), nomenclature)
            files["probabilities"] = copy_probabilities(
                done.classif["proba"], user_feat_file(root, tile, "probabilities")
            )
        if "texture" in features:
            grid = tile_grid(require_s2_path(run), tile, run.chain.spatial_resolution)
            spot_path = spot_image_of(run, tile)
            spot = crop_to_grid(open_spot(spot_path), grid, spot_path)
            ndvi = ndvi and "NDVI_mean" in texture_band_names([str(b) for b in spot["band"].values])
            files["texture"] = write_texture(
                spot, grid, user_feat_file(root, tile, "texture"), spot_path
            )
        route.files[tile] = files
    write_feature_cfg(run.source, route.cfg, root, features, ndvi=ndvi, generation=generation)
    return route


def decision_fusion(
    run: RunConfig, *, tiles: list[str] | None = None, rule: str | None = None
) -> list[DecisionFusion]:
    """Fuse iota2's classification of every tile and seed with the SPOT step's."""
    nomenclature = _nomenclature(run)
    jobs = [TileJob(t, s) for t in tiles_with_spot(run, tiles) for s in run.seeds]
    return [
        fuse_tile(run, job, rule=rule, nomenclature=nomenclature)
        for job in tqdm(jobs, desc="decision fusion", disable=None)
    ]
