"""FCN: a small residual encoder-decoder with U-Net skips and SegNet max-unpooling.

Architecture (``C`` input bands, ``K`` classes, default ``widths=(16, 64, 144)``)::

    x ─conv3 C→16─BN─ReLU─ Res(16→16)  ──────────skip0───────────┐
        maxpool2 ─idx0─┐                                         │
          Res(16→64)   │ ─────────────skip1──────────┐           │
          maxpool2 ─idx1─┐                           │           │
            Res(64→144)  │ ──────skip2──────┐        │           │
            maxpool2 ─idx2─┐                │        │           │
              Res(144→144) x2 (bottleneck,  │        │           │
              stride 8)    │                │        │           │
            unpool(idx2) ──┴─ concat skip2 ─┴ Res(288→64)        │
          unpool(idx1) ──────── concat skip1 ────────┴ Res(128→16)
        unpool(idx0) ──────────── concat skip0 ──────────────────┴ Res(32→16)
    [dropout] ─ conv1x1 16→K ─ logits (N, K, H, W)

The widths put the parameters where pixels are few: full resolution is thin (16 channels) and
most of the ~1.33 M weights sit at 1/4 and 1/8 resolution. Measured on 2 CPU cores (fp32,
channels_last, untrained weights, 640 x 640 input), this runs at ~1.8 Mpx/s against ~0.7 Mpx/s
for an earlier ``(32, 80, 128)`` variant of the same parameter count.

``Res(a→b)`` is conv3-BN-ReLU-conv3-BN plus the identity (or a 1x1 conv-BN projection when
``a != b``), then ReLU. The pooling indices of each encoder level are handed to the decoder's
:class:`torch.nn.MaxUnpool2d` (DeconvNet/SegNet), and the encoder features before pooling are
concatenated to the unpooled decoder features (U-Net). Three pooling levels give
``downsample = 8``; the receptive field is computed from the layers at construction
(:mod:`~iota2_spot_s2.models.receptive_field`): **134 px** with the defaults, deliberately small
so that the map stays local; a core aligned on the 8 px grid needs only ``context`` = **63 px**
on each side (:meth:`~iota2_spot_s2.models.receptive_field.Support.aligned_context`), and
:meth:`FCN.forward_core` computes such a core without the decoder's margins
(:mod:`~iota2_spot_s2.models.core_forward`). About 1.33 M parameters for C=4, K=10. Weights
use Kaiming init; the 1x1 head starts at std 0.01 (initial loss ~ log K). The forward pass is a
fixed graph (no data-dependent Python loops) that runs with channels_last tensors and under
``torch.autocast("cpu", dtype=torch.bfloat16)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, cast

import torch
import torch.nn.functional as F
from torch import nn

from iota2_spot_s2.models import core_forward
from iota2_spot_s2.models.base import SegmentationModel, kaiming_init
from iota2_spot_s2.models.receptive_field import Support


class ResidualBlock(nn.Module):
    """conv3-BN-ReLU-conv3-BN plus identity or 1x1 projection, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut: nn.Module = nn.Identity()
        if in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual transform of ``x``."""
        return F.relu(self.body(x) + self.shortcut(x), inplace=True)

    def support(self, support: Support) -> Support:
        """Receptive-field support of the output, given the input's."""
        return support.through(self.body).union(support.through(self.shortcut))


class Unpool(nn.MaxUnpool2d):
    """SegNet max-unpooling that keeps its input's dtype.

    Under autocast ``max_unpool2d`` runs in float32: every decoder block's input (unpooled +
    skip) became float32 and each of the block's two convolutions cast it back to bfloat16 —
    those copies were 46 % of a bf16 forward pass's CPU time (torch profiler). The unpooled
    values come from the bfloat16 bottleneck, so keeping bfloat16 changes no value.
    """

    def forward(
        self, x: torch.Tensor, indices: torch.Tensor, output_size: Sequence[int] | None = None
    ) -> torch.Tensor:
        """Unpooled ``x`` in ``x``'s dtype (autocast off for this one operation)."""
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x, indices, output_size)  # type: ignore[no-any-return]


class FCN(SegmentationModel):
    """Residual U-Net/SegNet hybrid for dense land-cover segmentation.

    Args:
        in_channels: Number of input bands.
        n_classes: Number of real classes.
        widths: Channels of each encoder level; one 2x2 max-pooling per level.
        bottleneck_blocks: Residual blocks at the coarsest resolution.
        dropout: Channel dropout probability before the classifier (0 disables it).

    """

    name = "fcn"
    #: :meth:`forward_core` computes a window's core alone (the engine's dense path uses it).
    has_core_forward: ClassVar[bool] = True

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        widths: Sequence[int] = (16, 64, 144),
        bottleneck_blocks: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(in_channels, n_classes)
        widths = tuple(int(w) for w in widths)
        if not widths or bottleneck_blocks < 0:
            raise ValueError("fcn needs at least one level and a non-negative bottleneck depth")
        self.widths = widths
        self.downsample = 2 ** len(widths)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        ins = (widths[0], *widths[:-1])
        self.encoder = nn.ModuleList(ResidualBlock(a, b) for a, b in zip(ins, widths, strict=True))
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.unpool = Unpool(2)
        self.bottleneck = nn.Sequential(
            *(ResidualBlock(widths[-1], widths[-1]) for _ in range(bottleneck_blocks))
        )
        # decoder[l] works at level l: unpooled (widths[l]) + skip (widths[l]) -> ins[l].
        self.decoder = nn.ModuleList(
            ResidualBlock(2 * w, a) for a, w in zip(ins, widths, strict=True)
        )
        self.dropout = nn.Dropout2d(dropout)
        self.head = nn.Conv2d(widths[0], n_classes, 1)
        support = self._support()
        self.receptive_field = support.size
        self.context = support.aligned_context(self.downsample)
        # a subclass whose decoder takes other inputs (early fusion) has no core plan
        self.core_plan = core_forward.core_plan(self) if self.has_core_forward else None
        kaiming_init(self)
        nn.init.normal_(self.head.weight, std=0.01)  # near-uniform start: first loss ~ log K

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, K, H, W)`` for input ``(N, C, H, W)``, H and W multiples of 8."""
        self.check_input(x)
        x = self.stem(x)
        skips, indices = [], []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
            x, idx = self.pool(x)
            indices.append(idx)
        x = self.bottleneck(x)
        for level in reversed(range(len(self.decoder))):
            skip = skips[level]
            x = self.unpool(x, indices[level], output_size=skip.shape[-2:])
            x = self.decoder[level](torch.cat((x, skip), dim=1))
        return self.head(self.dropout(x))

    def forward_core(self, x: torch.Tensor, margin: int) -> torch.Tensor:
        """Logits of ``x`` less ``margin`` px on every side, computing only what they need.

        Equal to ``forward(x)`` cropped, up to float rounding (inference only: no batch
        statistics, dropout off); see :mod:`~iota2_spot_s2.models.core_forward`.
        """
        return core_forward.forward_core(self, x, margin)

    def _support(self) -> Support:
        """Walk the layers (kernels, dilations, strides, unpooling) as :meth:`forward` does."""
        support = Support().through(self.stem)
        skips = []
        for block in self.encoder:
            support = cast(ResidualBlock, block).support(support)
            skips.append(support)
            support = support.through(self.pool)
        for block in self.bottleneck:
            support = cast(ResidualBlock, block).support(support)
        for level in reversed(range(len(self.decoder))):
            support = support.unpool(_square_int(self.unpool.stride)).union(skips[level])
            support = cast(ResidualBlock, self.decoder[level]).support(support)
        return support.through(self.head)


def _square_int(value: int | tuple[int, ...]) -> int:
    return value if isinstance(value, int) else int(value[0])
