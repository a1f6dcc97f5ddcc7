"""Training checkpoints: one ``torch.save`` dict, written atomically after every epoch.

Keys (see ``docs/CONTRACTS.md``): ``model_name``, ``model_kwargs``, ``in_channels``,
``n_classes``, ``class_codes`` (list of int, logit order), ``band_mean``, ``band_std`` (lists of
float), ``state_dict`` (last weights), ``optimizer``, ``scheduler``, ``epoch`` (last finished
epoch, 1-based), ``best_epoch``, ``best_val_mean_f1``, ``best_state_dict`` (weights of the best
validation mean F1), ``history`` (one dict per epoch), ``config`` (the training arguments),
``class_weights``, ``rng`` (numpy sampler, torch and ``random`` states), ``format`` and
``data_fingerprint`` (hash of the labels and split trained on, their pixel counts and
provenance: :mod:`~iota2_spot_s2.training.checkpoint_fingerprint`; absent in older files, which
are then never resumed).
Everything is plain Python, lists or tensors, so the file loads with ``weights_only=True``.
"""

from __future__ import annotations

import io
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.io import atomic_output
from iota2_spot_s2.models import build_model

CHECKPOINT_FORMAT = 1
REQUIRED_KEYS = (
    "model_name",
    "model_kwargs",
    "in_channels",
    "n_classes",
    "class_codes",
    "band_mean",
    "band_std",
    "state_dict",
    "best_state_dict",
    "epoch",
    "best_val_mean_f1",
    "history",
    "config",
)


@dataclass
class LoadedModel:
    """A trained model ready for inference.

    Attributes:
        model: The network with its best-validation weights, in eval mode, on CPU.
        class_codes: Nomenclature code of each logit (int64).
        band_mean: Per-band normalisation mean (float32).
        band_std: Per-band normalisation std (float32).
        model_name: Registry name.
        meta: The rest of the checkpoint's description (epoch, best_epoch, history, config...).
    """

    model: nn.Module
    class_codes: np.ndarray
    band_mean: np.ndarray
    band_std: np.ndarray
    model_name: str
    meta: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temp file + rename)."""
    buffer = io.BytesIO()  # serialised first: a full disk is then an OSError, not torch's own
    torch.save(state, buffer)
    with atomic_output(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())
    return Path(path)


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a checkpoint dict (CPU tensors).

    Raises:
        InputError: If the file is missing, unreadable or not one of our checkpoints.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise InputError(path, f"not a readable checkpoint ({type(exc).__name__})") from exc
    if not isinstance(state, dict):
        raise InputError(path, "not a training checkpoint (no dict inside)")
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise InputError(path, f"not a training checkpoint (missing {', '.join(missing)})")
    return state


def load_model(path: str | os.PathLike[str]) -> LoadedModel:
    """Rebuild the registered model with the best-validation weights of a checkpoint.

    Raises:
        InputError: On a bad checkpoint file or weights that do not fit the model.
    """
    state = read_checkpoint(path)
    try:
        model = build_model(
            state["model_name"], state["in_channels"], state["n_classes"], **state["model_kwargs"]
        )
        model.load_state_dict(state["best_state_dict"])
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise InputError(path, f"checkpoint does not fit its model ({exc})") from exc
    model.eval()
    meta = {k: v for k, v in state.items() if k not in _HEAVY_KEYS}
    return LoadedModel(
        model=model,
        class_codes=np.asarray(state["class_codes"], dtype=np.int64),
        band_mean=np.asarray(state["band_mean"], dtype=np.float32),
        band_std=np.asarray(state["band_std"], dtype=np.float32),
        model_name=str(state["model_name"]),
        meta=meta,
    )


_HEAVY_KEYS = ("state_dict", "best_state_dict", "optimizer", "scheduler", "rng", "scaler")


def rng_state(sampler_rng: np.random.Generator) -> dict[str, Any]:
    """Snapshot of the numpy sampler, torch and ``random`` generators."""
    return {
        "numpy": sampler_rng.bit_generator.state,
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
    }


def restore_rng(state: dict[str, Any], sampler_rng: np.random.Generator) -> None:
    """Restore the generators saved by :func:`rng_state`."""
    sampler_rng.bit_generator.state = state["numpy"]
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])


def cpu_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """Detached CPU copy of a module's state dict."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
