"""Schema violations as one line naming the cfg key, what it allows and what it got.

Forms (joined by ``; `` when a cfg has several problems):

- ``<section>.<key> must be <rule> (got <value>)``: wrong type, out of range, unknown choice;
- ``<section>.<key> is required (allowed: <rule>)``;
- ``unknown field(s) in <section>: <keys> (known: ...)``;
- ``<section>.<key>: <problem>`` or a whole sentence for the rules across fields.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

_MISSING = object()
#: Longest value shown in a message, and most problems listed on the line.
SHOWN = 80
MAX_SHOWN = 5


def one_line(
    error: ValidationError, model: type[BaseModel], raw: dict[str, Any], names: dict[str, str]
) -> str:
    """Every problem of ``error`` on one line.

    Args:
        error: What ``model.model_validate(raw)`` raised.
        model: The validated model.
        raw: Its input (field names as the model's).
        names: How to show a dotted field path when not as it is (``plugin`` ->
            ``spot_s2_fusion``, ``chain.output_path`` -> ``chain.outputPath``).

    """
    messages: list[str] = []
    unknown: dict[str, tuple[list[str], list[str]]] = {}
    for item in error.errors():
        place = _Place.walk(model, raw, item["loc"], names)
        if item["type"] == "extra_forbidden":
            unknown.setdefault(place.parent, ([], place.known))[0].append(place.last)
            continue
        messages.append(_message(item, place))
    for parent, (found, known) in unknown.items():
        messages.append(
            f"unknown field(s) in {parent}: {', '.join(found)} (known: {', '.join(known)})"
        )
    distinct = list(dict.fromkeys(messages))
    more = f"; and {len(distinct) - MAX_SHOWN} more" if len(distinct) > MAX_SHOWN else ""
    return single_line("; ".join(distinct[:MAX_SHOWN]) + more)


def single_line(text: str) -> str:
    """``text`` with line breaks and other unprintable characters escaped as in Python."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class _Place:
    """Where an error is: the key as the user wrote it, the field, its raw value."""

    def __init__(self) -> None:
        self.key = ""
        self.parent = ""
        self.last = ""
        self.field: FieldInfo | None = None
        self.model: type[BaseModel] | None = None
        self.known: list[str] = []
        self.value: Any = _MISSING

    @classmethod
    def walk(
        cls, model: type[BaseModel], raw: Any, loc: tuple[Any, ...], names: dict[str, str]
    ) -> _Place:
        place, parts = cls(), []
        current: type[BaseModel] | None = model
        place.model, place.value = model, raw
        for part in loc:
            if current is None or not isinstance(part, str):
                break
            place.parent, place.known = place.key, sorted(current.model_fields)
            parts.append(part)
            place.key = names.get(".".join(parts), f"{place.key}.{part}".lstrip("."))
            place.last = part
            place.value = (
                place.value.get(part, _MISSING) if isinstance(place.value, dict) else _MISSING
            )
            place.field = current.model_fields.get(part)
            current = _model_of(place.field.annotation if place.field else None)
            place.model = current
        return place


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model class a field holds, or None for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _message(item: Any, place: _Place) -> str:
    if item["type"] == "cfg":
        on_model = place.model is not None or not place.key
        return item["msg"] if on_model else f"{place.key}: {item['msg']}"
    rule = _rule(place.field) if place.model is None else "a mapping { key : value ... }"
    if item["type"] == "missing":
        return f"{place.key} is required (allowed: {rule})"
    value = item.get("input") if place.value is _MISSING else place.value
    return f"{place.key} must be {rule or item['msg']} (got {_shown(value)})"


def _rule(field: FieldInfo | None) -> str:
    for meta in field.metadata if field else ():
        text = getattr(meta, "text", None)
        if isinstance(text, str):
            return text
    return ""


def _shown(value: Any) -> str:
    text = repr(value)
    text = text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return text
        return f"{text}: numbers are written without quotes"
    return text
