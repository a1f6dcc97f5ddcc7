"""Mapping tables from reference products to OSO classes, and their totality check.

Each table (``plugin_config/mapping_<source>_to_oso.csv``, read by
:func:`iota2_spot_s2.reference.read_mapping_table`) comes with a list of *declared source codes*
(``plugin_config/source_codes_<field>.csv``, columns ``source,label,unmapped``): every code the
source product may hold. A table is **total** on its declared codes when every declared code has
an explicit decision: a row of the table (target an OSO code, or 0 for "deliberately no-data"),
or, for codes kept out of the table on purpose, a reason in the ``unmapped`` column (never
both). A table row whose source is not declared is an error too (a typo would otherwise map
nothing).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.reference import read_mapping_table, source_key


@dataclass(frozen=True)
class TableSpec:
    """A mapping table to OSO and the file declaring its source codes (names in plugin_config)."""

    source: str
    table: str
    declared: str


#: The tables of ``plugin_config/`` that map reference products onto OSO codes.
OSO_TABLES: tuple[TableSpec, ...] = (
    TableSpec("RPG code_group", "mapping_rpg_code_group_to_oso.csv",
              "source_codes_rpg_code_group.csv"),
    TableSpec("OCS GE couverture code_cs", "mapping_ocsge_code_cs_to_oso.csv",
              "source_codes_ocsge_code_cs.csv"),
    TableSpec("BD TOPO theme", "mapping_bdtopo_theme_to_oso.csv",
              "source_codes_bdtopo_theme.csv"),
)  # fmt: skip


def read_declared_codes(path: str | PathLike[str]) -> dict[str, str]:
    """``{source code: unmapped reason ('' when the code must be mapped)}``.

    Raises:
        InputError: Unreadable file, missing ``source`` column, empty or duplicate code.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot be read ({exc})") from exc
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    rows = list(csv.reader(lines))
    if not rows or "source" not in [h.strip().lower() for h in rows[0]]:
        raise InputError(path, "needs a header naming a 'source' column")
    header = [h.strip().lower() for h in rows[0]]
    i_src = header.index("source")
    i_why = header.index("unmapped") if "unmapped" in header else None
    declared: dict[str, str] = {}
    for row in rows[1:]:
        key = source_key(row[i_src]) if len(row) > i_src else None
        if not key:
            raise InputError(path, f"row {row}: empty source code")
        if key in declared:
            raise InputError(path, f"source code {key!r} declared twice")
        why = row[i_why].strip() if i_why is not None and len(row) > i_why else ""
        declared[key] = why
    return declared


def totality_problems(
    table: str | PathLike[str], declared: str | PathLike[str], codes: Iterable[int]
) -> list[str]:
    """What keeps ``table`` from being total on the codes of ``declared`` (empty list: total).

    Args:
        table: A ``source,target`` mapping table.
        declared: Its declared source codes (module docstring).
        codes: The target nomenclature's class codes (0 is always allowed: deliberate no-data).

    """
    mapping = read_mapping_table(table)
    wanted = read_declared_codes(declared)
    allowed = {0, *codes}
    problems = []
    for key, why in wanted.items():
        if why and key in mapping:
            problems.append(f"{key!r} is declared unmapped ({why}) but has a row")
        elif not why and key not in mapping:
            problems.append(f"{key!r} has no row and no 'unmapped' reason")
    problems += [f"{key!r} is not a declared source code" for key in mapping if key not in wanted]
    problems += [
        f"{key!r} maps to {target}, not a class code" for key, target in mapping.items()
        if target not in allowed
    ]  # fmt: skip
    return problems


def read_recode_table(path: str | PathLike[str]) -> dict[int, int]:
    """A ``source,target`` table from a map's integer codes to OSO codes.

    Raises:
        InputError: What :func:`~iota2_spot_s2.reference.read_mapping_table` refuses, or a
            source value that is not an integer map code.
    """
    table = read_mapping_table(path)
    bad = [k for k in table if not k.strip().lstrip("-").isdigit()]
    if bad:
        raise InputError(path, f"recode sources must be integer map codes, got {bad[:5]}")
    return {int(k): int(v) for k, v in table.items()}
