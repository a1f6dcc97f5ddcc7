"""The style rules of docs/DESIGN.md, enforced: ruff (lint + import order) on the whole project."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing() -> None:
    # ruff from the interpreter's own environment: CI runs .venv/bin/python without activating it
    if importlib.util.find_spec("ruff") is None:
        pytest.fail("ruff is not installed (pip install -e '.[test]')")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "iota2_spot_s2",
            "tests",
            "benchmarks",
            "experiments",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-4000:]


def test_modules_stay_small() -> None:
    """DESIGN.md: files stay under ~400 lines (a little slack, never a god-module)."""
    sizes = {p: len(p.read_text().splitlines()) for p in (ROOT / "iota2_spot_s2").rglob("*.py")}
    too_long = {str(p.relative_to(ROOT)): n for p, n in sizes.items() if n > 450}
    assert not too_long
