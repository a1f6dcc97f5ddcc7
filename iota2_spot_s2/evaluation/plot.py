"""Confusion-matrix heatmap (PNG), drawn with matplotlib's Agg canvas (no display, no pyplot)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from iota2_spot_s2.io import atomic_output


def row_percentages(cm: np.ndarray) -> np.ndarray:
    """Each row of ``cm`` as percentages of its sum (rows summing to 0 stay 0)."""
    counts = np.asarray(cm, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    out = np.zeros_like(counts)
    np.divide(100.0 * counts, totals, out=out, where=totals > 0)
    return out


def plot_confusion(
    cm: np.ndarray,
    labels: Sequence[str],
    path: str | os.PathLike[str],
    *,
    title: str,
    subtitle: str = "",
) -> str:
    """Write a PNG heatmap of ``cm`` (rows = reference) as row-normalised percentages.

    Each cell shows the percentage of the reference row and, below it, the pixel count.

    Returns:
        The path written (atomically).

    """
    cm = np.asarray(cm, dtype=np.int64)
    k = cm.shape[0]
    pct = row_percentages(cm)
    side = min(24.0, max(5.0, 0.75 * k + 3.0))
    fig = Figure(figsize=(side + 1.5, side), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(pct, cmap="Blues", vmin=0.0, vmax=100.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="% of reference pixels (row)")
    ax.set_xticks(range(k), labels=list(labels), rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(k), labels=list(labels))
    ax.set_xlabel("Produced")
    ax.set_ylabel("Reference")
    title_size = min(16.0, 8.0 + side / 3.0)
    ax.set_title(f"{title}\n{subtitle}" if subtitle else title, fontsize=title_size)
    cell_points = 72.0 * (side - 2.5) / k
    fontsize = max(4.0, min(9.0, cell_points / 5.5))
    for i in range(k):
        for j in range(k):
            if cm[i, j] == 0 and i != j:
                continue
            color = "white" if pct[i, j] > 55.0 else "black"
            ax.text(
                j,
                i,
                f"{pct[i, j]:.1f}%\n({cm[i, j]})",
                ha="center",
                va="center",
                fontsize=fontsize,
                color=color,
            )
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
    return os.fspath(path)
