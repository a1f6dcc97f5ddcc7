"""The command line as a user meets it: one clear error line, exit status 2, no traceback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

GERS = "theia_l2a_gers/SENTINEL2B_20181023-105107-455_L2A_T30TYP_D_V1-9"


def fuse_classify(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iota2_spot_s2.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], path: Path) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fuse-classify: error: ")
    assert str(path) in lines[0]
    assert result.stdout == ""
    return lines[0]


def test_inspect_gers_product_prints_json(shared_data: Path) -> None:
    result = fuse_classify("inspect", str(shared_data / GERS))
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    text = json.dumps(info)
    for band in ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"):
        assert f'"{band}"' in text
    assert "2018-10-23" in text
    assert "1198" in text and "1170" in text


def test_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_product"
    assert_one_line_error(fuse_classify("inspect", str(missing)), missing)


def test_theia_folder_without_bands(tmp_path: Path) -> None:
    empty = tmp_path / "SENTINEL2A_20210101-105000-000_L2A_T31TCJ_C_V2-2"
    (empty / "MASKS").mkdir(parents=True)
    line = assert_one_line_error(fuse_classify("inspect", str(empty)), empty)
    assert "band" in line.lower()


def test_corrupt_tiff(tmp_path: Path, shared_data: Path) -> None:
    source = shared_data / "vhr_toulouse" / "tif_file.tif"
    broken = tmp_path / "truncated.tif"
    broken.write_bytes(source.read_bytes()[:4096])
    assert_one_line_error(fuse_classify("inspect", str(broken)), broken)


def test_vector_without_requested_field(tmp_path: Path, shared_data: Path) -> None:
    gpkg = tmp_path / "parcels.gpkg"
    shutil.copy(shared_data / "rpg_parcels_ain" / "import-gpkg-test.gpkg", gpkg)
    line = assert_one_line_error(fuse_classify("inspect", str(gpkg), "--field", "CODE_XYZ"), gpkg)
    assert "CODE_XYZ" in line


def test_raster_without_crs(tmp_path: Path) -> None:
    path = tmp_path / "no_crs.tif"
    profile = {
        "driver": "GTiff",
        "width": 8,
        "height": 8,
        "count": 1,
        "dtype": "uint16",
        "transform": from_origin(0, 8, 1, 1),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.ones((1, 8, 8), dtype="uint16"))
    line = assert_one_line_error(fuse_classify("inspect", str(path)), path)
    assert "CRS" in line


def test_run_with_a_bad_config_names_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.cfg"
    cfg.write_text("chain :\n{\n  output_path : 'o'\n}\n")
    line = assert_one_line_error(fuse_classify("run", str(cfg)), cfg)
    assert "list_tile" in line


@pytest.mark.parametrize(
    "command", ["inspect", "run", "demo", "train", "predict", "evaluate", "iota2"]
)
def test_every_command_has_help(command: str) -> None:
    result = fuse_classify(command, "--help")
    assert result.returncode == 0
    assert "usage: fuse-classify " + command in result.stdout
