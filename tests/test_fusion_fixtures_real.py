"""Decision-level fusion on the REAL DynamicEarthNet fixtures (experiments/fusion_fixtures_real)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from iota2_spot_s2.fusion import fuse_probabilities
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.sensors import open_spot

EXPERIMENT = Path(__file__).resolve().parents[1] / "experiments" / "fusion_fixtures_real.py"
HELD_OUT = 2  # the Sichuan sample: all four label classes (0-3) occur in it


@pytest.fixture(scope="module")
def exp():
    return load_experiment()


@pytest.fixture(scope="module")
def den(shared_data: Path) -> Path:
    root = shared_data / "fusion_fixtures" / "dynamicearthnet"
    assert root.is_dir(), f"missing {root}"
    return root


@pytest.fixture(scope="module")
def samples(exp, den):
    return exp.load_samples(den)


@pytest.fixture(scope="module")
def fold(exp, samples):
    return exp.run_fold(samples, HELD_OUT, seed=0, confusions="oob")


def test_every_sample_opens_and_shares_one_grid(den):
    folders = sorted(den.glob("sample_*"))
    assert len(folders) == 5
    for folder in folders:
        planets = sorted(folder.glob("planet_*.tif"))
        (s2_path,) = folder.glob("s2_*.tif")
        (label_path,) = folder.glob("label_*.tif")
        assert 30 <= len(planets) <= 31
        grid = Grid.from_raster(planets[0])
        assert grid.shape == (16, 16)
        assert grid.res == (3.0, 3.0)
        for path in planets:
            assert Grid.from_raster(path) == grid
            da = open_spot(path)
            assert da.shape == (4, 16, 16)
            assert np.isfinite(da.values).all()
        assert Grid.from_raster(label_path) == grid
        with rasterio.open(label_path) as src:
            label = src.read(1)
        assert set(np.unique(label)) <= {0, 1, 2, 3}
        # S2: same CRS and shape; the transform agrees to a few 1e-9 m, not bit for bit.
        s2_grid = Grid.from_raster(s2_path)
        assert s2_grid.crs == grid.crs
        assert s2_grid.shape == grid.shape
        assert s2_grid.transform.almost_equals(grid.transform, precision=1e-6)
        with rasterio.open(s2_path) as src:
            s2 = src.read()
        assert s2.shape == (12, 16, 16)
        assert (s2 > 0).all()


def test_loaded_samples_keep_band_order_and_shift_codes(exp, samples, den):
    assert [s.name for s in samples] == [p.name for p in sorted(den.glob("sample_*"))]
    sample = samples[HELD_OUT]
    folder = den / sample.name
    (s2_path,) = folder.glob("s2_*.tif")
    with rasterio.open(s2_path) as src:
        np.testing.assert_array_equal(sample.s2, src.read().astype(np.float32))
    (label_path,) = folder.glob("label_*.tif")
    with rasterio.open(label_path) as src:
        np.testing.assert_array_equal(sample.label, src.read(1).astype(np.int64) + 1)
    daily = []
    for path in sorted(folder.glob("planet_*.tif")):
        with rasterio.open(path) as src:
            daily.append(src.read().astype(np.float64))
    np.testing.assert_allclose(sample.planet, np.median(np.stack(daily), axis=0))
    assert sample.s2_offset_m < 1e-6


def test_fused_map_of_a_held_out_sample(exp, samples, fold):
    codes = np.asarray(exp.CODES)
    label = samples[HELD_OUT].label
    planet, s2 = fold["stacks"]["planet"], fold["stacks"]["s2"]
    for stack in (planet, s2):
        assert stack.shape == (len(codes), *label.shape)
        np.testing.assert_allclose(stack.sum(axis=0), 1.0, atol=1e-5)

    result = fold["results"]["mean"]
    assert set(np.unique(result.classes)) <= set(np.unique(label))
    assert set(np.unique(result.classes)) <= set(codes.tolist())

    # choice == 1 ("both") exactly where the two sources' own argmax agree
    planet_own = codes[np.argmax(planet, axis=0)]
    s2_own = codes[np.argmax(s2, axis=0)]
    np.testing.assert_array_equal(result.choice == 1, planet_own == s2_own)

    # mean rule == the average of the two stacks, computed independently
    average = (planet.astype(np.float64) + s2.astype(np.float64)) / 2.0
    np.testing.assert_allclose(result.probabilities, average, atol=1e-6)
    np.testing.assert_array_equal(result.classes, codes[np.argmax(average, axis=0)])

    # held for every fold with seed 0 when checked: mean fusion is not worse than both sources
    assert mean_fusion_oa_margin(exp, samples, fold) >= 0


def load_experiment():
    spec = importlib.util.spec_from_file_location("fusion_fixtures_real", EXPERIMENT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def mean_fusion_oa_margin(exp, samples, fold) -> float:
    """OA of the mean fusion on the held-out sample minus the lower of the two sources' OA
    (also driven by ``benchmarks/threshold_sweep.py`` over forest seeds)."""
    codes, label = np.asarray(exp.CODES), samples[HELD_OUT].label

    def oa(produced):
        return float(np.mean(produced == label))

    own = [oa(codes[np.argmax(fold["stacks"][s], axis=0)]) for s in ("planet", "s2")]
    return oa(fold["results"]["mean"].classes) - min(own)


def test_every_rule_gives_codes_on_the_held_out_sample(exp, samples, fold):
    allowed = set(exp.CODES) | {0}  # 0 = undecided (label rules)
    for rule in exp.RULES:
        classes = fold["maps"][f"late-{rule}"]
        assert classes.shape == samples[HELD_OUT].label.shape
        assert set(np.unique(classes)) <= allowed, rule
    for cm in fold["confusions"].values():
        assert cm.shape == (len(exp.CODES), len(exp.CODES))
        assert cm.sum() == sum(s.label.size for k, s in enumerate(samples) if k != HELD_OUT)


def test_fusion_of_the_two_stacks_via_the_public_api(exp, fold):
    stacks = [fold["stacks"]["planet"], fold["stacks"]["s2"]]
    again = fuse_probabilities(stacks, exp.CODES, "mean")
    np.testing.assert_array_equal(again.classes, fold["results"]["mean"].classes)
