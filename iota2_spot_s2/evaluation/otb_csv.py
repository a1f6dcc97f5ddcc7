"""Read and write confusion matrices in the CSV layout of OTB's ``ComputeConfusionMatrix``.

The layout (OTB 8.1, ``-format confusionmatrix``; iota2 reads and writes the same files)::

    #Reference labels (rows):1,2,5,7
    #Produced labels (columns):1,2,5,7,9
    157,145,177,170,150
    155,193,187,145,141
    ...

Two header lines give the class codes of the rows (reference) and of the columns (produced),
comma-separated, no spaces; then one comma-separated line of integer counts per reference label;
every line ends with a newline. OTB lists only the labels present in each raster, so its matrix
may be non-square; :func:`iota2_spot_s2.evaluation.align_matrix` puts it back on a code list.
We write every code of the nomenclature on both axes (square matrix, zero rows kept).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.io import atomic_output

REF_HEADER = "#Reference labels (rows):"
PROD_HEADER = "#Produced labels (columns):"


def format_otb_confusion_csv(
    matrix: np.ndarray, ref_codes: Sequence[int], prod_codes: Sequence[int] | None = None
) -> str:
    """The CSV text of ``matrix`` (rows ``ref_codes``, columns ``prod_codes``, default the same)."""
    prod_codes = ref_codes if prod_codes is None else prod_codes
    matrix = np.asarray(matrix, dtype=np.int64)
    if matrix.shape != (len(ref_codes), len(prod_codes)):
        raise ValueError(
            f"matrix of shape {matrix.shape} does not match "
            f"{len(ref_codes)} x {len(prod_codes)} labels"
        )
    lines = [
        REF_HEADER + ",".join(str(int(c)) for c in ref_codes),
        PROD_HEADER + ",".join(str(int(c)) for c in prod_codes),
    ]
    lines += [",".join(str(int(v)) for v in row) for row in matrix]
    return "\n".join(lines) + "\n"


def write_otb_confusion_csv(
    matrix: np.ndarray,
    ref_codes: Sequence[int],
    path: str | os.PathLike[str],
    prod_codes: Sequence[int] | None = None,
) -> str:
    """Write ``matrix`` as an OTB confusion CSV at ``path`` (atomically); returns the path."""
    text = format_otb_confusion_csv(matrix, ref_codes, prod_codes)
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="ascii")
    return os.fspath(path)


def _labels(line: str, header: str, path: str | os.PathLike[str]) -> list[int]:
    if not line.startswith(header):
        raise InputError(path, f"expected a line starting with {header!r}, found {line[:60]!r}")
    body = line[len(header) :].strip()
    try:
        return [int(tok) for tok in body.split(",") if tok.strip()]
    except ValueError as exc:
        raise InputError(path, f"non-integer class label in {line!r}") from exc


def read_otb_confusion_csv(path: str | os.PathLike[str]) -> tuple[list[int], list[int], np.ndarray]:
    """Read an OTB ``ComputeConfusionMatrix`` CSV (or one we wrote).

    Returns:
        ``(ref_codes, prod_codes, matrix)`` with ``matrix`` int64 of shape
        ``(len(ref_codes), len(prod_codes))``, rows = reference.

    Raises:
        InputError: If the file is missing or not in that layout.

    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror})") from exc
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        raise InputError(path, "not an OTB confusion matrix CSV (missing the two label headers)")
    ref_codes = _labels(lines[0], REF_HEADER, path)
    prod_codes = _labels(lines[1], PROD_HEADER, path)
    rows = lines[2:]
    if len(rows) != len(ref_codes):
        raise InputError(path, f"{len(rows)} matrix rows for {len(ref_codes)} reference labels")
    try:
        values = [[int(float(tok)) for tok in row.split(",")] for row in rows]
    except ValueError as exc:
        raise InputError(path, "non-numeric value in the matrix rows") from exc
    if any(len(row) != len(prod_codes) for row in values):
        raise InputError(path, f"a matrix row does not have {len(prod_codes)} values")
    matrix = np.asarray(values, dtype=np.int64).reshape(len(ref_codes), len(prod_codes))
    return ref_codes, prod_codes, matrix
