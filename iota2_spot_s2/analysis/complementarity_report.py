"""The complementarity report: ``complementarity.{json,md,html}`` and the ranked console table.

Figures (embedded in the HTML, PNG files beside the Markdown): ranked F1 differences with their
intervals, per-class F1 of every map, F1 by stratum (object size, distance to a boundary,
cloud-free dates) and the row-normalised confusion matrices.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from iota2_spot_s2.analysis.pages import Page, write_page
from iota2_spot_s2.evaluation.plot import row_percentages

CHOICE_NAMES = {0: "none", 1: "both", 2: "first source", 3: "second source", 4: "several"}


def ranked_rows(result: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of the ranked table (largest certain gain first)."""
    first, second = result["primary"]["single"]
    header = ["class", "verdict", f"F1 {first}", f"F1 {second}", "Δ F1 (CI)", "p Holm",
              f"F1 {result['primary']['fused']}", "Δ fused − best (CI)", "p Holm",
              *(f"Shapley {s}" for s in result["sources"])]  # fmt: skip
    rows = []
    for e in result["classes"]:
        pair, fused = e["single_vs_single"], e["fused_vs_best"]
        shapley = e["shapley"] or {}
        rows.append([
            class_label(e["code"], e["name"]), e["verdict"], e["maps"][first]["f1"],
            e["maps"][second]["f1"], _delta(pair), _p(pair["p_holm"]),
            e["maps"][result["primary"]["fused"]]["f1"], _delta(fused), _p(fused["p_holm"]),
            *(shapley.get(s, math.nan) for s in result["sources"]),
        ])  # fmt: skip
    return header, rows


def console_table(result: dict[str, Any], data_kind: str) -> str:
    """The ranked table as plain text for the terminal."""
    header, rows = ranked_rows(result)
    cells = [header] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [f"Class complementarity ({data_kind.upper()} data, test pixels)", result["rule"]]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def write_complementarity(
    result: dict[str, Any], out_dir: Path, *, data_kind: str, title: str
) -> dict[str, Path]:
    """Write the three report files; returns their paths (``json``, ``md``, ``html``)."""
    page = Page(f"Class complementarity — {title}", data_kind)
    opts = result["options"]
    page.paragraph(
        f"Scored pixels: {sum(e['support'] for e in result['classes'])} labelled test pixels in "
        f"{result['blocks']} blocks of {opts['block_px']} px; {opts['n_boot']} paired block "
        f"bootstrap resamples (seed {opts['seed']}); intervals at {opts['level']:.0%}."
    )
    page.heading2("Verdict rule")
    page.paragraph(result["rule"])
    page.paragraph(
        "McNemar per class: the pixels where the reference or either map says the class; "
        "exact two-sided binomial test on the discordant pixels. Shapley values: each sensor's "
        "share of the class F1 gained over chance level (F1 of a random map drawn with the "
        "class priors = the class prior), averaged over both orders of adding the sensors; "
        "the fused map stands for the two-sensor coalition. Unmapped pixels count as errors."
    )
    page.heading2("Classes ranked by certain gain")
    page.table(*ranked_rows(result))
    page.figure("ranked", _ranked_figure(result), "F1 differences with their intervals")
    page.heading2("Per-class scores of every map")
    page.table(*_per_map_rows(result))
    page.figure("per_class", _per_class_figure(result), "Per-class F1 of every map")
    _choice_section(page, result)
    page.heading2("F1 by stratum")
    for kind, data in result["strata"].items():
        page.figure(f"strata_{kind}", _strata_figure(result, kind, data),
                    f"F1 by {kind.replace('_', ' ')}")  # fmt: skip
    page.heading2("Confusion matrices (rows: reference, % of the row)")
    page.figure("confusion", _confusion_figure(result), "Row-normalised confusion matrices")
    return write_page(page, result, out_dir, "complementarity")


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _delta(test: dict[str, Any]) -> str:
    lo, hi = test["ci"]
    return f"{test['delta_f1']:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def _p(value: float) -> str:
    return f"{value:.2g}"


def _per_map_rows(result: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    names = list(result["overall"])
    header = ["class", "support", *(f"{n} F1 / PA / UA" for n in names)]
    rows = []
    for e in result["classes"]:
        cells = [f"{m['f1']:.3f} / {m['recall']:.3f} / {m['precision']:.3f}"
                 for m in (e["maps"][n] for n in names)]  # fmt: skip
        rows.append([class_label(e["code"], e["name"]), e["support"], *cells])
    rows.append(["mean F1 (OA)", "", *(f"{result['overall'][n]['mean_f1']:.3f} "
                                       f"({result['overall'][n]['overall_accuracy']:.3f})"
                                       for n in names)])  # fmt: skip
    return header, rows


def _choice_section(page: Page, result: dict[str, Any]) -> None:
    for name, per_class in result["choice"].items():
        page.heading2(f"Who decided in {name} (share of the class's pixels, accuracy there)")
        values = sorted({int(v) for c in per_class.values() for v in c})
        rows = []
        for e in result["classes"]:
            shares = per_class.get(e["code"], {})
            rows.append([class_label(e["code"], e["name"]), *(
                f"{shares[v]['share']:.2f} ({shares[v]['accuracy']:.2f})" if v in shares else "—"
                for v in values)])  # fmt: skip
        page.table(["class", *(CHOICE_NAMES.get(v, str(v)) for v in values)], rows)


def class_label(code: int, name: str) -> str:
    """``"<code> <name>"``, or the code alone when the name is the code."""
    return str(code) if name == str(code) else f"{code} {name}"


def _labels(result: dict[str, Any]) -> list[str]:
    return [class_label(e["code"], e["name"])[:24] for e in result["classes"]]


def _ranked_figure(result: dict[str, Any]) -> Figure:
    classes = result["classes"]
    fig = Figure(figsize=(8, 1.0 + 0.45 * len(classes)), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(classes))
    first, second = result["primary"]["single"]
    for offset, key, label in ((-0.2, "single_vs_single", f"{first} − {second}"),
                               (0.2, "fused_vs_best", "fused − best single")):  # fmt: skip
        d = np.array([e[key]["delta_f1"] for e in classes])
        ci = np.array([e[key]["ci"] for e in classes])
        err = np.abs(np.stack([d - ci[:, 0], ci[:, 1] - d]))
        ax.barh(y + offset, d, height=0.38, xerr=err, label=label, capsize=3)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y, labels=[f"{lab} — {e['verdict']}" for lab, e in
                             zip(_labels(result), classes, strict=True)])  # fmt: skip
    ax.invert_yaxis()
    ax.set_xlabel("F1 difference")
    ax.legend()
    return fig


def _per_class_figure(result: dict[str, Any]) -> Figure:
    names = list(result["overall"])
    classes = result["classes"]
    fig = Figure(figsize=(max(6, 1.2 * len(classes)), 4), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(names)
    x = np.arange(len(classes))
    for i, name in enumerate(names):
        ax.bar(x + i * width, [e["maps"][name]["f1"] for e in classes], width, label=name)
    ax.set_xticks(x + 0.4 - width / 2, labels=_labels(result), rotation=30, ha="right")
    ax.set_ylabel("F1")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    return fig


def _strata_figure(result: dict[str, Any], kind: str, data: dict[str, Any]) -> Figure:
    fig = Figure(figsize=(11, 4), layout="constrained")
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    x = np.arange(len(data["bins"]))
    for name, f1 in data["f1"].items():
        values = np.array(f1, dtype=float)
        seen = np.isfinite(values).any(axis=1)
        mean = np.full(len(x), np.nan)
        mean[seen] = np.nanmean(values[seen], axis=1)
        left.plot(x, mean, marker="o", label=name)
    first, second = result["primary"]["single"]
    diff = np.array(data["f1"][first], dtype=float) - np.array(data["f1"][second], dtype=float)
    for j, label in enumerate(class_label(c, result["names"][c])[:20] for c in result["codes"]):
        right.plot(x, diff[:, j], marker="o", label=label)
    right.axhline(0, color="black", lw=0.8)
    for ax, ylabel in ((left, "mean F1 over classes"), (right, f"F1 {first} − F1 {second}")):
        ax.set_xticks(x, labels=data["bins"], rotation=30, ha="right")
        ax.set_ylabel(ylabel)
        ax.set_xlabel(kind.replace("_", " "))
        ax.legend(fontsize=6)
    return fig


def _confusion_figure(result: dict[str, Any]) -> Figure:
    names = list(result["overall"])
    fig = Figure(figsize=(4.2 * len(names), 4.2), layout="constrained")
    ticks = [str(c) for c in result["codes"]] + ["∅"]
    for i, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), i + 1)
        ax.imshow(row_percentages(np.array(result["overall"][name]["confusion"])), cmap="Blues",
                  vmin=0, vmax=100)  # fmt: skip
        ax.set_xticks(range(len(ticks)), labels=ticks, fontsize=7)
        ax.set_yticks(range(len(ticks)), labels=ticks, fontsize=7)
        ax.set_title(name, fontsize=9)
    return fig
