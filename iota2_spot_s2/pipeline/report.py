"""The comparison table (Markdown) and per-class F1 bar chart of a chain run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from iota2_spot_s2.io import atomic_output  # noqa: E402
from iota2_spot_s2.nomenclature import Nomenclature  # noqa: E402

if TYPE_CHECKING:
    from iota2_spot_s2.pipeline.chain import ModelRun


def _class_name(code: int, nomenclature: Nomenclature | None) -> str:
    return nomenclature.name_of(code) if nomenclature else str(code)


def comparison_markdown(
    runs: list[ModelRun], *, title: str, nomenclature: Nomenclature | None = None
) -> str:
    """One row per (tile, model): OA, kappa, mean F1, training time, mapping speed, per-class F1."""
    codes = sorted({c for r in runs for c in r.per_class_f1})
    head = ["tile", "model", "OA", "kappa", "mean F1", "train s", "best epoch", "map Mpx/s"]
    head += [f"F1 {_class_name(c, nomenclature)}" for c in codes]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        cells = [
            r.tile,
            r.model,
            f"{r.overall_accuracy:.3f}",
            f"{r.kappa:.3f}",
            f"{r.mean_f1:.3f}",
            f"{r.train_seconds:.0f}",
            str(r.best_epoch),
            f"{r.map_pixels_per_second / 1e6:.2f}",
        ]
        cells += [f"{r.per_class_f1.get(c, float('nan')):.2f}" for c in codes]
        lines.append("| " + " | ".join(cells) + " |")
    test_pixels = sorted({r.test_pixels for r in runs})
    lines += ["", f"Test pixels per tile: {', '.join(str(n) for n in test_pixels)}."]
    return "\n".join(lines)


def plot_comparison(
    runs: list[ModelRun], path: Path, *, title: str, nomenclature: Nomenclature | None = None
) -> Path:
    """Grouped bars of per-class F1, one group per class, one bar per (tile, model)."""
    codes = sorted({c for r in runs for c in r.per_class_f1})
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(codes) + 2), 4.5))
    width = 0.8 / max(1, len(runs))
    x = np.arange(len(codes))
    for i, r in enumerate(runs):
        values = [r.per_class_f1.get(c, np.nan) for c in codes]
        ax.bar(x + i * width, values, width, label=f"{r.model} ({r.tile}) mean F1 {r.mean_f1:.2f}")
    ax.set_xticks(x + width * (len(runs) - 1) / 2)
    ax.set_xticklabels([_class_name(c, nomenclature) for c in codes], rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("F1 (test split)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
