"""Writing cfg files in the ``config`` syntax iota2 reads (what :func:`read_cfg` reads back)."""

from __future__ import annotations

import math
from typing import Any


def format_cfg(sections: dict[str, dict[str, Any]]) -> str:
    """Render nested dicts in the ``config`` syntax iota2 reads (strings, numbers, bools, lists)."""
    lines: list[str] = []
    for name, body in sections.items():
        lines.append(f"{name} :")
        lines.extend(_format_mapping(body, indent=0))
    return "\n".join(lines) + "\n"


def _format_mapping(body: dict[str, Any], indent: int) -> list[str]:
    pad = "  " * indent
    out = [f"{pad}{{"]
    for key, value in body.items():
        name = key if str(key).isidentifier() else _format_value(str(key))
        if isinstance(value, dict):
            out.append(f"{pad}  {name} :")
            out.extend(_format_mapping(value, indent + 1))
        else:
            out.append(f"{pad}  {name} : {_format_value(value)}")
    out.append(f"{pad}}}")
    return out


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if value is None:
        return "None"
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"cfg files hold finite numbers only, got {value}")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"
