"""Unit tests of training/: class weights, loss, normalisation, augmentation, no leakage."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.reference import TEST, TRAIN, VAL
from iota2_spot_s2.training import (
    IGNORE_INDEX,
    class_weights,
    load_model,
    make_criterion,
    read_checkpoint,
    train,
    train_class_counts,
)
from iota2_spot_s2.training import session as session_module
from iota2_spot_s2.training.sampling import (
    CropSampler,
    ImageSource,
    augment,
    band_statistics,
    code_lookup,
)

CODES = (10, 20, 30)
TINY_FCN = {"widths": (8, 16), "bottleneck_blocks": 1}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest (and steadiest on a shared machine) on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_scene(size: int = 64, seed: int = 0, block: int = 16):
    """A learnable scene: 8x8 regions of 3 classes, each class a distinct band signature.

    Returns ``image (3, size, size) float32`` (DN-like values), ``labels`` uint16 (codes 10, 20,
    30; ~10 % no-data 0) and a block ``split`` (TRAIN / VAL / TEST / unassigned blocks).
    """
    rng = np.random.default_rng(seed)
    cells = rng.integers(len(CODES), size=(size // 8, size // 8))
    cls = np.kron(cells, np.ones((8, 8), dtype=np.int64))
    signature = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    image = 400.0 + 200.0 * signature[cls].transpose(2, 0, 1)
    image += rng.normal(0.0, 30.0, image.shape)
    labels = np.asarray(CODES, dtype=np.uint16)[cls]
    labels[rng.random(labels.shape) < 0.1] = 0
    n = size // block
    pattern = np.array([TRAIN, TRAIN, VAL, TRAIN, TEST, TRAIN, TRAIN, VAL, 0, TRAIN, TEST,
                        TRAIN, TRAIN, VAL, TRAIN, TEST])  # fmt: skip
    blocks = np.resize(pattern, n * n).reshape(n, n)
    split = np.kron(blocks, np.ones((block, block), dtype=np.uint8)).astype(np.uint8)
    return image.astype(np.float32), labels, split


def test_median_frequency_weights_follow_formula() -> None:
    counts = np.array([100, 400, 1000, 0, 20])
    # frequencies over 1520 px; median of the 4 present = (100/1520 + 400/1520) / 2 = 250/1520
    # w = median / f = 250 / count, clipped to [0.1, 10]; absent class -> 1.
    expected = np.array([2.5, 0.625, 0.25, 1.0, 10.0])
    np.testing.assert_allclose(class_weights(counts, "median_frequency"), expected, rtol=1e-6)
    expected_sqrt = np.sqrt([2.5, 0.625, 0.25, 1.0, 12.5])
    np.testing.assert_allclose(class_weights(counts, "inverse_sqrt"), expected_sqrt, rtol=1e-6)
    np.testing.assert_array_equal(class_weights(counts, "none"), np.ones(5))
    with pytest.raises(ValueError):
        class_weights(counts, "bogus")


def test_train_class_counts_use_train_split_only() -> None:
    labels = np.array([[10, 10, 20, 0], [30, 20, 20, 10]], dtype=np.uint16)
    split = np.array([[TRAIN, VAL, TRAIN, TRAIN], [TEST, TRAIN, TRAIN, 0]], dtype=np.uint8)
    # TRAIN pixels: 10 (1), 20 (3), 0 (no-data, not counted); 30 is TEST only.
    np.testing.assert_array_equal(train_class_counts(labels, split, [10, 20, 30]), [1, 3, 0])


def test_ignore_index_equals_zero_weight_nodata_class() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5, 5)
    target = torch.randint(0, 3, (2, 5, 5))
    nodata = torch.rand(2, 5, 5) < 0.3
    weights = np.array([0.5, 2.0, 1.5], dtype=np.float32)
    ours = make_criterion(weights)(logits, torch.where(nodata, IGNORE_INDEX, target))
    # Definition: weighted mean over valid pixels, sum_i w_yi * nll_i / sum_i w_yi.
    valid = ~nodata
    nll = -torch.log_softmax(logits, dim=1).gather(1, target[:, None])[:, 0]
    w = torch.as_tensor(weights)[target]
    torch.testing.assert_close(ours, (w * nll)[valid].sum() / w[valid].sum())
    # Same as an explicit no-data class 0 of weight 0 (its logit never wins: -1e4).
    extended = torch.cat([torch.full((2, 1, 5, 5), -1e4), logits], dim=1)
    explicit = nn.CrossEntropyLoss(weight=torch.tensor([0.0, *weights]))
    torch.testing.assert_close(ours, explicit(extended, torch.where(nodata, 0, target + 1)))


def test_band_statistics_from_train_pixels_only() -> None:
    image, _, split = make_scene()
    image[:, split != TRAIN] = 1e6  # anything outside TRAIN would wreck the statistics
    image[0, 0, 0] = np.nan if split[0, 0] == TRAIN else image[0, 0, 0]
    mean, std = band_statistics(ImageSource(image), split)
    for band in range(3):
        values = image[band][split == TRAIN].astype(np.float64)
        values = values[np.isfinite(values)]
        assert mean[band] == pytest.approx(values.mean(), rel=1e-5)
        assert std[band] == pytest.approx(values.std(), rel=1e-4)


def test_augment_keeps_input_and_target_aligned() -> None:
    rng = np.random.default_rng(0)
    target = rng.integers(0, 5, size=(6, 6))
    window = np.stack([target, -target]).astype(np.float32)
    seen = set()
    for _ in range(40):
        w, t = augment(window, target, rng)
        np.testing.assert_array_equal(w[0], t)
        np.testing.assert_array_equal(w[1], -t)
        seen.add(t.tobytes())
    assert len(seen) == 8  # the 8 symmetries of the square are all drawn


@pytest.mark.parametrize("class_balanced", [False, True])
def test_sampler_targets_are_train_pixels_only(class_balanced: bool) -> None:
    image, labels, split = make_scene()
    labels[split == VAL] = 90
    labels[split == TEST] = 91
    labels[split == 0] = 92
    codes = [10, 20, 30, 90, 91, 92]
    lut = code_lookup(codes, int(labels.max()))
    mean, std = band_statistics(ImageSource(image), split)
    sampler = CropSampler(ImageSource(image), labels, split, lut, mean, std, crop=24, context=4,
                          class_balanced=class_balanced)  # fmt: skip
    inputs, targets = sampler.batch(64, np.random.default_rng(1))
    assert inputs.shape == (64, 3, 32, 32) and targets.shape == (64, 24, 24)
    assert set(np.unique(targets)) <= {IGNORE_INDEX, 0, 1, 2}
    assert (targets != IGNORE_INDEX).mean() > 0.3


class RecordingLoss(nn.CrossEntropyLoss):
    """The real weighted cross-entropy, remembering every target it is given."""

    seen: list[torch.Tensor] = []

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        RecordingLoss.seen.append(target.detach().clone())
        return super().forward(logits, target)


def test_no_val_or_test_pixel_reaches_the_loss(tmp_path, monkeypatch) -> None:
    image, labels, split = make_scene()
    labels[split == VAL] = np.where(labels[split == VAL] > 0, 90, 0)
    labels[split == TEST] = 91
    codes = [10, 20, 30, 90, 91]

    def recording(weights, device="cpu"):
        return RecordingLoss(weight=torch.as_tensor(weights), ignore_index=IGNORE_INDEX)

    RecordingLoss.seen = []
    monkeypatch.setattr(session_module, "make_criterion", recording)
    result = train(image, labels, split, model_name="fcn", model_kwargs=TINY_FCN,
                   class_codes=codes, epochs=2, iters_per_epoch=4, batch_size=4, crop=24,
                   patience=5, val_tile=32, class_balanced=True,
                   checkpoint_path=tmp_path / "leak.pt")  # fmt: skip
    targets = torch.cat([t.ravel() for t in RecordingLoss.seen])
    assert len(RecordingLoss.seen) == 8
    used = set(torch.unique(targets).tolist())
    assert used <= {IGNORE_INDEX, 0, 1, 2}  # indices of codes 10, 20, 30 only
    assert {0, 1, 2} <= used
    assert read_checkpoint(result.checkpoint_path)["class_codes"] == codes


def test_bad_checkpoint_files_raise_input_error(tmp_path) -> None:
    with pytest.raises(InputError):
        load_model(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(InputError):
        load_model(garbage)
    partial = tmp_path / "partial.pt"
    torch.save({"model_name": "fcn"}, partial)
    with pytest.raises(InputError, match="missing"):
        read_checkpoint(partial)


def test_inconsistent_inputs_raise_input_error(tmp_path) -> None:
    image, labels, split = make_scene()
    with pytest.raises(InputError):
        train(image, labels[:32], split, model_name="fcn", checkpoint_path=tmp_path / "a.pt")
    with pytest.raises(InputError):
        train(image, labels, split, model_name="fcn", class_codes=[10, 20],
              checkpoint_path=tmp_path / "b.pt")  # fmt: skip
    with pytest.raises(InputError):
        train(image, labels, np.where(split == VAL, 0, split), model_name="fcn",
              checkpoint_path=tmp_path / "c.pt")  # fmt: skip


def test_lazy_dataarray_windows_match_numpy() -> None:
    import dask.array as dsa
    import xarray as xr

    image, labels, split = make_scene()
    lazy = xr.DataArray(dsa.from_array(image, chunks=(3, 16, 16)), dims=("band", "y", "x"))
    windowed = ImageSource(lazy, max_in_memory_bytes=0)  # stays lazy: read window by window
    assert not isinstance(windowed._data, np.ndarray)
    direct = ImageSource(image)
    for y0, x0, side in [(0, 0, 16), (-5, 50, 20), (30, -3, 40), (60, 60, 10)]:
        np.testing.assert_array_equal(
            windowed.read(y0, x0, side, side), direct.read(y0, x0, side, side)
        )
    assert np.isnan(direct.read(-5, 50, 20, 20)[:, :5]).all()
    mean, std = band_statistics(windowed, split)
    np.testing.assert_allclose(mean, band_statistics(direct, split)[0], rtol=1e-6)


def test_dataarray_and_numpy_inputs_train_identically(tmp_path) -> None:
    import xarray as xr

    image, labels, split = make_scene()
    kwargs = dict(model_name="fcn", model_kwargs=TINY_FCN, epochs=2, iters_per_epoch=2,
                  batch_size=2, crop=16, val_tile=32, patience=5)  # fmt: skip
    a = train(image, labels, split, checkpoint_path=tmp_path / "a.pt", **kwargs)
    da = xr.DataArray(image, dims=("band", "y", "x"))
    b = train(da, labels, split, checkpoint_path=tmp_path / "b.pt", **kwargs)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
