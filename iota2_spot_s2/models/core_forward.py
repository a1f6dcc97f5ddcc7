"""The FCN's forward pass on a window's core: each layer computes only what the core needs.

A map tile is a core plus a ``margin`` on every side (the receptive-field radius, rounded up to
the pooling factor). ``FCN.forward`` computes every layer over the whole window, then the engine
keeps the core: at a 1024 px core the window holds 1.30x its pixels. But only the *encoder*
needs the whole context; the decoder block of level ``l`` needs the core plus its own two-conv
reach (2 px), the bottleneck the deep context alone. Walking the network backwards from the
core gives, for every tensor, the margin it must keep (:class:`CorePlan`); the forward pass then
crops each block's input to its margin before running it.

Exact, not approximate: a pixel kept by a crop sees the same inputs as in the whole-window pass
(the crops never cut into its support), so the core's logits equal ``forward(x)``'s core up to
float rounding (the engine's seamlessness tests apply unchanged). Pooling stays on the window's
grid (every tensor that is pooled keeps an even margin). SegNet unpooling needs indices into the
*cropped* plane: the decoder's skip is pooled a second time, cropped, which gives those indices
directly (same 2 x 2 windows, same first-maximum rule) instead of remapping the encoder's.

Measured (untrained FCN, 2-core AMD EPYC, 1 x 4 x 1168 x 1168 window, fp32 channels_last):
see ``benchmarks/bench_mapping.py --only-core`` and docs/RESULTS.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from iota2_spot_s2.models.receptive_field import Support

if TYPE_CHECKING:
    from iota2_spot_s2.models.fcn import FCN


def reach(layer: nn.Module) -> int:
    """Pixels a layer's output reads beyond its own position on each side (stride-1 layers)."""
    support = layer.support(Support()) if hasattr(layer, "support") else Support().through(layer)
    if support.stride != 1 or support.period != 1 or support.lo[0] != -support.hi[0]:
        raise ValueError(f"{type(layer).__name__} is not a symmetric stride-1 layer")
    return support.hi[0]


@dataclass(frozen=True)
class CorePlan:
    """Margins (pixels of each level beyond the core) every tensor keeps.

    Attributes:
        stem_in: Margin of the network input actually used.
        encoder_in: Input margin of each encoder block, by level.
        encoder_out: Output margin of each encoder block (even: it is pooled), by level.
        bottleneck_in: Input margin of each bottleneck block.
        decoder_in: Input margin of each decoder block (unpooled + skip), by level.

    """

    stem_in: int
    encoder_in: tuple[int, ...]
    encoder_out: tuple[int, ...]
    bottleneck_in: tuple[int, ...]
    decoder_in: tuple[int, ...]


def core_plan(net: FCN) -> CorePlan:
    """Margins needed for an exact core, walking the FCN backwards from its head."""
    levels = len(net.decoder)
    need = reach(net.head)  # margin at level 0 the decoder's output must keep
    decoder_in = [0] * levels
    for level in range(levels):
        need_in = need + reach(net.decoder[level])
        decoder_in[level] = 2 * math.ceil(need_in / 2)  # the unpooled plane of a whole pixel
        need = decoder_in[level] // 2  # at level + 1
    bottleneck_in = []
    for block in reversed(net.bottleneck):
        need += reach(block)
        bottleneck_in.insert(0, need)
    encoder_in, encoder_out = [0] * levels, [0] * levels
    for level in reversed(range(levels)):
        out = max(2 * need, decoder_in[level])
        encoder_out[level] = out + out % 2  # pooled: keep the window's pooling grid
        encoder_in[level] = need = encoder_out[level] + reach(net.encoder[level])
    return CorePlan(
        stem_in=need + reach(net.stem),
        encoder_in=tuple(encoder_in),
        encoder_out=tuple(encoder_out),
        bottleneck_in=tuple(bottleneck_in),
        decoder_in=tuple(decoder_in),
    )


def crop(x: torch.Tensor, margin: int, keep: int) -> torch.Tensor:
    """``x`` (margin ``margin`` on each side) cut down to margin ``keep`` (a view)."""
    cut = margin - keep
    if cut < 0:
        raise ValueError(f"cannot keep a margin of {keep} px from {margin}")
    if cut == 0:
        return x
    return x[..., cut : x.shape[-2] - cut, cut : x.shape[-1] - cut]


def forward_core(net: FCN, x: torch.Tensor, margin: int) -> torch.Tensor:
    """Logits of the core of ``x`` (``margin`` px cut from every side), computed on the core's cone.

    Falls back to the whole-window pass (then cropped) when ``margin`` is smaller than the plan's
    input margin: the core then depends on the window's zero border anyway.
    """
    plan = net.core_plan
    if plan is None:  # e.g. early fusion: its S2 branch joins the decoder
        raise NotImplementedError(f"{type(net).__name__} has no forward_core (has_core_forward "
                                  "is False): run forward on the whole window")  # fmt: skip
    net.check_input(x)
    if margin % net.downsample or margin < plan.stem_in:
        return crop(net(x), margin, 0)
    x = net.stem(crop(x, margin, plan.stem_in))
    have = plan.stem_in  # the margin x has; the outer reach of each block's output is not exact
    skips = []
    for level, block in enumerate(net.encoder):
        x = block(crop(x, have, plan.encoder_in[level]))
        x = crop(x, plan.encoder_in[level], plan.encoder_out[level])
        skips.append(x)
        x = F.max_pool2d(x, 2)
        have = plan.encoder_out[level] // 2
    for k, block in enumerate(net.bottleneck):
        x = block(crop(x, have, plan.bottleneck_in[k]))
        have = plan.bottleneck_in[k]
    for level in reversed(range(len(net.decoder))):
        keep = plan.decoder_in[level]
        skip = crop(skips[level], plan.encoder_out[level], keep)
        _, indices = F.max_pool2d(skip, 2, return_indices=True)  # indices in the cropped plane
        x = net.unpool(crop(x, have, keep // 2), indices, output_size=skip.shape[-2:])
        x = net.decoder[level](torch.cat((x, skip), dim=1))
        have = keep
    return net.head(net.dropout(crop(x, have, 0)))
