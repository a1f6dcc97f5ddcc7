"""EarlyFusionNet: shapes, fusion scale, S2 kept at 10 m, missing S2, receptive field, registry."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from iota2_spot_s2.models import MODELS, build_model
from iota2_spot_s2.models.fusion_net import EarlyFusionNet

TINY = {"widths": (8, 16, 24), "bottleneck_blocks": 1, "s2_features": 8, "s2_hidden": 8}
T, C2 = 4, 3


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(ratio="20/3", **kwargs) -> EarlyFusionNet:
    torch.manual_seed(0)
    model = build_model("early_fusion", 4, 5, s2_channels=C2, n_dates=T, ratio=ratio,
                        **{**TINY, **kwargs})  # fmt: skip
    assert isinstance(model, EarlyFusionNet)
    return model.eval()


def inputs(size: int, s2_size: int, n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 4, size, size, generator=g), torch.randn(
        n, T * C2, s2_size, s2_size, generator=g
    )


# ratio, SPOT window, S2 window (same ground), expected fusion scale (pixel closest to 10 m),
# expected downsample (common period of the pooling grid and both pixel grids)
# (decoder levels: 1/1, 1/2, 1/4; the 1/8 bottleneck is only used on request)
CASES = [
    ("20/3", 80, 12, 2, 40),  # 1.5 m / 10 m: 1/4 -> 6 m; 40 px = 60 m = 6 S2 px
    (10 / 1.5, 40, 6, 2, 40),  # the same ratio given as a float
    (5, 80, 16, 2, 40),  # 2 m / 10 m: 1/4 -> 8 m
    ((4, 1), 32, 8, 2, 8),  # 2.5 m / 10 m: 1/4 -> exactly 10 m
    ((3, 2), 48, 32, 1, 24),  # 10 m / 15 m S2-like pair: 1/2 -> 20 m (1/1: 10 m is further)
]


@pytest.mark.parametrize(("ratio", "size", "s2_size", "level", "period"), CASES)
def test_forward_shapes_and_fusion_scale(ratio, size, s2_size, level, period) -> None:
    model = tiny(ratio)
    assert model.fusion_level == level and model.downsample == period
    spot, s2 = inputs(size, s2_size)
    assert model(spot, s2).shape == (2, 5, size, size)
    assert model(spot, None).shape == (2, 5, size, size)


def test_s2_is_interpolated_once_at_the_fusion_scale_never_at_spot_resolution(monkeypatch):
    model = tiny("20/3")
    spot, s2 = inputs(80, 12)
    calls = []
    original = F.interpolate

    def spy(x, *args, **kwargs):
        out = original(x, *args, **kwargs)
        calls.append((tuple(x.shape), tuple(out.shape)))
        return out

    monkeypatch.setattr(torch.nn.functional, "interpolate", spy)
    shapes = []

    def record(_module, _inputs, output):
        for tensor in output if isinstance(output, tuple) else (output,):
            shapes.append(tuple(tensor.shape))

    hooks = [m.register_forward_hook(record) for m in model.modules() if m is not model]
    model(spot, s2)
    for hook in hooks:
        hook.remove()
    # one interpolation: the 8 S2 features from the 12x12 S2 grid to 20x20 (= 80 / 4, 6 m)
    assert calls == [((2, 8, 12, 12), (2, 8, 20, 20))]
    full_res = [s for s in shapes if len(s) == 4 and s[-2:] == (80, 80)]
    assert full_res and max(s[1] for s in full_res) <= 2 * TINY["widths"][0]
    assert not [s for s in shapes if len(s) == 4 and s[1] == T * C2 and s[-1] > 12]


def test_s2_resampled_to_spot_resolution_or_misaligned_is_rejected() -> None:
    model = tiny("20/3")
    spot, _ = inputs(80, 12)
    with pytest.raises(ValueError, match="S2 resolution"):
        model(spot, torch.zeros(2, T * C2, 80, 80))  # the series at 1.5 m
    with pytest.raises(ValueError, match="expects s2"):
        model(spot, torch.zeros(2, T * C2, 13, 12))  # not the same ground
    with pytest.raises(ValueError, match="multiples of 40"):
        model(torch.zeros(1, 4, 64, 64), None)  # 64 px = 96 m: not on the S2 grid


def test_missing_s2_uses_the_learned_embedding_per_sample() -> None:
    model = tiny("20/3")
    spot, s2 = inputs(80, 12)
    with torch.no_grad():
        model.missing.copy_(torch.linspace(-1, 1, model.missing.numel()))
        full = model(spot, s2)
        none = model(spot, None)
        flagged = model(spot, s2, torch.tensor([False, False]))
        mixed = model(spot, s2, torch.tensor([False, True]))
    torch.testing.assert_close(flagged, none)
    assert (full - none).abs().amax() > 1e-3  # S2 changes the prediction
    torch.testing.assert_close(mixed[0], none[0], atol=1e-4, rtol=0)
    torch.testing.assert_close(mixed[1], full[1], atol=1e-4, rtol=0)
    model.train()
    model(spot, s2, torch.tensor([False, True])).sum().backward()
    assert model.missing.grad is not None and model.missing.grad.abs().sum() > 0


@pytest.mark.parametrize("level", [2, 3])
def test_receptive_field_bounds_the_spot_and_s2_support(level) -> None:
    """Gradients of one output pixel reach only inputs inside the computed support."""
    model = tiny("20/3", fusion_level=level)
    assert model.fusion_level == level
    support = model._fused_support()
    assert model.receptive_field == support.size
    spot, s2 = inputs(160, 24, n=1)
    spot.requires_grad_(True)
    s2.requires_grad_(True)
    seen = 0
    for col in range(40, 80, 3):  # every phase class of the 40 px period is visited
        model.zero_grad()
        spot.grad = s2.grad = None
        model(spot, s2)[0, :, 80, col].sum().backward()
        lo, hi = support.interval(col)
        cols = torch.nonzero(spot.grad[0].abs().sum((0, 1))).flatten()
        s2_cols = torch.nonzero(s2.grad[0].abs().sum((0, 1))).flatten()
        if cols.numel() == 0 or s2_cols.numel() == 0:  # every ReLU path dead: nothing to check
            continue
        seen += 1
        assert lo <= int(cols.min()) and int(cols.max()) <= hi
        # S2 column j covers SPOT columns [j * 20 / 3, (j + 1) * 20 / 3)
        assert lo <= int(s2_cols.min()) * 20 // 3
        assert -(-(int(s2_cols.max()) + 1) * 20 // 3) - 1 <= hi
    assert seen >= 10


def test_registry_parameters_and_autocast() -> None:
    assert MODELS["early_fusion"] is EarlyFusionNet
    model = build_model("early_fusion", 4, 9, s2_channels=10, n_dates=33, ratio="20/3")
    fcn = build_model("fcn", 4, 9)
    assert model.n_parameters() > fcn.n_parameters()
    assert model.n_parameters() - fcn.n_parameters() < 0.1 * fcn.n_parameters()
    assert model.receptive_field >= fcn.receptive_field
    small = tiny("20/3")
    spot, s2 = inputs(80, 12)
    with torch.no_grad():
        ref = small(spot, s2)
        spot_cl = spot.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = small(spot_cl, s2)
    assert out.shape == ref.shape and (out.float().argmax(1) == ref.argmax(1)).float().mean() > 0.9
