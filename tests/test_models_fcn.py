"""fcn: receptive field checked empirically, SegNet indices and U-Net skips in the graph."""

from __future__ import annotations

import torch

from iota2_spot_s2.models import build_model


def _support_rows(grad: torch.Tensor) -> torch.Tensor:
    """Indices of the input rows with a nonzero gradient (grad: (C, H, W))."""
    return grad.abs().sum(dim=(0, 2)).nonzero().flatten()


def test_receptive_field_matches_gradient_support() -> None:
    torch.manual_seed(0)
    model = build_model("fcn", 4, 10).eval()
    rf = model.receptive_field
    assert 64 <= rf <= 200  # deliberately small: three pooling levels
    size = 176
    x = torch.randn(8, 4, size, size, requires_grad=True)
    out = model(x)
    # one output pixel per sample, one per phase modulo the downsampling factor
    centre = 80
    pixels = [(centre + k, centre + (3 * k) % 8) for k in range(8)]
    torch.stack([out[k, k % 10, i, j] for k, (i, j) in enumerate(pixels)]).sum().backward()
    widths = []
    for k, (i, j) in enumerate(pixels):
        rows = _support_rows(x.grad[k])
        cols = _support_rows(x.grad[k].transpose(1, 2))
        assert rows.min() > 0 and rows.max() < size - 1  # whole support inside the image
        assert rows.min() <= i <= rows.max() and cols.min() <= j <= cols.max()
        for extent in (rows, cols):
            widths.append(int(extent.max() - extent.min() + 1))
    assert max(widths) <= rf
    assert max(widths) >= 0.9 * rf


def test_uses_pooling_indices_and_skips() -> None:
    torch.manual_seed(0)
    model = build_model("fcn", 4, 10).eval()
    calls: list[tuple[torch.Size, torch.dtype]] = []

    def record(_module, inputs, _output) -> None:
        calls.append((inputs[1].shape, inputs[1].dtype))

    handle = model.unpool.register_forward_hook(record)
    with torch.no_grad():
        model(torch.randn(1, 4, 64, 64))
    handle.remove()
    assert [shape[-1] for shape, _ in calls] == [8, 16, 32]
    assert all(dtype == torch.int64 for _, dtype in calls)
    # the decoder blocks take unpooled features concatenated with same-width encoder features
    for level, block in enumerate(model.decoder):
        assert block.body[0].in_channels == 2 * model.widths[level]


def test_full_resolution_detail_reaches_output() -> None:
    """A one-pixel change moves the logits at that pixel (skip at full resolution)."""
    torch.manual_seed(0)
    model = build_model("fcn", 4, 10).eval()
    x = torch.randn(1, 4, 160, 160)
    y = x.clone()
    y[0, :, 80, 80] += 3.0
    with torch.no_grad():
        diff = (model(x) - model(y)).abs().sum(1)[0]
    assert diff[80, 80] > 0
    half = model.receptive_field // 2 + 1
    assert diff[80 - half, 80 - half] == 0  # just outside the receptive field
    assert diff[:8, :].abs().max() == 0


def test_decoder_inputs_stay_bfloat16_under_autocast_and_change_no_value() -> None:
    """Autocast runs max_unpool2d in float32; the FCN's unpooling keeps bfloat16, so its
    decoder convolutions do not cast float32 copies back (the same values reach them)."""
    torch.manual_seed(0)
    model = build_model("fcn", 4, 5, widths=(8, 16, 24)).eval()
    model = model.to(memory_format=torch.channels_last)
    margin = 64
    assert margin >= model.core_plan.stem_in  # forward_core crops, no whole-window fallback
    seen: list[torch.Tensor] = []
    hooks = [block.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
             for block in model.decoder]  # fmt: skip
    x = torch.randn(1, 4, 160, 160).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        kept = model(x)
        core = model.forward_core(x, margin)
        model.unpool = torch.nn.MaxUnpool2d(2)  # the plain module, whatever autocast does
        plain = model(x)
    for hook in hooks:
        hook.remove()
    assert [t.dtype for t in seen[:6]] == [torch.bfloat16] * 6  # forward, then forward_core
    for ours, theirs in zip(seen[:3], seen[6:], strict=True):
        assert torch.equal(ours.float(), theirs.float())  # same values, only the dtype differs
    assert kept.dtype == core.dtype == torch.bfloat16 and core.shape[-2:] == (32, 32)
    torch.testing.assert_close(kept.float(), plain.float(), rtol=0, atol=1e-2)
