"""``fuse-classify train`` / ``evaluate`` as a user runs them: user splits, validation polygons,
per-checkpoint reference products, logs off a terminal, learning curves, label-raster nodata,
unmapped pixels and block-bootstrap intervals."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from iota2_spot_s2.reference import TRAIN, VAL
from tests.test_cli import assert_one_line_error, fuse_classify
from tests.test_training import make_scene

TRANSFORM = from_origin(600_000.0, 6_500_000.0, 1.5, 1.5)


def write(
    path: Path, array: np.ndarray, *, nodata: float | None = None, crs: str = "EPSG:2154"
) -> Path:
    array = array if array.ndim == 3 else array[None]
    with rasterio.open(path, "w", driver="GTiff", width=array.shape[2], height=array.shape[1],
                       count=array.shape[0], dtype=array.dtype, crs=crs, transform=TRANSFORM,
                       nodata=nodata) as dst:  # fmt: skip
        dst.write(array)
    return path


def scene_files(tmp_path: Path) -> tuple[Path, Path, Path, np.ndarray, np.ndarray]:
    image, labels, split = make_scene(size=64)
    return (write(tmp_path / "image.tif", image), write(tmp_path / "labels.tif", labels, nodata=0),
            write(tmp_path / "split.tif", split), labels, split)  # fmt: skip


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def test_train_with_a_user_split_keeps_products_per_checkpoint(tmp_path: Path) -> None:
    image, labels_path, split_path, labels, split = scene_files(tmp_path)
    out = tmp_path / "models"
    common = ("--image", str(image), "--reference", str(labels_path), "--split", str(split_path),
              "--crop", "32", "--batch-size", "2")  # fmt: skip
    fcn = fuse_classify("train", *common, "--steps", "4", "--out", str(out / "fcn.pt"))
    assert fcn.returncode == 0, fcn.stderr
    patch = fuse_classify("train", *common, "--model", "patch_cnn", "--steps", "2",
                          "--out", str(out / "patch.pt"))  # fmt: skip
    assert patch.returncode == 0, patch.stderr
    assert "stopped (step_budget)" in fcn.stdout and "every VAL pixel" in fcn.stdout
    # off a terminal every round is logged, then the stop reason
    assert "round 1: step" in fcn.stderr and "stopped (step_budget) after 4 steps" in fcn.stderr
    for stem in ("fcn", "patch"):  # two models in one folder: two reference folders
        written = read(out / f"{stem}_reference" / "split.tif")
        np.testing.assert_array_equal(written, np.where(labels > 0, split, 0))
        np.testing.assert_array_equal(read(out / f"{stem}_reference" / "labels.tif"), labels)
    curve = json.loads((out / "fcn_curve.json").read_text())
    assert curve["model"] == "fcn" and curve["budget"]["max_steps"] == 4
    assert curve["rounds"][-1]["step"] == 4 and curve["final_validation"]["pixels"] > 0
    assert (out / "fcn_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "patch_curve.json").read_text())["rounds"][-1]["step"] == 2


def test_train_with_validation_polygons(tmp_path: Path) -> None:
    image, labels_path, _, labels, _ = scene_files(tmp_path)
    val = np.zeros_like(labels)
    val[40:, 40:] = labels[40:, 40:]
    val_path = write(tmp_path / "val.tif", val, nodata=0)
    train_labels = labels.copy()
    train_labels[40:, 40:] = 0
    ref_path = write(tmp_path / "train_labels.tif", train_labels, nodata=0)
    result = fuse_classify("train", "--image", str(image), "--reference", str(ref_path),
                           "--val-reference", str(val_path), "--crop", "32", "--steps", "2",
                           "--out", str(tmp_path / "m" / "fcn.pt"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    split = read(tmp_path / "m" / "fcn_reference" / "split.tif")
    np.testing.assert_array_equal(split == VAL, val > 0)
    np.testing.assert_array_equal(split == TRAIN, train_labels > 0)


def test_train_refuses_bad_budgets_and_splits_before_writing(tmp_path: Path) -> None:
    image, labels_path, split_path, _, split = scene_files(tmp_path)
    out = tmp_path / "m" / "fcn.pt"
    base = ("train", "--image", str(image), "--reference", str(labels_path), "--out", str(out))
    for flag in (("--steps", "0"), ("--minutes", "-1"), ("--epochs", "0"), ("--crop", "0")):
        result = fuse_classify(*base, *flag)
        assert result.returncode == 2 and "Traceback" not in result.stderr, flag
    bad = write(tmp_path / "bad_split.tif", np.where(split == TRAIN, 7, split).astype(np.uint8))
    line = assert_one_line_error(fuse_classify(*base, "--split", str(bad)), bad)
    assert "0-3" in line
    other_crs = write(tmp_path / "utm_split.tif", split, crs="EPSG:32631")
    line = assert_one_line_error(fuse_classify(*base, "--split", str(other_crs)), other_crs)
    assert "EPSG:32631" in line
    no_val = write(tmp_path / "no_val.tif", np.where(split == VAL, TRAIN, split).astype(np.uint8))
    line = assert_one_line_error(fuse_classify(*base, "--split", str(no_val)), no_val)
    assert "validation" in line
    line = assert_one_line_error(fuse_classify(*base, "--crop", "30"), "crop")
    assert "multiple of 8" in line
    assert not out.exists()


def test_train_help_explains_every_option() -> None:
    result = fuse_classify("train", "--help")
    assert result.returncode == 0
    body = result.stdout.split("options:")[1]
    entries = re.split(r"\n(?=  -)", body.strip("\n"))  # one entry per option
    names = {entry.split()[0].rstrip(",") for entry in entries}
    assert {"--split", "--val-reference", "--ignore-label", "--steps", "--schedule"} <= names
    for entry in entries:
        words = [w for w in entry.split() if not (w.startswith("-") or w.isupper() or "{" in w)]
        assert len(words) >= 2, entry  # a description, not just the flag and its metavar


def test_evaluate_honours_label_nodata_and_counts_unmapped_as_errors(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    labels = rng.integers(1, 4, (64, 64)).astype(np.uint8)
    labels[:8] = 255  # the raster's nodata: never scored
    produced = labels.copy()
    produced[:8] = 1
    wrong = rng.random((64, 64)) < 0.1
    produced[wrong] = np.where(labels[wrong] == 1, 2, 1)
    produced[40:44, :] = 0  # unmapped labelled pixels: errors
    ref = write(tmp_path / "ref.tif", labels, nodata=255)
    map_ = write(tmp_path / "map.tif", produced, nodata=0)
    result = fuse_classify("evaluate", "--map", str(map_), "--reference", str(ref),
                           "--out", str(tmp_path / "eval"), "--bootstrap-block", "16")  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "eval" / "scores.json").read_text())
    scored = labels != 255
    expected_oa = float(((produced == labels) & scored).sum() / scored.sum())
    assert report["unmapped_labelled_pixels"] == int(((produced == 0) & scored).sum()) == 4 * 64
    assert abs(report["scores"]["overall_accuracy"] - expected_oa) < 1e-12
    low, high = report["bootstrap"]["overall_accuracy"]
    assert low <= expected_oa <= high and high - low < 0.2
    assert report["bootstrap"]["blocks"] == 16  # 16 blocks of 16 px, each with labelled rows
    assert set(report["bootstrap"]["f1"]) == {"1", "2", "3"}


def test_evaluate_refuses_a_label_raster_using_zero_as_a_class(tmp_path: Path) -> None:
    labels = np.tile(np.arange(6, dtype=np.uint8), (8, 2))  # codes 0..5, nodata 5
    ref = write(tmp_path / "ref.tif", labels, nodata=5)
    map_ = write(tmp_path / "map.tif", labels, nodata=0)
    result = fuse_classify("evaluate", "--map", str(map_), "--reference", str(ref),
                           "--out", str(tmp_path / "e"))  # fmt: skip
    line = assert_one_line_error(result, ref)
    assert "0 as a class" in line
    assert not (tmp_path / "e").exists()
