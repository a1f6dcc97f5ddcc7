"""Figures of the nomenclature report (matplotlib ``Figure`` objects, no pyplot state kept).

- :func:`curve_figure`: OA, kappa and mean F1 against the number of classes along the merge
  sequence, with each hierarchy level drawn as labelled points for comparison;
- :func:`dendrogram_figure`: :func:`scipy.cluster.hierarchy.dendrogram` of the merge order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

METRICS = (("overall_accuracy", "OA", "tab:blue"), ("kappa", "kappa", "tab:orange"),
           ("mean_f1", "mean F1", "tab:green"))  # fmt: skip
MARKERS = "sD^vP*X"


def curve_figure(steps: Sequence[Any], hierarchies: Sequence[Any] = ()) -> Figure:
    """Scores against the number of classes (fewer classes to the right), down to 2 classes.

    The one-class level is not drawn: its OA and mean F1 are 1 and its kappa 0 by definition.

    Args:
        steps: :class:`~.nomenclature_tree.MergeStep` items.
        hierarchies: :class:`~.nomenclature_report.HierarchyResult` items, drawn as points.

    """
    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.add_subplot()
    steps = [s for s in steps if s.n_classes > 1] or list(steps[:1])
    n = [s.n_classes for s in steps]
    for key, label, color in METRICS:
        ax.plot(n, [getattr(s.scores, key) for s in steps], "o-", color=color, label=label,
                markersize=4)  # fmt: skip
    ks = list(n)
    for h, marker in zip(hierarchies, MARKERS, strict=False):
        for lv in h.levels:
            k = int((lv.matrix.sum(axis=1) > 0).sum())
            ks.append(k)
            for key, _, color in METRICS:
                ax.plot(k, getattr(lv.scores, key), marker, color=color, markersize=8,
                        markerfacecolor="none")  # fmt: skip
            ax.annotate(f"{Path(h.path).stem}: {lv.level}", (k, lv.scores.mean_f1),
                        textcoords="offset points", xytext=(4, -10), fontsize=7)  # fmt: skip
    ax.set_xlim(max(ks) + 0.5, min(ks) - 0.5)
    ax.set_xticks(sorted(set(ks)))
    ax.set_ylim(min(0.0, ax.get_ylim()[0]), 1.02)
    ax.set_xlabel("number of classes (merged along the sequence →)")
    ax.set_ylabel("score")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8, title="line: merges; hollow: hierarchy levels",
              title_fontsize=7)  # fmt: skip
    return fig


def dendrogram_figure(linkage: np.ndarray, labels: Sequence[str]) -> Figure:
    """The merge order as a dendrogram (leaves on the left, distance ``1 - s`` across)."""
    from scipy.cluster.hierarchy import dendrogram

    fig = Figure(figsize=(7.5, 1.2 + 0.35 * len(labels)))
    ax = fig.add_subplot()
    dendrogram(linkage, labels=list(labels), orientation="right", ax=ax,
               color_threshold=0.0, above_threshold_color="tab:blue")  # fmt: skip
    ax.set_xlabel("merge distance 1 - s (0: the pair exchanges all of the smaller class)")
    ax.set_xlim(left=-0.02)
    ax.grid(axis="x", alpha=0.3)
    return fig
