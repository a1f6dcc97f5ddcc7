"""The building blocks of the cfg schema: each says in words what it allows, and checks it.

A field of :mod:`~iota2_spot_s2.settings.schema` is ``Annotated[type, constraints, rule]``; the
rule's :attr:`text` is the ``must be <text>`` of the field's error message (see
:mod:`~iota2_spot_s2.settings.messages`), so the words and the check live on the same line.

- :class:`Rule`: words only (the constraints are pydantic's, e.g. ``Field(ge=64)``);
- :class:`OneOf`: a text among fixed choices;
- :class:`Words`: a list of names, given as a list or as one space-separated text;
- :class:`CfgPath`: a path, ``~`` and ``$VARS`` expanded, relative to the cfg's folder;
- :class:`PathMap`: a mapping of names (tiles) to such paths.

Paths are resolved against ``context["base"]`` of the validation (the cfg's folder); a model
built in Python without that context keeps relative paths as given.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import GetCoreSchemaHandler, ValidationInfo
from pydantic_core import PydanticCustomError, core_schema

#: Values of an optional path meaning "not set".
UNSET = (None, "", "None")


def cfg_error(message: str) -> PydanticCustomError:
    """An error whose message is shown as it is (after the key), instead of ``must be ...``."""
    return PydanticCustomError("cfg", "{message}", {"message": message})


def resolve_path(base: Path | None, value: Any) -> Path:
    """A cfg path value, ``~`` and ``$VARS`` expanded, relative ones taken from ``base``."""
    path = Path(os.path.expandvars(os.path.expanduser(str(value))))
    return path if path.is_absolute() or base is None else (base / path)


@dataclass(frozen=True)
class Rule:
    """What a field allows, in words: the ``must be ...`` of its error message."""

    text: str


@dataclass(frozen=True)
class OneOf:
    """A text among ``values`` (checked after the type)."""

    values: tuple[str, ...]

    @property
    def text(self) -> str:
        """``one of a, b, c``."""
        return "one of " + ", ".join(self.values)

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def _check(self, value: Any) -> Any:
        if value not in self.values:
            raise ValueError(self.text)
        return value


@dataclass(frozen=True)
class Words:
    """A non-empty list of names (a list, or one text of space-separated names).

    With ``values``, every name must be one of them; unknown names are listed in the error.
    """

    what: str
    values: tuple[str, ...] | None = None

    @property
    def text(self) -> str:
        """What the list holds, in words."""
        among = f" among {', '.join(self.values)}" if self.values else ""
        return f"a non-empty list of {self.what}{among}, as a list or one space-separated text"

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_wrap_validator_function(self._check, handler(source))

    def _check(self, value: Any, handler: Callable[[Any], Any]) -> Any:
        items = value.split() if isinstance(value, str) else value
        if isinstance(items, list):
            items = tuple(items)
        if isinstance(items, tuple) and not items:
            raise ValueError("empty")
        words = handler(items)
        unknown = [w for w in words if self.values is not None and w not in self.values]
        if unknown:
            allowed = ", ".join(self.values or ())
            raise cfg_error(f"unknown {', '.join(unknown)} (got {value!r}; allowed: {allowed})")
        return words


def _as_path(value: Any, info: ValidationInfo) -> Any:
    """A text path resolved from the cfg's folder; anything else is left for the type check."""
    if isinstance(value, str) and value.strip() and "\x00" not in value:
        base = (info.context or {}).get("base")
        return resolve_path(Path(base) if base is not None else None, value)
    return value


@dataclass(frozen=True)
class CfgPath:
    """A path written as text; ``optional``: ``None``, ``''`` or ``'None'`` mean "not set"."""

    optional: bool = False

    @property
    def text(self) -> str:
        """A path, in words."""
        text = "a path as text, relative ones from the cfg's folder"
        return text + (", or None" if self.optional else "")

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.with_info_before_validator_function(self._convert, handler(source))

    def _convert(self, value: Any, info: ValidationInfo) -> Any:
        if self.optional and (value is None or (isinstance(value, str) and value in UNSET)):
            return None
        return _as_path(value, info)


@dataclass(frozen=True)
class PathMap:
    """A mapping of names (e.g. tiles) to paths, each resolved like :class:`CfgPath`."""

    what: str

    @property
    def text(self) -> str:
        """The mapping, in words."""
        return f"a mapping of {self.what} to paths, such as {{ T31TCJ : 'spot.tif' }}"

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.with_info_before_validator_function(self._convert, handler(source))

    def _convert(self, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, dict):
            return value
        return {key: _as_path(path, info) for key, path in value.items()}
