"""Scores at every level of a hierarchical nomenclature, from a confusion matrix or from rasters.

The hierarchy is a :class:`~iota2_spot_s2.nomenclature.Nomenclature` with coarser levels (read
from the hierarchy CSV by :func:`~iota2_spot_s2.nomenclature.read_hierarchy_csv`): level 1 is
the coarsest, and the class codes themselves are the finest level, called ``"classes"``. Two
routes, which agree exactly when they see the same pixels:

- :func:`hierarchy_scores` sums the rows and the columns of a confusion matrix by parent class;
- :func:`raster_level_scores` remaps a class map and its reference raster (same grid) through
  the class -> parent table, window by window, and counts the confusion of the remapped labels.

Parents without any pixel (reference or map) are left out of both. Every class of the matrix
present in the reference must be in the hierarchy (else :class:`~iota2_spot_s2.errors.InputError`
naming the hierarchy file and the codes); a class seen only in the map (the chain's
"no decision" column) is kept as its own column, numbered above the parent codes, so its pixels
stay errors. On rasters, reference values outside the hierarchy are ignored and map values
outside it are left out of the matrix, like :class:`~iota2_spot_s2.evaluation.ConfusionAccumulator`
does; both counts are returned.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import numpy as np

from iota2_spot_s2.analysis.nomenclature_tree import ConfusionTable, merge_matrix
from iota2_spot_s2.errors import InputError
from iota2_spot_s2.evaluation.confusion import ConfusionAccumulator
from iota2_spot_s2.evaluation.metrics import Scores, scores
from iota2_spot_s2.evaluation.rasters import _check_same_grid, _open, _read_reference
from iota2_spot_s2.grid import iter_windows
from iota2_spot_s2.nomenclature import MAX_CODE, Nomenclature

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class LevelScores:
    """The scores of one level of a hierarchical nomenclature.

    Attributes:
        level: ``"level 1"`` (coarsest), ``"level 2"``... or ``"classes"`` (the class codes).
        codes: Parent codes having pixels (then map-only columns outside the hierarchy).
        names: Their names.
        matrix: The confusion matrix in ``codes`` order (rows = reference).
        scores: Its scores.

    """

    level: str
    codes: tuple[int, ...]
    names: tuple[str, ...]
    matrix: np.ndarray
    scores: Scores


@dataclass(frozen=True)
class RasterLevels:
    """:func:`raster_level_scores`'s result.

    Attributes:
        levels: One :class:`LevelScores` per level, coarsest first, ``"classes"`` last.
        unmapped_produced: Labelled reference pixels whose map value is not in the hierarchy.
        unknown_reference: Reference pixels (not no-data) whose value is not in the hierarchy.

    """

    levels: tuple[LevelScores, ...]
    unmapped_produced: int
    unknown_reference: int


def hierarchy_levels(nom: Nomenclature) -> list[tuple[str, dict[int, int], dict[int, str]]]:
    """``(label, {class code: parent code}, {parent code: name})`` per level, coarsest first."""
    out = []
    for k, level in enumerate(nom.levels, start=1):
        names = dict(zip(level.codes, level.names, strict=True))
        out.append((f"level {k}", nom.parent_mapping(k), names))
    out.append(("classes", {c: c for c in nom.codes}, dict(zip(nom.codes, nom.names, strict=True))))
    return out


def check_coverage(table: ConfusionTable, nom: Nomenclature, path: PathLike) -> None:
    """Raise :class:`InputError` if a class present in the reference is not in ``nom``."""
    rows = table.matrix.sum(axis=1)
    known = set(nom.codes)
    missing = [c for c, n in zip(table.codes, rows, strict=True) if n > 0 and c not in known]
    if missing:
        raise InputError(path, f"class code(s) {missing} of the confusion matrix "
                         f"({table.source}) are not in this hierarchy")  # fmt: skip


def hierarchy_scores(table: ConfusionTable, nom: Nomenclature, path: PathLike) -> list[LevelScores]:
    """Scores at every level of ``nom`` (read from ``path``), rows and columns summed by parent.

    Raises:
        InputError: If a class present in the reference is not in the hierarchy.

    """
    check_coverage(table, nom, path)
    m = table.matrix
    has_pixels = [bool(m[i].any() or m[:, i].any()) for i in range(len(table.codes))]
    known = [i for i, c in enumerate(table.codes) if c in set(nom.codes) and has_pixels[i]]
    extras = [i for i, c in enumerate(table.codes) if c not in set(nom.codes) and has_pixels[i]]
    out = []
    for label, parent, parent_names in hierarchy_levels(nom):
        pcodes = sorted({parent[table.codes[i]] for i in known})
        groups = [[i for i in known if parent[table.codes[i]] == p] for p in pcodes]
        top = max([*pcodes, *nom.codes, *parent.values()])
        codes = [*pcodes, *(top + 1 + n for n in range(len(extras)))]
        names = [parent_names[p] for p in pcodes] + [table.names[i] for i in extras]
        cm = merge_matrix(m, groups + [[i] for i in extras])
        out.append(LevelScores(label, tuple(codes), tuple(names), cm, scores(cm, codes)))
    return out


def _lookup(parent: dict[int, int]) -> np.ndarray:
    lut = np.zeros(MAX_CODE + 1, dtype=np.int64)
    lut[list(parent)] = list(parent.values())
    return lut


def _remap(lut: np.ndarray, block: np.ndarray) -> np.ndarray:
    """Labels through ``lut``; values outside 1..65535 or not integral become 0."""
    values = np.asarray(block)
    if values.dtype.kind == "f":
        whole = np.isfinite(values) & (values == np.round(values))
        values = np.where(whole, values, 0)
    values = values.astype(np.int64)
    inside = (values > 0) & (values <= MAX_CODE)
    return np.where(inside, lut[np.where(inside, values, 0)], 0)


def raster_level_scores(
    map_path: PathLike, reference_path: PathLike, nom: Nomenclature, *, window_size: int = 1024
) -> RasterLevels:
    """Scores at every level of ``nom`` of a class map against its reference (same grid).

    Raises:
        InputError: If a raster cannot be read or the grids differ.

    """
    levels = hierarchy_levels(nom)
    luts = [_lookup(parent) for _, parent, _ in levels]
    accs = [ConfusionAccumulator(sorted(set(parent.values()))) for _, parent, _ in levels]
    unknown = 0
    with contextlib.ExitStack() as stack:
        ref = stack.enter_context(_open(reference_path))
        prod = stack.enter_context(_open(map_path))
        _check_same_grid(ref, prod, map_path, "class map")
        for win in iter_windows(ref.height, ref.width, window_size):
            reference, produced = _read_reference(ref, win), prod.read(1, window=win)
            for lut, acc in zip(luts, accs, strict=True):
                acc.update(_remap(lut, reference), _remap(lut, produced))
            unknown += int(np.count_nonzero((reference != 0) & (_remap(luts[-1], reference) == 0)))
    out = []
    for (label, _, names), acc in zip(levels, accs, strict=True):
        m = acc.matrix
        keep = [i for i in range(len(acc.codes)) if m[i].any() or m[:, i].any()]
        codes = [acc.codes[i] for i in keep]
        cm = m[np.ix_(keep, keep)]
        out.append(LevelScores(label, tuple(codes), tuple(names[c] for c in codes), cm,
                               scores(cm, codes)))  # fmt: skip
    return RasterLevels(tuple(out), int(accs[-1].unmapped_produced.sum()), unknown)
