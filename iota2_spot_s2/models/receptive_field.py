"""Analytic receptive fields: walk a network's layers and track which input pixels each output sees.

A feature map is described, along one axis, by a :class:`Support`: its ``stride`` (input pixels
per feature pixel) and, for each phase ``i % period``, the offsets ``lo``/``hi`` such that feature
pixel ``i`` depends on input pixels ``stride * i + lo[i % period]`` to ``stride * i + hi[...]``.
Convolutions and pooling windows take unions over their taps; max-unpooling (scatter back to the
pooled window) maps pixel ``i`` to pooled pixel ``i // factor``, which makes the offsets depend on
the phase; concatenation and residual addition take per-phase unions. The result is an exact
upper bound (a max-pooling or unpooling path may, for a given input, use less of it).

Square kernels are assumed, so one axis describes both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class Support:
    """Input interval seen by each pixel of a feature map, along one axis.

    Attributes:
        stride: Input pixels per feature pixel.
        lo: Per-phase offset of the first input pixel seen (relative to ``stride * i``).
        hi: Per-phase offset of the last input pixel seen.

    """

    stride: int = 1
    lo: tuple[int, ...] = (0,)
    hi: tuple[int, ...] = (0,)

    @property
    def period(self) -> int:
        """Number of distinct phases of the offsets."""
        return len(self.lo)

    @property
    def size(self) -> int:
        """Receptive field in input pixels: the widest interval over all phases."""
        return max(h - lo + 1 for lo, h in zip(self.lo, self.hi, strict=True))

    def aligned_context(self, block: int) -> int:
        """Context a core needs on each side when it starts and ends on multiples of ``block``.

        The widest reach, before the core's first pixel and after its last, of any pixel of a
        core aligned to ``block`` (a stride-1 support): less than half the receptive field when
        the reach depends on the phase, as after pooling and unpooling, because the pixels that
        reach far to one side sit at the core's other end.
        """
        if self.stride != 1:
            raise ValueError(f"aligned_context needs a stride-1 support, got stride {self.stride}")
        reach = 0
        for start in range(0, math.lcm(block, self.period), block):
            for offset in range(block):
                first, last = self.interval(start + offset)
                reach = max(reach, start - first, last - (start + block - 1))
        return reach

    def interval(self, i: int) -> tuple[int, int]:
        """First and last input pixel seen by feature pixel ``i``."""
        phase = i % self.period
        return self.stride * i + self.lo[phase], self.stride * i + self.hi[phase]

    def window(self, taps: Sequence[int], stride: int = 1) -> Support:
        """Support after a sliding window: output ``q`` reads inputs ``stride * q + t``."""
        new_stride = self.stride * stride
        period = self.period // math.gcd(self.period, stride)
        lo, hi = [], []
        for q in range(period):
            intervals = [self.interval(stride * q + t) for t in taps]
            lo.append(min(a for a, _ in intervals) - new_stride * q)
            hi.append(max(b for _, b in intervals) - new_stride * q)
        return Support(new_stride, tuple(lo), tuple(hi))

    def conv(self, kernel: int, dilation: int = 1, padding: int = 0, stride: int = 1) -> Support:
        """Support after a convolution or pooling window."""
        return self.window([dilation * m - padding for m in range(kernel)], stride)

    def unpool(self, factor: int) -> Support:
        """Support after max-unpooling by ``factor`` (pixel ``i`` comes from ``i // factor``)."""
        if self.stride % factor:
            raise ValueError(f"cannot unpool a stride-{self.stride} map by {factor}")
        new_stride = self.stride // factor
        lo, hi = [], []
        for i in range(self.period * factor):
            a, b = self.interval(i // factor)
            lo.append(a - new_stride * i)
            hi.append(b - new_stride * i)
        return Support(new_stride, tuple(lo), tuple(hi))

    def union(self, other: Support) -> Support:
        """Support of a map computed from two maps of the same stride (concat, addition)."""
        if self.stride != other.stride:
            raise ValueError(f"cannot merge strides {self.stride} and {other.stride}")
        lo, hi = [], []
        for i in range(math.lcm(self.period, other.period)):
            (a1, b1), (a2, b2) = self.interval(i), other.interval(i)
            lo.append(min(a1, a2) - self.stride * i)
            hi.append(max(b1, b2) - self.stride * i)
        return Support(self.stride, tuple(lo), tuple(hi))

    def through(self, layer: nn.Module) -> Support:
        """Support after one layer, read from its hyper-parameters.

        Convolutions and max-pooling change the support; point-wise layers (BatchNorm, ReLU,
        dropout, identity) leave it as it is.
        """
        if isinstance(layer, nn.Conv2d):
            return self.conv(
                _square(layer.kernel_size),
                _square(layer.dilation),
                _square(layer.padding),  # type: ignore[arg-type]
                _square(layer.stride),
            )
        if isinstance(layer, nn.MaxPool2d):
            stride = layer.stride if layer.stride is not None else layer.kernel_size
            return self.conv(
                _square(layer.kernel_size),
                _square(layer.dilation),
                _square(layer.padding),
                _square(stride),
            )
        if isinstance(layer, nn.Sequential):
            support = self
            for sub in layer:
                support = support.through(sub)
            return support
        return self


def _square(value: int | Sequence[int]) -> int:
    """One number from a square hyper-parameter (``3`` or ``(3, 3)``)."""
    if isinstance(value, int):
        return value
    if len(set(value)) != 1:
        raise ValueError(f"non-square layer hyper-parameter {tuple(value)}")
    return int(value[0])
