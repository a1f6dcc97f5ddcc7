"""The style rules of docs/DESIGN.md, enforced: ruff (lint + import order) on the whole project."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing() -> None:
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed (pip install -e '.[test]')")
    done = subprocess.run(
        [ruff, "check", "iota2_spot_s2", "tests", "benchmarks", "experiments"],
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
