"""The iota2 plugin on an iota2-shaped output tree (SIMULATED scene), through ``fuse-classify``.

The tree (``tests/data/iota2_tree/data.py``) holds what iota2 leaves after its classification:
sensor_data, ground truth, ``dataAppVal/`` learn/val polygons, ``classif/`` and ``final/``.
The three routes run as a user runs them: ``fuse-classify iota2 step|features|fuse CFG``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import config
import numpy as np
import pytest
import rasterio
from pyogrio.raw import read
from rasterio.features import rasterize

TREE = Path(__file__).parent / "data" / "iota2_tree" / "data.py"
spec = importlib.util.spec_from_file_location("iota2_tree_data", TREE)
assert spec is not None and spec.loader is not None
tree_data = importlib.util.module_from_spec(spec)
sys.modules["iota2_tree_data"] = tree_data
spec.loader.exec_module(tree_data)
TILE = tree_data.TILE


def fuse_classify(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iota2_spot_s2.cli", *args],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory):
    tree = tree_data.build(tmp_path_factory.mktemp("iota2"))
    outputs = {}
    for route in ("step", "features", "fuse"):
        result = fuse_classify("iota2", route, str(tree.cfg))
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[route] = result.stdout
    return tree, outputs


def _open(path: Path):
    assert path.is_file(), path
    return rasterio.open(path)


def _tile_grid(tree) -> tuple:
    grid = tree.scene.s2_grid
    return grid.crs, grid.transform, (grid.height, grid.width)


def _assert_on_tile_grid(tree, path: Path) -> None:
    with _open(path) as src:
        assert (src.crs, src.transform, (src.height, src.width)) == _tile_grid(tree), path


def _spot(tree, kind: str) -> Path:
    names = {
        "classes": f"Classif_{TILE}_model_1_seed_0_SPOT.tif",
        "confidence": f"{TILE}_model_1_confidence_seed_0_SPOT.tif",
        "proba": f"PROBAMAP_{TILE}_model_1_seed_0_SPOT.tif",
    }
    return tree.output / "spot_s2" / "classif" / names[kind]  # never in iota2's classif/


def test_step_writes_iota2_names_on_the_tile_grid(routes) -> None:
    tree, _ = routes
    for kind in ("classes", "confidence", "proba"):
        _assert_on_tile_grid(tree, _spot(tree, kind))
    with _open(_spot(tree, "classes")) as src:
        assert src.dtypes[0] == "uint8" and src.nodata == 0
        classes = src.read(1)
        assert src.colormap(1)[1][:3] == (220, 40, 40)  # building's colour in colorFile.txt
        assert src.tags()["SPOT_IMAGE"] == str(tree.scene.spot_image)
    assert _spot(tree, "classes").with_suffix(".qml").is_file()
    with _open(_spot(tree, "confidence")) as src:
        assert src.dtypes[0] == "float32"
        confidence = src.read(1)
    with _open(_spot(tree, "proba")) as src:
        assert src.count == len(tree.codes) and src.dtypes[0] == "uint16"
        assert [int(src.tags(b)["code"]) for b in range(1, src.count + 1)] == tree.codes
        proba = src.read().astype(np.int64)
    assert set(np.unique(classes)) <= set(tree.codes)  # the scene is covered: no nodata
    assert confidence.min() > 0.0 and confidence.max() <= 1.0
    assert proba.max() <= 1000 and np.abs(proba.sum(axis=0) - 1000).max() <= len(tree.codes)
    # class order: band k is the class of code codes[k] (the map's class has the top band;
    # rounding to 0-1000 may tie it with another)
    band = np.searchsorted(tree.codes, classes)
    chosen = np.take_along_axis(proba, band[None], axis=0)[0]
    np.testing.assert_array_equal(chosen, proba.max(axis=0))
    assert (np.asarray(tree.codes)[proba.argmax(axis=0)] == classes).mean() > 0.95
    np.testing.assert_allclose(proba.max(axis=0) / 1000, confidence, atol=1e-3)


def test_step_probabilities_are_the_spot_map_averaged_per_10m_pixel(routes) -> None:
    tree, _ = routes
    spot_proba = tree.output / "spot_s2" / TILE / "maps" / "fcn_seed_0_proba.tif"
    with _open(spot_proba) as src:
        fine = src.read().astype(np.float64) / 1000
        fine_transform = src.transform
    with _open(_spot(tree, "proba")) as src:
        coarse = src.read().astype(np.float64) / 1000
        coarse_transform = src.transform
    # independent: mean over the 1.5 m pixels whose centre falls in each 10 m pixel
    rows, cols = np.mgrid[0 : fine.shape[1], 0 : fine.shape[2]]
    x, y = fine_transform @ (cols + 0.5, rows + 0.5)
    ccol, crow = ~coarse_transform @ (x, y)
    index = np.floor(crow).astype(int) * coarse.shape[2] + np.floor(ccol).astype(int)
    counts = np.bincount(index.ravel(), minlength=coarse[0].size)
    for k in range(coarse.shape[0]):
        mean = np.bincount(index.ravel(), fine[k].ravel(), minlength=coarse[0].size) / counts
        error = np.abs(mean.reshape(coarse[0].shape) - coarse[k])
        assert np.median(error) < 0.02 and error.max() < 0.25, k


def test_step_holds_iota2_validation_polygons_out_of_training(routes) -> None:
    tree, _ = routes
    meta, _, geometry, _ = read(tree.val)
    from shapely import from_wkb

    split_path = tree.output / "spot_s2" / TILE / "reference_seed_0" / "split.tif"
    with _open(split_path) as src:
        split = src.read(1)
        inside = rasterize(
            [(from_wkb(g), 1) for g in geometry], out_shape=split.shape,
            transform=src.transform, fill=0, dtype="uint8",
        ).astype(bool)  # fmt: skip
    assert inside.sum() > 0
    assert not np.isin(split[inside], (1, 2)).any()  # never train nor validation
    assert (split[~inside] == 1).any()


def test_feature_route_writes_a_user_feat_tree_and_a_cfg_that_registers_it(routes) -> None:
    tree, outputs = routes
    root = tree.output / "spot_s2" / "userFeat" / TILE
    proba, texture = root / f"{TILE}_SPOT_FCN_PROBA.tif", root / f"{TILE}_SPOT_TEXTURE.tif"
    for path in (proba, texture):
        _assert_on_tile_grid(tree, path)
        with _open(path) as src:
            assert src.nodata is None  # iota2 wants userFeat rasters without nodata
            assert np.isfinite(src.read()).all()
    with _open(proba) as src, _open(_spot(tree, "proba")) as step:
        np.testing.assert_array_equal(src.read(), step.read())
    with _open(texture) as src:
        assert src.count == 11
        assert src.descriptions[0] == "B0_mean" and src.descriptions[-1] == "valid_fraction"
        np.testing.assert_allclose(src.read(11), 1.0, atol=1e-6)  # SPOT covers the tile
    cfg_path = tree.output / "spot_s2" / "iota2_feature_fusion.cfg"
    assert str(cfg_path) in outputs["features"]
    cfg = config.Config(str(cfg_path)).as_dict()
    assert cfg["chain"]["user_feat_path"] == str(tree.output / "spot_s2" / "userFeat")
    patterns = cfg["userFeat"]["patterns"].split(",")
    assert patterns == ["SPOT_FCN_PROBA", "SPOT_TEXTURE"]
    assert all(any(p in f.name for f in root.iterdir()) for p in patterns)  # iota2's lookup
    module = Path(cfg["external_features"]["module"])
    assert module.is_file()
    spec = importlib.util.spec_from_file_location("ext", module)
    assert spec is not None and spec.loader is not None
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
    # only what adds to the userFeat bands: the S2-vs-SPOT NDVI gap (4-band SPOT image)
    assert cfg["external_features"]["functions"].split() == ["get_spot_s2_ndvi_gap"]
    for name in cfg["external_features"]["functions"].split():
        assert callable(getattr(ext, name))
    check = fuse_classify("iota2", "check", str(cfg_path))
    assert check.returncode == 0, check.stderr


def test_texture_means_and_deviations_match_the_spot_pixels(routes) -> None:
    tree, _ = routes
    texture = tree.output / "spot_s2" / "userFeat" / TILE / f"{TILE}_SPOT_TEXTURE.tif"
    with _open(tree.scene.spot_image) as src:
        spot = src.read().astype(np.float64)
    with _open(texture) as src:
        values = src.read().astype(np.float64)
    # a 10 m pixel whose row and column are multiples of 3 starts on a SPOT pixel edge and
    # covers 6 whole 1.5 m pixels plus 2/3 of a 7th, in each direction: area weights
    w = np.array([1, 1, 1, 1, 1, 1, 2 / 3])
    weights = np.outer(w, w) / np.outer(w, w).sum()
    for row, col in [(0, 0), (3, 9), (12, 18), (21, 6)]:
        r0, c0 = row * 20 // 3, col * 20 // 3
        block = spot[:, r0 : r0 + 7, c0 : c0 + 7]
        for b in range(4):
            mean = (weights * block[b]).sum()
            std = np.sqrt(max((weights * block[b] ** 2).sum() - mean**2, 0))
            assert values[2 * b, row, col] == pytest.approx(mean, rel=0.01)
            assert values[2 * b + 1, row, col] == pytest.approx(std, rel=0.05, abs=1.0)


def _fused(tree, kind: str) -> Path:
    names = {
        "classes": f"spot_s2/classif/Classif_{TILE}_model_1_seed_0_DS.tif",
        "confidence": f"spot_s2/classif/{TILE}_model_1_confidence_seed_0_DS.tif",
        "proba": f"spot_s2/classif/PROBAMAP_{TILE}_model_1_seed_0_DS.tif",
        "choice": f"spot_s2/classif/DSchoice_{TILE}_model_1_seed_0.tif",
    }
    return tree.output / names[kind]


def _band(path: Path, band: int = 1) -> np.ndarray:
    with _open(path) as src:
        return src.read(band)


def test_decision_route_writes_ds_outputs_and_a_choice_map(routes) -> None:
    tree, outputs = routes
    for kind in ("classes", "confidence", "proba", "choice"):
        _assert_on_tile_grid(tree, _fused(tree, kind))
    with _open(_fused(tree, "classes")) as src:
        assert src.tags()["FUSION_RULE"] == "dempster_shafer_otb"
        assert src.dtypes[0] == "uint8"
    with _open(_fused(tree, "proba")) as src:
        assert src.count == len(tree.codes) and src.read().max() <= 1000
    confidence = _band(_fused(tree, "confidence"))
    assert confidence.dtype == np.float32 and confidence.min() >= 0 and confidence.max() <= 1
    fused, choice = _band(_fused(tree, "classes")), _band(_fused(tree, "choice"))
    spot = _band(_spot(tree, "classes"))
    iota2 = _band(tree.output / "classif" / f"Classif_{TILE}_model_1_seed_0.tif")
    assert set(np.unique(choice)) <= {0, 1, 2, 3}
    agree = spot == iota2
    assert (choice[agree] == 1).all() and (fused[agree] == spot[agree]).all()
    assert (fused[choice == 2] == spot[choice == 2]).all()  # first source: the SPOT FCN
    assert (fused[choice == 3] == iota2[choice == 3]).all()  # second source: iota2
    assert "masses from half of iota2's validation polygons" in outputs["fuse"]
    assert "fused" in outputs["fuse"] and "iota2" in outputs["fuse"]


def test_decision_route_dempster_shafer_equals_otb(routes, tmp_path: Path, need_otb) -> None:
    """Our labels-DS on the two class maps equals OTB FusionOfClassifications with the masses.

    The pixels are the route's own mass half (``_halves``); the confusion matrices are counted
    here and OTB fuses the two class maps with them.
    """
    import json

    from iota2_spot_s2.fusion import otb_fusion_of_classifications

    tree, _ = routes
    report = tree.output / "spot_s2" / TILE / "iota2_fusion" / "seed_0_dempster_shafer_otb.json"
    data = json.loads(report.read_text())
    assert set(data["scores"]) == {"spot", "iota2", "fused"}
    assert all(s["pixels"] > 0 for s in data["scores"].values())
    from iota2_spot_s2.iota2.decision import _halves
    from iota2_spot_s2.reference import rasterize_reference

    labels = rasterize_reference(tree.val, tree.scene.s2_grid, "code").labels
    halves = _halves(labels, 24.0 / 10.0, 0)
    spot = _spot(tree, "classes")
    iota2 = tree.output / "classif" / f"Classif_{TILE}_model_1_seed_0.tif"
    matrices = []
    for path in (spot, iota2):
        produced = _band(path)
        cm = np.zeros((len(tree.codes),) * 2, np.int64)
        for i, r in enumerate(tree.codes):
            for j, p in enumerate(tree.codes):
                cm[i, j] = ((labels == r) & (halves == 1) & (produced == p)).sum()
        matrices.append(cm)
    out = otb_fusion_of_classifications(
        [spot, iota2],
        tmp_path / "otb_ds.tif",
        method="dempstershafer",
        confusions=matrices,
        codes=tree.codes,
        mob="precision",
    )
    np.testing.assert_array_equal(_band(out), _band(_fused(tree, "classes")))


def test_decision_route_writes_the_complementarity_report(routes) -> None:
    """SPOT step vs iota2 (S2) vs fused, per class, on the held-out half of iota2's polygons:
    the report's F1 equal the route's own scores of the same maps on the same pixels."""
    import json

    tree, _ = routes
    work = tree.output / "spot_s2" / TILE / "iota2_fusion"
    route = json.loads((work / "seed_0_dempster_shafer_otb.json").read_text())["scores"]
    report = json.loads((work / "seed_0_dempster_shafer_otb" / "complementarity.json").read_text())
    assert report["data_kind"] == "simulated"
    assert report["primary"] == {"single": ["spot", "iota2"], "fused": "fused"}
    for entry in report["classes"]:
        for name in ("spot", "iota2", "fused"):
            expected = route[name]["per_class_f1"][str(entry["code"])]
            assert entry["maps"][name]["f1"] == pytest.approx(expected)
    assert report["choice"]["fused"]  # DSchoice shares per class
    assert (work / "seed_0_dempster_shafer_otb" / "complementarity.html").is_file()


class StandInContainer:
    """iota2's data container as documented: ``get_Sentinel2_<BAND>()`` -> (rows, cols, dates)
    and the userFeat bands ``get_userFeatures_<PATTERN>_band_<n>()`` -> (rows, cols)."""

    def __init__(self, ndvi: np.ndarray, user_feat: dict[str, np.ndarray]) -> None:
        self._ndvi = ndvi
        for pattern, bands in user_feat.items():
            for n, band in enumerate(bands):
                setattr(self, f"get_userFeatures_{pattern}_band_{n}", lambda b=band: b)

    def get_Sentinel2_NDVI(self) -> np.ndarray:  # noqa: N802 (iota2's getter name)
        return self._ndvi


def test_external_features_return_documented_shapes(routes) -> None:
    from iota2_spot_s2.iota2 import external_features as ext

    tree, _ = routes
    root = tree.output / "spot_s2" / "userFeat" / TILE
    with _open(root / f"{TILE}_SPOT_FCN_PROBA.tif") as src:
        proba = src.read()
    with _open(root / f"{TILE}_SPOT_TEXTURE.tif") as src:
        texture = src.read()
    rows, cols, dates = proba.shape[1], proba.shape[2], 7
    ndvi = np.random.default_rng(0).uniform(-0.2, 0.9, (rows, cols, dates)).astype(np.float32)
    box = StandInContainer(ndvi, {"SPOT_FCN_PROBA": proba, "SPOT_TEXTURE": texture})
    array, labels = ext.get_spot_fcn_proba(box)
    assert array.shape == (rows, cols, len(tree.codes)) and len(labels) == len(tree.codes)
    np.testing.assert_allclose(array.sum(axis=2), 1.0, atol=0.01)
    array, labels = ext.get_spot_texture(box)
    assert array.shape == (rows, cols, 11) and len(labels) == 11
    array, labels = ext.get_spot_s2_ndvi_gap(box)
    assert array.shape == (rows, cols, dates) and len(labels) == dates
    assert array.dtype == np.float32 and np.isfinite(array).all()
    np.testing.assert_allclose(array[5, 7], ndvi[5, 7] - texture[8, 5, 7], rtol=1e-5)
    with pytest.raises(AttributeError, match="SPOT_TEXTURE"):
        ext.get_spot_texture(StandInContainer(ndvi, {}))


def test_fuse_with_a_probability_rule_and_reruns(routes) -> None:
    tree, _ = routes
    result = fuse_classify("iota2", "fuse", str(tree.cfg), "--rule", "mean")
    assert result.returncode == 0, result.stderr[-2000:]
    with _open(_fused(tree, "classes")) as src:
        assert src.tags()["FUSION_RULE"] == "mean"
    spot = _band(_spot(tree, "proba")).astype(float)  # band 1
    with (
        _open(_fused(tree, "proba")) as fused,
        _open(tree.output / "classif" / f"PROBAMAP_{TILE}_model_1_seed_0.tif") as iota2,
    ):
        expected = (spot + iota2.read(1).astype(float)) / 2
        assert np.abs(fused.read(1) - expected).max() <= 2  # mean of the two, rounded
    again = fuse_classify("iota2", "fuse", str(tree.cfg))  # the configured rule again
    assert again.returncode == 0, again.stderr[-2000:]
    with _open(_fused(tree, "classes")) as src:
        assert src.tags()["FUSION_RULE"] == "dempster_shafer_otb"


def test_fuse_on_dask_workers_writes_the_one_process_maps(routes, two_workers) -> None:
    """``iota2 fuse --scheduler``: the windows run as tasks on the cluster, same maps."""
    tree, _ = routes
    assert fuse_classify("iota2", "fuse", str(tree.cfg)).returncode == 0  # one process
    kinds = ("classes", "confidence", "proba", "choice")
    expected = {kind: _band(_fused(tree, kind)) for kind in kinds}
    for kind in kinds:
        _fused(tree, kind).unlink()
    before = two_workers.scheduler.transition_counter
    address = two_workers.scheduler_address
    result = fuse_classify("iota2", "fuse", str(tree.cfg), "--scheduler", address)
    assert result.returncode == 0, result.stderr[-2000:]
    assert two_workers.scheduler.transition_counter > before, "no task ran on the cluster"
    for kind, values in expected.items():
        np.testing.assert_array_equal(_band(_fused(tree, kind)), values, err_msg=kind)


def test_fuse_before_the_step_is_one_clear_error(tmp_path: Path, routes) -> None:
    tree, _ = routes
    text = tree.cfg.read_text().replace(str(tree.output), str(tmp_path / "empty"))
    cfg = tmp_path / "other.cfg"
    cfg.write_text(text)
    (tmp_path / "empty").mkdir()
    result = fuse_classify("iota2", "fuse", str(cfg))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "fuse-classify: error:" in lines[0]
    assert "_SPOT.tif" in lines[0] and "run 'fuse-classify iota2 step' first" in lines[0]
    assert not (tmp_path / "empty" / "classif").exists()


def test_soften_gives_the_confidence_to_the_chosen_class(tmp_path: Path) -> None:
    from iota2_spot_s2.grid import Grid
    from iota2_spot_s2.iota2.decision import soften

    grid = Grid.from_bounds("EPSG:2154", 0, 0, 30, 20, 10)
    classes, conf = tmp_path / "c.tif", tmp_path / "f.tif"
    for path, array, dtype in (
        (classes, np.array([[3, 7, 0], [9, 3, 3]]), "uint8"),
        (conf, np.array([[0.8, 0.5, 0.9], [1.0, 0.2, 0.6]]), "float32"),
    ):
        with rasterio.open(path, "w", **grid.profile(driver="GTiff", count=1, dtype=dtype)) as d:
            d.write(array.astype(dtype), 1)
    out = soften(classes, conf, [3, 7, 9], grid, tmp_path / "soft.tif")
    with _open(out) as src:
        p = src.read()
    np.testing.assert_allclose(p[:, 0, 0], [0.8, 0.1, 0.1], atol=1e-6)
    np.testing.assert_allclose(p[:, 0, 1], [0.25, 0.5, 0.25], atol=1e-6)
    np.testing.assert_allclose(p[:, 0, 2], [0, 0, 0])  # class 0: no data
    np.testing.assert_allclose(p[:, 1, 0], [0, 0, 1], atol=1e-6)


def test_a_rerun_of_the_step_resumes_instead_of_retraining(routes) -> None:
    tree, _ = routes
    work = tree.output / "spot_s2" / TILE
    kept = [work / "models" / "fcn_seed_0.pt", work / "maps" / "fcn_seed_0_proba.tif"]
    before = [p.stat().st_mtime_ns for p in kept]
    proba = _band(_spot(tree, "proba"))
    result = fuse_classify("iota2", "step", str(tree.cfg))
    assert result.returncode == 0, result.stderr[-2000:]
    assert [p.stat().st_mtime_ns for p in kept] == before  # neither retrained nor remapped
    np.testing.assert_array_equal(_band(_spot(tree, "proba")), proba)


def test_a_probamap_over_fewer_classes_is_spread_onto_the_fcn_classes(
    tmp_path: Path, routes
) -> None:
    from iota2_spot_s2.grid import Grid
    from iota2_spot_s2.iota2.decision import expand_probamap, iota2_learnt_codes
    from iota2_spot_s2.settings import load_config

    tree, _ = routes
    _, _, _, values = read(tree.learn, columns=["code"], read_geometry=False)
    learnt = iota2_learnt_codes(load_config(tree.cfg), TILE, 0)
    assert learnt == sorted(set(int(v) for v in values[0]))
    grid = Grid.from_bounds("EPSG:2154", 0, 0, 20, 10, 10)
    proba = tmp_path / "p.tif"
    with rasterio.open(proba, "w", **grid.profile(driver="GTiff", count=2, dtype="uint16")) as d:
        d.write(np.array([[[700, 0]], [[300, 1000]]], np.uint16))
    out = expand_probamap(proba, [3, 9], [3, 7, 9], grid, tmp_path / "e.tif")
    with _open(out) as src:
        np.testing.assert_allclose(src.read()[:, 0, :], [[0.7, 0.0], [0.0, 0.0], [0.3, 1.0]])
    with pytest.raises(Exception, match="classes \\[5\\]"):
        expand_probamap(proba, [3, 5], [3, 7, 9], grid, tmp_path / "f.tif")
