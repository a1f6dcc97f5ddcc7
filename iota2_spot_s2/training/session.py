"""Building a training session: checks, model, statistics, sampler, validation, optimiser.

:func:`prepare_session` turns :func:`~iota2_spot_s2.training.train`'s arguments into a
:class:`Session` holding the live objects; with ``resume`` and an existing checkpoint it restores
the weights, optimiser, scheduler, history and random generators saved there (after checking that
the model, its arguments, the band count and the class codes are the same, and that the
checkpoint's ``data_fingerprint`` names the same labels and split: a checkpoint of other
labels/split, or one without a fingerprint, is refused and left untouched — see
:mod:`~iota2_spot_s2.training.checkpoint_fingerprint`). The session's ``meta`` carries the
fingerprint of ``labels`` and ``split`` (with the provenance of
:func:`~iota2_spot_s2.training.checkpoint_fingerprint.provenance_of_training_data`), so every
checkpoint records the data it was trained on.
"""

from __future__ import annotations

import copy
import dataclasses
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.models import SegmentationModel, build_model
from iota2_spot_s2.reference import TRAIN, VAL
from iota2_spot_s2.training import checkpoint as ckpt
from iota2_spot_s2.training import checkpoint_fingerprint as fp
from iota2_spot_s2.training.losses import class_weights, make_criterion, train_class_counts
from iota2_spot_s2.training.sampling import (
    CropSampler,
    ImageSource,
    band_statistics,
    code_lookup,
    present_codes,
)
from iota2_spot_s2.training.validation import ValidationSet


@dataclass
class Session:
    """The live objects of one training run."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    criterion: nn.Module
    sampler: CropSampler
    validation: ValidationSet
    rng: np.random.Generator
    meta: dict[str, Any]
    config: dict[str, Any]
    device: torch.device
    scaler: Any  # torch.amp.GradScaler: loss scaling in fp16, a pass-through otherwise
    step_pixels: int = 0
    step_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def validate_full(self, state_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
        """Scores of ``state_dict`` (loaded into a copy of the model) on every VAL pixel."""
        tic = time.perf_counter()
        model = copy.deepcopy(self.model)
        model.load_state_dict(state_dict)
        full = dataclasses.replace(self.validation, max_pixels=None, max_tiles=None)
        result = full.evaluate(model, self.config["batch_size"], self.device,
                               precision=self.config["precision"])  # fmt: skip
        return {"mean_f1": result["mean_f1"], "oa": result["oa"], "pixels": int(result["cm"].sum()),
                "seconds": time.perf_counter() - tic}  # fmt: skip


def _check_inputs(source: ImageSource, labels: np.ndarray, split: np.ndarray) -> None:
    if labels.shape != source.shape[1:] or split.shape != source.shape[1:]:
        raise InputError(
            "labels",
            f"labels {labels.shape} and split {split.shape} must match the image grid "
            f"{source.shape[1:]}",
        )
    if not np.issubdtype(labels.dtype, np.integer) or (labels.size and labels.min() < 0):
        raise InputError("labels", f"labels must be non-negative integer codes, got {labels.dtype}")


def _resolve_codes(labels: np.ndarray, class_codes: list[int] | None) -> list[int]:
    found = [int(c) for c in present_codes(labels) if c != 0]
    if class_codes is None:
        if not found:
            raise InputError("labels", "no labelled pixel")
        if len(found) < 2:
            raise InputError(
                "labels",
                f"only one class ({found[0]}) is labelled: nothing to learn "
                "(check the field, the mapping table and the nodata value)",
            )
        return found
    codes = sorted(int(c) for c in class_codes)
    unknown = sorted(set(found) - set(codes))
    if unknown or 0 in codes:
        raise InputError("labels", f"codes {unknown or [0]} are not valid class codes {codes}")
    return codes


def _is_patch_model(model: nn.Module) -> bool:
    """Patch classifiers (``forward_patches``) get their full receptive field as context."""
    return hasattr(model, "forward_patches")


def _aligned_margin(margin: int, downsample: int) -> int:
    """Smallest ``m >= margin`` with ``2 * m`` a multiple of ``downsample``."""
    step = downsample // 2 if downsample % 2 == 0 else downsample
    return -(-margin // step) * step if step > 0 else margin


def prepare_session(
    image: np.ndarray | xr.DataArray,
    labels: np.ndarray,
    split: np.ndarray,
    config: dict[str, Any],
    class_codes: list[int] | None,
    path: Path,
    resume: bool,
    device: torch.device,
) -> Session:
    """Check the inputs and build (or restore, when ``resume``) the training session.

    Raises:
        InputError: On inconsistent inputs, no TRAIN or VAL pixel, or an incompatible checkpoint
            (another model, band count, class codes, or other labels/split).
    """
    source = ImageSource(image)
    labels, split = np.asarray(labels), np.asarray(split)
    _check_inputs(source, labels, split)
    codes = _resolve_codes(labels, class_codes)
    fingerprint = fp.data_fingerprint(labels, split, fp.current_provenance())
    saved = ckpt.read_checkpoint(path) if resume and path.exists() else None
    _seed_all(config["seed"])
    model = build_model(config["model_name"], source.shape[0], len(codes), **config["model_kwargs"])
    if config["crop"] % model.downsample:
        raise InputError("crop", f"{config['crop']} must be a multiple of {model.downsample}")
    if saved is not None:
        _check_compatible(saved, path, config, source.shape[0], codes)
        fp.refuse_other_data(path, saved.get(fp.FINGERPRINT_KEY), fingerprint)
    source.cache_region(np.isin(split, (TRAIN, VAL)), _cache_margin(model, config))
    mean, std = _statistics(saved, source, split)
    model.to(device, memory_format=torch.channels_last).train()  # faster convs on CPU
    lut = code_lookup(codes, int(labels.max()))
    patch = _is_patch_model(model)
    context = _aligned_margin(model.receptive_field // 2 if patch else 0, model.downsample)
    sampler = CropSampler(
        source,
        labels,
        split,
        lut,
        mean,
        std,
        config["crop"],
        context,
        config["class_balanced"],
        seed=config["seed"],
    )
    validation = _validation_set(source, labels, split, codes, mean, std, model, config)
    counts = train_class_counts(labels, split, codes)
    weights = class_weights(counts, config["class_weighting"])
    session = _new_session(model, sampler, validation, weights, codes, config, device)
    session.meta["train_pixels"] = int(counts.sum())
    session.meta[fp.FINGERPRINT_KEY] = fingerprint
    if saved is not None:
        _restore(session, saved)
    return session


def _cache_margin(model: SegmentationModel, config: dict[str, Any]) -> int:
    """Context read around TRAIN/VAL pixels: crops and VAL tiles with their margins."""
    half = model.receptive_field // 2 if _is_patch_model(model) else 0
    return max(config["crop"], config.get("val_tile", 0)) + max(half, model.receptive_field // 2)


def _statistics(
    saved: dict[str, Any] | None, source: ImageSource, split: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Band mean/std of the checkpoint when resuming, else from the TRAIN pixels."""
    if saved is None:
        return band_statistics(source, split)
    return np.asarray(saved["band_mean"], np.float32), np.asarray(saved["band_std"], np.float32)


def _validation_set(
    source: ImageSource,
    labels: np.ndarray,
    split: np.ndarray,
    codes: list[int],
    mean: np.ndarray,
    std: np.ndarray,
    model: SegmentationModel,
    config: dict[str, Any],
) -> ValidationSet:
    ds, half = model.downsample, model.receptive_field // 2
    tile = -(-config["val_tile"] // ds) * ds
    margin = _aligned_margin(half if _is_patch_model(model) else min(half, tile // 4), ds)
    val = ValidationSet(
        source,
        labels,
        split,
        codes,
        mean,
        std,
        tile,
        margin,
        config["val_max_tiles"],
        config["seed"],
        config.get("val_max_pixels"),
    )
    if not val.origins:
        raise InputError("split", "no labelled VAL pixel: cannot select the model")
    return val


def _new_session(
    model: nn.Module,
    sampler: CropSampler,
    validation: ValidationSet,
    weights: np.ndarray,
    codes: list[int],
    config: dict[str, Any],
    device: torch.device,
) -> Session:
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"], weight_decay=0.0)
    meta = {
        "model_name": config["model_name"],
        "model_kwargs": config["model_kwargs"],
        "in_channels": sampler.source.shape[0],
        "n_classes": len(codes),
        "class_codes": codes,
        "band_mean": sampler.band_mean.tolist(),
        "band_std": sampler.band_std.tolist(),
        "class_weights": [float(w) for w in weights],
        "train_pixels": 0,
        "epoch": 0,
        "step": 0,
        "best_epoch": 0,
        "best_val_mean_f1": float("-inf"),
        "history": [],
    }
    return Session(
        model=model,
        optimizer=optimizer,
        criterion=make_criterion(weights, device),
        sampler=sampler,
        validation=validation,
        rng=np.random.default_rng(config["seed"]),
        meta=meta,
        config=config,
        device=device,
        scaler=grad_scaler(device, enabled=config["precision"] == "fp16"),
        extra={"best_state_dict": ckpt.cpu_state_dict(model)},
    )


def grad_scaler(device: torch.device, enabled: bool) -> Any:
    """The loss scaler of fp16 training (disabled: ``scale``/``step`` pass through).

    ``torch.amp.GradScaler`` from torch 2.3; before, ``torch.cuda.amp``'s (fp16 training is
    refused off CUDA by every entry point, so a CPU one is never needed there).
    """
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler(device.type, enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)


def _seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def _check_compatible(
    saved: dict[str, Any], path: Path, config: dict[str, Any], bands: int, codes: list[int]
) -> None:
    expected = {
        "model_name": config["model_name"],
        "model_kwargs": config["model_kwargs"],
        "in_channels": bands,
        "class_codes": codes,
    }
    for key, value in expected.items():
        if _plain(saved[key]) != _plain(value):
            raise InputError(path, f"cannot resume: {key} is {saved[key]!r}, asked {value!r}")


def _plain(value: Any) -> Any:
    """``value`` with tuples as lists (``(8, 16)`` and ``[8, 16]`` compare equal)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _restore(session: Session, saved: dict[str, Any]) -> None:
    session.model.load_state_dict(saved["state_dict"])
    session.optimizer.load_state_dict(saved["optimizer"])
    if saved.get("scaler") and session.scaler.is_enabled():  # fp16 before and now
        session.scaler.load_state_dict(saved["scaler"])
    ckpt.restore_rng(saved["rng"], session.rng)
    session.extra["best_state_dict"] = saved["best_state_dict"]
    for key in ("epoch", "best_epoch", "best_val_mean_f1", "history"):
        session.meta[key] = saved[key]
    session.meta["step"] = int(saved.get("step", 0))
    if "final_validation" in saved:
        session.meta["final_validation"] = saved["final_validation"]
