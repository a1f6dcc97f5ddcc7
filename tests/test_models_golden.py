"""Golden outputs: a refactor must not silently change the models' predictions."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).parent / "data" / "models" / "make_golden.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("make_golden_models", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def golden():
    script = _load_script()
    stored = np.load(script.GOLDEN_PATH)
    return script, stored, script.golden_outputs()


def test_golden_file_is_small(golden) -> None:
    script, _, _ = golden
    assert script.GOLDEN_PATH.stat().st_size < 100_000


def test_golden_input_unchanged(golden) -> None:
    _, stored, current = golden
    np.testing.assert_allclose(current["input_sum"], stored["input_sum"], rtol=1e-10)
    np.testing.assert_allclose(current["input_sumsq"], stored["input_sumsq"], rtol=1e-10)
    np.testing.assert_array_equal(current["positions"], stored["positions"])


@pytest.mark.parametrize("name", ["patch_cnn", "fcn"])
def test_golden_logits_unchanged(golden, name: str) -> None:
    _, stored, current = golden
    assert stored[name].shape == (64, 10)
    assert np.ptp(stored[name]) > 0.1  # a degenerate (constant) golden would prove nothing
    np.testing.assert_allclose(current[name], stored[name], atol=1e-5, rtol=1e-4)
