"""TempCNN: a per-pixel temporal convolutional classifier of satellite image time series.

After Pelletier, Webb and Petitjean (2019), "Temporal Convolutional Neural Network for the
Classification of Satellite Image Time Series", Remote Sensing 11(5):523: three 1-D
convolutions over time (64 filters, kernel 5, "same" padding), each followed by batch
normalisation, ReLU and dropout; the ``64 x T`` maps are flattened into one fully connected
layer (256 units, batch norm, ReLU, dropout) and a final linear layer gives the class logits
(softmax is applied by the loss, or by the caller for probabilities).

Contract:

- **Input**: ``x`` float32 ``(N, C, T)``: ``C = in_channels`` per-date variables (bands and
  indices, normalised per channel), ``T = n_dates`` dates of a regular (gap-filled) grid.
- **Output**: logits ``(N, K)`` for the ``K = n_classes`` real classes in increasing class-code
  order.
- ``receptive_field`` (dates seen by one convolutional output, 13 for three kernels of 5) and
  ``n_parameters()``.

This is not a :data:`iota2_spot_s2.models.MODELS` segmentation model (those map ``(N, C, H,
W)`` to ``(N, K, H, W)``): TempCNN sees one pixel's series, so it is built directly.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from iota2_spot_s2.models.base import count_parameters


def _conv_block(c_in: int, c_out: int, kernel_size: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2),
        nn.BatchNorm1d(c_out),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
    )


class TempCNN(nn.Module):
    """Three temporal convolutions, one dense layer, linear logits.

    Args:
        in_channels: Variables per date ``C``.
        n_classes: Classes ``K``.
        n_dates: Series length ``T`` (fixed: the dense layer sees all dates).
        filters: Filters per convolution (64 in the paper).
        kernel_size: Odd temporal kernel size (5).
        hidden: Units of the dense layer (256).
        dropout: Dropout rate after every block (0.2 in the paper's setting).
    """

    name: ClassVar[str] = "tempcnn"

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        n_dates: int,
        *,
        filters: int = 64,
        kernel_size: int = 5,
        hidden: int = 256,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if min(in_channels, n_classes, n_dates, filters, hidden) < 1 or kernel_size % 2 == 0:
            raise ValueError("sizes must be >= 1 and kernel_size odd")
        self.in_channels, self.n_classes, self.n_dates = in_channels, n_classes, n_dates
        self.kwargs: dict[str, Any] = {
            "filters": filters, "kernel_size": kernel_size, "hidden": hidden, "dropout": dropout,
        }  # fmt: skip
        self.receptive_field = 1 + 3 * (kernel_size - 1)
        self.features = nn.Sequential(
            _conv_block(in_channels, filters, kernel_size, dropout),
            _conv_block(filters, filters, kernel_size, dropout),
            _conv_block(filters, filters, kernel_size, dropout),
            nn.Flatten(),
        )
        self.dense = nn.Sequential(
            nn.Linear(filters * n_dates, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )
        self.classifier = nn.Linear(hidden, n_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv1d | nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, T)`` -> logits ``(N, K)``."""
        if x.ndim != 3 or x.shape[1] != self.in_channels or x.shape[2] != self.n_dates:
            raise ValueError(
                f"tempcnn expects (N, {self.in_channels}, {self.n_dates}), got {tuple(x.shape)}"
            )
        return self.classifier(self.dense(self.features(x)))

    def n_parameters(self, trainable_only: bool = True) -> int:
        """Number of (trainable) parameters."""
        return count_parameters(self, trainable_only)

    def config(self) -> dict[str, Any]:
        """Constructor arguments, to rebuild the model from a checkpoint."""
        return {
            "in_channels": self.in_channels,
            "n_classes": self.n_classes,
            "n_dates": self.n_dates,
            **self.kwargs,
        }
