"""Tests of the training loop: learning, StepLR, early stopping, budget, resume, load_model."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.evaluation import confusion_matrix, scores
from iota2_spot_s2.models import build_model
from iota2_spot_s2.reference import TRAIN, VAL
from iota2_spot_s2.training import load_model, read_checkpoint, train
from tests.test_training import TINY_FCN, make_scene

REPO = Path(__file__).resolve().parents[1]
FAST = {"model_name": "fcn", "model_kwargs": TINY_FCN, "val_tile": 32, "crop": 32}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest (and steadiest on a shared machine) on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def learn_easy_problem(folder, seed: int = 0, epochs: int = 16, iters_per_epoch: int = 10):
    """The tiny FCN trained ``epochs * iters_per_epoch`` steps on :func:`make_scene` (scene and
    training seeded by ``seed``); also driven by ``benchmarks/threshold_sweep.py`` over seeds."""
    image, labels, split = make_scene(seed=seed)
    return train(image, labels, split, epochs=epochs, iters_per_epoch=iters_per_epoch,
                 batch_size=8, patience=20, seed=seed, checkpoint_path=folder / "fcn.pt",
                 **FAST)  # fmt: skip


def test_training_learns_an_easy_problem(tmp_path) -> None:
    result = learn_easy_problem(tmp_path)
    losses = [h["loss"] for h in result.history]
    assert len(result.history) == 16 and result.stop_reason == "epochs"
    # Over seeds 0-7 (scene and training, benchmarks/threshold_sweep.py) 160 steps gave a loss
    # ratio of 0.34-0.45 and a best VAL mean F1 of 0.93-1.00; 80 steps gave 0.54 at seed 4.
    # Heads start near uniform (loss ~ log 3); chance is a mean F1 of about 1/3.
    assert losses[-1] < 0.6 * losses[0]
    assert result.best_val_mean_f1 > 0.8
    assert result.best_val_mean_f1 == max(h["val_mean_f1"] for h in result.history)
    assert result.history[result.best_epoch - 1]["val_mean_f1"] == result.best_val_mean_f1
    assert result.train_pixels_per_second > 0 and result.train_seconds > 0


def _train_pixels(labels: np.ndarray, split: np.ndarray) -> int:
    return int(((split == TRAIN) & (labels > 0)).sum())


def test_step_schedule_multiplies_lr_by_gamma_every_step_size_passes(tmp_path) -> None:
    image, labels, split = make_scene()
    path = tmp_path / "lr.pt"
    kwargs = dict(iters_per_epoch=8, batch_size=1, patience=1000, lr=2e-3, checkpoint_path=path,
                  model_name="fcn", model_kwargs={"widths": (4,), "bottleneck_blocks": 0},
                  crop=8, val_tile=16, schedule="step", step_size=1, gamma=0.7)  # fmt: skip
    per_step = 1 * 8 * 8 / _train_pixels(labels, split)  # passes over the TRAIN pixels per step
    train(image, labels, split, epochs=6, **kwargs)
    result = train(image, labels, split, epochs=12, **kwargs)  # resumes at round 7
    state = read_checkpoint(path)
    assert state["epoch"] == 12 and state["step"] == 96 and len(result.history) == 12
    for record in result.history:  # the LR of the round's last step
        passes = (record["step"] - 1) * per_step
        assert record["lr"] == pytest.approx(2e-3 * 0.7 ** np.floor(passes), rel=1e-9)
    assert len({round(h["lr"], 12) for h in result.history}) >= 3  # it did step, more than once
    group = state["optimizer"]["param_groups"][0]
    assert tuple(group["betas"]) == (0.9, 0.999) and group["weight_decay"] == 0
    with pytest.raises(InputError, match="cannot resume"):
        train(image, labels, split, epochs=13, **{**kwargs, "model_kwargs": TINY_FCN})


def test_cosine_schedule_spans_a_step_budget(tmp_path) -> None:
    image, labels, split = make_scene()
    result = train(image, labels, split, max_steps=40, rounds=4, epochs=1000, batch_size=2,
                   lr=1e-3, warmup=0.0, patience=1000, checkpoint_path=tmp_path / "c.pt",
                   **FAST)  # fmt: skip
    assert result.stop_reason == "step_budget"
    assert [h["step"] for h in result.history] == [10, 20, 30, 40]
    for record in result.history:
        p = (record["step"] - 1) / 40
        expected = 1e-3 * (0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * p)))
        assert record["lr"] == pytest.approx(expected, rel=1e-9)
    assert result.history[-1]["lr"] < 0.05e-3  # the budget ends at a low LR
    # The final validation scores the best weights on every VAL pixel (more than the subsample).
    assert result.final_validation["pixels"] == int(((split == VAL) & (labels > 0)).sum())


def test_round_validation_uses_a_fixed_subsample_and_final_validation_all(tmp_path) -> None:
    image, labels, split = make_scene(size=128)
    result = train(image, labels, split, max_steps=6, rounds=2, batch_size=2, patience=1000,
                   val_max_pixels=200, checkpoint_path=tmp_path / "v.pt", **FAST)  # fmt: skip
    every = int(((split == VAL) & (labels > 0)).sum())
    assert result.final_validation["pixels"] == every
    state = read_checkpoint(tmp_path / "v.pt")
    assert state["final_validation"]["epoch"] == result.best_epoch
    # a rerun on a spent budget neither trains nor validates again
    again = train(image, labels, split, max_steps=6, rounds=2, batch_size=2, patience=1000,
                  val_max_pixels=200, checkpoint_path=tmp_path / "v.pt", **FAST)  # fmt: skip
    assert again.history == result.history and again.final_validation == result.final_validation


@pytest.mark.parametrize("bad", [{"max_steps": 0}, {"epochs": 0}, {"max_minutes": -1.0},
                                 {"schedule": "linear"}, {"batch_size": 0}])  # fmt: skip
def test_budgets_that_cannot_train_are_refused(tmp_path, bad) -> None:
    image, labels, split = make_scene()
    with pytest.raises(InputError, match=next(iter(bad))):
        train(image, labels, split, checkpoint_path=tmp_path / "x.pt", **{**FAST, **bad})
    assert not (tmp_path / "x.pt").exists()


def test_early_stopping_and_time_budget(tmp_path) -> None:
    image, labels, split = make_scene()
    stopped = train(image, labels, split, epochs=60, iters_per_epoch=1, batch_size=2, lr=0.0,
                    patience=2, checkpoint_path=tmp_path / "es.pt", **FAST)  # fmt: skip
    assert stopped.stop_reason == "early_stopping"
    assert len(stopped.history) - stopped.best_epoch == 2 and len(stopped.history) < 60
    budget = train(image, labels, split, epochs=1000, iters_per_epoch=1000, batch_size=2,
                   patience=1000, max_minutes=0.5 / 60, checkpoint_path=tmp_path / "b.pt",
                   **FAST)  # fmt: skip
    assert budget.stop_reason == "time_budget" and len(budget.history) == 1
    assert budget.train_seconds < 20


def _state_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


KILLED_RUN = textwrap.dedent(
    """
    import sys, torch
    sys.path.insert(0, {repo!r})
    torch.set_num_threads({threads})
    from tests.test_training import make_scene, TINY_FCN
    from iota2_spot_s2.training import train
    image, labels, split = make_scene()
    train(image, labels, split, epochs=1000, max_steps=3000, checkpoint_path={path!r},
          **{kwargs!r})
    """
)


def test_killed_training_resumes_to_identical_weights(tmp_path) -> None:
    image, labels, split = make_scene()
    kwargs = {"iters_per_epoch": 3, "batch_size": 4, "patience": 1000, "seed": 3,
              "class_balanced": True, **FAST}  # fmt: skip
    path = tmp_path / "killed.pt"
    script = KILLED_RUN.format(repo=str(REPO), threads=torch.get_num_threads(), path=str(path),
                               kwargs=kwargs)  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()
    _, err = proc.communicate()
    assert path.exists(), err.decode()[-2000:]
    saved_epoch = read_checkpoint(path)["epoch"]
    assert 1 <= saved_epoch < 1000
    final = saved_epoch + 3
    resumed = train(image, labels, split, epochs=final, max_steps=3000, checkpoint_path=path,
                    **kwargs)  # fmt: skip
    assert [h["epoch"] for h in resumed.history] == list(range(1, final + 1))
    straight = train(image, labels, split, epochs=final, max_steps=3000,
                     checkpoint_path=tmp_path / "s.pt", **kwargs)  # fmt: skip
    a, b = read_checkpoint(path), read_checkpoint(tmp_path / "s.pt")
    _state_equal(a["state_dict"], b["state_dict"])
    _state_equal(a["best_state_dict"], b["best_state_dict"])
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    assert a["best_epoch"] == b["best_epoch"]


def test_fp16_training_keeps_its_loss_scaler_and_resumes_identically(tmp_path) -> None:
    """fp16 (GPUs without bf16) trains under a gradient scaler kept in the checkpoint.

    Run on the CPU here, where the library allows it (the CLI and cfgs refuse it there): two
    rounds, then two more resumed from the checkpoint, end on the weights of four straight ones;
    and fp16 really ran (other weights than fp32 after the same steps).
    """
    image, labels, split = make_scene()
    # a constant LR: the cosine schedule would depend on the epoch budget of each call
    kwargs = {"iters_per_epoch": 3, "batch_size": 4, "patience": 1000, "seed": 3,
              "schedule": "constant", **FAST}  # fmt: skip
    path = tmp_path / "fp16.pt"
    first = train(image, labels, split, epochs=2, checkpoint_path=path, precision="fp16", **kwargs)
    saved = read_checkpoint(path)
    assert saved["config"]["precision"] == "fp16" and saved["scaler"]["scale"] > 0
    assert all(np.isfinite(h["loss"]) for h in first.history)
    train(image, labels, split, epochs=4, checkpoint_path=path, precision="fp16", **kwargs)
    straight = tmp_path / "straight.pt"
    train(image, labels, split, epochs=4, checkpoint_path=straight, precision="fp16", **kwargs)
    _state_equal(read_checkpoint(path)["state_dict"], read_checkpoint(straight)["state_dict"])
    with pytest.raises(InputError, match="fp32, bf16, fp16"):  # refused before any work
        train(image, labels, split, epochs=2, checkpoint_path=tmp_path / "x.pt",
              precision="half", **kwargs)  # fmt: skip
    assert not (tmp_path / "x.pt").exists()
    fp32 = tmp_path / "fp32.pt"
    train(image, labels, split, epochs=2, checkpoint_path=fp32, **kwargs)
    assert read_checkpoint(fp32)["scaler"] == {}  # no scaler outside fp16
    weights = read_checkpoint(fp32)["state_dict"]  # the same 6 steps in fp32
    assert any(not torch.equal(weights[k], saved["state_dict"][k]) for k in weights)


def test_load_model_round_trip_patch_cnn(tmp_path) -> None:
    image, labels, split = make_scene()
    path = tmp_path / "patch.pt"
    result = train(image, labels, split, model_name="patch_cnn", epochs=2, iters_per_epoch=2,
                   batch_size=2, crop=8, patience=5, val_tile=64, checkpoint_path=path)  # fmt: skip
    loaded = load_model(path)
    assert loaded.model_name == "patch_cnn" and not loaded.model.training
    assert loaded.class_codes.tolist() == [10, 20, 30]
    train_values = image[:, split == TRAIN]
    np.testing.assert_allclose(loaded.band_mean, train_values.mean(axis=1), rtol=1e-5)
    x = torch.from_numpy((image - loaded.band_mean[:, None, None]) / loaded.band_std[:, None, None])
    with torch.no_grad():
        logits = loaded.model(x[None])
    # Same predictions as a model rebuilt by hand from the best weights of the file.
    state = torch.load(path, weights_only=True)
    manual = build_model("patch_cnn", 3, 3)
    manual.load_state_dict(state["best_state_dict"])
    with torch.no_grad():
        torch.testing.assert_close(manual.eval()(x[None]), logits, rtol=0, atol=0)
    # The best weights score, on the VAL pixels, the recorded best validation mean F1.
    produced = loaded.class_codes[logits[0].argmax(0).numpy()]
    reference = np.where(split == VAL, labels, 0)
    f1 = scores(confusion_matrix(reference, produced, [10, 20, 30]), [10, 20, 30]).mean_f1
    assert f1 == pytest.approx(result.best_val_mean_f1, abs=1e-12)
