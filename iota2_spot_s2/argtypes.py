"""argparse value types shared by every ``fuse-classify`` sub-command: bad values get one line.

Each type converts the text and checks its range; argparse then prints
``error: argument --x: must be <rule>, got <text>`` and exits with status 2.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path
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


#: What ``--scheduler`` and the cfg key ``spot_s2_fusion.scheduler`` accept (one rule for both).
SCHEDULER_PATTERN = r"^(local|(tcp|tls|inproc|ucx|ws|wss)://\S+|.+\.json)$"


def scheduler(text: str) -> str:
    """``local``, a dask scheduler address (``tcp://``, ``tls://``...) or a scheduler file."""
    if not re.match(SCHEDULER_PATTERN, text):
        raise argparse.ArgumentTypeError(f"must be 'local', an address such as tcp://host:8786 "
                                         f"or a scheduler .json, got {text!r}")  # fmt: skip
    if text.endswith(".json"):
        if not Path(text).expanduser().is_file():
            raise argparse.ArgumentTypeError(f"scheduler file {text!r} does not exist")
        return str(Path(text).expanduser())
    return text


def device(text: str) -> str:
    """A device name this machine has (see :func:`iota2_spot_s2.devices.resolve_device`)."""
    from iota2_spot_s2.devices import resolve_device

    try:
        return str(resolve_device(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
