"""From a batch of logits to the softmax probabilities of each tile's core.

The networks return logits ``(N, K, H, W)``, in the channels-last layout the engine runs them in
(every pixel's K classes side by side). :func:`core_probabilities` crops each tile's core before
the softmax (margins are never normalised or copied back); :func:`planar_softmax` turns the
interleaved logits into class planes and normalises them there.
"""

from __future__ import annotations

import numpy as np
import torch

from iota2_spot_s2.inference.tiling import Tile


def core_probabilities(
    logits: torch.Tensor, tiles: list[Tile], keys: list[int], trimmed: int = 0
) -> dict[int, np.ndarray]:
    """Softmax probabilities ``(K, h, w)`` of each tile's core, by key.

    The logits are cropped to the core before the softmax: margins are never normalised or
    copied back. ``trimmed``: pixels the logits already lack on every side of the read window
    (:attr:`~iota2_spot_s2.inference.engine.Engine.trimmed`; then only a rounded-up far edge
    of the scene is left to crop).
    """
    out = {}
    for key, tile, tile_logits in zip(keys, tiles, logits, strict=True):
        (r0, c0), (h, w) = tile.core_offset, tile.core.shape
        r0, c0 = r0 - trimmed, c0 - trimmed
        with torch.inference_mode():
            core = planar_softmax(tile_logits[:, r0 : r0 + h, c0 : c0 + w])
            out[key] = np.ascontiguousarray(core.cpu().numpy())
    return out


def planar_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the classes of ``(K, h, w)`` logits of any dtype and layout: contiguous float32.

    Channels-last logits interleave the K classes pixel by pixel, and PyTorch reduces across
    such short interleaved runs slowly: ``.float()`` then ``torch.softmax(dim=0)`` of a 1024 px
    bf16 core took ~50 ms on 2 cores. One copy into class planes (dtype and layout changed
    together, 16 ms) and the stable softmax on whole planes (max, subtract, exp, sum, divide:
    ~10 ms) do the same. The values are a softmax's up to float rounding (1e-7).
    """
    x = torch.empty(logits.shape, dtype=torch.float32, device=logits.device)
    x.copy_(logits)
    x.sub_(x.amax(dim=0))
    x.exp_()
    x.div_(x.sum(dim=0))
    return x
