"""Fingerprint of the data a model was trained on, and what a rerun does when it changed.

Test labels must never reach training. A checkpoint (the ``.pt`` of the SPOT networks and of
the early-fusion net, and a Sentinel-2 classifier file) records under ``data_fingerprint``:

- ``sha256``: the hash of the label array and the split array actually used: the labels as
  little-endian ``uint16`` (``uint32`` when a code exceeds 65535), the split as ``uint8`` and
  their shape; it is the identity of the training data;
- ``shape``, ``pixels`` (``labelled``, ``train``, ``val``, ``test`` counts): the split record;
- ``provenance``: what a person reads to see where the arrays came from (reference path, field,
  layer, mapping table, ignored label, block size, split seed, a user's split raster or
  validation reference, iota2's held-out polygons). Informative only: two provenances giving the
  same arrays are the same data.

Resume rules (the hash alone decides):

- ``fuse-classify train`` and :func:`~iota2_spot_s2.training.train` (a user naming the
  checkpoint): a checkpoint of other labels/split, or without a fingerprint (older format), is
  refused with one :class:`~iota2_spot_s2.errors.InputError` and left untouched
  (:func:`refuse_other_data`);
- ``fuse-classify run`` and the iota2 step (checkpoints the chain owns): such a checkpoint is
  moved aside to ``<name>.stale-<short hash><suffix>`` with one log line saying why, and the
  model is trained from scratch (:func:`retire_if_stale`, :func:`retire`);
- same hash: resume (the weights only ever saw TRAIN pixels of this split).

The provenance reaches :func:`~iota2_spot_s2.training.session.prepare_session` through
:func:`provenance_of_training_data`, a context manager around the ``train`` call.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import numpy as np

from iota2_spot_s2.errors import InputError

LOG = logging.getLogger("iota2_spot_s2.training")
FINGERPRINT_KEY = "data_fingerprint"
FINGERPRINT_FORMAT = 1
_SUBSETS = {"train": 1, "val": 2, "test": 3}
_PROVENANCE: ContextVar[dict[str, Any] | None] = ContextVar("training_provenance", default=None)


def labels_split_digest(labels: np.ndarray, split: np.ndarray) -> str:
    """sha256 of the labels (``<u2``, or ``<u4`` above 65535), the split (``u1``) and the shape.

    Raises:
        ValueError: If the arrays differ in shape.
    """
    labels, split = np.asarray(labels), np.asarray(split)
    if labels.shape != split.shape:
        raise ValueError(f"labels {labels.shape} and split {split.shape} differ in shape")
    wide = labels.size > 0 and int(labels.max()) > np.iinfo(np.uint16).max
    dtype = np.dtype("<u4" if wide else "<u2")
    h = hashlib.sha256(f"labels {dtype.str} split |u1 shape {list(labels.shape)}\n".encode())
    for array, kind in ((labels, dtype), (split, np.dtype(np.uint8))):
        for rows in _strips(array):  # row strips in order: the bytes of the whole array
            flat = np.ascontiguousarray(array[rows], dtype=kind).reshape(-1)
            h.update(flat.view(np.uint8))  # no copy when already of that type
    return h.hexdigest()


def _strips(array: np.ndarray) -> list[slice]:
    """Row slices of about 4 Mpx (one slice for 0-d/1-d arrays)."""
    from iota2_spot_s2.training.sampling import row_strips

    strips = list(row_strips(array.shape)) if array.ndim >= 2 else []
    return strips or [slice(None)]


def data_fingerprint(
    labels: np.ndarray, split: np.ndarray, provenance: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The ``data_fingerprint`` record of a checkpoint (module docstring); plain Python only."""
    labels, split = np.asarray(labels), np.asarray(split)
    pixels = dict.fromkeys(["labelled", *_SUBSETS], 0)
    for rows in _strips(labels):
        subsets = split[rows][labels[rows] > 0]  # the split of labelled pixels
        pixels["labelled"] += int(subsets.size)
        for name, code in _SUBSETS.items():
            pixels[name] += int(np.count_nonzero(subsets == code))
    return {
        "format": FINGERPRINT_FORMAT,
        "sha256": labels_split_digest(labels, split),
        "shape": [int(n) for n in labels.shape],
        "pixels": pixels,
        "provenance": _plain(dict(provenance or {})),
    }


def has_split_record(fingerprint: Mapping[str, Any] | None) -> bool:
    """True when ``fingerprint`` says which labels/split trained the model."""
    return bool(fingerprint) and bool(fingerprint.get("sha256")) and "pixels" in fingerprint


def same_data(saved: Mapping[str, Any] | None, current: Mapping[str, Any]) -> bool:
    """True when a checkpoint's fingerprint names the same labels and split as ``current``."""
    return has_split_record(saved) and saved is not None and saved["sha256"] == current["sha256"]


def difference(saved: Mapping[str, Any] | None, current: Mapping[str, Any]) -> str:
    """A short human account of what changed between two fingerprints."""
    if not has_split_record(saved):
        return "it has no record of them: written by an older version"
    assert saved is not None
    old, new = saved.get("provenance") or {}, current.get("provenance") or {}
    keys = sorted({*old, *new}) if old and new else []  # an unrecorded side tells nothing
    changed = [f"{k} {old.get(k)} -> {new.get(k)}" for k in keys if old.get(k) != new.get(k)]
    if not changed:
        old_px, new_px = saved.get("pixels") or {}, current.get("pixels") or {}
        changed = [f"{k} pixels {old_px.get(k)} -> {new_px.get(k)}" for k in new_px
                   if old_px.get(k) != new_px.get(k)]  # fmt: skip
    if not changed:
        return f"labels/split sha256 {saved['sha256'][:12]} -> {current['sha256'][:12]}"
    return ", ".join(changed[:4]) + (", ..." if len(changed) > 4 else "")


def refuse_other_data(
    path: str | os.PathLike[str], saved: Mapping[str, Any] | None, current: Mapping[str, Any]
) -> None:
    """The ``train`` rule: raise unless the checkpoint at ``path`` saw exactly this data.

    Raises:
        InputError: Naming ``path``, when ``saved`` is missing or differs from ``current``.
    """
    if not same_data(saved, current):
        raise InputError(
            path,
            f"was trained on other labels/split ({difference(saved, current)}): "
            "delete it or choose another --out",
        )


def stored_fingerprint(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``data_fingerprint`` of a training checkpoint (``None`` in older files).

    Raises:
        InputError: If the file is not a readable training checkpoint.
    """
    from iota2_spot_s2.training.checkpoint import read_checkpoint

    value = read_checkpoint(path).get(FINGERPRINT_KEY)
    return dict(value) if isinstance(value, dict) else None


def stale_path(path: Path, saved: Mapping[str, Any] | None) -> Path:
    """``<name>.stale-<short hash><suffix>``: the old fingerprint's hash, else the file's."""
    if has_split_record(saved):
        assert saved is not None
        short = str(saved["sha256"])[:8]
    else:
        with path.open("rb") as f:
            short = hashlib.file_digest(f, "sha256").hexdigest()[:8]
    return path.with_name(f"{path.stem}.stale-{short}{path.suffix}")


def retire(path: Path, saved: Mapping[str, Any] | None, current: Mapping[str, Any]) -> Path:
    """Move a checkpoint of other data aside (one log line saying why); returns the new path."""
    target = stale_path(path, saved)
    os.replace(path, target)
    LOG.warning("%s was trained on other labels/split (%s): moved aside to %s, training from "
                "scratch", path, difference(saved, current), target.name)  # fmt: skip
    return target


def retire_if_stale(path: str | os.PathLike[str], current: Mapping[str, Any]) -> Path | None:
    """The ``run`` / iota2 rule for a training checkpoint: keep it if it saw ``current``.

    Returns:
        Where an existing checkpoint of other (or unrecorded) data was moved, else ``None``.

    Raises:
        InputError: If ``path`` exists but is not a readable training checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        return None
    saved = stored_fingerprint(path)
    return None if same_data(saved, current) else retire(path, saved, current)


@contextmanager
def provenance_of_training_data(provenance: Mapping[str, Any] | None) -> Iterator[None]:
    """Record ``provenance`` in the fingerprint of the checkpoints trained inside the block."""
    token = _PROVENANCE.set(dict(provenance or {}))
    try:
        yield
    finally:
        _PROVENANCE.reset(token)


@contextmanager
def retraining_on_other_data(
    path: str | os.PathLike[str],
    labels: np.ndarray,
    split: np.ndarray,
    provenance: Mapping[str, Any] | None,
) -> Iterator[dict[str, Any]]:
    """The ``run`` / iota2 rule around a ``train`` call on a checkpoint the chain owns.

    Moves ``path`` aside unless it was trained on ``labels`` and ``split``
    (:func:`retire_if_stale`), then records ``provenance`` in what the block trains. Yields the
    fingerprint.
    """
    current = data_fingerprint(labels, split, provenance)
    retire_if_stale(path, current)
    with provenance_of_training_data(provenance):
        yield current


def current_provenance() -> dict[str, Any]:
    """The provenance set by the innermost :func:`provenance_of_training_data` (else empty)."""
    return dict(_PROVENANCE.get() or {})


def _plain(value: Any) -> Any:
    """JSON/``weights_only``-safe copy: paths as text, numpy scalars as Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
