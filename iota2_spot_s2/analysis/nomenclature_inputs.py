"""Read the confusion matrix of the nomenclature analysis from our or OTB's files.

Two formats, told apart by their first characters (not by their suffix):

- the evaluation JSON of :func:`iota2_spot_s2.evaluation.write_report` (``fuse-classify
  evaluate``, the chain's ``<tile>/evaluation/*_scores.json``): codes, names and the matrix;
- the CSV of OTB's ``ComputeConfusionMatrix`` (iota2 writes the same), whose reference and
  produced label lists may differ: both are put on the sorted union of the two lists.

The chain's ``comparison.json`` holds scores only, no matrix: it is refused with a message
pointing at the per-model evaluation JSON files. Every problem is an
:class:`~iota2_spot_s2.errors.InputError` naming the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from iota2_spot_s2.analysis.nomenclature_tree import ConfusionTable
from iota2_spot_s2.errors import InputError
from iota2_spot_s2.evaluation.confusion import align_matrix
from iota2_spot_s2.evaluation.otb_csv import REF_HEADER, read_otb_confusion_csv
from iota2_spot_s2.evaluation.report import read_report
from iota2_spot_s2.nomenclature import Nomenclature, read_hierarchy_csv

PathLike = str | os.PathLike[str]
NOT_A_MATRIX = (
    "neither an evaluation JSON (fuse-classify evaluate) nor an OTB confusion CSV "
    f"(first line {REF_HEADER!r})"
)


def read_confusion(path: PathLike) -> ConfusionTable:
    """The confusion matrix of an evaluation JSON or an OTB confusion CSV (see module doc)."""
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror})") from exc
    except UnicodeDecodeError:
        raise InputError(path, f"{NOT_A_MATRIX}: binary content") from None
    head = text.lstrip()
    if head.startswith("{"):
        return _from_json(path)
    if head.startswith(REF_HEADER):
        return _from_otb_csv(path)
    raise InputError(path, NOT_A_MATRIX)


def _from_json(path: PathLike) -> ConfusionTable:
    try:
        _, matrix, payload = read_report(path)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"invalid JSON ({exc.msg}, line {exc.lineno})") from None
    except KeyError as exc:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        if isinstance(raw, dict) and "runs" in raw:
            raise InputError(path, "is a comparison table (scores only, no confusion matrix): "
                             "pass one of <tile>/evaluation/*_scores.json") from None  # fmt: skip
        raise InputError(path, f"no {exc.args[0]!r} key: not an evaluation JSON") from None
    except (TypeError, ValueError) as exc:
        raise InputError(path, f"not an evaluation JSON ({exc})") from None
    codes = payload.get("codes")
    if not isinstance(codes, list) or matrix.shape != (len(codes), len(codes)):
        raise InputError(path, f"'confusion_matrix' of shape {matrix.shape} does not match "
                         f"'codes' {codes}")  # fmt: skip
    names = payload.get("names")
    names = names if isinstance(names, list) and len(names) == len(codes) else None
    return _table(path, matrix, codes, names)


def _from_otb_csv(path: PathLike) -> ConfusionTable:
    ref, prod, matrix = read_otb_confusion_csv(path)
    codes = sorted(set(ref) | set(prod))
    return _table(path, align_matrix(matrix, ref, prod, codes), codes, None)


def _table(path: PathLike, matrix: np.ndarray, codes: list, names: list | None) -> ConfusionTable:
    try:
        return ConfusionTable.build(matrix, codes, names, source=Path(path).name)
    except ValueError as exc:
        raise InputError(path, str(exc)) from None


def with_names(table: ConfusionTable, names: Mapping[int, str]) -> ConfusionTable:
    """``table`` with the names of ``names`` where it has one for a code."""
    labels = tuple(names.get(c, n) for c, n in zip(table.codes, table.names, strict=True))
    return ConfusionTable(table.matrix, table.codes, labels, table.source)


def read_hierarchy(path: PathLike) -> Nomenclature:
    """A hierarchy CSV with at least one coarser level (else :class:`InputError`)."""
    nom = read_hierarchy_csv(path)
    if not nom.levels:
        raise InputError(path, "has no coarser level (columns level1_code,level1_name...)")
    return nom
