"""The main job: labels and split from a reference, training, mapping and evaluation per tile.

- :func:`run_chain` runs a validated :class:`~iota2_spot_s2.settings.RunConfig` (an iota2 cfg).
- :func:`run_demo` writes the simulated landscape, a cfg pointing at it, and runs the chain.
- :func:`train_from_files`, :func:`predict_from_files`, :func:`evaluate_from_files` are the
  single stages behind ``fuse-classify train|predict|evaluate``.
"""

from iota2_spot_s2.pipeline.chain import ModelRun, run_chain
from iota2_spot_s2.pipeline.demo import run_demo
from iota2_spot_s2.pipeline.evaluate import evaluate_from_files
from iota2_spot_s2.pipeline.prepared import prepare_reference
from iota2_spot_s2.pipeline.stages import predict_from_files, train_from_files

__all__ = [
    "ModelRun",
    "evaluate_from_files",
    "predict_from_files",
    "prepare_reference",
    "run_chain",
    "run_demo",
    "train_from_files",
]
