"""The SPOT external features and userFeat tree against the real iota2 2020 code.

iota2 2020 (``/work/shared/iota2_2020``, see its README) runs in a subprocess, with minimal
stand-in modules only for the imports our venv lacks (``otbApplication``, GDAL's bindings): its
``custom_numpy_features`` container (built from sensors parameters with the keys
``ServiceConfigFile.build_sensor_dict`` gives) runs the plugin's functions through ``process``,
as its sampling does, and its ``FileSearch_AND`` searches the userFeat tree.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from iota2_spot_s2.iota2 import external_features as ext
from tests.test_iota2_plugin import TILE, fuse_classify, routes  # noqa: F401 (fixture)

IOTA2_2020 = Path("/work/shared/iota2_2020")
CONFIG_04 = Path(__file__).resolve().parents[1] / ".venv" / "compat" / "config-0.4"
pytestmark = pytest.mark.skipif(not IOTA2_2020.is_dir(), reason="no iota2 2020 source")

PRELUDE = f"""
import json, sys, types
sys.path[:0] = [{str(IOTA2_2020)!r}, {str(CONFIG_04)!r}]
for name in ("otbApplication", "osgeo", "osgeo.gdal", "osgeo.ogr", "osgeo.osr",
             "osgeo.gdalconst", "gdal", "ogr", "osr"):
    sys.modules.setdefault(name, types.ModuleType(name))  # imports only
import numpy as np
"""

PROCESS = """
from iota2.Common.customNumpyFeatures import custom_numpy_features
tile, out, s2, uf, module, chunk_path, result = sys.argv[1:8]
common = dict(tile_name=tile, target_proj=32631, all_tiles=tile, write_dates_stack=None,
    extract_bands_flag=False, output_target_dir=None, keep_bands=None, i2_output_path=out,
    temporal_res=10, auto_date_flag=False, date_interp_min_user="20200101",
    date_interp_max_user="20200301", write_outputs_flag=False, features=["NDVI"],
    enable_gapfilling=True, hand_features_flag=False, hand_features=None, copy_input=True,
    rel_refl=False, keep_dupl=True, vhr_path=None, acorfeat=False,
    patterns=["SPOT_FCN_PROBA", "SPOT_TEXTURE"], working_resolution=None)
params = {"Sentinel_2": dict(common, image_directory=s2),
          "userFeat": dict(common, image_directory=uf)}
functions = ["get_spot_fcn_proba", "get_spot_texture", "get_spot_s2_ndvi_gap"]
cust = custom_numpy_features(tile, out, params, module, functions)
chunk = np.load(chunk_path)
data, labels = cust.process(chunk)
np.save(result, data)
getters = sorted(n for n in dir(cust) if n.startswith("get_Sentinel2_"))
print(json.dumps({"labels": [str(x) for x in labels], "getters": getters}))
"""


def run_2020(script: str, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + script, *args], capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read().astype(np.float32)


def test_iota2_2020_process_runs_every_plugin_function(routes, tmp_path: Path) -> None:  # noqa: F811
    tree, _ = routes
    user_feat = tree.output / "spot_s2" / "userFeat"
    proba = _read(user_feat / TILE / f"{TILE}_SPOT_FCN_PROBA.tif")
    texture = _read(user_feat / TILE / f"{TILE}_SPOT_TEXTURE.tif")
    rows, cols = proba.shape[1:]
    dates, s2_bands = 7, 10  # 2020-01-01 .. 2020-03-01 every 10 days; B2 .. B12
    rng = np.random.default_rng(0)
    ndvi = rng.uniform(-0.2, 0.9, (rows, cols, dates)).astype(np.float32)
    reflectances = rng.uniform(0, 3000, (rows, cols, s2_bands * dates)).astype(np.float32)
    others = rng.uniform(-1000, 1000, (rows, cols, 2 * dates)).astype(np.float32)
    # iota2 2020's stack: S2 bands date by date, NDVI x 1000, NDWI, Brightness, then userFeat
    chunk = np.concatenate(
        [reflectances, np.round(ndvi * 1000), others, proba.transpose(1, 2, 0),
         texture.transpose(1, 2, 0)], axis=2,
    )  # fmt: skip
    np.save(tmp_path / "chunk.npy", chunk)
    s2 = tmp_path / "s2"
    (s2 / TILE).mkdir(parents=True)
    info = run_2020(
        PROCESS, TILE, str(tmp_path / "out"), str(s2), str(user_feat), ext.__file__,
        str(tmp_path / "chunk.npy"), str(tmp_path / "result.npy"),
    )  # fmt: skip
    assert "get_Sentinel2_NDVI" in info["getters"]
    assert not any("userFeatures" in g for g in info["getters"])  # 2020 has none
    data = np.load(tmp_path / "result.npy")
    k = len(tree.codes)
    assert data.shape == (rows, cols, chunk.shape[2] + k + 11 + dates)
    assert np.isfinite(data).all()
    new = data[:, :, chunk.shape[2] :]
    np.testing.assert_allclose(new[:, :, :k], proba.transpose(1, 2, 0) / 1000, rtol=1e-6)
    np.testing.assert_array_equal(new[:, :, k : k + 11], texture.transpose(1, 2, 0))
    gap = new[:, :, k + 11 :]
    covered = texture[-1] > 0
    expected = np.where(covered[:, :, None], ndvi - texture[-3][:, :, None], 0.0)
    np.testing.assert_allclose(gap, expected, atol=2e-3)  # iota2's NDVI rounded to 1/1000
    assert info["labels"] == [
        *(f"fcn_proba_{i}" for i in range(k)), *(f"texture_{i}" for i in range(11)),
        *(f"ndvi_gap_{d + 1}" for d in range(dates)),
    ]  # fmt: skip


@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_ndvi_gap_is_in_ndvi_units_whatever_the_getter_scale(scale: float) -> None:
    ndvi = np.array([[[-0.2, 0.8], [0.5, 0.0]]] * 2, np.float32)  # (2, 2, 2 dates)
    texture = np.zeros((2, 2, 11), np.float32)
    texture[:, :, -3], texture[:, :, -1] = 0.3, [[1.0, 0.0]] * 2

    class Box:
        def get_Sentinel2_NDVI(self) -> np.ndarray:  # noqa: N802 (iota2's getter name)
            return ndvi * scale

    box = Box()
    for n in range(11):
        setattr(box, f"get_userFeatures_SPOT_TEXTURE_band_{n}", lambda n=n: texture[:, :, n])
    gap, _ = ext.get_spot_s2_ndvi_gap(box)
    np.testing.assert_allclose(gap[0, 0], ndvi[0, 0] - 0.3, atol=1e-6)
    np.testing.assert_array_equal(gap[0, 1], 0.0)  # not covered by SPOT


SEARCH = """
from iota2.Common.FileUtils import FileSearch_AND
root, tile = sys.argv[1:3]
found = {p: FileSearch_AND(root + "/" + tile, True, p) for p in ("SPOT_FCN_PROBA", "SPOT_TEXTURE")}
print(json.dumps(found))
"""


def test_rerun_removes_stale_temporaries_and_iota2_finds_only_final_files(routes) -> None:  # noqa: F811
    tree, _ = routes
    user_feat = tree.output / "spot_s2" / "userFeat"
    stale = [
        user_feat / TILE / f".{TILE}_SPOT_TEXTURE.x.partial.tif",
        user_feat / TILE / f".{TILE}_SPOT_FCN_PROBA.0a1b2c3d.partial.tif",
        user_feat.parent / "userFeat.tmp" / TILE / f".{TILE}_SPOT_TEXTURE.x.build.tif",
    ]
    for path in stale:  # what a killed run leaves
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    result = fuse_classify("iota2", "features", str(tree.cfg))
    assert result.returncode == 0, result.stderr[-3000:]
    assert not any(path.exists() for path in stale)
    found = run_2020(SEARCH, str(user_feat), TILE)
    assert found == {
        "SPOT_FCN_PROBA": [str(user_feat / TILE / f"{TILE}_SPOT_FCN_PROBA.tif")],
        "SPOT_TEXTURE": [str(user_feat / TILE / f"{TILE}_SPOT_TEXTURE.tif")],
    }
    assert sorted(p.name for p in (user_feat / TILE).iterdir()) == [
        f"{TILE}_SPOT_FCN_PROBA.tif", f"{TILE}_SPOT_TEXTURE.tif",
    ]  # fmt: skip
