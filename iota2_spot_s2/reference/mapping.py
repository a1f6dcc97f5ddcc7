"""Mapping tables: a source product's class values -> codes of our nomenclature.

Format: a CSV file with a header naming (at least) the columns ``source`` and ``target``; other
columns (labels, notes) are ignored. Lines starting with ``#`` and blank lines are comments.
``source`` values are kept as text, so integer codes (``18``) and text codes (``CS2.2.1``) both
work; ``target`` is an integer code in 0..65535, 0 meaning "deliberately no-data" (the features
burn 0 and are counted as such, not as unmapped). A source value absent from the table is
*unmapped*: its features burn 0 and are listed in the rasterization report.
"""

from __future__ import annotations

import csv
from os import PathLike
from pathlib import Path

import numpy as np

from iota2_spot_s2.errors import InputError

MAX_CODE = 65535


def source_key(value: object) -> str | None:
    """Normalise a field value into a mapping-table key (``None`` for null values).

    Integers and integral floats become their decimal text (``3``, ``3.0`` -> ``"3"``); text is
    stripped. This makes a table written with ``1,6`` match an integer or a text field alike.
    """
    if value is None:
        return None
    if isinstance(value, float | np.floating):
        if np.isnan(value):
            return None
        if float(value).is_integer():
            return str(int(value))
        return repr(float(value))
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).strip()


def read_mapping_table(csv_path: str | PathLike[str]) -> dict[str, int]:
    """Read a ``source,target`` mapping table into ``{source value: target code}``.

    Raises:
        InputError: unreadable file, missing column, bad target code, or one source value given
            two different targets (each message names the line).

    """
    try:
        text = Path(csv_path).read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise InputError(csv_path, f"cannot be read ({exc.strerror})") from exc
    except UnicodeDecodeError:
        text = Path(csv_path).read_bytes().decode("latin-1")
    numbered = [
        (i, line)
        for i, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not numbered:
        raise InputError(csv_path, "empty mapping table")
    rows = [next(csv.reader([line])) for _, line in numbered]  # one row per line, always
    header = [h.strip().lower() for h in rows[0]]
    if "source" not in header or "target" not in header:
        raise InputError(
            csv_path, f"line {numbered[0][0]}: header must name 'source' and 'target' columns"
        )
    i_src, i_tgt = header.index("source"), header.index("target")
    mapping: dict[str, int] = {}
    first_line: dict[str, int] = {}
    for (lineno, _), row in zip(numbered[1:], rows[1:], strict=True):
        if len(row) <= max(i_src, i_tgt):
            raise InputError(csv_path, f"line {lineno}: expected at least {len(header)} columns")
        key = source_key(row[i_src])
        if not key:
            raise InputError(csv_path, f"line {lineno}: empty source value")
        target = _parse_target(csv_path, lineno, row[i_tgt])
        if key in mapping and mapping[key] != target:
            raise InputError(
                csv_path,
                f"line {lineno}: source {key!r} mapped to {target}, "
                f"but to {mapping[key]} on line {first_line[key]}",
            )
        mapping[key] = target
        first_line.setdefault(key, lineno)
    return mapping


def _parse_target(csv_path: str | PathLike[str], lineno: int, text: str) -> int:
    try:
        target = int(text.strip())
    except ValueError:
        raise InputError(
            csv_path, f"line {lineno}: target {text.strip()!r} is not an integer"
        ) from None
    if not 0 <= target <= MAX_CODE:
        raise InputError(csv_path, f"line {lineno}: target {target} not in 0..{MAX_CODE}")
    return target
