"""Per-class complementarity of two sensors: what each class gains from SPOT, S2 or fusion.

Block-bootstrap intervals, McNemar tests and Shapley values, class by class.

Inputs (:class:`Comparison`): the reference labels restricted to the scored (test) pixels, and
the class maps of several strategies on the same grid, each tagged with the *sources* it used
(``{"spot"}``, ``{"s2"}``, ``{"spot", "s2"}``). Unmapped pixels (values outside the codes) are
errors, as in the chain's scores. The analysis needs one map per single source and at least one
map of their union; the first map given for a coalition is that coalition's *primary* map.

The verdict of each class (:data:`VERDICT_RULE`, written into every report):

- *gains from SPOT* / *gains from Sentinel-2*: the ``level`` block-bootstrap interval of
  ``F1(SPOT) − F1(S2)`` excludes 0 on that side **and** the Holm-adjusted McNemar p-value of the
  pair is below ``alpha``;
- otherwise *gains only from fusion*: the same two conditions hold for
  ``F1(fused) − F1(best single source for the class)`` with a positive difference;
- otherwise *no significant difference*.

Classes are sorted so that the largest *certain* gain comes first: by the bound of the decisive
interval nearest to 0 (the gain that holds at the interval's worst end).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from iota2_spot_s2.analysis import stats
from iota2_spot_s2.analysis.strata import (
    BOUNDARY_EDGES_M,
    CLEAR_DATES_EDGES,
    OBJECT_SIZE_EDGES_M2,
    boundary_distance,
    object_area,
    stratified_f1,
)
from iota2_spot_s2.evaluation.bootstrap import block_confusions
from iota2_spot_s2.evaluation.confusion import confusion_matrix
from iota2_spot_s2.evaluation.metrics import scores

VERDICT_RULE = (
    "A class gains from a sensor when the {level:.0%} spatial block-bootstrap interval of the "
    "F1 difference between the two single-sensor maps excludes 0 and the per-class McNemar test "
    "(exact binomial, Holm-corrected over the classes) gives p < {alpha}; otherwise it gains only "
    "from fusion when the same two conditions hold for fused F1 minus the best single-sensor F1 "
    "of that class; otherwise there is no significant difference."
)
SOURCE_NAMES = {"spot": "SPOT", "s2": "Sentinel-2"}


@dataclass
class Strategy:
    """One map to compare: its name, the sources it used, its class codes, its choice map."""

    name: str
    sources: frozenset[str]
    classes: np.ndarray
    choice: np.ndarray | None = None


@dataclass
class Comparison:
    """Everything the analysis reads (arrays on one grid).

    Attributes:
        reference: Labels on the scored pixels (0 elsewhere: unlabelled or not in the test split).
        codes: Class codes of the nomenclature (classes absent from ``reference`` are skipped).
        strategies: The maps (one per single source at least, plus fused ones).
        pixel_size_m: Pixel side (m), for object areas and boundary distances.
        names: Class names by code.
        objects: Labels used to find reference objects (whole reference, all splits); defaults
            to ``reference``.
        clear_dates: Cloud-free Sentinel-2 dates per pixel, when known.

    """

    reference: np.ndarray
    codes: Sequence[int]
    strategies: list[Strategy]
    pixel_size_m: float
    names: dict[int, str] = field(default_factory=dict)
    objects: np.ndarray | None = None
    clear_dates: np.ndarray | None = None


@dataclass(frozen=True)
class Options:
    """Statistical settings of the analysis."""

    block_px: int = 64
    n_boot: int = 1000
    seed: int = 0
    level: float = 0.95
    alpha: float = 0.05


def roles(strategies: Sequence[Strategy]) -> dict[str, Strategy]:
    """Primary map of each single source (by source name) and of their union (``"fused"``)."""
    out: dict[str, Strategy] = {}
    for s in strategies:
        key = next(iter(s.sources)) if len(s.sources) == 1 else "+".join(sorted(s.sources))
        out.setdefault(key, s)
    singles = [k for k in out if "+" not in k]
    union = "+".join(sorted(singles))
    if len(singles) != 2 or union not in out:
        raise ValueError(
            f"needs one map of each of two single sources and one of their union, got {list(out)}"
        )
    out["fused"] = out.pop(union)
    return out


def _singles(role: dict[str, Strategy]) -> list[str]:
    """The two single sources, SPOT first when present (differences read SPOT − S2)."""
    return sorted((k for k in role if k != "fused"), key=lambda k: (k != "spot", k))


def analyse(comp: Comparison, options: Options = Options()) -> dict[str, Any]:
    """Every number of the complementarity report (see the module docstring)."""
    role = roles(comp.strategies)
    singles = _singles(role)
    present = [int(c) for c in comp.codes if np.any(comp.reference == c)]
    if not present:
        raise ValueError("the reference has no labelled pixel of any class on the scored pixels")
    no_decision = max(int(c) for c in comp.codes) + 1
    maps = {s.name: np.where(np.isin(s.classes, present), s.classes, no_decision)
            for s in comp.strategies}  # fmt: skip
    all_codes = [*present, no_decision]
    overall, per_map = {}, {}
    for name, produced in maps.items():
        cm = confusion_matrix(comp.reference, produced, all_codes)
        sc = scores(cm, all_codes)
        overall[name] = {"overall_accuracy": sc.overall_accuracy, "kappa": sc.kappa,
                         "mean_f1": sc.mean_f1, "confusion": cm.tolist()}  # fmt: skip
        per_map[name] = sc
    block_cms = {n: block_confusions(comp.reference, m, all_codes, options.block_px)
                 for n, m in maps.items()}  # fmt: skip
    boot = stats.paired_bootstrap_f1(block_cms, len(present), n_boot=options.n_boot,
                                     seed=options.seed)  # fmt: skip
    spot, s2, fused = role[singles[0]], role[singles[1]], role["fused"]
    classes = [_class_entry(comp, c, i, per_map, boot, options) for i, c in enumerate(present)]
    _pair_tests(comp, classes, maps, (spot.name, s2.name), "single_vs_single", options)
    _fusion_tests(comp, classes, maps, fused.name, (spot.name, s2.name), options)
    shapley = _shapley(comp, role, per_map, present)
    for entry in classes:
        entry["shapley"] = shapley.get(entry["code"])
        entry["verdict"], entry["certain_gain"] = _verdict(entry, singles, options.alpha)
    classes.sort(key=lambda e: (-e["certain_gain"], e["code"]))
    return {
        "codes": present, "no_decision_code": no_decision,
        "names": {c: comp.names.get(c, str(c)) for c in present},
        "sources": singles, "primary": {"single": [spot.name, s2.name], "fused": fused.name},
        "strategies": [{"name": s.name, "sources": sorted(s.sources)} for s in comp.strategies],
        "overall": overall, "classes": classes,
        "blocks": int(next(iter(block_cms.values())).shape[0]),
        "options": options.__dict__, "rule": VERDICT_RULE.format(level=options.level,
                                                                 alpha=options.alpha),
        "choice": _choice_shares(comp, present, maps),
        "strata": _strata(comp, maps, present),
    }  # fmt: skip


def _class_entry(comp: Comparison, code: int, i: int, per_map: dict[str, Any],
                 boot: dict[str, np.ndarray], options: Options) -> dict[str, Any]:  # fmt: skip
    prior = float(np.sum(comp.reference == code) / np.sum(comp.reference > 0))
    return {
        "code": code, "name": comp.names.get(code, str(code)),
        "support": int(np.sum(comp.reference == code)), "chance_f1": prior,
        "maps": {
            name: {"f1": sc.f1[i], "precision": sc.precision[i], "recall": sc.recall[i],
                   "f1_ci": stats.percentile_interval(boot[name][:, i], options.level)}
            for name, sc in per_map.items()
        },
        "_boot": {name: samples[:, i] for name, samples in boot.items()},
    }  # fmt: skip


def _pair_tests(comp: Comparison, classes: list[dict[str, Any]], maps: dict[str, np.ndarray],
                pair: tuple[str, str | None], key: str, options: Options) -> None:  # fmt: skip
    """F1 difference, interval and Holm-corrected McNemar test of ``pair`` for each class.

    A ``None`` second map means "the best single-source map of that class" (``entry["_best"]``).
    """
    pvalues = []
    for entry in classes:
        a, b = pair[0], pair[1] if pair[1] is not None else entry["_best"]
        n01, n10 = stats.mcnemar_counts(comp.reference, maps[a], maps[b], entry["code"])
        delta = entry["maps"][a]["f1"] - entry["maps"][b]["f1"]
        ci = stats.percentile_interval(entry["_boot"][a] - entry["_boot"][b], options.level)
        p = stats.mcnemar_exact(n01, n10)
        pvalues.append(p)
        entry[key] = {"first": a, "second": b, "delta_f1": delta, "ci": ci, "n01": n01,
                      "n10": n10, "p": p}  # fmt: skip
    for entry, adjusted in zip(classes, stats.holm(pvalues), strict=True):
        entry[key]["p_holm"] = adjusted


def _fusion_tests(comp: Comparison, classes: list[dict[str, Any]], maps: dict[str, np.ndarray],
                  fused: str, singles: tuple[str, str], options: Options) -> None:  # fmt: skip
    for entry in classes:
        entry["_best"] = max(singles, key=lambda n: entry["maps"][n]["f1"])
    _pair_tests(comp, classes, maps, (fused, None), "fused_vs_best", options)
    for entry in classes:
        del entry["_best"], entry["_boot"]


def _verdict(entry: dict[str, Any], singles: list[str], alpha: float) -> tuple[str, float]:
    pair, fusion = entry["single_vs_single"], entry["fused_vs_best"]
    lo, hi = pair["ci"]
    if pair["p_holm"] < alpha and lo > 0:
        return f"gains from {SOURCE_NAMES.get(singles[0], singles[0])}", lo
    if pair["p_holm"] < alpha and hi < 0:
        return f"gains from {SOURCE_NAMES.get(singles[1], singles[1])}", -hi
    lo, _ = fusion["ci"]
    if fusion["p_holm"] < alpha and lo > 0 and fusion["delta_f1"] > 0:
        return "gains only from fusion", lo
    return "no significant difference", 0.0


def _shapley(comp: Comparison, role: dict[str, Any], per_map: dict[str, Any],
             present: list[int]) -> dict[int, dict[str, float]]:  # fmt: skip
    """Shapley value of each source for each class F1; empty coalition = chance F1 (the prior)."""
    singles = _singles(role)
    out = {}
    for i, code in enumerate(present):
        prior = float(np.sum(comp.reference == code) / np.sum(comp.reference > 0))
        value = {frozenset(): prior, frozenset(singles): per_map[role["fused"].name].f1[i]}
        for s in singles:
            value[frozenset([s])] = per_map[role[s].name].f1[i]
        out[code] = stats.shapley_values(value, singles)
    return out


def _choice_shares(comp: Comparison, present: list[int],
                   maps: dict[str, np.ndarray]) -> dict[str, Any]:  # fmt: skip
    """Per class: share of pixels each source decided (DSchoice values) and accuracy there."""
    out: dict[str, Any] = {}
    for s in comp.strategies:
        if s.choice is None:
            continue
        per_class = {}
        for code in present:
            here = comp.reference == code
            values = s.choice[here]
            right = maps[s.name][here] == code
            per_class[code] = {
                int(v): {"share": float(np.mean(values == v)),
                         "accuracy": float(np.mean(right[values == v]))}
                for v in np.unique(values)
            }  # fmt: skip
        out[s.name] = per_class
    return out


def _strata(comp: Comparison, maps: dict[str, np.ndarray], present: list[int]) -> dict[str, Any]:
    objects = comp.objects if comp.objects is not None else comp.reference
    area = object_area(objects, comp.pixel_size_m**2)
    out = {
        "object_size": stratified_f1(comp.reference, maps, present, area,
                                     OBJECT_SIZE_EDGES_M2, "m²"),
        "boundary_distance": stratified_f1(comp.reference, maps, present,
                                           boundary_distance(objects, comp.pixel_size_m),
                                           BOUNDARY_EDGES_M, "m"),
    }  # fmt: skip
    if comp.clear_dates is not None:
        out["clear_dates"] = stratified_f1(comp.reference, maps, present, comp.clear_dates,
                                           CLEAR_DATES_EDGES, "dates")  # fmt: skip
    return out
