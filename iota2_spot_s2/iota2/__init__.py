"""The iota2 adapter: the SPOT FCN as an iota2 step, and SPOT/S2 fusion inside iota2's chain.

It depends on the core packages; the core never imports it. iota2 itself is optional: where it
is importable (its conda environment) the step subclasses iota2's ``Step`` and the external
features return iota2's label objects; elsewhere everything runs standalone.

Public API (one call per route, see :mod:`iota2_spot_s2.iota2.routes`):

- :func:`run_step` — ``spot_s2/classif/Classif_<TILE>_model_<M>_seed_<S>_SPOT.tif`` + confidence +
  ``PROBAMAP`` on each tile's grid (:mod:`~iota2_spot_s2.iota2.classify`);
- :func:`feature_fusion` — userFeat tree + cfg registering userFeat and external features
  (:mod:`~iota2_spot_s2.iota2.features`, :mod:`~iota2_spot_s2.iota2.external_features`);
- :func:`decision_fusion` — ``_DS`` outputs and ``DSchoice`` map
  (:mod:`~iota2_spot_s2.iota2.decision`);
- :func:`check_cfg_paths` — every path a cfg names, checked.
"""

from iota2_spot_s2.iota2.cfg import check_cfg_paths, write_feature_cfg
from iota2_spot_s2.iota2.classify import SpotClassification, TileJob, classify_tile
from iota2_spot_s2.iota2.decision import DecisionFusion, fuse_tile
from iota2_spot_s2.iota2.routes import FeatureRoute, decision_fusion, feature_fusion, run_step
from iota2_spot_s2.iota2.step import (
    SpotFCNClassification,
    SpotStepJob,
    StandaloneSpotFCNClassification,
    StandaloneStep,
    classify_step_job,
    find_iota2_step,
    iota2_step_base,
)
from iota2_spot_s2.iota2.tree import tile_grid

__all__ = [
    "DecisionFusion",
    "FeatureRoute",
    "SpotClassification",
    "SpotFCNClassification",
    "SpotStepJob",
    "StandaloneSpotFCNClassification",
    "StandaloneStep",
    "TileJob",
    "check_cfg_paths",
    "classify_step_job",
    "classify_tile",
    "decision_fusion",
    "find_iota2_step",
    "feature_fusion",
    "fuse_tile",
    "iota2_step_base",
    "run_step",
    "tile_grid",
    "write_feature_cfg",
]
