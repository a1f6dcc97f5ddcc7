"""The main job end to end on a small SIMULATED scene, through the command line."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from iota2_spot_s2.evaluation import read_otb_confusion_csv
from iota2_spot_s2.nomenclature import read_nomenclature
from iota2_spot_s2.settings import PLUGIN_SECTION, format_cfg
from iota2_spot_s2.simulation import generate_scene


def fuse_classify(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iota2_spot_s2.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def chain_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("chain")
    scene = generate_scene(root / "scene", size_m=240.0, seed=3)
    recode = root / "sim_to_oso.csv"  # simulated classes -> OSO codes (hedge -> broadleaf)
    recode.write_text("source,target\n1,1\n2,4\n3,3\n4,16\n5,16\n6,6\n7,10\n8,13\n9,23\n")
    cfg = root / "run.cfg"
    cfg.write_text(
        format_cfg(
            {
                "chain": {
                    "output_path": str(root / "out"),
                    "list_tile": scene.tile,
                    "ground_truth": str(scene.reference),
                    "data_field": "code",
                    "nomenclature_path": str(scene.nomenclature),
                    "color_table": str(scene.color_file),
                    "s2_path": str(scene.sensor_data),
                },
                PLUGIN_SECTION: {
                    "spot_images": {scene.tile: str(scene.spot_image)},
                    "models": ["patch_cnn", "fcn"],
                    "split_block_m": 24.0,
                    "simulated": True,
                    "tile_size": 64,
                    "oso_product": True,
                    "product_mmu_ha": 0.02,
                    "product_recode": str(recode),
                    "training": {"epochs": 2, "iters_per_epoch": 2, "batch_size": 2, "crop": 64},
                },
            }
        )
    )
    first = fuse_classify("run", str(cfg))
    assert first.returncode == 0, first.stderr[-3000:]
    tile_dir = root / "out" / "spot_s2" / scene.tile
    return {
        "root": root,
        "cfg": cfg,
        "tile_dir": tile_dir,
        "stdout": Path(first.stdout),
        "scene_spot": scene.spot_image,
        "nomenclature": scene.nomenclature,
        "colors": scene.color_file,
    }


def _digest(path: Path) -> str:
    with rasterio.open(path) as src:
        return hashlib.sha256(src.read().tobytes()).hexdigest()


def test_chain_writes_maps_on_the_spot_grid_with_the_nomenclature_colours(chain_run) -> None:
    tile_dir = chain_run["tile_dir"]
    nom = read_nomenclature(chain_run["nomenclature"], chain_run["colors"])
    with rasterio.open(chain_run["scene_spot"]) as spot:
        grid = (spot.crs, spot.transform, spot.shape)
    for model in ("patch_cnn", "fcn"):
        with rasterio.open(tile_dir / "maps" / f"{model}_classes.tif") as src:
            assert (src.crs, src.transform, src.shape) == grid
            values = set(np.unique(src.read(1)).tolist())
            assert values <= set(nom.codes) | {0}
            cmap = src.colormap(1)
            for code in nom.codes:
                assert cmap[code][:3] == tuple(nom.colors[nom.codes.index(code)])
        with rasterio.open(tile_dir / "maps" / f"{model}_proba.tif") as src:
            assert src.count == len(nom.codes)
        assert (tile_dir / "maps" / f"{model}_classes.qml").is_file()
    assert (tile_dir / "maps_overview.png").stat().st_size > 10_000


def test_reported_scores_match_an_independent_count_on_the_test_blocks(chain_run) -> None:
    tile_dir = chain_run["tile_dir"]
    with rasterio.open(tile_dir / "reference" / "labels.tif") as src:
        labels = src.read(1)
    with rasterio.open(tile_dir / "reference" / "split.tif") as src:
        split = src.read(1)
    assert set(np.unique(split[labels == 0]).tolist()) == {0}
    shares = np.bincount(split[labels > 0], minlength=4)[1:] / (labels > 0).sum()
    assert np.all(shares > 0.05)  # every subset got blocks, even on a tiny scene
    with rasterio.open(tile_dir / "maps" / "fcn_classes.tif") as src:
        produced = src.read(1)
    ref_codes, prod_codes, matrix = read_otb_confusion_csv(
        tile_dir / "evaluation" / "spot_fcn" / "confusion.csv"
    )
    test = (split == 3) & (labels > 0) & (produced > 0)
    expected = np.zeros((len(ref_codes), len(prod_codes)), np.int64)
    for r, p in zip(labels[test], produced[test], strict=True):
        expected[ref_codes.index(int(r)), prod_codes.index(int(p))] += 1
    np.testing.assert_array_equal(matrix, expected)
    scores = json.loads((tile_dir / "evaluation" / "spot_fcn" / "scores.json").read_text())
    oa = scores.get("overall_accuracy", scores.get("scores", {}).get("overall_accuracy"))
    assert oa == pytest.approx(np.trace(expected) / expected.sum())


def test_comparison_table_says_simulated_and_rerun_resumes(chain_run) -> None:
    out = chain_run["tile_dir"].parent
    table = (out / "comparison.md").read_text()
    assert "simulated" in table
    assert "| spot:patch_cnn |" in table and "| spot:fcn |" in table
    before = _digest(chain_run["tile_dir"] / "maps" / "fcn_classes.tif")
    again = fuse_classify("run", str(chain_run["cfg"]))
    assert again.returncode == 0, again.stderr[-3000:]
    assert _digest(chain_run["tile_dir"] / "maps" / "fcn_classes.tif") == before
    assert json.loads((out / "comparison.json").read_text())["runs"][1]["model"] == "spot:fcn"


def test_run_writes_the_oso_product_of_each_strategy_and_keeps_it_on_rerun(chain_run) -> None:
    import pyogrio.raw
    from scipy import ndimage

    tile_dir = chain_run["tile_dir"]
    recode = {1: 1, 2: 4, 3: 3, 4: 16, 5: 16, 6: 6, 7: 10, 8: 13, 9: 23}
    for strategy in ("spot_patch_cnn", "spot_fcn"):
        folder = tile_dir / "product" / strategy
        with rasterio.open(tile_dir / "maps" / f"{strategy[5:]}_classes.tif") as src:
            ours = src.read(1)
        with rasterio.open(folder / "oso_classes.tif") as src:
            oso, pixel_area = src.read(1), abs(src.res[0] * src.res[1])
        expected = np.vectorize(lambda c: recode.get(int(c), 0))(ours)
        assert np.array_equal(oso, expected)  # recoded, not relabelled
        with rasterio.open(folder / "oso_classes_mmu.tif") as src:
            mmu = src.read(1)
        min_px = int(np.ceil(0.02 * 10_000 / pixel_area))
        for code in np.unique(mmu[mmu > 0]):
            patches, n = ndimage.label(mmu == code)
            sizes = np.bincount(patches.ravel())[1:]
            assert n and sizes.min() >= min_px, (strategy, code, sizes.min(), min_px)
        meta, _, _, fields = pyogrio.raw.read(folder / "oso_vector.gpkg", layer="oso")
        columns = dict(zip(meta["fields"], fields, strict=True))
        assert len(columns["class_code"]) > 0
        assert set(columns["class_code"].tolist()) <= set(recode.values())
        assert (columns["area_m2"] >= 0.02 * 10_000 - 1e-6).all()
    report = tile_dir / "product" / "spot_fcn" / "oso_product.json"
    stamp = report.stat().st_mtime_ns
    again = fuse_classify("run", str(chain_run["cfg"]))
    assert again.returncode == 0, again.stderr[-3000:]
    assert report.stat().st_mtime_ns == stamp  # resumed, not rewritten


def test_predict_in_bf16_through_the_cli_stays_close_to_fp32(chain_run, tmp_path: Path) -> None:
    """``--precision bf16`` (or its alias ``--bf16``) changes the arithmetic, not the map."""

    def predict(out: Path, *flags: str) -> dict[str, np.ndarray | dict[str, str]]:
        result = fuse_classify(
            "predict", "--checkpoint", str(chain_run["tile_dir"] / "models" / "fcn.pt"),
            "--image", str(chain_run["scene_spot"]), "--out", str(out), "--proba", *flags,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        with rasterio.open(out / "map_classes.tif") as src:
            classes, tags = src.read(1), src.tags()
        with rasterio.open(out / "map_proba.tif") as src:
            proba = src.read().astype(np.int32)
        return {"classes": classes, "proba": proba, "tags": tags}

    fp32 = predict(tmp_path / "fp32")
    bf16 = predict(tmp_path / "bf16", "--precision", "bf16")
    alias = predict(tmp_path / "alias", "--bf16")
    assert (fp32["tags"]["PRECISION"], bf16["tags"]["PRECISION"]) == ("fp32", "bf16")
    np.testing.assert_array_equal(alias["proba"], bf16["proba"])
    diff = np.abs(bf16["proba"] - fp32["proba"])  # 0-1000 probabilities
    assert diff.max() > 0  # bf16 really ran
    assert diff.mean() < 20
    assert (bf16["classes"] == fp32["classes"]).mean() > 0.9


def test_run_maps_in_the_cfg_map_precision(tmp_path: Path) -> None:
    """``spot_s2_fusion.map_precision`` reaches the maps of ``run`` (their PRECISION tag)."""
    scene = generate_scene(tmp_path / "scene", size_m=120.0, seed=5)
    cfg = tmp_path / "run.cfg"
    cfg.write_text(format_cfg({
        "chain": {"output_path": str(tmp_path / "out"), "list_tile": scene.tile,
                  "ground_truth": str(scene.reference), "data_field": "code"},
        PLUGIN_SECTION: {"spot_images": {scene.tile: str(scene.spot_image)}, "models": ["fcn"],
                         "strategies": ["spot"], "split_block_m": 24.0, "simulated": True,
                         "tile_size": 64, "map_precision": "bf16", "device": "cpu",
                         "training": {"epochs": 1, "iters_per_epoch": 1, "batch_size": 2,
                                      "crop": 64}},
    }))  # fmt: skip
    result = fuse_classify("run", str(cfg))
    assert result.returncode == 0, result.stderr[-3000:]
    maps = tmp_path / "out" / "spot_s2" / scene.tile / "maps"
    with rasterio.open(maps / "fcn_classes.tif") as src:
        assert src.tags()["PRECISION"] == "bf16"


def test_stage_commands_reproduce_the_chain(chain_run, tmp_path: Path) -> None:
    tile_dir = chain_run["tile_dir"]
    predicted = fuse_classify(
        "predict",
        "--checkpoint",
        str(tile_dir / "models" / "fcn.pt"),
        "--image",
        str(chain_run["scene_spot"]),
        "--out",
        str(tmp_path),
        "--tile",
        "96",
        "--nomenclature",
        str(chain_run["nomenclature"]),
        "--colors",
        str(chain_run["colors"]),
    )
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert _digest(tmp_path / "map_classes.tif") == _digest(tile_dir / "maps" / "fcn_classes.tif")
    evaluated = fuse_classify(
        "evaluate",
        "--map",
        str(tmp_path / "map_classes.tif"),
        "--reference",
        str(tile_dir / "reference" / "labels.tif"),
        "--split",
        str(tile_dir / "reference" / "split.tif"),
        "--out",
        str(tmp_path / "eval"),
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    ours = read_otb_confusion_csv(next((tmp_path / "eval").glob("*confusion.csv")))[2]
    chain = read_otb_confusion_csv(tile_dir / "evaluation" / "spot_fcn" / "confusion.csv")[2]
    assert ours.sum() == chain.sum()


def test_split_blocks_are_spread_over_unlabelled_pixels_of_the_block() -> None:
    from iota2_spot_s2.pipeline.prepared import spread_over_blocks

    split = np.zeros((4, 6), np.uint8)
    split[0, 0] = 1  # block (0, 0) has one labelled pixel, in TRAIN
    split[3, 5] = 3  # block (1, 2): TEST
    out = spread_over_blocks(split, 2)
    np.testing.assert_array_equal(out[:2, :2], 1)
    np.testing.assert_array_equal(out[2:, 4:], 3)
    assert out[:2, 2:].sum() == 0 and out[2:, :4].sum() == 0
