"""The statistics of the complementarity analysis against independent computations, and the
``fuse-classify complementarity`` command on small SIMULATED rasters (seeded)."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from iota2_spot_s2.analysis import stats
from iota2_spot_s2.analysis.strata import boundary_distance, object_area


@pytest.mark.parametrize("n01,n10", [(0, 0), (3, 9), (40, 22), (150, 151), (1, 30), (500, 430)])
def test_mcnemar_matches_statsmodels_exact_test(n01: int, n10: int) -> None:
    table = [[10, n01], [n10, 7]]
    expected = mcnemar(table, exact=True).pvalue if n01 + n10 else 1.0
    assert stats.mcnemar_exact(n01, n10) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_holm_matches_statsmodels() -> None:
    p = np.random.default_rng(3).random(12) ** 3
    assert np.allclose(stats.holm(p), multipletests(p, method="holm")[1])


def test_mcnemar_counts_take_omission_and_commission_of_the_class() -> None:
    ref = np.array([1, 1, 2, 2, 3, 0])
    a = np.array([1, 2, 1, 2, 3, 1])  # right, wrong(omits 1), wrong(commits 1), right, right
    b = np.array([2, 1, 2, 2, 1, 1])  # wrong, right, right, right, wrong(commits 1)
    # class 1 concerns pixels 0, 1, 2, 4 (the unlabelled last pixel never counts)
    assert stats.mcnemar_counts(ref, a, b, 1) == (2, 2)
    assert stats.mcnemar_counts(ref, a, b, 3) == (1, 0)


def test_shapley_values_sum_to_the_full_coalition_gain_and_match_enumeration() -> None:
    rng = np.random.default_rng(0)
    for players in (["spot", "s2"], ["spot", "s2", "s1"]):
        subsets = [frozenset(c) for r in range(len(players) + 1)
                   for c in itertools.combinations(players, r)]  # fmt: skip
        value = {s: float(rng.random()) for s in subsets}
        phi = stats.shapley_values(value, players)
        full = frozenset(players)
        assert sum(phi.values()) == pytest.approx(value[full] - value[frozenset()])
        # the subset-weight formula, computed independently of the permutation code
        n = len(players)
        for p in players:
            expected = 0.0
            for s in subsets:
                if p in s:
                    continue
                weight = (math.factorial(len(s)) * math.factorial(n - len(s) - 1)
                          / math.factorial(n))  # fmt: skip
                expected += weight * (value[s | {p}] - value[s])
            assert phi[p] == pytest.approx(expected)


def test_a_source_that_adds_nothing_gets_zero() -> None:
    value = {frozenset(): 0.1, frozenset({"spot"}): 0.8, frozenset({"s2"}): 0.1,
             frozenset({"spot", "s2"}): 0.8}  # fmt: skip
    phi = stats.shapley_values(value, ["spot", "s2"])
    assert phi == pytest.approx({"spot": 0.7, "s2": 0.0})


def _block(rng: np.random.Generator) -> np.ndarray:
    """A 3-class confusion of one block: its own class mix and error rate (heterogeneous)."""
    counts = rng.multinomial(rng.integers(50, 400), rng.dirichlet([1.0, 1.0, 1.0]))
    error = rng.uniform(0.05, 0.5)
    cm = np.zeros((3, 3), dtype=np.int64)
    for k, n in enumerate(counts):
        wrong = rng.binomial(n, error)
        cm[k, k] = n - wrong
        cm[k] += rng.multinomial(wrong, [0.5 if j != k else 0.0 for j in range(3)])
    return cm


def test_block_bootstrap_intervals_cover_the_true_f1_at_about_the_nominal_rate() -> None:
    rng = np.random.default_rng(42)
    population = np.stack([_block(rng) for _ in range(3000)])
    truth = stats.f1_per_class(population.sum(axis=0), 3)
    hits = np.zeros(3)
    reps = 200
    for r in range(reps):
        sample = population[rng.choice(len(population), size=60, replace=False)]
        boot = stats.paired_bootstrap_f1({"m": sample}, 3, n_boot=400, seed=r)["m"]
        for k in range(3):
            lo, hi = stats.percentile_interval(boot[:, k], 0.95)
            hits[k] += lo <= truth[k] <= hi
    coverage = hits / reps
    print(coverage)
    assert np.all(coverage >= 0.88) and np.all(coverage <= 0.99)


def test_object_area_and_boundary_distance_on_a_known_layout() -> None:
    labels = np.zeros((20, 20), dtype=np.uint16)
    labels[:, :10] = 1
    labels[:, 10:] = 2
    labels[2:4, 2:5] = 3  # a 6-pixel object inside class 1
    area = object_area(labels, pixel_area_m2=2.25)
    assert area[2, 2] == pytest.approx(6 * 2.25)
    assert area[0, 0] == pytest.approx((200 - 6) * 2.25)
    assert area[0, 19] == pytest.approx(200 * 2.25)
    dist = boundary_distance(labels, pixel_size_m=1.5)
    assert dist[10, 9] == 0 and dist[10, 10] == 0
    assert dist[10, 19] == pytest.approx(9 * 1.5)


# --- the command, through a subprocess --------------------------------------------------------


def _write(path: Path, array: np.ndarray, *, crs: str = "EPSG:2154") -> Path:
    profile = {
        "driver": "GTiff",
        "width": array.shape[1],
        "height": array.shape[0],
        "count": 1,
        "dtype": "uint8",
        "crs": crs,
        "transform": from_origin(500000, 6300000, 1.5, 1.5),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array.astype(np.uint8), 1)
    return path


@pytest.fixture(scope="module")
def simulated_maps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """SIMULATED: classes 1-2 are mapped well only by 'spot', 3-4 only by 's2'."""
    root = tmp_path_factory.mktemp("comp")
    rng = np.random.default_rng(7)
    ref = rng.integers(1, 5, (24, 24)).repeat(8, 0).repeat(8, 1)
    split = np.where(rng.random((12, 12)) < 0.5, 3, 1).repeat(16, 0).repeat(16, 1)

    def noisy(good: list[int]) -> np.ndarray:
        flip = rng.random(ref.shape) < np.where(np.isin(ref, good), 0.05, 0.45)
        return np.where(flip, rng.integers(1, 5, ref.shape), ref)

    spot, s2 = noisy([1, 2]), noisy([3, 4])
    fused = np.where(np.isin(spot, [1, 2]), spot, s2)
    choice = np.where(spot == s2, 1, np.where(fused == spot, 2, 3))
    return {name: _write(root / f"{name}.tif", arr) for name, arr in
            {"ref": ref, "split": split, "spot": spot, "s2": s2, "fused": fused,
             "choice": choice}.items()}  # fmt: skip


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "iota2_spot_s2.cli", "complementarity", *args],
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def _files_args(m: dict[str, Path], out: Path) -> list[str]:
    return [
        "--reference",
        str(m["ref"]),
        "--split",
        str(m["split"]),
        "--map",
        f"spot={m['spot']}",
        "--map",
        f"s2={m['s2']}",
        "--map",
        f"spot+s2:late={m['fused']}",
        "--choice",
        f"spot+s2:late={m['choice']}",
        "--data",
        "simulated",
        "--out",
        str(out),
        "--n-boot",
        "300",
        "--block-px",
        "16",
    ]


def test_command_writes_the_report_and_ranks_the_built_in_gains(simulated_maps, tmp_path) -> None:
    done = _cli(*_files_args(simulated_maps, tmp_path / "rep"))
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "rep" / "complementarity.json").read_text())
    verdicts = {e["code"]: e["verdict"] for e in report["classes"]}
    assert verdicts == {1: "gains from SPOT", 2: "gains from SPOT",
                        3: "gains from Sentinel-2", 4: "gains from Sentinel-2"}  # fmt: skip
    shares = report["choice"]["spot+s2:late"]
    assert shares["1"]["2"]["share"] > shares["1"]["3"]["share"]  # SPOT decides its classes
    assert "gains from SPOT" in done.stdout and "SIMULATED" in done.stdout
    html = (tmp_path / "rep" / "complementarity.html").read_text()
    assert "data:image/png;base64" in html


@pytest.mark.parametrize("change,needle", [
    (lambda a: a[:a.index("--map") + 4] + a[a.index("--choice"):], "--map"),
    (lambda a: [x for x in a if x not in ("--data", "simulated")], "--data"),
    (lambda a: [*a, "--alpha", "1.5"], "--alpha"),
    (lambda a: [x.replace("s2=", "s2+=") for x in a], "map name"),
])  # fmt: skip
def test_bad_arguments_give_one_line_and_no_report(simulated_maps, tmp_path, change, needle):
    done = _cli(*change(_files_args(simulated_maps, tmp_path / "rep")))
    assert done.returncode == 2
    assert needle in done.stderr and "Traceback" not in done.stderr
    assert len([line for line in done.stderr.splitlines() if "error:" in line]) == 1
    assert not (tmp_path / "rep").exists()


def test_a_map_on_another_grid_is_refused_by_name(simulated_maps, tmp_path) -> None:
    with rasterio.open(simulated_maps["s2"]) as src:
        other = _write(tmp_path / "s2_other_crs.tif", src.read(1), crs="EPSG:32631")
    args = [x.replace(str(simulated_maps["s2"]), str(other)) for x in
            _files_args(simulated_maps, tmp_path / "rep")]  # fmt: skip
    done = _cli(*args)
    assert done.returncode == 2 and "s2_other_crs.tif" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "rep").exists()
