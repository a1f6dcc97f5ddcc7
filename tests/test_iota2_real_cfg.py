"""The cfg templates of both iota2 generations against the real iota2 2020 cfg check.

iota2 2020 (``/work/shared/iota2_2020``, see its README) runs in a subprocess with ``config``
0.4.2 first on ``sys.path``: its own ``serviceConfigFile(path).checkConfigParameters()`` judges
our cfg files. Stand-ins: ``otbApplication`` and GDAL's module names are empty modules (imports
only); ``ogr.Open``, the one GDAL call the check makes (the fields of ``groundTruth``), reads the
real shapefile through pyogrio (GDAL too), so the field check still runs on the real file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import config
import numpy as np
import pytest
import shapely

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.iota2.cfg import check_cfg_paths, generation_line, write_feature_cfg
from iota2_spot_s2.settings import load_config, read_cfg
from iota2_spot_s2.settings.generation import detect_generation

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_CONFIG = ROOT / "plugin_config"
IOTA2_2020 = Path("/work/shared/iota2_2020")
CONFIG_04 = ROOT / ".venv" / "compat" / "config-0.4"
MODULE = ROOT / "iota2_spot_s2" / "iota2" / "external_features.py"
pytestmark = pytest.mark.skipif(
    not (IOTA2_2020.is_dir() and (CONFIG_04 / "config.py").is_file()),
    reason="no iota2 2020 source or config 0.4.2 (scripts/bootstrap.sh)",
)

CHECK_2020 = f"""
import json, sys, types
sys.path[:0] = [{str(IOTA2_2020)!r}, {str(CONFIG_04)!r}]
import pyogrio

class _Defn:  # the OGR field definitions of the file, read by pyogrio (GDAL)
    def __init__(self, path):
        info = pyogrio.read_info(path)
        kinds = {{"int32": "Integer", "int64": "Integer64", "float64": "Real"}}
        self.fields = [(n, kinds.get(str(d), "String")) for n, d in zip(info["fields"],
                                                                      info["dtypes"])]
    def GetFieldCount(self): return len(self.fields)
    def GetFieldDefn(self, i): return _Field(*self.fields[i])

class _Field:
    def __init__(self, name, kind): self.name, self.kind = name, kind
    def GetName(self): return self.name
    def GetType(self): return self.kind
    def GetFieldTypeName(self, kind): return kind

class _Source:
    def __init__(self, path): self.path = path
    def GetLayer(self, i=0): return types.SimpleNamespace(GetLayerDefn=lambda: _Defn(self.path))

osgeo = types.ModuleType("osgeo")
for name in ("gdal", "ogr", "osr", "gdalconst"):
    sys.modules["osgeo." + name] = module = types.ModuleType("osgeo." + name)
    setattr(osgeo, name, module)
sys.modules["osgeo"] = osgeo
sys.modules["osgeo.ogr"].Open = _Source
sys.modules["otbApplication"] = types.ModuleType("otbApplication")
from iota2.Common.ServiceConfigFile import serviceConfigFile
out = {{}}
for path in sys.argv[1:]:
    try:
        out[path] = str(serviceConfigFile(path).checkConfigParameters())
    except BaseException as exc:
        out[path] = "refused: " + type(exc).__name__ + ": " + str(exc)
print(json.dumps(out))
"""


def check_2020(*cfgs: Path) -> dict[str, str]:
    """iota2 2020's verdict on each cfg: 'True' or 'refused: <error>'."""
    done = subprocess.run(
        [sys.executable, "-c", CHECK_2020, *map(str, cfgs)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _data(where: Path) -> Path:
    """Real inputs under ``where/data``: ground truth (integer ``code``), S2 folder, SPOT file."""
    data = where / "data"
    (data / "sensor_data").mkdir(parents=True, exist_ok=True)
    (data / "spot").mkdir(exist_ok=True)
    spot = data / "spot" / "T31TCJ_SPOT6_PMS.tif"
    if not spot.exists():  # a real (tiny) 4-band SPOT-like GeoTIFF: `iota2 check` opens it
        import rasterio
        from rasterio.transform import from_origin

        with rasterio.open(
            spot, "w", driver="GTiff", width=8, height=8, count=4, dtype="uint16",
            crs="EPSG:2154", transform=from_origin(600000.0, 6300012.0, 1.5, 1.5),
        ) as dst:  # fmt: skip
            dst.write(np.ones((4, 8, 8), np.uint16))
    for name in ("nomenclature_oso.txt", "colorFile_oso.txt"):
        (data / name).write_bytes((PLUGIN_CONFIG / name).read_bytes())
    if not (data / "ground_truth.shp").exists():
        import pyogrio.raw

        geometry = shapely.to_wkb(shapely.points([[600000.0, 6300000.0]]))
        pyogrio.raw.write(
            str(data / "ground_truth.shp"), geometry, [np.array([1], np.int32)], ["code"],
            driver="ESRI Shapefile", geometry_type="Point", crs="EPSG:2154",
        )  # fmt: skip
    return data


def instantiate(name: str, where: Path, runs: int = 2) -> Path:
    """A template with real paths under ``where/data`` and ``runs`` seeds, in ``where``."""
    data = _data(where)
    text = (PLUGIN_CONFIG / name).read_text()
    text = text.replace("/path/to/iota2_spot_s2/iota2/external_features.py", str(MODULE))
    text = text.replace("/path/to", str(data))
    text = text.replace("'nomenclature_oso.txt'", repr(str(data / "nomenclature_oso.txt")))
    text = text.replace("'colorFile_oso.txt'", repr(str(data / "colorFile_oso.txt")))
    text = text.replace("runs : 1", f"runs : {runs}")
    out = where / name
    out.write_text(text)
    return out


TEMPLATES = {"decision": "iota2_decision_fusion", "feature": "iota2_feature_fusion"}


@pytest.mark.parametrize("kind", TEMPLATES)
def test_iota2_2020_accepts_the_2020_templates_and_refuses_the_current_ones(
    kind: str, tmp_path: Path
) -> None:
    old = instantiate(f"{TEMPLATES[kind]}_2020.cfg", tmp_path)
    new = instantiate(f"{TEMPLATES[kind]}.cfg", tmp_path)
    field = tmp_path / "field.cfg"  # the ground-truth field check runs on the real file
    field.write_text(old.read_text().replace("dataField : 'code'", "dataField : 'CODE'"))
    verdict = check_2020(old, new, field)
    assert verdict[str(old)] == "True", verdict[str(old)]
    assert "field name 'CODE' doesn't exist" in verdict[str(field)], verdict[str(field)]
    assert verdict[str(new)].startswith("refused"), verdict[str(new)]
    assert "outputPath" in verdict[str(new)]  # the snake_case cfg: 2020 finds no outputPath


@pytest.mark.parametrize("kind", TEMPLATES)
def test_both_generations_give_the_same_settings(kind: str, tmp_path: Path) -> None:
    old = load_config(instantiate(f"{TEMPLATES[kind]}_2020.cfg", tmp_path))
    new = load_config(instantiate(f"{TEMPLATES[kind]}.cfg", tmp_path))
    assert old.seeds == new.seeds == (0, 1)  # 2020's chain.runs, today's arg_train.runs
    assert old.chain == new.chain and old.plugin == new.plugin
    assert old.chain.proj == "EPSG:2154" and old.chain.spatial_resolution == 10


@pytest.mark.parametrize("name", [f"{t}{g}.cfg" for t in TEMPLATES.values() for g in ("", "_2020")])
def test_templates_parse_with_config_05_and_say_their_generation(name: str) -> None:
    assert config.__version__.startswith("0.5")
    parsed = config.Config(str(PLUGIN_CONFIG / name)).as_dict()
    assert parsed == read_cfg(PLUGIN_CONFIG / name)
    assert detect_generation(parsed).name == ("2020" if "_2020" in name else "current")


def test_feature_cfg_written_in_2020_mode_passes_iota2_2020(tmp_path: Path) -> None:
    new = instantiate("iota2_feature_fusion.cfg", tmp_path)
    old = instantiate("iota2_feature_fusion_2020.cfg", tmp_path)
    user_feat = tmp_path / "out" / "userFeat"
    user_feat.parent.mkdir()
    converted = write_feature_cfg(
        new, tmp_path / "out" / "converted.cfg", user_feat, ("probabilities", "texture"),
        generation="2020",
    )  # fmt: skip
    kept = write_feature_cfg(old, tmp_path / "out" / "kept.cfg", user_feat, ("texture",))
    verdict = check_2020(converted, kept)
    assert verdict == {str(converted): "True", str(kept): "True"}, verdict
    for cfg in (converted, kept):
        raw = read_cfg(cfg)
        assert detect_generation(raw).name == "2020"
        assert raw["chain"]["userFeatPath"] == str(user_feat)
        assert load_config(cfg).seeds == (0, 1)
    assert read_cfg(converted)["external_features"]["number_of_chunks"] == 10


def test_seeds_given_twice_must_agree(tmp_path: Path) -> None:
    cfg = instantiate("iota2_decision_fusion_2020.cfg", tmp_path)
    cfg.write_text(cfg.read_text().replace("argTrain :\n{", "argTrain :\n{\n  runs : 3"))
    with pytest.raises(InputError) as err:
        load_config(cfg)
    assert "chain.runs contradicts argTrain.runs (2 vs 3)" in err.value.problem
    assert "\n" not in err.value.problem


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "iota2_spot_s2.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_iota2_check_refuses_a_mixed_cfg_naming_the_keys_of_each(tmp_path: Path) -> None:
    cfg = instantiate("iota2_decision_fusion_2020.cfg", tmp_path)
    cfg.write_text(cfg.read_text().replace("listTile", "list_tile"))
    done = _cli("iota2", "check", str(cfg))
    assert done.returncode != 0
    assert "mixed iota2 generations" in done.stderr
    assert "2020 (camelCase) keys chain.outputPath" in done.stderr
    assert "current (snake_case) keys chain.list_tile" in done.stderr


@pytest.mark.parametrize(("name", "said"), [
    ("iota2_decision_fusion_2020.cfg", "iota2 2020 cfg (camelCase keys: chain.outputPath"),
    ("iota2_decision_fusion.cfg", "current iota2 cfg (snake_case keys: chain.output_path"),
    ("iota2_feature_fusion_2020.cfg", "iota2 2020 cfg (camelCase keys: chain.outputPath"),
])  # fmt: skip
def test_generation_line_names_the_generation(name: str, said: str, tmp_path: Path) -> None:
    cfg = instantiate(name, tmp_path)
    assert generation_line(cfg).startswith(f"generation: {said}")
    assert dict(check_cfg_paths(cfg))  # every path of either generation is checked


def test_iota2_check_through_the_cli_names_the_generation(tmp_path: Path) -> None:
    done = _cli("iota2", "check", str(instantiate("iota2_decision_fusion_2020.cfg", tmp_path)))
    assert done.returncode == 0, done.stderr
    assert "generation: iota2 2020 cfg (camelCase keys:" in done.stdout


def test_every_template_reads_the_same_with_config_04(tmp_path: Path) -> None:
    """iota2's conda environment pins ``config`` 0.4.2: both generations read as with 0.5."""
    import os

    cfgs = [instantiate(f"{t}{g}.cfg", tmp_path) for t in TEMPLATES.values() for g in ("", "_2020")]
    script = (
        "import json, sys, config\n"
        "from iota2_spot_s2.settings import load_config, read_cfg\n"
        "print(json.dumps([config.__version__] + [[load_config(p).model_dump_json(), read_cfg(p)]"
        " for p in sys.argv[1:]]))"
    )
    env = {**os.environ, "PYTHONPATH": str(CONFIG_04)}
    done = subprocess.run(
        [sys.executable, "-c", script, *map(str, cfgs)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    version, *read = json.loads(done.stdout.strip().splitlines()[-1])
    assert version == "0.4.2"
    for cfg, (run, raw) in zip(cfgs, read, strict=True):
        assert raw == read_cfg(cfg)  # what config 0.5 reads
        assert run == load_config(cfg).model_dump_json()
