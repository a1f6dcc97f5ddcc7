"""Models by name, so that configuration files and the CLI can pick them."""

from __future__ import annotations

from typing import Any

from torch import nn

from iota2_spot_s2.models.base import SegmentationModel, count_parameters
from iota2_spot_s2.models.fcn import FCN
from iota2_spot_s2.models.fusion_net import EarlyFusionNet
from iota2_spot_s2.models.patch_cnn import PatchCNN

MODELS: dict[str, type[SegmentationModel]] = {
    PatchCNN.name: PatchCNN,
    FCN.name: FCN,
    EarlyFusionNet.name: EarlyFusionNet,
}
"""Registered model classes by name."""


def build_model(name: str, in_channels: int, n_classes: int, **kwargs: Any) -> SegmentationModel:
    """Build a registered model.

    Args:
        name: Registry name (``"patch_cnn"`` or ``"fcn"``).
        in_channels: Number of input bands.
        n_classes: Number of real classes (logits in increasing class-code order).
        **kwargs: Model-specific options (e.g. ``dropout``; ``widths`` for ``fcn``).

    Raises:
        ValueError: If the name is not registered.

    """
    try:
        cls = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}") from None
    return cls(in_channels, n_classes, **kwargs)


def model_summary(model: nn.Module) -> dict[str, Any]:
    """Name, trainable parameter count, receptive field (px) and downsampling of a model."""
    return {
        "name": getattr(model, "name", type(model).__name__),
        "parameters": count_parameters(model),
        "receptive_field": getattr(model, "receptive_field", None),
        "downsample": getattr(model, "downsample", 1),
    }
