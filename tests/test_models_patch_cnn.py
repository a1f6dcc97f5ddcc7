"""patch_cnn: dense (à trous) evaluation equals per-patch classification with the same weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from iota2_spot_s2.models import PATCH_SIZE, build_model


def test_layout_constants() -> None:
    model = build_model("patch_cnn", 4, 10)
    assert PATCH_SIZE == 65
    assert model.receptive_field == 65
    assert model.downsample == 1


def test_forward_patches_shape_and_checks() -> None:
    model = build_model("patch_cnn", 4, 10).eval()
    with torch.no_grad():
        assert model.forward_patches(torch.randn(3, 4, 65, 65)).shape == (3, 10)
    with pytest.raises(ValueError, match="65"):
        model.forward_patches(torch.randn(3, 4, 64, 64))


def _random_batchnorm(model: torch.nn.Module, generator: torch.Generator) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.2)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.2)


def test_dense_equals_per_patch_including_borders() -> None:
    generator = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    model = build_model("patch_cnn", 4, 7).eval()
    _random_batchnorm(model, generator)
    height, width = 37, 50
    x = torch.randn(2, 4, height, width, generator=generator)
    corners_edges = [(0, 0), (0, width - 1), (height - 1, 0), (height - 1, width - 1)]
    corners_edges += [(0, 17), (height - 1, 3), (11, 0), (29, width - 1), (1, 1), (35, 48)]
    rows = torch.randint(0, height, (20,), generator=generator).tolist()
    cols = torch.randint(0, width, (20,), generator=generator).tolist()
    pixels = corners_edges + list(zip(rows, cols, strict=True))
    padded = F.pad(x, (32, 32, 32, 32))
    with torch.no_grad():
        dense = model(x)
        for sample in range(2):
            patches = torch.stack([padded[sample, :, i : i + 65, j : j + 65] for i, j in pixels])
            expected = model.forward_patches(patches)
            got = torch.stack([dense[sample, :, i, j] for i, j in pixels])
            torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-5)


def test_dense_output_depends_on_exactly_the_65px_patch() -> None:
    torch.manual_seed(0)
    model = build_model("patch_cnn", 4, 10).eval()
    x = torch.randn(1, 4, 90, 90, requires_grad=True)
    model(x)[0, 0, 45, 45].backward()
    support = x.grad[0].abs().sum(0)
    rows = support.sum(1).nonzero().flatten()
    cols = support.sum(0).nonzero().flatten()
    assert rows.min().item() >= 45 - 32 and rows.max().item() <= 45 + 32
    assert cols.min().item() >= 45 - 32 and cols.max().item() <= 45 + 32
    assert rows.max().item() - rows.min().item() + 1 >= 55
