"""Training of the early-fusion net on paired SPOT crops and Sentinel-2 windows.

Same recipe as :func:`~iota2_spot_s2.training.train` (and the same code where possible): the
session (checks, model, SPOT statistics, class weights, weighted cross-entropy with no-data
ignored, Adam without weight decay, ``StepLR(step_size, gamma)``, seeding, resume) comes from
:func:`~iota2_spot_s2.training.session.prepare_session`; each epoch ends with
:mod:`~iota2_spot_s2.training.loop`'s validation on VAL mean F1, best-weights tracking, early
stopping and atomic checkpoint. What differs is the data (see
:mod:`~iota2_spot_s2.training.paired_data`): SPOT crops on the common SPOT/S2 grid with their S2
windows at 10 m (gap-filled, normalised with TRAIN statistics), consistent flips/rot90, S2 dropout,
and VAL tiles scored with their S2 windows.

Checkpoint: the training checkpoint format (``model_name="early_fusion"``, ``model_kwargs`` holding
``s2_channels``, ``n_dates`` and ``ratio`` as ``"p/q"``), plus ``s2_mean``, ``s2_std`` (per
stacked channel), ``s2_layout`` (dates, bands, gap-filling) and ``s2_offset``. So
:func:`~iota2_spot_s2.training.load_model` loads it too; :func:`load_early_fusion` adds the S2
normalisation.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, fields
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from iota2_spot_s2.arrays import normalize
from iota2_spot_s2.devices import autocast
from iota2_spot_s2.errors import InputError
from iota2_spot_s2.models import build_model
from iota2_spot_s2.training.checkpoint import LoadedModel, load_model, read_checkpoint
from iota2_spot_s2.training.loop import TrainResult, finish, run_rounds
from iota2_spot_s2.training.paired_data import (
    PairedCropSampler,
    PairGeometry,
    S2Windows,
    crop_to_spot,
    prepare_s2_series,
    s2_train_split,
)
from iota2_spot_s2.training.sampling import ImageSource, band_statistics
from iota2_spot_s2.training.schedule import check_budget
from iota2_spot_s2.training.session import Session, prepare_session
from iota2_spot_s2.training.validation import ValidationSet

MODEL_NAME = "early_fusion"


@dataclass
class PairedValidationSet(ValidationSet):
    """VAL tiles scored with their S2 windows (tile, margin: multiples of the model period)."""

    s2: S2Windows | None = None

    @classmethod
    def from_validation(
        cls, base: ValidationSet, s2: S2Windows, margin: int
    ) -> PairedValidationSet:
        """Same tiles and statistics as ``base``, with ``margin`` and S2 windows."""
        values = {f.name: getattr(base, f.name) for f in fields(ValidationSet)}
        return cls(**{**values, "margin": margin}, s2=s2)

    @torch.no_grad()
    def _predict(self, model: torch.nn.Module, origins: list, device: str | torch.device) -> tuple:
        assert self.s2 is not None
        side, m, tile = self.tile + 2 * self.margin, self.margin, self.tile
        spots, s2s, flags, refs = [], [], [], []
        for y0, x0 in origins:
            window = self.source.read(y0 - m, x0 - m, side, side)
            ref = self._ref(y0, x0)
            ref[np.isnan(window[:, m : m + tile, m : m + tile]).any(axis=0)] = 0
            s2, has_data = self.s2.read(y0 - m, x0 - m, side, side)
            spots.append(normalize(window, self.band_mean, self.band_std))
            s2s.append(s2)
            flags.append(has_data)
            refs.append(ref)
        arrays = (np.stack(spots), np.stack(s2s), np.array(flags, dtype=bool))
        logits = model(*(torch.from_numpy(a).to(device) for a in arrays))
        index = logits[:, :, m : m + tile, m : m + tile].argmax(dim=1).cpu().numpy()
        produced = np.asarray(self.class_codes, dtype=np.int64)[index]
        return produced, np.stack(refs).astype(np.int64)


@dataclass
class LoadedEarlyFusion(LoadedModel):
    """A trained early-fusion net: :class:`LoadedModel` plus the S2 normalisation.

    Attributes:
        s2_mean: Per stacked S2 channel (time-major) mean (float32).
        s2_std: Per stacked S2 channel std (float32).
        ratio: S2 / SPOT pixel-size ratio.
    """

    s2_mean: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    s2_std: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    ratio: Fraction = Fraction(1)


def load_early_fusion(path: str | os.PathLike[str]) -> LoadedEarlyFusion:
    """Best-validation early-fusion net of a checkpoint, with SPOT and S2 normalisation.

    Raises:
        InputError: Not a readable early-fusion checkpoint.
    """
    base = load_model(path)
    if base.model_name != MODEL_NAME or "s2_mean" not in base.meta:
        raise InputError(path, f"not an {MODEL_NAME} checkpoint (model {base.model_name!r})")
    values = {f.name: getattr(base, f.name) for f in fields(LoadedModel)}
    return LoadedEarlyFusion(
        **values,
        s2_mean=np.asarray(base.meta["s2_mean"], np.float32),
        s2_std=np.asarray(base.meta["s2_std"], np.float32),
        ratio=Fraction(base.meta["model_kwargs"]["ratio"]),
    )


def train_early_fusion(
    spot: np.ndarray | xr.DataArray,
    s2_series: np.ndarray | xr.DataArray,
    labels: np.ndarray,
    split: np.ndarray,
    *,
    checkpoint_path: str | os.PathLike[str],
    ratio: str | float | None = None,
    class_codes: list[int] | None = None,
    epochs: int = 300,
    iters_per_epoch: int | None = None,
    batch_size: int = 8,
    crop: int = 120,
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
    val_max_pixels: int | None = 500_000,
    final_validation: bool = True,
    precision: str = "fp32",
    class_weighting: str = "median_frequency",
    class_balanced: bool = False,
    model_kwargs: dict[str, Any] | None = None,
    s2_dropout: float = 0.1,
    gapfill: bool = True,
    step_days: int = 10,
    val_tile: int = 240,
    val_max_tiles: int | None = None,
    device: str = "cpu",
    resume: bool = True,
) -> TrainResult:
    """Train the early-fusion net on TRAIN blocks (SPOT grid), select it on VAL mean F1.

    Args:
        spot: ``(band, y, x)`` SPOT image (numpy or lazy DataArray with ``crs``/``transform``).
        s2_series: ``(time, band, y, x)`` Sentinel-2 series on a grid paired with the SPOT one
            (see :class:`~iota2_spot_s2.training.paired_data.PairGeometry`), raw (gap-filled
            here) as from :func:`~iota2_spot_s2.sensors.open_s2_timeseries`.
        labels: ``(y, x)`` label codes on the SPOT grid, 0 = no-data.
        split: ``(y, x)`` split raster on the SPOT grid (1 TRAIN, 2 VAL, 3 TEST).
        checkpoint_path: Checkpoint file, rewritten atomically after every epoch.
        ratio: S2/SPOT pixel-size ratio for numpy inputs (DataArrays carry their grids).
        class_codes: Code of each output class; default: the non-zero codes in ``labels``.
        epochs: Maximum number of epochs.
        iters_per_epoch: Optimiser steps per round (``None``: see
            :mod:`iota2_spot_s2.training.loop`).
        schedule: LR schedule (``"cosine"``, ``"step"``, ``"constant"``), as in ``train``.
        warmup: Warm-up share of the cosine schedule.
        max_steps: Optimiser-step budget over all calls.
        rounds: Validations over a step or time budget.
        val_max_pixels: Labelled VAL pixels of the per-round validation subsample.
        final_validation: Score the best weights on every VAL pixel at the end.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (as :func:`~iota2_spot_s2.training.train`).
        batch_size: Crops per step (and VAL tiles per validation batch).
        lr: Initial Adam learning rate (no weight decay).
        step_size: StepLR period, in epochs.
        gamma: StepLR factor.
        patience: Epochs without VAL mean-F1 improvement before stopping.
        seed: Seed of everything random (weights, crops, augmentation, S2 dropout).
        max_minutes: Training-time budget over all calls, ``None`` = unbounded.
        class_weighting: ``"median_frequency"``, ``"inverse_sqrt"`` or ``"none"``.
        class_balanced: Stratify crop centres by class.
        val_max_tiles: Optional cap on the number of VAL tiles (a fixed seeded subset).
        device: Torch device.
        resume: Continue from ``checkpoint_path`` if it exists (else start afresh).
        crop: SPOT crop side, rounded up to the model's ``downsample`` (40 for 1.5 m / 10 m).
        model_kwargs: Extra :class:`~iota2_spot_s2.models.fusion_net.EarlyFusionNet` arguments.
        s2_dropout: Fraction of training samples whose S2 is flagged missing.
        gapfill: Gap-fill the S2 series onto a regular grid of ``step_days`` days
            (:func:`iota2_spot_s2.timeseries.gapfill`); False keeps the acquisition dates.
        step_days: Spacing of the gap-filled dates.
        val_tile: VAL tile side, rounded up to the model's ``downsample``.

    Raises:
        InputError: Inconsistent inputs or grids, no TRAIN/VAL pixel, incompatible checkpoint.
    """
    start, path = time.monotonic(), Path(checkpoint_path)
    geometry = PairGeometry.from_inputs(spot, s2_series, ratio)
    s2_series, geometry = crop_to_spot(s2_series, geometry, tuple(spot.shape[-2:]))
    stack = prepare_s2_series(s2_series, gapfill=gapfill, step_days=step_days)
    kwargs = {
        **(model_kwargs or {}),
        "s2_channels": int(s2_series.shape[1]),
        "n_dates": int(stack.shape[0]) // int(s2_series.shape[1]),
        "ratio": f"{geometry.p}/{geometry.q}",
    }
    period = build_model(MODEL_NAME, 1, 1, **kwargs).downsample
    config: dict[str, Any] = {
        "model_name": MODEL_NAME, "epochs": epochs, "iters_per_epoch": iters_per_epoch,
        "batch_size": batch_size, "crop": _round_up(crop, period), "lr": lr,
        "schedule": schedule, "warmup": warmup, "step_size": step_size, "gamma": gamma,
        "patience": patience, "seed": seed, "max_minutes": max_minutes, "max_steps": max_steps,
        "rounds": rounds, "val_max_pixels": val_max_pixels, "precision": precision,
        "class_weighting": class_weighting,
        "class_balanced": class_balanced, "model_kwargs": kwargs,
        "val_tile": _round_up(val_tile, period), "val_max_tiles": val_max_tiles,
        "s2_dropout": s2_dropout, "gapfill": gapfill, "step_days": step_days,
    }  # fmt: skip
    check_budget(config)
    session = prepare_session(
        spot, labels, split, config, class_codes, path, resume, torch.device(device)
    )
    windows = _s2_windows(stack, split, geometry, path if resume and path.exists() else None)
    session.meta.update(_s2_meta(windows, stack, geometry))
    session.sampler = PairedCropSampler.from_sampler(session.sampler, windows, s2_dropout)
    half = int(getattr(session.model, "receptive_field", 0)) // 2
    margin = _round_up(min(half, config["val_tile"] // 4), period)
    session.validation = PairedValidationSet.from_validation(session.validation, windows, margin)
    reason = run_rounds(session, path, start, _paired_step)
    return finish(session, path, start, reason, final_validation)


def _round_up(value: int, multiple: int) -> int:
    return -(-int(value) // multiple) * multiple


def _s2_windows(
    stack: xr.DataArray | np.ndarray, split: np.ndarray, geometry: PairGeometry, saved: Path | None
) -> S2Windows:
    """S2 reader with TRAIN statistics (those of the checkpoint when resuming)."""
    source = ImageSource(stack)
    if saved is not None:
        state = read_checkpoint(saved)
        mean, std = (np.asarray(state[k], np.float32) for k in ("s2_mean", "s2_std"))
        if mean.shape[0] != source.shape[0]:
            raise InputError(saved, "cannot resume: the S2 series has another channel count")
    else:
        s2_split = s2_train_split(np.asarray(split), geometry, source.shape[1:])
        if not (s2_split > 0).any():
            raise InputError("s2_series", "no Sentinel-2 pixel under the TRAIN blocks")
        mean, std = band_statistics(source, s2_split)
    return S2Windows(source, geometry, mean, std)


def _s2_meta(windows: S2Windows, stack: xr.DataArray, geometry: PairGeometry) -> dict[str, Any]:
    return {
        "s2_mean": windows.mean.tolist(),
        "s2_std": windows.std.tolist(),
        "s2_offset": [geometry.row_offset, geometry.col_offset],
        "s2_layout": {
            "dates": list(stack.attrs["s2_dates"]),
            "bands": list(stack.attrs["s2_bands"]),
            "gapfill": stack.attrs["s2_gapfill"],
            "step_days": stack.attrs["s2_step_days"],
            "order": "time-major (channel = date * n_bands + band)",
        },
    }


def _paired_step(session: Session) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and targets of one batch of SPOT crops with their S2 windows."""
    sampler = session.sampler
    assert isinstance(sampler, PairedCropSampler)
    spot, s2, valid, targets = sampler.batch_pairs(session.config["batch_size"], session.rng)
    x, s, v, y = (torch.from_numpy(a).to(session.device) for a in (spot, s2, valid, targets))
    with autocast(session.device.type, session.config["precision"]):
        logits = session.model(x, s, v)
    return session.criterion(logits.float(), y), y
