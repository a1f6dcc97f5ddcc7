"""The training loop: Adam on random train crops, an LR schedule over the budget, validation.

Recipe (defaults = ``settings.TrainingSettings``): Adam (betas (0.9, 0.999), weight_decay 0),
initial LR ``lr=1e-3``, class-weighted cross-entropy (:mod:`.losses`), batches of ``batch_size``
random ``crop`` x ``crop`` TRAIN crops with the 8 dihedral augmentations (:mod:`.sampling`),
made in a background thread (:mod:`.feed`) from an in-memory cache of the TRAIN/VAL region when
it fits (:meth:`~.sampling.ImageSource.cache_region`).

Budget and rounds. Training stops at the first of: ``max_steps`` optimiser steps,
``max_minutes`` of training (counted over every resumed call from the checkpoint's history),
``epochs`` rounds, or ``patience`` rounds without a better validation mean F1. A *round* (kept
as ``epoch`` in the history and checkpoint for compatibility) is ``iters_per_epoch`` steps; left
at ``None`` it is ``max_steps / rounds`` steps with a step budget, ``budget / rounds`` of time
with a time budget (at least 12.5 times the last validation, so validation stays under 8 % of
the time), else one *pass* (as many crop pixels as there are labelled TRAIN pixels).
Every round ends with a validation on a fixed, seeded subsample of the VAL tiles
(``val_max_pixels`` labelled pixels), keeps the weights of the best validation mean F1, and
writes an atomic checkpoint (:mod:`.checkpoint`). Once training stops, the best weights are
scored once on every VAL pixel (``final_validation`` in the checkpoint and result).

LR schedules (``schedule``), set before every step from the run's progress
``p = max(step / max_steps, elapsed / budget)`` in [0, 1] (rounds x steps per round when neither
budget is given):

- ``"cosine"`` (default): linear warm-up over the first ``warmup`` of ``p``, then
  ``lr * (FLOOR + (1 - FLOOR) * (1 + cos(pi * p)) / 2)``, so the budget, whatever it is, ends
  at a low LR;
- ``"step"``: the seed recipe ``lr * gamma ** floor(passes / step_size)``, ``passes`` counted
  over the TRAIN pixels (``StepLR(50, 0.7)`` per pass of the training pixels);
- ``"constant"``: ``lr``.

Reproducibility: ``seed`` seeds the weights; the batch of step ``t`` comes from its own
generator (:func:`.feed.step_rng`), so ``resume=True`` continues an interrupted run from its last
finished round and, with a step or round budget on the same machine and thread count, ends with
bit-identical weights to an uninterrupted run. ``precision="bf16"`` runs the forward pass under
``torch.autocast(dtype=bfloat16)`` (faster on CPUs and GPUs with bf16 units); ``"fp16"`` under
float16 autocast with a gradient scaler (``torch.amp.GradScaler``, saved in the checkpoint so a
resumed run goes on with the same loss scale), for GPUs without bf16 (V100, T4). fp32 is the
default.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from iota2_spot_s2.devices import autocast
from iota2_spot_s2.errors import InputError
from iota2_spot_s2.training import checkpoint as ckpt
from iota2_spot_s2.training.feed import BatchFeed, step_rng
from iota2_spot_s2.training.sampling import IGNORE_INDEX
from iota2_spot_s2.training.schedule import check_budget, learning_rate, progress
from iota2_spot_s2.training.session import Session, prepare_session

LOG = logging.getLogger("iota2_spot_s2.training")
#: With a time budget, rounds last at least ``validation time / VAL_SHARE``.
VAL_SHARE = 0.08


@dataclass
class TrainResult:
    """What :func:`train` reports.

    Attributes:
        checkpoint_path: The checkpoint (best weights inside, see :func:`load_model`).
        history: One dict per round (``epoch, step, loss, lr, val_mean_f1, val_oa, seconds,
            elapsed, val_seconds``).
        best_epoch: Round of the best validation mean F1 (1-based).
        best_val_mean_f1: That score (on the validation subsample).
        train_seconds: Training time over all calls (training, validation and checkpoints).
        train_pixels_per_second: Crop pixels (``batch_size * crop**2`` per step) per second of
            optimiser steps in this call (batch wait, forward, backward, update; no validation).
        stop_reason: ``"epochs"``, ``"step_budget"``, ``"early_stopping"`` or ``"time_budget"``.
        final_validation: Scores of the best weights on every VAL pixel (``mean_f1``, ``oa``,
            ``pixels``, ``seconds``), empty when not computed.
        image_cache: How training windows were read (``ImageSource.cache_report``).
    """

    checkpoint_path: Path
    history: list[dict[str, Any]]
    best_epoch: int
    best_val_mean_f1: float
    train_seconds: float
    train_pixels_per_second: float
    stop_reason: str = "epochs"
    final_validation: dict[str, Any] = field(default_factory=dict)
    image_cache: dict[str, Any] = field(default_factory=dict)


def train(
    image: np.ndarray | xr.DataArray,
    labels: np.ndarray,
    split: np.ndarray,
    *,
    model_name: str,
    checkpoint_path: str | os.PathLike[str],
    class_codes: list[int] | None = None,
    epochs: int = 300,
    iters_per_epoch: int | None = None,
    batch_size: int = 8,
    crop: int = 128,
    lr: float = 1e-3,
    schedule: str = "cosine",
    warmup: float = 0.03,
    step_size: int = 50,
    gamma: float = 0.7,
    patience: int = 60,
    seed: int = 0,
    max_minutes: float | None = None,
    max_steps: int | None = None,
    rounds: int = 20,
    class_weighting: str = "median_frequency",
    class_balanced: bool = False,
    model_kwargs: dict[str, Any] | None = None,
    val_tile: int = 512,
    val_max_tiles: int | None = None,
    val_max_pixels: int | None = 500_000,
    final_validation: bool = True,
    precision: str = "fp32",
    device: str = "cpu",
    resume: bool = True,
) -> TrainResult:
    """Train a registered model on the TRAIN blocks, select it on the VAL blocks.

    Args:
        image: ``(band, y, x)`` image (numpy or lazy ``DataArray``), NaN = no-data.
        labels: ``(y, x)`` label codes, 0 = no-data.
        split: ``(y, x)`` split raster (0 none, 1 TRAIN, 2 VAL, 3 TEST). Loss, statistics and
            class weights use TRAIN pixels only, model selection VAL pixels only; TEST labels
            only enter the default ``class_codes``.
        model_name: Registry name (``"patch_cnn"``, ``"fcn"``).
        checkpoint_path: Checkpoint file, rewritten after every round.
        class_codes: Code of each output class; default: the non-zero codes found in ``labels``.
        epochs: Maximum number of rounds.
        iters_per_epoch: Optimiser steps per round (``None``: see the module docstring).
        batch_size: Crops per step (and VAL tiles per validation batch).
        crop: Side of the target crops, a multiple of the model's ``downsample``.
        lr: Initial (peak) Adam learning rate.
        schedule: ``"cosine"``, ``"step"`` or ``"constant"`` (module docstring).
        warmup: Warm-up share of the cosine schedule.
        step_size: ``"step"`` schedule period, in passes over the TRAIN pixels.
        gamma: ``"step"`` schedule factor.
        patience: Rounds without validation improvement before stopping.
        seed: Seed of everything random.
        max_minutes: Training-time budget over all calls on this checkpoint, ``None`` = none.
        max_steps: Optimiser-step budget over all calls, ``None`` = none.
        rounds: Validations over a step or time budget.
        class_weighting: ``"median_frequency"``, ``"inverse_sqrt"`` or ``"none"`` (:mod:`.losses`).
        class_balanced: Stratify crop centres by class.
        model_kwargs: Extra arguments of ``build_model``.
        val_tile: Validation tile side (rounded up to a multiple of ``downsample``).
        val_max_tiles: Optional cap on the number of VAL tiles (a fixed seeded subset).
        val_max_pixels: Cap on the labelled VAL pixels of the per-round validation (a fixed
            seeded subset of tiles), ``None`` = every VAL tile.
        final_validation: Score the best weights on every VAL pixel once training stops.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast of the forward pass; fp16 adds a
            gradient scaler).
        device: Torch device.
        resume: Continue from ``checkpoint_path`` if it exists (else start afresh, overwriting).

    Raises:
        InputError: On inconsistent inputs, no TRAIN or VAL pixel, or an incompatible checkpoint.
        InputError: Also on an unknown ``schedule`` or a budget that cannot train.
    """
    config = {
        "model_name": model_name, "epochs": epochs, "iters_per_epoch": iters_per_epoch,
        "batch_size": batch_size, "crop": crop, "lr": lr, "schedule": schedule,
        "warmup": warmup, "step_size": step_size, "gamma": gamma, "patience": patience,
        "seed": seed, "max_minutes": max_minutes, "max_steps": max_steps, "rounds": rounds,
        "class_weighting": class_weighting, "class_balanced": class_balanced,
        "model_kwargs": dict(model_kwargs or {}), "val_tile": val_tile,
        "val_max_tiles": val_max_tiles, "val_max_pixels": val_max_pixels,
        "precision": precision,
    }  # fmt: skip
    check_budget(config)
    start, path = time.monotonic(), Path(checkpoint_path)
    device_ = torch.device(device)
    session = prepare_session(image, labels, split, config, class_codes, path, resume, device_)
    log_cache(session)
    feed = BatchFeed(
        lambda rng: session.sampler.batch(batch_size, rng), seed, int(session.meta["step"])
    )
    session.extra["feed"] = feed
    try:
        reason = run_rounds(session, path, start)
    finally:
        feed.close()
    return finish(session, path, start, reason, final_validation)


def check_training_args(model_name: str, **kwargs: Any) -> None:
    """Validate :func:`train` arguments before any work (budgets, schedule, crop vs model).

    Raises:
        InputError: Naming the argument at fault.
    """
    import inspect

    from iota2_spot_s2.models import build_model

    defaults = {name: p.default for name, p in inspect.signature(train).parameters.items()
                if p.default is not inspect.Parameter.empty}  # fmt: skip
    config = {**defaults, **kwargs, "model_name": model_name}
    check_budget(config)
    model = build_model(model_name, 1, 1, **dict(config.get("model_kwargs") or {}))
    if config["crop"] % model.downsample:
        raise InputError("crop", f"{config['crop']} must be a multiple of {model.downsample}")


def log_cache(session: Session) -> None:
    """Say once how the training windows are read (memory or disk)."""
    report = session.sampler.source.cache_report
    size = f"{int(report.get('bytes') or 0) / 2**20:.0f} MiB"
    if report["mode"] == "memory":
        LOG.info("training windows read from memory (%s cached)", size)
    else:
        budget = int(report.get("budget") or 0) / 2**20
        LOG.warning("training windows streamed from disk: the TRAIN/VAL region needs %s, over the "
                    "cache budget of %.0f MiB (training will be slower)", size, budget)  # fmt: skip


def finish(session: Session, path: Path, start: float, reason: str, final: bool) -> TrainResult:
    """Final full validation (once per best round), curve files, and the result."""
    from iota2_spot_s2.training.curves import write_learning_curve

    meta = session.meta
    if final and meta.get("final_validation", {}).get("epoch") != meta["best_epoch"]:
        meta["final_validation"] = session.validate_full(session.extra["best_state_dict"])
        meta["final_validation"]["epoch"] = meta["best_epoch"]
        ckpt.save_checkpoint(path, _checkpoint_state(session))
    LOG.info("stopped (%s) after %d steps; best validation mean F1 %.4f at round %d%s", reason,
             meta["step"], meta["best_val_mean_f1"], meta["best_epoch"],
             _final_text(meta.get("final_validation")))  # fmt: skip
    if session.step_seconds > 0:
        meta["train_pixels_per_second"] = session.step_pixels / session.step_seconds
    write_learning_curve(path, meta, session.config)
    return TrainResult(
        checkpoint_path=path,
        history=list(meta["history"]),
        best_epoch=int(meta["best_epoch"]),
        best_val_mean_f1=float(meta["best_val_mean_f1"]),
        train_seconds=max(time.monotonic() - start, trained_seconds(meta)),
        train_pixels_per_second=session.step_pixels / max(session.step_seconds, 1e-9),
        stop_reason=reason,
        final_validation=dict(meta.get("final_validation") or {}),
        image_cache=dict(session.sampler.source.cache_report),
    )


def _final_text(final: dict[str, Any] | None) -> str:
    if not final:
        return ""
    return f" (every VAL pixel: mean F1 {final['mean_f1']:.4f}, OA {final['oa']:.4f})"


def trained_seconds(meta: dict[str, Any]) -> float:
    """Training time recorded in a checkpoint's history, over every (resumed) call."""
    return float(sum(record.get("seconds", 0.0) for record in meta["history"]))


def _stop_reason(meta: dict[str, Any], config: dict[str, Any]) -> str | None:
    if meta["epoch"] > 0 and meta["epoch"] - meta["best_epoch"] >= config["patience"]:
        return "early_stopping"
    budget = config["max_minutes"]
    if budget is not None and meta["epoch"] > 0 and trained_seconds(meta) >= 60.0 * budget:
        return "time_budget"  # spent by earlier calls: a rerun does not train again
    if config.get("max_steps") is not None and meta.get("step", 0) >= config["max_steps"]:
        return "step_budget"
    return "epochs" if meta["epoch"] >= config["epochs"] else None


def image_step(session: Session) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and targets of one batch of image crops (the centre of each crop is supervised)."""
    config = session.config
    feed = session.extra.get("feed")
    step = int(session.meta["step"])
    if feed is not None:
        inputs, targets = feed.get(step)
    else:
        rng = step_rng(config["seed"], step)
        inputs, targets = session.sampler.batch(config["batch_size"], rng)
    x = torch.from_numpy(inputs).to(session.device, memory_format=torch.channels_last)
    y = torch.from_numpy(targets).to(session.device)
    with autocast(session.device.type, config["precision"]):
        logits = session.model(x)
    c = session.sampler.context
    logits = logits[:, :, c : c + config["crop"], c : c + config["crop"]].float()
    return session.criterion(logits, y), y


def run_rounds(
    session: Session,
    path: Path,
    start: float,
    step: Callable[[Session], tuple[torch.Tensor, torch.Tensor]] = image_step,
) -> str:
    """Rounds of ``step`` batches, each followed by validation and checkpoint."""
    config, meta = session.config, session.meta
    session.extra["round_steps"] = _round_steps(session)
    deadline = None
    if config["max_minutes"] is not None:
        deadline = time.monotonic() + 60.0 * config["max_minutes"] - trained_seconds(meta)
    by_steps = bool(config.get("max_steps"))
    total, unit = (config["max_steps"], "step") if by_steps else (config["epochs"], "round")
    done = meta["step"] if unit == "step" else meta["epoch"]
    bar = tqdm(total=total, initial=min(done, total), desc=f"train {config['model_name']}",
               unit=unit, disable=None)  # fmt: skip
    reason = _stop_reason(meta, config)
    try:
        while reason is None:
            tic = time.perf_counter()
            before = meta["step"]
            loss, cut = _train_round(session, deadline, step)
            record = _end_round(session, loss, path, tic)
            bar.update(meta["step"] - before if unit == "step" else 1)
            bar.set_postfix(loss=f"{loss:.4f}", val_mF1=f"{record['val_mean_f1']:.4f}")
            LOG.info("round %d: step %d, loss %.4f, lr %.2e, validation mean F1 %.4f OA %.4f "
                     "(%.0f s)", record["epoch"], record["step"], loss, record["lr"],
                     record["val_mean_f1"], record["val_oa"], record["elapsed"])  # fmt: skip
            reason = "time_budget" if cut else _stop_reason(meta, config)
    finally:
        bar.close()
    return reason


def _round_steps(session: Session) -> int:
    """Steps of one round when ``iters_per_epoch`` is not given (module docstring)."""
    config = session.config
    if config.get("iters_per_epoch"):
        return int(config["iters_per_epoch"])
    if config.get("max_steps"):
        return max(1, math.ceil(config["max_steps"] / config["rounds"]))
    if config.get("max_minutes"):
        return 1 << 62  # rounds end on their time slice
    crop_pixels = config["batch_size"] * config["crop"] ** 2
    return max(1, math.ceil(session.meta["train_pixels"] / crop_pixels))


def _train_round(
    session: Session,
    deadline: float | None,
    step: Callable[[Session], tuple[torch.Tensor, torch.Tensor]],
) -> tuple[float, bool]:
    """One round of optimiser steps; returns the mean loss and whether the budget cut it."""
    config, meta = session.config, session.meta
    total, steps, cut = 0.0, 0, False
    round_start, done_before = time.monotonic(), trained_seconds(meta)
    slice_end = None
    if config.get("max_minutes") and not config.get("iters_per_epoch"):
        # a time slice per round, long enough that validation stays under VAL_SHARE of the time
        last_val = meta["history"][-1].get("val_seconds", 0.0) if meta["history"] else 0.0
        length = max(60.0 * config["max_minutes"] / config["rounds"], last_val / VAL_SHARE)
        slice_end = round_start + length
    session.model.train()
    crop_pixels = config["batch_size"] * config["crop"] ** 2
    while steps < session.extra["round_steps"]:
        now = time.monotonic()
        if config.get("max_steps") is not None and meta["step"] >= config["max_steps"]:
            break
        if deadline is not None and steps > 0 and now > deadline:
            cut = True
            break
        if slice_end is not None and steps > 0 and now > slice_end:
            break
        passes = meta["step"] * crop_pixels / max(1, meta["train_pixels"])
        elapsed = done_before + now - round_start
        spent = progress(config, meta, session.extra["round_steps"], elapsed)
        lr = learning_rate(config, spent, passes)
        for group in session.optimizer.param_groups:
            group["lr"] = lr
        tic = time.perf_counter()
        loss, y = step(session)
        session.optimizer.zero_grad(set_to_none=True)
        if bool(torch.any(y != IGNORE_INDEX)):
            session.scaler.scale(loss).backward()  # the scaler passes fp32/bf16 losses through
            session.scaler.step(session.optimizer)
            session.scaler.update()
            total += float(loss.detach())
        steps += 1
        meta["step"] += 1
        session.step_seconds += time.perf_counter() - tic
        session.step_pixels += y.numel()
    cut = cut or (deadline is not None and time.monotonic() > deadline)
    return total / max(steps, 1), cut


def _end_round(session: Session, loss: float, path: Path, tic: float) -> dict[str, Any]:
    """Validate, track the best weights, write the checkpoint."""
    meta = session.meta
    val_tic = time.perf_counter()
    scores = session.validation.evaluate(
        session.model, session.config["batch_size"], session.device,
        precision=session.config["precision"],
    )  # fmt: skip
    meta["epoch"] += 1
    record = {
        "epoch": meta["epoch"],
        "step": meta["step"],
        "loss": loss,
        "lr": session.optimizer.param_groups[0]["lr"],
        "val_mean_f1": scores["mean_f1"],
        "val_oa": scores["oa"],
        "val_seconds": time.perf_counter() - val_tic,
    }
    if scores["mean_f1"] > meta["best_val_mean_f1"]:
        meta["best_val_mean_f1"], meta["best_epoch"] = scores["mean_f1"], meta["epoch"]
        session.extra["best_state_dict"] = ckpt.cpu_state_dict(session.model)
    record["seconds"] = time.perf_counter() - tic
    record["elapsed"] = trained_seconds(meta) + record["seconds"]
    meta["history"].append(record)
    ckpt.save_checkpoint(path, _checkpoint_state(session))
    return record


def _checkpoint_state(session: Session) -> dict[str, Any]:
    return {
        **session.meta,
        "state_dict": ckpt.cpu_state_dict(session.model),
        "best_state_dict": session.extra["best_state_dict"],
        "optimizer": session.optimizer.state_dict(),
        "scaler": session.scaler.state_dict(),  # empty unless fp16
        "config": dict(session.config),
        "rng": ckpt.rng_state(session.rng),
        "format": ckpt.CHECKPOINT_FORMAT,
    }


# Kept for the early-fusion trainer (same loop, another step function).
_run_epochs = run_rounds
