"""Analytic receptive-field tracking against hand counts and against autograd."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from iota2_spot_s2.models import Support


def test_hand_counted_chains() -> None:
    assert Support().conv(3).conv(3).size == 5
    # conv3 (3) -> pool2 (+1) -> conv3 at stride 2 (+4) = 8
    assert Support().conv(3, padding=1).conv(2, stride=2).conv(3, padding=1).size == 8
    assert Support().conv(3, dilation=4).size == 9
    unpooled = Support().conv(2, stride=2).unpool(2)
    assert unpooled.stride == 1 and unpooled.lo == (0, -1) and unpooled.hi == (1, 0)
    assert unpooled.size == 2


def test_union_and_layer_reading() -> None:
    wide = Support().through(nn.Conv2d(1, 1, 5, padding=2))
    narrow = Support().through(nn.Conv2d(1, 1, 1))
    assert wide.union(narrow).size == 5
    assert Support().through(nn.MaxPool2d(3, stride=2)).stride == 2
    assert Support().through(nn.ReLU()) == Support()
    with pytest.raises(ValueError):
        Support().conv(2, stride=2).union(Support())
    with pytest.raises(ValueError):
        Support().through(nn.Conv2d(1, 1, (3, 5)))


def _gradient_interval(net, length: int, pixel: int) -> tuple[int, int]:
    x = torch.randn(6, 1, 1, length, requires_grad=True)
    net(x)[:, :, 0, pixel].sum().backward()
    cols = x.grad.abs().sum(dim=(0, 1, 2)).nonzero().flatten()
    return int(cols.min()), int(cols.max())


def test_encoder_decoder_intervals_match_autograd() -> None:
    """Per-phase intervals of a conv/pool/unpool/concat chain equal the gradient support."""
    torch.manual_seed(0)
    conv_a = nn.Conv2d(1, 2, (1, 3), padding=(0, 1))
    conv_b = nn.Conv2d(2, 2, (1, 5), padding=(0, 2))
    conv_c = nn.Conv2d(4, 1, (1, 3), padding=(0, 1))

    def net(x: torch.Tensor) -> torch.Tensor:
        skip = torch.relu(conv_a(x)) + 1.0
        pooled, idx = F.max_pool2d(skip, (1, 2), return_indices=True)
        deep = torch.relu(conv_b(pooled)) + 1.0
        up = F.max_unpool2d(deep, idx, (1, 2), output_size=skip.shape[-2:])
        return conv_c(torch.cat((up, skip), dim=1))

    skip = Support().conv(3, padding=1)
    analytic = skip.conv(2, stride=2).conv(5, padding=2).unpool(2).union(skip).conv(3, padding=1)
    for pixel in (20, 21):
        lo, hi = analytic.interval(pixel)
        assert _gradient_interval(net, 48, pixel) == (lo, hi)
