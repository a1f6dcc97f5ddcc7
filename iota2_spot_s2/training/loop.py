"""The training loop: Adam + StepLR on random train crops, validation mean F1, checkpoints.

Recipe (defaults = ``settings.TrainingSettings``): Adam (betas (0.9, 0.999), weight_decay 0),
initial LR ``lr=1e-3``, ``StepLR(step_size=50, gamma=0.7)`` stepped once per epoch (so the LR is
``lr * 0.7`` from epoch 51, ``lr * 0.49`` from epoch 101). An *epoch* is ``iters_per_epoch``
optimiser steps of ``batch_size`` random crops (see :mod:`.sampling`), followed by a validation
pass over the VAL tiles (:mod:`.validation`) and an atomic checkpoint (:mod:`.checkpoint`).
The loss is class-weighted cross-entropy (:mod:`.losses`). Model selection keeps the weights of
the best validation mean F1; training stops after ``epochs`` epochs, after ``patience`` epochs
without improvement, or once ``max_minutes`` of training are spent, counted over every resumed
call from the checkpoint's history (the running epoch is cut short, validated and
checkpointed; a rerun on a spent budget does not train again).

Reproducibility: ``seed`` seeds torch (weights init, dropout), the numpy sampler generator and
``random``; their states are checkpointed, so ``resume=True`` continues an interrupted run from
its last finished epoch and, on the same machine and thread count, ends with bit-identical weights
to an uninterrupted run (the CPU kernels used are deterministic for a fixed thread count).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from iota2_spot_s2.training import checkpoint as ckpt
from iota2_spot_s2.training.sampling import IGNORE_INDEX
from iota2_spot_s2.training.session import Session, prepare_session


@dataclass
class TrainResult:
    """What :func:`train` reports.

    Attributes:
        checkpoint_path: The checkpoint (best weights inside, see :func:`load_model`).
        history: One dict per epoch (``epoch, loss, lr, val_mean_f1, val_oa, seconds``).
        best_epoch: Epoch of the best validation mean F1 (1-based).
        best_val_mean_f1: That score.
        train_seconds: Training time over all calls (training, validation and checkpoints).
        train_pixels_per_second: Crop pixels (``batch_size * crop**2`` per step) per second of
            optimiser steps in this call (sampling, forward, backward, update; no validation).
        stop_reason: ``"epochs"``, ``"early_stopping"`` or ``"time_budget"``.
    """

    checkpoint_path: Path
    history: list[dict[str, Any]]
    best_epoch: int
    best_val_mean_f1: float
    train_seconds: float
    train_pixels_per_second: float
    stop_reason: str = "epochs"


def train(
    image: np.ndarray | xr.DataArray,
    labels: np.ndarray,
    split: np.ndarray,
    *,
    model_name: str,
    checkpoint_path: str | os.PathLike[str],
    class_codes: list[int] | None = None,
    epochs: int = 300,
    iters_per_epoch: int = 40,
    batch_size: int = 8,
    crop: int = 128,
    lr: float = 1e-3,
    step_size: int = 50,
    gamma: float = 0.7,
    patience: int = 60,
    seed: int = 0,
    max_minutes: float | None = None,
    class_weighting: str = "median_frequency",
    class_balanced: bool = False,
    model_kwargs: dict[str, Any] | None = None,
    val_tile: int = 256,
    val_max_tiles: int | None = None,
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
        checkpoint_path: Checkpoint file, rewritten after every epoch.
        class_codes: Code of each output class; default: the non-zero codes found in ``labels``.
        epochs: Maximum number of epochs.
        iters_per_epoch: Optimiser steps per epoch.
        batch_size: Crops per step (and VAL tiles per validation batch).
        crop: Side of the target crops, a multiple of the model's ``downsample``.
        lr: Initial Adam learning rate.
        step_size: StepLR period, in epochs.
        gamma: StepLR factor.
        patience: Epochs without validation improvement before stopping.
        seed: Seed of everything random.
        max_minutes: Training-time budget over all calls on this checkpoint (the epochs'
            recorded seconds), ``None`` = unbounded.
        class_weighting: ``"median_frequency"``, ``"inverse_sqrt"`` or ``"none"`` (:mod:`.losses`).
        class_balanced: Stratify crop centres by class.
        model_kwargs: Extra arguments of ``build_model``.
        val_tile: Validation tile side (rounded up to a multiple of ``downsample``).
        val_max_tiles: Optional cap on the number of VAL tiles (a fixed seeded subset).
        device: Torch device.
        resume: Continue from ``checkpoint_path`` if it exists (else start afresh, overwriting).

    Raises:
        InputError: On inconsistent inputs, no TRAIN or VAL pixel, or an incompatible checkpoint.
    """
    config = {
        "model_name": model_name, "epochs": epochs, "iters_per_epoch": iters_per_epoch,
        "batch_size": batch_size, "crop": crop, "lr": lr, "step_size": step_size,
        "gamma": gamma, "patience": patience, "seed": seed, "max_minutes": max_minutes,
        "class_weighting": class_weighting, "class_balanced": class_balanced,
        "model_kwargs": dict(model_kwargs or {}), "val_tile": val_tile,
        "val_max_tiles": val_max_tiles,
    }  # fmt: skip
    start, path = time.monotonic(), Path(checkpoint_path)
    device_ = torch.device(device)
    session = prepare_session(image, labels, split, config, class_codes, path, resume, device_)
    reason = _run_epochs(session, path, start)
    elapsed = time.monotonic() - start
    return TrainResult(
        checkpoint_path=path,
        history=list(session.meta["history"]),
        best_epoch=int(session.meta["best_epoch"]),
        best_val_mean_f1=float(session.meta["best_val_mean_f1"]),
        train_seconds=max(elapsed, trained_seconds(session.meta)),
        train_pixels_per_second=session.step_pixels / max(session.step_seconds, 1e-9),
        stop_reason=reason,
    )


def trained_seconds(meta: dict[str, Any]) -> float:
    """Training time recorded in a checkpoint's history, over every (resumed) call."""
    return float(sum(record.get("seconds", 0.0) for record in meta["history"]))


def _stop_reason(meta: dict[str, Any], config: dict[str, Any]) -> str | None:
    if meta["epoch"] > 0 and meta["epoch"] - meta["best_epoch"] >= config["patience"]:
        return "early_stopping"
    budget = config["max_minutes"]
    if budget is not None and meta["epoch"] > 0 and trained_seconds(meta) >= 60.0 * budget:
        return "time_budget"  # spent by earlier calls: a rerun does not train again
    return "epochs" if meta["epoch"] >= config["epochs"] else None


def image_step(session: Session) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and targets of one batch of image crops (the centre of each crop is supervised)."""
    config = session.config
    inputs, targets = session.sampler.batch(config["batch_size"], session.rng)
    x = torch.from_numpy(inputs).to(session.device)
    y = torch.from_numpy(targets).to(session.device)
    logits = session.model(x)
    c = session.sampler.context
    logits = logits[:, :, c : c + config["crop"], c : c + config["crop"]]
    return session.criterion(logits, y), y


def _run_epochs(
    session: Session,
    path: Path,
    start: float,
    step: Callable[[Session], tuple[torch.Tensor, torch.Tensor]] = image_step,
) -> str:
    """Epochs of ``step`` batches, each followed by validation, LR step and checkpoint."""
    config, meta = session.config, session.meta
    deadline = None if config["max_minutes"] is None else start + 60.0 * config["max_minutes"]
    bar = tqdm(
        total=config["epochs"],
        initial=min(meta["epoch"], config["epochs"]),
        desc=f"train {config['model_name']}",
        unit="epoch",
        disable=None,
    )
    reason = _stop_reason(meta, config)
    try:
        while reason is None:
            tic = time.perf_counter()
            loss, cut = _train_epoch(session, deadline, step)
            record = _end_epoch(session, loss, path, tic)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", val_mF1=f"{record['val_mean_f1']:.4f}")
            reason = "time_budget" if cut else _stop_reason(meta, config)
    finally:
        bar.close()
    return reason


def _train_epoch(
    session: Session,
    deadline: float | None,
    step: Callable[[Session], tuple[torch.Tensor, torch.Tensor]],
) -> tuple[float, bool]:
    """One epoch of optimiser steps; returns the mean loss and whether the budget cut it."""
    config, total, steps, cut = session.config, 0.0, 0, False
    session.model.train()
    for _ in range(config["iters_per_epoch"]):
        if deadline is not None and steps > 0 and time.monotonic() > deadline:
            cut = True
            break
        tic = time.perf_counter()
        loss, y = step(session)
        session.optimizer.zero_grad(set_to_none=True)
        if bool(torch.any(y != IGNORE_INDEX)):
            loss.backward()
            session.optimizer.step()
            total += float(loss.detach())
        steps += 1
        session.step_seconds += time.perf_counter() - tic
        session.step_pixels += y.numel()
    cut = cut or (deadline is not None and time.monotonic() > deadline)
    return total / max(steps, 1), cut


def _end_epoch(session: Session, loss: float, path: Path, tic: float) -> dict[str, Any]:
    """Validate, step the LR, track the best weights, write the checkpoint."""
    meta = session.meta
    scores = session.validation.evaluate(
        session.model, session.config["batch_size"], session.device
    )
    meta["epoch"] += 1
    record = {
        "epoch": meta["epoch"],
        "loss": loss,
        "lr": session.optimizer.param_groups[0]["lr"],
        "val_mean_f1": scores["mean_f1"],
        "val_oa": scores["oa"],
    }
    session.scheduler.step()
    if scores["mean_f1"] > meta["best_val_mean_f1"]:
        meta["best_val_mean_f1"], meta["best_epoch"] = scores["mean_f1"], meta["epoch"]
        session.extra["best_state_dict"] = ckpt.cpu_state_dict(session.model)
    record["seconds"] = time.perf_counter() - tic
    meta["history"].append(record)
    ckpt.save_checkpoint(path, _checkpoint_state(session))
    return record


def _checkpoint_state(session: Session) -> dict[str, Any]:
    return {
        **session.meta,
        "state_dict": ckpt.cpu_state_dict(session.model),
        "best_state_dict": session.extra["best_state_dict"],
        "optimizer": session.optimizer.state_dict(),
        "scheduler": session.scheduler.state_dict(),
        "config": dict(session.config),
        "rng": ckpt.rng_state(session.rng),
        "format": ckpt.CHECKPOINT_FORMAT,
    }
