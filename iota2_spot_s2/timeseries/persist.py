"""Saving and loading :class:`~iota2_spot_s2.timeseries.classifiers.S2Classifier` files.

- Random forest: one ``joblib`` file (``.joblib``): a dict with the fitted scikit-learn
  estimator and the metadata below. joblib files are pickles: load only files you trust.
- TempCNN: one ``torch.save`` file (``.pt``): the metadata, ``model_config`` (constructor
  arguments) and ``state_dict``; loaded with ``weights_only=True`` (no code execution).

Metadata (both): ``format``, ``version``, ``kind``, ``class_codes``, ``spec`` (bands, gap-filling
dates, indices, NDWI variant, step), ``gapfill_method``, ``channel_mean``/``channel_std``
(TempCNN normalisation, TRAIN statistics), ``val_scores``, ``history``, ``config`` (with
``config["data_fingerprint"]``: the hash, pixel counts and provenance of the labels and split
trained on, see :mod:`iota2_spot_s2.training.checkpoint_fingerprint`; absent in older files).
"""

from __future__ import annotations

from dataclasses import asdict
from os import PathLike
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import torch

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.io import atomic_output
from iota2_spot_s2.models.tempcnn import TempCNN
from iota2_spot_s2.timeseries.classifiers import S2Classifier
from iota2_spot_s2.timeseries.samples import FeatureSpec

FORMAT = "iota2_spot_s2.s2_classifier"
VERSION = 1


def _metadata(clf: S2Classifier) -> dict[str, Any]:
    def as_list(a: np.ndarray | None) -> list[float] | None:
        return None if a is None else [float(v) for v in a]

    return {
        "format": FORMAT,
        "version": VERSION,
        "kind": clf.kind,
        "class_codes": list(clf.class_codes),
        "spec": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(clf.spec).items()},
        "gapfill_method": clf.gapfill_method,
        "channel_mean": as_list(clf.channel_mean),
        "channel_std": as_list(clf.channel_std),
        "val_scores": clf.val_scores,
        "history": clf.history,
        "config": clf.config,
    }


def save_classifier(clf: S2Classifier, path: str | PathLike[str]) -> Path:
    """Write ``clf`` atomically (joblib for ``rf``, ``torch.save`` for ``tempcnn``)."""
    data = _metadata(clf)
    with atomic_output(path) as tmp:
        if clf.kind == "rf":
            joblib.dump({**data, "estimator": clf.estimator}, tmp)
        else:
            model: TempCNN = clf.estimator
            state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            torch.save({**data, "model_config": model.config(), "state_dict": state}, tmp)
    return Path(path)


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(path, "does not exist")
    with path.open("rb") as f:
        is_zip = f.read(4) == b"PK\x03\x04"
    try:
        if is_zip:
            data = torch.load(path, map_location="cpu", weights_only=True)
        else:
            data = joblib.load(path)
    except Exception as exc:
        raise InputError(path, f"not a readable classifier file ({type(exc).__name__})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(path, "not an iota2_spot_s2 Sentinel-2 classifier file")
    if data.get("version", 0) > VERSION:
        raise InputError(path, f"file version {data['version']} is newer than {VERSION}")
    return data


def load_classifier(path: str | PathLike[str]) -> S2Classifier:
    """Read a file written by :func:`save_classifier`.

    Raises:
        InputError: Missing, unreadable or foreign file.
    """
    data = _read(Path(path))
    raw = data["spec"]
    spec = FeatureSpec(
        bands=tuple(raw["bands"]),
        dates=tuple(raw["dates"]),
        indices=tuple(raw["indices"]),
        ndwi=str(raw["ndwi"]),
        step_days=int(raw["step_days"]),
    )
    if data["kind"] == "rf":
        estimator = data["estimator"]
    else:
        estimator = TempCNN(**data["model_config"])
        estimator.load_state_dict(data["state_dict"])
        estimator.eval()

    def as_array(v: list[float] | None) -> np.ndarray | None:
        return None if v is None else np.asarray(v, dtype=np.float32)

    return S2Classifier(
        kind=data["kind"],
        estimator=estimator,
        class_codes=tuple(int(c) for c in data["class_codes"]),
        spec=spec,
        channel_mean=as_array(data["channel_mean"]),
        channel_std=as_array(data["channel_std"]),
        val_scores=data["val_scores"],
        history=data["history"],
        config=data["config"],
        gapfill_method=data["gapfill_method"],
    )
