"""What every segmentation model shares: attributes of the contract, input checks, init."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of a module."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def kaiming_init(module: nn.Module) -> None:
    """He-normal convolution/linear weights (fan-out, ReLU), zero biases, unit BatchNorm."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class SegmentationModel(nn.Module):
    """Base class of the registered models (see :mod:`iota2_spot_s2.models` for the contract).

    Args:
        in_channels: Number of input bands ``C``.
        n_classes: Number of real classes ``K`` (no no-data class).

    Attributes:
        name: Registry name of the model.
        downsample: Input height and width must be multiples of it.
        receptive_field: Input pixels seen by one output pixel, along each axis.

    """

    name: ClassVar[str] = ""
    downsample: int = 1
    receptive_field: int = 1
    #: Pixels of context an aligned core (start and size multiples of ``downsample``) needs on
    #: each side; the engine's default margin. ``None``: half the receptive field.
    context: int | None = None
    has_core_forward: ClassVar[bool] = False

    def __init__(self, in_channels: int, n_classes: int) -> None:
        super().__init__()
        if in_channels < 1 or n_classes < 1:
            raise ValueError(
                f"in_channels and n_classes must be >= 1, got {in_channels} and {n_classes}"
            )
        self.in_channels = int(in_channels)
        self.n_classes = int(n_classes)

    def n_parameters(self, trainable_only: bool = True) -> int:
        """Number of (trainable) parameters."""
        return count_parameters(self, trainable_only)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``x`` is ``(N, in_channels, H, W)`` with valid H, W."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self.name} expects (N, {self.in_channels}, H, W) input, got {tuple(x.shape)}"
            )
        height, width = x.shape[-2:]
        if height % self.downsample or width % self.downsample:
            raise ValueError(
                f"{self.name} needs H and W multiples of {self.downsample}, got {height}x{width}"
            )
