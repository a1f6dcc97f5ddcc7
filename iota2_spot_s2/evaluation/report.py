"""Write an evaluation report: JSON (scores + matrix), OTB-layout CSV, PNG heatmap.

The ``title`` is mandatory and must say what was evaluated — real or simulated data, which map,
which split (e.g. ``"real data, SPOT6 patch CNN, test split"``): it is stored in the JSON and
drawn on the PNG so that a figure can never be mistaken for another.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from iota2_spot_s2.evaluation.metrics import Scores
from iota2_spot_s2.evaluation.otb_csv import write_otb_confusion_csv
from iota2_spot_s2.evaluation.plot import plot_confusion
from iota2_spot_s2.io import atomic_output


class _HasNames(Protocol):
    codes: Sequence[int]
    names: Sequence[str]


Names = Sequence[str] | Mapping[int, str] | _HasNames


def class_names(codes: Sequence[int], names: Names | None = None) -> list[str]:
    """Display names for ``codes``.

    Args:
        codes: Class codes.
        names: A list aligned with ``codes``, a ``{code: name}`` mapping, or a nomenclature
            (any object with ``codes`` and ``names``). Missing names fall back to the code.

    """
    if names is None:
        return [str(c) for c in codes]
    if hasattr(names, "codes") and hasattr(names, "names"):
        names = dict(zip((int(c) for c in names.codes), names.names, strict=True))
    if isinstance(names, Mapping):
        return [str(names.get(int(c), c)) for c in codes]
    names = list(names)
    if len(names) != len(codes):
        raise ValueError(f"{len(names)} names for {len(codes)} codes")
    return [str(n) for n in names]


def _file_name(prefix: str, stem: str) -> str:
    prefix = prefix.rstrip("_-. ")
    return f"{prefix}_{stem}" if prefix else stem


def write_report(
    scores: Scores,
    cm: np.ndarray,
    codes: Sequence[int],
    out_dir: str | os.PathLike[str],
    *,
    title: str,
    names: Names | None = None,
    nomenclature: _HasNames | None = None,
    prefix: str = "",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``<prefix>_scores.json``, ``<prefix>_confusion.csv`` and ``<prefix>_confusion.png``.

    Args:
        scores: From :func:`iota2_spot_s2.evaluation.scores` on ``cm``.
        cm: Square confusion matrix, rows = reference, in ``codes`` order.
        codes: Class codes.
        out_dir: Output folder (created if needed).
        title: What was evaluated: real or simulated data, map, split. Required.
        names: Class names (list aligned with codes, mapping, or nomenclature).
        nomenclature: Alternative to ``names`` (object with ``codes`` and ``names``).
        prefix: Prepended to the file names (joined with ``_``).
        extra: More JSON-serialisable entries for the JSON file (e.g. unmapped pixel counts).

    Returns:
        ``{"json": path, "csv": path, "png": path}``.

    """
    if not title.strip():
        raise ValueError("a report needs a title saying real/simulated data and which split")
    cm = np.asarray(cm, dtype=np.int64)
    if tuple(int(c) for c in codes) != scores.codes:
        raise ValueError(f"codes {list(codes)} differ from the scores' {list(scores.codes)}")
    labels = class_names(codes, names if names is not None else nomenclature)
    out = Path(out_dir)
    paths = {
        "json": out / _file_name(prefix, "scores.json"),
        "csv": out / _file_name(prefix, "confusion.csv"),
        "png": out / _file_name(prefix, "confusion.png"),
    }
    payload: dict[str, Any] = {
        "title": title,
        "codes": [int(c) for c in codes],
        "names": labels,
        "scores": scores.to_dict(),
        "confusion_matrix": cm.tolist(),
        "matrix_layout": "rows = reference, columns = produced, in codes order",
    }
    if extra:
        payload.update(extra)
    with atomic_output(paths["json"]) as tmp:
        tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    write_otb_confusion_csv(cm, codes, paths["csv"])
    subtitle = (
        f"OA {scores.overall_accuracy:.3f}   kappa {scores.kappa:.3f}   "
        f"mean F1 {scores.mean_f1:.3f}   n = {scores.n_pixels}"
    )
    plot_confusion(cm, labels, paths["png"], title=title, subtitle=subtitle)
    return paths


def read_report(path: str | os.PathLike[str]) -> tuple[Scores, np.ndarray, dict[str, Any]]:
    """Read a JSON report back: ``(scores, matrix, whole payload)``."""
    payload = json.loads(Path(path).read_text(encoding="utf-8"))
    matrix = np.asarray(payload["confusion_matrix"], dtype=np.int64)
    return Scores.from_dict(payload["scores"]), matrix, payload
