"""Learning curves: validation mean F1 and training loss against seconds and steps.

Written next to the checkpoint after every :func:`~iota2_spot_s2.training.train` call:
``<checkpoint stem>_curve.json`` (one record per round: ``epoch`` (round), ``step``,
``elapsed`` seconds, ``loss``, ``lr``, ``val_mean_f1``, ``val_oa``, ``val_seconds``, plus the
model, the budget and the final full validation) and ``<checkpoint stem>_curve.png`` (mean F1
and loss against time and against steps), so a user sees time-to-accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from iota2_spot_s2.io import atomic_output

CURVE_KEYS = ("epoch", "step", "elapsed", "loss", "lr", "val_mean_f1", "val_oa", "val_seconds")


def curve_paths(checkpoint: Path) -> tuple[Path, Path]:
    """The JSON and PNG curve files of a checkpoint."""
    stem = checkpoint.with_suffix("").name
    return checkpoint.parent / f"{stem}_curve.json", checkpoint.parent / f"{stem}_curve.png"


def write_learning_curve(checkpoint: Path, meta: dict[str, Any], config: dict[str, Any]) -> Path:
    """Write the curve JSON and PNG of a training run; returns the JSON path."""
    json_path, png_path = curve_paths(checkpoint)
    records = [{k: r.get(k) for k in CURVE_KEYS} for r in meta["history"]]
    payload = {
        "model": meta["model_name"],
        "budget": {k: config.get(k) for k in ("max_minutes", "max_steps", "epochs")},
        "batch_size": config.get("batch_size"),
        "crop": config.get("crop"),
        "schedule": config.get("schedule"),
        "best_epoch": meta["best_epoch"],
        "best_val_mean_f1": meta["best_val_mean_f1"],
        "final_validation": meta.get("final_validation"),
        "train_pixels_per_second": meta.get("train_pixels_per_second"),
        "rounds": records,
    }
    with atomic_output(json_path) as tmp:
        Path(tmp).write_text(json.dumps(payload, indent=2, default=float))
    _plot(records, png_path, str(meta["model_name"]))
    return json_path


def _plot(records: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, label in ((axes[0], "elapsed", "training time (s)"), (axes[1], "step", "steps")):
        xs = [r[key] or 0 for r in records]
        ax.plot(xs, [r["val_mean_f1"] for r in records], "o-", color="tab:blue", ms=3)
        ax.set_xlabel(label)
        ax.set_ylabel("validation mean F1", color="tab:blue")
        ax.set_ylim(0, 1)
        twin = ax.twinx()
        twin.plot(xs, [r["loss"] for r in records], "-", color="tab:red", alpha=0.7)
        twin.set_ylabel("training loss", color="tab:red")
    fig.suptitle(f"learning curve: {title}")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
