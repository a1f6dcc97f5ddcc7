"""argparse value types shared by every ``fuse-classify`` sub-command: bad values get one line.

Each type converts the text and checks its range; argparse then prints
``error: argument --x: must be <rule>, got <text>`` and exits with status 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def checked(kind: type, ok: Callable[[Any], bool], rule: str) -> Callable[[str], Any]:
    """An argparse type: ``kind(text)`` that must satisfy ``ok``, else "must be <rule>"."""

    def parse(text: str) -> Any:
        value = kind(text)
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its "invalid int value" message
    return parse


positive_int = checked(int, lambda v: v >= 1, "a positive integer")
positive_float = checked(float, lambda v: v > 0, "positive")
probability = checked(float, lambda v: 0.0 <= v <= 1.0, "within 0-1")
open_fraction = checked(float, lambda v: 0.0 < v < 1.0, "strictly between 0 and 1")


def name_and_path(text: str) -> tuple[str, str]:
    """``NAME=PATH`` -> ``(NAME, PATH)``."""
    name, sep, path = text.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise argparse.ArgumentTypeError(f"must be NAME=PATH, got {text!r}")
    return name.strip(), path.strip()


def device(text: str) -> str:
    """A device name this machine has (see :func:`iota2_spot_s2.devices.resolve_device`)."""
    from iota2_spot_s2.devices import resolve_device

    try:
        return str(resolve_device(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
