"""Tiling and the in-memory engine: seamless, tile-size independent probabilities."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from iota2_spot_s2.inference import Engine, default_margin, plan_tiles, predict_array
from iota2_spot_s2.inference.sources import ArraySource
from iota2_spot_s2.inference.tiling import PixelWindow, Tile
from iota2_spot_s2.models import build_model
from iota2_spot_s2.training import LoadedModel

MEAN = np.array([300.0, 400.0, 500.0, 900.0], np.float32)
STD = np.array([50.0, 60.0, 80.0, 150.0], np.float32)
CODES = [11, 22, 31, 44, 200]


def loaded(name: str, seed: int = 0, **kwargs: object) -> LoadedModel:
    torch.manual_seed(seed)
    net = build_model(name, 4, len(CODES), **kwargs).eval()
    return LoadedModel(net, np.array(CODES), MEAN, STD, name)


def spot_like(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = rng.normal(size=(4, height // 4 + 1, width // 4 + 1)).repeat(4, 1).repeat(4, 2)
    noise = rng.normal(size=(4, height, width))
    img = MEAN[:, None, None] + STD[:, None, None] * (smooth[:, :height, :width] + 0.3 * noise)
    return img.astype(np.float32)


def reference_proba(model: LoadedModel, image: np.ndarray, pad: int) -> np.ndarray:
    """Whole-image inference written independently: normalise, NaN->0, zero-pad, one forward."""
    net = model.model
    d = net.downsample
    x = np.nan_to_num((image - MEAN[:, None, None]) / STD[:, None, None], nan=0.0)
    h, w = x.shape[1:]
    padded = np.zeros((4, -(-h // d) * d + 2 * pad, -(-w // d) * d + 2 * pad), np.float32)
    padded[:, pad : pad + h, pad : pad + w] = x
    with torch.no_grad():
        logits = net(torch.from_numpy(padded)[None])
    return torch.softmax(logits, 1)[0, :, pad : pad + h, pad : pad + w].numpy()


@pytest.mark.parametrize("height,width,tile,margin,d", [(200, 180, 64, 72, 8), (37, 91, 20, 33, 1)])
def test_tiles_partition_the_scene_with_aligned_windows(height, width, tile, margin, d):
    tiles = plan_tiles(height, width, tile, margin, d)
    cover = np.zeros((height, width), int)
    for t in tiles:
        cover[t.core.row : t.core.row_stop, t.core.col : t.core.col_stop] += 1
        assert t.core.row % d == 0 and t.core.col % d == 0
        assert t.read.row % d == 0 and t.read.col % d == 0
        assert t.read.height % d == 0 and t.read.width % d == 0
        assert t.read.row <= t.core.row - margin and t.read.col <= t.core.col - margin
        assert t.read.row_stop >= t.core.row_stop + margin
        assert t.read.col_stop >= t.core.col_stop + margin
    assert (cover == 1).all()


def test_default_margin_covers_radius_and_is_aligned():
    assert default_margin(65, 1) == 33
    assert default_margin(134, 8) == 72
    assert default_margin(7, 16) == 16


@pytest.mark.parametrize(
    "name,kwargs,tiles",
    [("fcn", {"widths": (8, 16, 24)}, (64, 96)), ("patch_cnn", {}, (80, 112))],
    ids=["fcn", "patch_cnn"],
)
def test_probabilities_do_not_depend_on_tile_size(name, kwargs, tiles):
    model = loaded(name, **kwargs)
    image = spot_like(200, 180)
    image[:, 50:53, 70:75] = np.nan
    net = model.model
    # A wider zero padding than the engine's margin: equal results prove the margin suffices.
    big = -(-net.receptive_field // net.downsample) * net.downsample
    expected = reference_proba(model, image, big)
    for tile in (*tiles, None):
        proba = predict_array(model, image, tile=tile)
        assert proba.shape == (len(CODES), 200, 180) and proba.dtype == np.float32
        np.testing.assert_allclose(proba, expected, atol=1e-4, err_msg=f"tile={tile}")
    np.testing.assert_allclose(proba.sum(0), 1.0, atol=1e-5)


def test_too_small_margin_breaks_tile_independence_and_warns():
    model = loaded("fcn", widths=(8, 16, 24))
    image = spot_like(128, 128)
    whole = predict_array(model, image)
    with pytest.warns(UserWarning, match="context"):
        tiled = predict_array(model, image, tile=32, margin=8)
    assert np.abs(tiled - whole).max() > 1e-3


def test_tiles_off_the_pooling_grid_would_not_be_seamless():
    """Why core origins are multiples of downsample: a 60-px grid (not multiple of 8) differs."""
    model = loaded("fcn", widths=(8, 16, 24))
    engine, image = Engine(model), spot_like(120, 120)
    source, m = ArraySource(image), Engine(model).margin

    def mosaic(tiles: list[Tile]) -> np.ndarray:
        out = np.zeros((len(CODES), 120, 120), np.float32)
        for res in engine.iter_results(source, tiles, skip_invalid=False, progress=False):
            c = res.tile.core
            out[:, c.row : c.row_stop, c.col : c.col_stop] = res.proba
        return out

    whole = mosaic(engine.plan(120, 120, None))
    assert np.abs(mosaic(engine.plan(120, 120, 60)) - whole).max() < 1e-4  # rounded up to 64
    shifted = [
        Tile(0, PixelWindow(r, c, 60, 60), PixelWindow(r - m, c - m, 64 + 2 * m, 64 + 2 * m))
        for r in (0, 60)
        for c in (0, 60)
    ]
    assert np.abs(mosaic(shifted) - whole).max() > 1e-2


def test_per_pixel_patches_equal_dense_at_sampled_pixels():
    model = loaded("patch_cnn", seed=3)
    image = spot_like(24, 30, seed=5)
    image[2, 10, 12] = np.nan
    dense = predict_array(model, image, tile=32)
    per_pixel = predict_array(model, image, tile=16, mode="per_pixel")
    np.testing.assert_allclose(per_pixel, dense, atol=1e-4)
    # Independent check: 65x65 patches cut by hand from the zero-padded normalised image.
    x = np.nan_to_num((image - MEAN[:, None, None]) / STD[:, None, None], nan=0.0)
    padded = np.pad(x, ((0, 0), (32, 32), (32, 32)))
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, 24, 12), rng.integers(0, 30, 12)
    rows[0], cols[0] = 0, 29  # a corner
    rows[1], cols[1] = 10, 12  # the NaN pixel
    patches = np.stack([padded[:, r : r + 65, c : c + 65] for r, c in zip(rows, cols, strict=True)])
    with torch.no_grad():
        logits = model.model.forward_patches(torch.from_numpy(patches))
    expected = torch.softmax(logits, 1).numpy()
    np.testing.assert_allclose(dense[:, rows, cols].T, expected, atol=1e-4)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_autocast_stays_close_and_leaves_model_untouched(precision):
    model = loaded("fcn", widths=(8, 16, 24))
    image = spot_like(64, 72)
    fp32 = predict_array(model, image, tile=32)
    np.testing.assert_allclose(predict_array(model, image, channels_last=True), fp32, atol=1e-4)
    fast = predict_array(model, image, tile=32, precision=precision, channels_last=True)
    assert fast.dtype == np.float32  # the softmax runs in float32 whatever the autocast
    assert not np.array_equal(fast, fp32)  # the autocast really ran
    assert np.abs(fast - fp32).mean() < 0.05
    assert (fast.argmax(0) == fp32.argmax(0)).mean() > 0.9
    np.testing.assert_allclose(fast.sum(0), 1.0, atol=1e-5)
    assert model.model.stem[0].weight.is_contiguous()  # still default memory format
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(predict_array(model, image, tile=32), fp32)


def test_a_model_in_training_mode_is_evaluated_in_eval_mode_and_restored():
    model = loaded("fcn", widths=(8, 16), dropout=0.5)
    image = spot_like(32, 40)
    expected = predict_array(model, image)
    model.model.train()
    np.testing.assert_array_equal(predict_array(model, image), expected)  # no dropout applied
    assert model.model.training
    with pytest.raises(ValueError, match="bands"):
        predict_array(model, image[:3])
    assert model.model.training


def test_wrong_band_count_and_bad_options_are_rejected():
    model = loaded("patch_cnn")
    with pytest.raises(ValueError, match="bands"):
        predict_array(model, np.zeros((3, 20, 20), np.float32))
    with pytest.raises(ValueError, match="mode"):
        predict_array(model, np.zeros((4, 20, 20), np.float32), mode="sliding")
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16"):
        predict_array(model, np.zeros((4, 20, 20), np.float32), precision="fp64")
    with pytest.raises(ValueError, match="forward_patches"):
        predict_array(loaded("fcn", widths=(8, 16)), np.zeros((4, 16, 16)), mode="per_pixel")
    with pytest.raises(ValueError, match="margin"):
        predict_array(model, np.zeros((4, 20, 20), np.float32), mode="per_pixel", margin=16)


@pytest.mark.parametrize("name", ["fcn", "patch_cnn"])
def test_folding_batchnorm_keeps_the_function_and_removes_every_norm_layer(name: str) -> None:
    import copy

    from iota2_spot_s2.inference.engine import fold_batchnorm

    torch.manual_seed(3)
    net = build_model(name, 4, len(CODES))
    x = torch.randn(2, 4, 96, 96) * 3 + 1
    net.train()
    for _ in range(3):  # non-trivial running statistics
        net(x)
    net.eval()
    folded = fold_batchnorm(copy.deepcopy(net))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    with torch.inference_mode():
        np.testing.assert_allclose(folded(x).numpy(), net(x).numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_planar_softmax_is_the_softmax_of_channels_last_logits(dtype):
    from iota2_spot_s2.inference.logits import planar_softmax

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 10, 40, 36, generator=gen) * 30  # large logits: the stable form
    logits[0, 3, :5, :5] = logits[0, 7, :5, :5]  # ties
    logits = logits.to(dtype).contiguous(memory_format=torch.channels_last)
    core = logits[0, :, 3:37, 2:30]  # a cropped view, classes interleaved (stride 1)
    out = planar_softmax(core)
    assert out.dtype == torch.float32 and out.is_contiguous()
    expected = torch.softmax(core.float().contiguous(), dim=0)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    assert torch.isfinite(out).all()
    np.testing.assert_array_equal(out.argmax(0).numpy(), expected.argmax(0).numpy())
