"""The nomenclature report: one call to analyse, one to write ``nomenclature.{json,md,html}``.

:func:`analyse` runs the merge sequence, the optional minimum-F1 proposals and the scores of
every hierarchy level (from the matrix, and from remapped rasters when given);
:func:`write_nomenclature` writes the page (a dendrogram, the accuracy-versus-number-of-classes
curve, tables of the merges, proposals and hierarchy levels) with
:func:`iota2_spot_s2.analysis.pages.write_page`; :func:`console_table` is the terminal summary.

Example::

    table = read_confusion("evaluation/fcn_scores.json")
    result = analyse(table, min_f1=0.7, hierarchies=[("h.csv", read_hierarchy("h.csv"))])
    write_nomenclature(result, Path("out"), data_kind="real", title="FCN, test split")
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from iota2_spot_s2.analysis.nomenclature_figures import curve_figure, dendrogram_figure
from iota2_spot_s2.analysis.nomenclature_levels import (
    LevelScores,
    RasterLevels,
    hierarchy_scores,
    raster_level_scores,
)
from iota2_spot_s2.analysis.nomenclature_tree import (
    CRITERION,
    ConfusionTable,
    MergeStep,
    MinF1Merges,
    agglomerate,
    linkage_matrix,
    min_f1_merges,
)
from iota2_spot_s2.analysis.pages import Page, write_page
from iota2_spot_s2.nomenclature import Nomenclature

GREEDY_RULE = (
    "greedy: the class with the lowest F1 below the threshold is merged with the class it "
    "exchanges the most pixels with (C[i,j] + C[j,i]), then every F1 is recomputed; repeated "
    "until every class reaches the threshold or one class remains (not guaranteed minimal)"
)


@dataclass(frozen=True)
class HierarchyResult:
    """The scores of one hierarchy file: from the matrix, and from the rasters when given."""

    path: str
    levels: tuple[LevelScores, ...]
    rasters: RasterLevels | None = None

    @property
    def rasters_agree(self) -> bool | None:
        """Whether the remapped rasters give the matrix's numbers at every level."""
        if self.rasters is None:
            return None
        return all(a.codes == b.codes and np.array_equal(a.matrix, b.matrix)
                   for a, b in zip(self.levels, self.rasters.levels, strict=True))  # fmt: skip


@dataclass(frozen=True)
class NomenclatureAnalysis:
    """Everything the report shows (see :func:`analyse`)."""

    table: ConfusionTable
    steps: tuple[MergeStep, ...]
    min_f1: MinF1Merges | None
    hierarchies: tuple[HierarchyResult, ...]


def analyse(
    table: ConfusionTable,
    *,
    min_f1: float | None = None,
    hierarchies: Sequence[tuple[str | os.PathLike[str], Nomenclature]] = (),
    rasters: tuple[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
) -> NomenclatureAnalysis:
    """Merge sequence, minimum-F1 proposals and hierarchy-level scores of one matrix.

    Args:
        table: The confusion matrix and its classes.
        min_f1: Minimum F1 (0-1) for :func:`~.nomenclature_tree.min_f1_merges`; None: skipped.
        hierarchies: ``(path, nomenclature with levels)`` pairs.
        rasters: ``(class map, reference)`` on one grid, scored at every hierarchy level after
            remapping (needs ``hierarchies``).

    Raises:
        InputError: A class of the matrix missing from a hierarchy, unreadable rasters.

    """
    if rasters is not None and not hierarchies:
        raise ValueError("rasters are scored at hierarchy levels: give a hierarchy")
    hier = []
    for path, nom in hierarchies:
        levels = tuple(hierarchy_scores(table, nom, path))
        from_rasters = raster_level_scores(*rasters, nom) if rasters is not None else None
        hier.append(HierarchyResult(str(path), levels, from_rasters))
    proposals = min_f1_merges(table, min_f1) if min_f1 is not None else None
    return NomenclatureAnalysis(table, tuple(agglomerate(table)), proposals, tuple(hier))


def _lowest(step_scores: Any, names: Sequence[str]) -> str:
    present = [i for i, n in enumerate(step_scores.support) if n > 0]
    if not present:
        return "—"
    i = min(present, key=lambda k: step_scores.f1[k])
    return f"{names[i]} ({step_scores.f1[i]:.3f})"


def _step_dict(step: MergeStep) -> dict[str, Any]:
    s = step.scores
    return {
        "n_classes": step.n_classes,
        "merged": [list(g) for g in step.merged] if step.merged else None,
        "criterion": step.criterion,
        "distance": None if step.criterion is None else 1.0 - step.criterion,
        "exchanged": step.exchanged,
        "overall_accuracy": s.overall_accuracy, "kappa": s.kappa, "mean_f1": s.mean_f1,
        "classes": [{"codes": list(g), "name": n, "f1": f, "support": k}
                    for g, n, f, k in zip(step.groups, step.names, s.f1, s.support, strict=True)],
    }  # fmt: skip


def _level_dict(level: LevelScores) -> dict[str, Any]:
    n_classes = int((level.matrix.sum(axis=1) > 0).sum())
    return {"level": level.level, "n_classes": n_classes, "codes": list(level.codes),
            "names": list(level.names), "scores": level.scores.to_dict(),
            "confusion_matrix": level.matrix.tolist()}  # fmt: skip


def _hierarchy_dict(h: HierarchyResult) -> dict[str, Any]:
    out: dict[str, Any] = {"path": h.path, "levels": [_level_dict(lv) for lv in h.levels]}
    if h.rasters is not None:
        out["rasters"] = {
            "levels": [_level_dict(lv) for lv in h.rasters.levels],
            "unmapped_produced": h.rasters.unmapped_produced,
            "unknown_reference": h.rasters.unknown_reference,
            "agree_with_confusion": h.rasters_agree,
        }
    return out


def numbers(result: NomenclatureAnalysis) -> dict[str, Any]:
    """Every number of the report, JSON-serialisable."""
    table, first = result.table, result.steps[0]
    rows, cols = table.matrix.sum(axis=1), table.matrix.sum(axis=0)
    out: dict[str, Any] = {
        "source": table.source, "criterion": CRITERION, "n_pixels": int(table.matrix.sum()),
        "codes": list(table.codes), "names": list(table.names),
        "absent": [c for c, r, k in zip(table.codes, rows, cols, strict=True) if r == k == 0],
        "not_in_reference": [c for c, r, k in zip(table.codes, rows, cols, strict=True)
                             if r == 0 < k],
        "merges": [_step_dict(s) for s in result.steps],
        "linkage": linkage_matrix(result.steps)[0].tolist() if first.n_classes > 1 else [],
        "min_f1": None, "hierarchies": [_hierarchy_dict(h) for h in result.hierarchies],
    }  # fmt: skip
    if result.min_f1 is not None:
        m = result.min_f1
        out["min_f1"] = {"threshold": m.threshold, "rule": GREEDY_RULE, "reached": m.reached,
                         "stuck": list(m.stuck), "final": _step_dict(m.final),
                         "proposals": [p.__dict__ for p in m.proposals]}  # fmt: skip
    return out


def console_table(result: NomenclatureAnalysis, data_kind: str) -> str:
    """Number of classes -> OA / kappa / mean F1, then the hierarchy levels, as plain text."""
    lines = [f"Nomenclature of {result.table.source} ({data_kind.upper()} data)",
             f"{'classes':>7}  {'OA':>6}  {'kappa':>6}  {'meanF1':>6}  merged"]  # fmt: skip
    for k, step in enumerate(result.steps):
        s = step.scores
        merged = " + ".join(_short(n) for n in _merged_names(result.steps, k))
        lines.append(f"{step.n_classes:>7}  {s.overall_accuracy:6.3f}  {s.kappa:6.3f}  "
                     f"{s.mean_f1:6.3f}  {merged}")  # fmt: skip
    for h in result.hierarchies:
        lines.append(f"hierarchy {Path(h.path).name}:")
        for lv in h.levels:
            s, n = lv.scores, int((lv.matrix.sum(axis=1) > 0).sum())
            lines.append(f"{n:>7}  {s.overall_accuracy:6.3f}  {s.kappa:6.3f}  "
                         f"{s.mean_f1:6.3f}  {lv.level}")  # fmt: skip
    return "\n".join(lines)


def write_nomenclature(
    result: NomenclatureAnalysis, out_dir: Path, *, data_kind: str, title: str
) -> dict[str, Path]:
    """Write ``nomenclature.{json,md,html}`` and the PNGs; returns ``{json, md, html}`` paths.

    Args:
        result: From :func:`analyse`.
        out_dir: Output folder (created).
        data_kind: "real" or "simulated" (stated in every file).
        title: What the matrix scores (map, split).

    """
    page = Page(f"Nomenclature: which classes can be mapped reliably — {title}", data_kind)
    _merge_section(page, result)
    if result.min_f1 is not None:
        _min_f1_section(page, result.min_f1)
    for h in result.hierarchies:
        _hierarchy_section(page, h)
    return write_page(page, numbers(result), Path(out_dir), stem="nomenclature")


def _merge_section(page: Page, result: NomenclatureAnalysis) -> None:
    table, steps = result.table, result.steps
    page.paragraph(f"Confusion matrix {table.source}: {int(table.matrix.sum())} pixels, "
                   f"{steps[0].n_classes} classes present in the reference.")  # fmt: skip
    page.heading2("Merge sequence")
    page.paragraph(f"Merging two classes sums their rows and columns. At each step the {CRITERION}"
                   ". OA never decreases; kappa and mean F1 may. With one class left, OA and "
                   "mean F1 are 1 and kappa 0 by definition.")  # fmt: skip
    rows = [[s.n_classes, " + ".join(_merged_names(steps, k)) or "(start)",
             np.nan if s.criterion is None else s.criterion, s.exchanged,
             s.scores.overall_accuracy, s.scores.kappa, s.scores.mean_f1,
             _lowest(s.scores, s.names)] for k, s in enumerate(steps)]  # fmt: skip
    page.table(["classes", "merged", "s", "exchanged px", "OA", "kappa", "mean F1",
                "lowest F1"], rows)  # fmt: skip
    page.figure("curve", curve_figure(steps, result.hierarchies),
                "OA, kappa and mean F1 against the number of classes")  # fmt: skip
    if steps[0].n_classes > 1:
        z, labels = linkage_matrix(steps)
        page.figure("dendrogram", dendrogram_figure(z, labels),
                    "Merge order (distance 1 - s, made non-decreasing)")  # fmt: skip


def _short(name: str) -> str:
    """``[a + b + c + d]`` -> ``[a +3 more]`` for the terminal."""
    parts = name.strip("[]").split(" + ")
    return name if len(parts) <= 3 else f"[{parts[0]} +{len(parts) - 1} more]"


def _merged_names(steps: Sequence[MergeStep], k: int) -> list[str]:
    merged = steps[k].merged
    if merged is None:
        return []
    before = steps[k - 1]
    return [f"[{before.names[before.groups.index(g)]}]" for g in merged]


def _min_f1_section(page: Page, m: MinF1Merges) -> None:
    page.heading2(f"Merges to reach F1 ≥ {m.threshold:.2f}")
    page.paragraph(f"Rule: {GREEDY_RULE}.")
    rows = [[k, f"{p.low_name} ({p.low_f1:.3f})", f"{p.partner_name} ({p.partner_f1:.3f})",
             p.exchanged, p.merged_f1, p.n_classes, p.overall_accuracy, p.mean_f1]
            for k, p in enumerate(m.proposals, start=1)]  # fmt: skip
    if rows:
        page.table(["merge", "class (F1)", "merged with (F1)", "exchanged px", "merged F1",
                    "classes", "OA", "mean F1"], rows)  # fmt: skip
    final = ", ".join(f"{n} ({f:.3f})" for n, f, k in
                      zip(m.final.names, m.final.scores.f1, m.final.scores.support, strict=True)
                      if k > 0)  # fmt: skip
    verdict = "every class reaches it" if m.reached else "the threshold is not reached"
    stuck = f"; below it with no confusion to merge: {', '.join(m.stuck)}" if m.stuck else ""
    page.paragraph(f"{len(m.proposals)} merge(s), {verdict}{stuck}. Final classes: {final}.")


def _level_rows(levels: Sequence[LevelScores]) -> list[list[Any]]:
    return [[lv.level, int((lv.matrix.sum(axis=1) > 0).sum()), lv.scores.overall_accuracy,
             lv.scores.kappa, lv.scores.mean_f1, _lowest(lv.scores, lv.names),
             lv.scores.n_pixels] for lv in levels]  # fmt: skip


def _hierarchy_section(page: Page, h: HierarchyResult) -> None:
    header = ["level", "classes", "OA", "kappa", "mean F1", "lowest F1", "pixels"]
    page.heading2(f"Hierarchy {Path(h.path).name}")
    page.paragraph("Rows and columns of the confusion matrix summed by parent class.")
    page.table(header, _level_rows(h.levels))
    if h.rasters is None:
        return
    agree = ("they equal the numbers above at every level" if h.rasters_agree else
             "they differ from the numbers above: the rasters cover other pixels than the "
             "confusion matrix (e.g. every pixel rather than one split), or the matrix has "
             "map-only columns outside the hierarchy")  # fmt: skip
    page.paragraph(f"The class map and the reference remapped to each level and compared pixel "
                   f"by pixel: {agree}. Labelled pixels whose map value is outside the "
                   f"hierarchy (left out): {h.rasters.unmapped_produced}; reference pixels "
                   f"outside it (ignored): {h.rasters.unknown_reference}.")  # fmt: skip
    page.table(header, _level_rows(h.rasters.levels))
