"""fcn.forward_core: the core of a window computed alone equals the whole-window pass."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from iota2_spot_s2.inference import Engine
from iota2_spot_s2.inference.tiling import round_up
from iota2_spot_s2.models import build_model
from iota2_spot_s2.training import LoadedModel

ARCHITECTURES = [
    {},
    {"widths": (8, 16, 24)},
    {"widths": (8, 16), "bottleneck_blocks": 0},
    {"widths": (8, 12, 16, 24), "bottleneck_blocks": 3},
]


def fcn(seed: int = 0, **kwargs: object) -> torch.nn.Module:
    """An FCN in eval mode with random BatchNorm statistics (so they matter)."""
    torch.manual_seed(seed)
    net = build_model("fcn", 4, 5, **kwargs).eval()
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
    return net


@pytest.mark.parametrize("kwargs", ARCHITECTURES, ids=lambda k: str(k or "default"))
def test_core_equals_the_whole_window_pass_cropped(kwargs):
    net = fcn(**kwargs)
    d, plan = net.downsample, net.core_plan
    aligned = round_up(net.context, d)
    for margin in (aligned, aligned + 2 * d):
        x = torch.randn(2, 4, 2 * margin + 5 * d, 2 * margin + 7 * d)
        with torch.no_grad():
            whole = net(x)[..., margin:-margin, margin:-margin]
            core = net.forward_core(x, margin)
        assert core.shape == whole.shape == (2, 5, 5 * d, 7 * d)
        assert margin > plan.stem_in  # the crops are exercised from the input on
        np.testing.assert_allclose(core.numpy(), whole.numpy(), atol=1e-5)


def test_plan_is_the_supports_aligned_context_and_autograd_reaches_it():
    """Three independent counts of the context: backward walk, phase supports, autograd."""
    net = fcn()
    assert net.core_plan.stem_in == net.context == 63  # vs 67 = half the receptive field
    assert net.context < (net.receptive_field - 1) // 2
    size, start, core = 320, 160, 16  # an aligned 16 px core
    x = torch.randn(4, 4, size, size, requires_grad=True)
    net(x)[:, :, start : start + core, start : start + core].sum().backward()
    seen = x.grad.abs().sum(dim=(0, 1))
    rows, cols = seen.sum(1).nonzero().flatten(), seen.sum(0).nonzero().flatten()
    for line in (rows, cols):
        assert start - int(line.min()) == net.context
        assert int(line.max()) - (start + core - 1) == net.context


def test_a_margin_below_the_plan_falls_back_to_the_whole_window():
    net = fcn(widths=(8, 16, 24))
    x = torch.randn(1, 4, 96, 96)
    with torch.no_grad():
        np.testing.assert_allclose(
            net.forward_core(x, 16).numpy(), net(x)[..., 16:-16, 16:-16].numpy(), atol=1e-6
        )


def test_engine_trims_fcn_windows_only():
    codes, stats = np.arange(1, 6), (np.zeros(4, np.float32), np.ones(4, np.float32))
    engine = Engine(LoadedModel(fcn(), codes, *stats, "fcn"))
    assert engine.margin == 64 and engine.trimmed == 64  # the context rounded up to 8
    patch = Engine(LoadedModel(build_model("patch_cnn", 4, 5).eval(), codes, *stats, "patch_cnn"))
    assert patch.trimmed == 0 and patch.margin == 33  # half its 65 px receptive field, as before
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # its 32 px radius suffices: no warning
        Engine(LoadedModel(build_model("patch_cnn", 4, 5).eval(), codes, *stats, "patch_cnn"),
               margin=32)  # fmt: skip
    window = np.random.default_rng(0).normal(size=(1, 4, 256, 200)).astype(np.float32)
    assert engine.run_dense(window).shape == (1, 5, 128, 72)
    contiguous = Engine(LoadedModel(fcn(), codes, *stats, "fcn"), channels_last=False)
    assert contiguous.trimmed == 0 and contiguous.run_dense(window).shape == (1, 5, 256, 200)
    with pytest.warns(UserWarning, match="context 63"):
        Engine(LoadedModel(fcn(), codes, *stats, "fcn"), margin=56)


def test_early_fusion_refuses_forward_core_instead_of_ignoring_sentinel2():
    """Its S2 branch joins the decoder: a core from the SPOT window alone would be wrong."""
    from iota2_spot_s2.models.fusion_net import EarlyFusionNet

    net = EarlyFusionNet(4, 5, s2_channels=3, n_dates=2, ratio="20/3", widths=(8, 16)).eval()
    assert net.core_plan is None and not net.has_core_forward
    with pytest.raises(NotImplementedError, match="EarlyFusionNet has no forward_core"):
        net.forward_core(torch.randn(1, 4, 240, 240), 80)
