"""Training input at memory speed: the TRAIN/VAL cache, the background batch feed, schedules and
learning curves, and the block bootstrap of accuracy intervals."""

from __future__ import annotations

import json

import dask.array as dsa
import numpy as np
import pytest
import torch
import xarray as xr

from iota2_spot_s2.evaluation import scores
from iota2_spot_s2.evaluation.bootstrap import block_confusions, bootstrap_scores
from iota2_spot_s2.reference import TRAIN, VAL
from iota2_spot_s2.training import ImageSource, train
from iota2_spot_s2.training.feed import BatchFeed, step_rng
from iota2_spot_s2.training.schedule import learning_rate
from tests.test_training import TINY_FCN, make_scene

FAST = {"model_name": "fcn", "model_kwargs": TINY_FCN, "val_tile": 32, "crop": 32}


def lazy(image: np.ndarray) -> xr.DataArray:
    return xr.DataArray(dsa.from_array(image, chunks=(3, 16, 16)), dims=("band", "y", "x"))


def test_cache_region_serves_the_same_windows_from_memory() -> None:
    image, _, split = make_scene(size=96)
    source = ImageSource(lazy(image), max_in_memory_bytes=0)
    assert source.cache_report["mode"] == "stream"
    mask = np.isin(split, (TRAIN, VAL)) & (np.arange(96)[:, None] < 60)  # a box, not the image
    source.cache_region(mask, margin=4, budget=1 << 30)
    assert source.in_memory and source.cache_report["region"][:2] == [0, 64]
    direct = ImageSource(image)
    for y0, x0, side in [(0, 0, 16), (-5, 50, 20), (50, 10, 30), (80, 80, 20), (30, 90, 12)]:
        expected = direct.read(y0, x0, side, side)
        np.testing.assert_array_equal(source.read(y0, x0, side, side), expected)
    window = source.read(0, 0, 8, 8)
    window[:] = -1  # a read is a copy: the cache cannot be altered through it
    np.testing.assert_array_equal(source.read(0, 0, 8, 8), direct.read(0, 0, 8, 8))


def test_cache_over_budget_keeps_streaming_and_training_says_so(tmp_path) -> None:
    image, labels, split = make_scene()
    source = ImageSource(lazy(image), max_in_memory_bytes=0)
    source.cache_region(np.isin(split, (TRAIN, VAL)), margin=4, budget=10)
    assert source.cache_report["mode"] == "stream" and source.cache_report["bytes"] > 10
    result = train(lazy(image), labels, split, max_steps=2, batch_size=2,
                   checkpoint_path=tmp_path / "m.pt", **FAST)  # fmt: skip
    assert result.image_cache["mode"] == "memory"  # the default budget holds this small scene


def test_batch_feed_gives_the_batches_of_each_step_whatever_the_start() -> None:
    rng_batches = []

    def make(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        values = rng.random(3)
        return values, values * 2

    for step in range(5, 10):
        rng_batches.append(make(step_rng(7, step)))
    feed = BatchFeed(make, seed=7, start=5, depth=2)
    try:
        for step in range(5, 10):
            np.testing.assert_array_equal(feed.get(step)[0], rng_batches[step - 5][0])
        with pytest.raises(RuntimeError, match="expected step 10"):
            feed.get(12)
    finally:
        feed.close()


def test_batch_feed_raises_the_worker_error_in_the_consumer() -> None:
    def broken(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        raise OSError("disk gone")

    feed = BatchFeed(broken, seed=0, start=0)
    try:
        with pytest.raises(OSError, match="disk gone"):
            feed.get(0)
    finally:
        feed.close()


def test_step_schedule_counts_passes_and_cosine_ends_low() -> None:
    step = {"lr": 1e-3, "schedule": "step", "step_size": 50, "gamma": 0.7}
    assert learning_rate(step, 0.9, 49.99) == pytest.approx(1e-3)
    assert learning_rate(step, 0.0, 50.0) == pytest.approx(7e-4)
    assert learning_rate(step, 0.0, 101.0) == pytest.approx(4.9e-4)
    cosine = {"lr": 1e-3, "schedule": "cosine", "warmup": 0.1}
    peak = learning_rate(cosine, 0.1, 0)
    assert learning_rate(cosine, 0.05, 0) == pytest.approx(0.5 * peak, rel=0.02)
    lrs = [learning_rate(cosine, p, 0) for p in np.linspace(0.1, 1.0, 50)]
    assert all(b <= a for a, b in zip(lrs, lrs[1:], strict=False))  # decreasing after warm-up
    assert lrs[-1] == pytest.approx(0.02e-3) and lrs[0] == pytest.approx(1e-3, rel=0.03)


def test_time_budget_rounds_keep_validation_a_small_share(tmp_path) -> None:
    image, labels, split = make_scene(size=128)
    torch.set_num_threads(1)
    result = train(image, labels, split, max_minutes=0.25, rounds=5, batch_size=4, patience=100,
                   checkpoint_path=tmp_path / "t.pt", **FAST)  # fmt: skip
    assert result.stop_reason == "time_budget"
    spent = sum(r["seconds"] for r in result.history)
    assert sum(r["val_seconds"] for r in result.history) < 0.2 * spent
    assert 2 <= len(result.history) <= 8
    curve = json.loads((tmp_path / "t_curve.json").read_text())
    assert [r["step"] for r in curve["rounds"]] == [r["step"] for r in result.history]
    assert curve["budget"]["max_minutes"] == 0.25 and curve["train_pixels_per_second"] > 0


def _synthetic_blocks(rng: np.random.Generator, n_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """Blocks of 16 x 16 px, two classes; each block's map accuracy varies (spatial clustering)."""
    ref = rng.integers(1, 3, (n_blocks, 16, 16))
    accuracy = np.clip(rng.normal(0.8, 0.1, n_blocks), 0.3, 1.0)[:, None, None]
    wrong = rng.random(ref.shape) > accuracy
    return ref, np.where(wrong, 3 - ref, ref)


def test_block_bootstrap_covers_the_population_oa_at_about_the_nominal_rate() -> None:
    rng = np.random.default_rng(0)
    hits, trials = 0, 60
    for trial in range(trials):
        ref, prod = _synthetic_blocks(rng, 40)
        reference = np.concatenate(list(ref), axis=1)  # blocks side by side: (16, 40 * 16)
        produced = np.concatenate(list(prod), axis=1)
        cms = block_confusions(reference, produced, [1, 2], 16)
        assert cms.shape == (40, 2, 2)
        boot = bootstrap_scores(cms, [1, 2], n_boot=300, seed=trial)
        low, high = boot["overall_accuracy"]
        hits += low <= 0.8 <= high  # 0.8: the mean block accuracy of the population
    assert 0.82 <= hits / trials <= 1.0  # nominal 0.95; a pixel bootstrap would cover far less


def test_block_confusions_sum_to_the_whole_matrix() -> None:
    rng = np.random.default_rng(1)
    reference = rng.integers(0, 4, (50, 70))
    produced = rng.integers(1, 4, (50, 70))
    cms = block_confusions(reference, produced, [1, 2, 3], 16)
    from iota2_spot_s2.evaluation import confusion_matrix

    np.testing.assert_array_equal(cms.sum(axis=0), confusion_matrix(reference, produced, [1, 2, 3]))
    whole = scores(cms.sum(axis=0), [1, 2, 3])
    boot = bootstrap_scores(cms, [1, 2, 3], n_boot=200)
    assert boot["mean_f1"][0] <= whole.mean_f1 <= boot["mean_f1"][1]
    with pytest.raises(ValueError):
        bootstrap_scores(cms[:1], [1, 2, 3])
