"""Training of the segmentation models: sampling, loss, loop, checkpoints.

- :func:`train` runs the recipe (see :mod:`iota2_spot_s2.training.loop`) and writes a checkpoint
  after every epoch; :func:`load_model` rebuilds the best model from it for inference.
- :mod:`~iota2_spot_s2.training.sampling`: train-only crops, normalisation, augmentation.
- :mod:`~iota2_spot_s2.training.losses`: class weights and the weighted cross-entropy.
- :mod:`~iota2_spot_s2.training.validation`: VAL-tile scoring used for model selection.
"""

from iota2_spot_s2.arrays import normalize
from iota2_spot_s2.training.checkpoint import LoadedModel, load_model, read_checkpoint
from iota2_spot_s2.training.loop import TrainResult, train
from iota2_spot_s2.training.losses import class_weights, make_criterion, train_class_counts
from iota2_spot_s2.training.sampling import (
    IGNORE_INDEX,
    CropSampler,
    ImageSource,
    band_statistics,
)

__all__ = [
    "IGNORE_INDEX",
    "CropSampler",
    "ImageSource",
    "LoadedModel",
    "TrainResult",
    "band_statistics",
    "class_weights",
    "load_model",
    "make_criterion",
    "normalize",
    "read_checkpoint",
    "train",
    "train_class_counts",
]
