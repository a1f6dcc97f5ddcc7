"""Bad arguments at the CLI's edge: refused at once, exit 2, no traceback, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.test_cli import assert_one_line_error, fuse_classify
from tests.test_cli_train import write

GERS = "theia_l2a_gers/SENTINEL2B_20181023-105107-455_L2A_T30TYP_D_V1-9"


def assert_refused(result: subprocess.CompletedProcess[str], words: str, out: Path) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and words in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(("flag", "value", "words"), [
    ("--tile", "0", "at least 64"), ("--tile", "-64", "at least 64"),
    ("--tile", "1", "at least 64"),
    ("--prefix", "../../x", "plain file-name prefix"), ("--prefix", "a/b", "plain file-name"),
    ("--device", "tpu", "not a device"), ("--device", "cuda:99", "CUDA device"),
])  # fmt: skip
def test_predict_refuses_bad_tiles_and_prefixes(tmp_path: Path, flag, value, words) -> None:
    out = tmp_path / "maps"
    result = fuse_classify("predict", "--checkpoint", str(tmp_path / "m.pt"), "--image",
                           str(tmp_path / "i.tif"), "--out", str(out), flag, value)  # fmt: skip
    assert_refused(result, words, out)


@pytest.mark.parametrize("command", [("run",), ("iota2", "step"), ("iota2", "fuse"), ("demo",)])
@pytest.mark.parametrize(("flag", "value", "words"), [
    ("--workers", "0", "--workers"), ("--scheduler", "ftp://x", "must be 'local'"),
    ("--scheduler", "nowhere.json", "does not exist"),
])  # fmt: skip
def test_cfg_commands_refuse_bad_cluster_flags(tmp_path: Path, command, flag, value, words) -> None:
    """--scheduler / --workers replace the cfg's keys on every command that makes maps."""
    out = tmp_path / "demo"
    where = ["--out", str(out)] if command == ("demo",) else [str(tmp_path / "run.cfg")]
    assert_refused(fuse_classify(*command, *where, flag, value), words, out)


@pytest.mark.parametrize("size", ["0", "-50", "1"])
def test_simulate_refuses_impossible_sizes(tmp_path: Path, size: str) -> None:
    out = tmp_path / "scene"
    assert_refused(fuse_classify("simulate", "--out", str(out), "--size-m", size), "120-20000", out)


def test_evaluate_refuses_a_probability_raster_and_a_subset_without_split(tmp_path: Path) -> None:
    labels = np.tile(np.array([1, 2, 3], np.uint8), (12, 4))
    ref = write(tmp_path / "ref.tif", labels, nodata=0)
    proba = write(tmp_path / "proba.tif", np.stack([labels * 100] * 3).astype(np.uint16))
    out = tmp_path / "eval"
    line = assert_one_line_error(fuse_classify("evaluate", "--map", str(proba), "--reference",
                                               str(ref), "--out", str(out)), proba)  # fmt: skip
    assert "not a class map" in line and not out.exists()
    result = fuse_classify("evaluate", "--map", str(ref), "--reference", str(ref),
                           "--subset", "test", "--out", str(out))  # fmt: skip
    assert "needs --split" in assert_one_line_error(result, "--subset") and not out.exists()


def test_train_refuses_a_reference_with_a_single_class(tmp_path: Path) -> None:
    from tests.test_training import make_scene

    image, labels, _ = make_scene()
    image_path = write(tmp_path / "image.tif", image)
    single = write(tmp_path / "one.tif", np.where(labels > 0, 10, 0).astype(np.uint16), nodata=0)
    result = fuse_classify("train", "--image", str(image_path), "--reference", str(single),
                           "--steps", "1", "--out", str(tmp_path / "m" / "fcn.pt"))  # fmt: skip
    assert "only one class" in assert_one_line_error(result, "labels")
    assert not (tmp_path / "m" / "fcn.pt").exists()


class _ClosedPipe:
    """A stdout whose reader has gone (``fuse-classify inspect ... | head``)."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


def test_inspect_into_a_closed_pipe_is_not_an_error(shared_data: Path, monkeypatch) -> None:
    from iota2_spot_s2 import cli

    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert cli.main(["inspect", str(shared_data / GERS)]) == 0
