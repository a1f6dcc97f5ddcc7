"""iota2 cfg files: the shipped templates, the seeds of arg_train, the step contract."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import config
import pytest

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.iota2 import check_cfg_paths
from iota2_spot_s2.iota2.cfg import path_fields, read_cfg
from iota2_spot_s2.settings import load_config

PLUGIN_CONFIG = Path(__file__).resolve().parents[1] / "plugin_config"
TEMPLATES = ["iota2_feature_fusion.cfg", "iota2_decision_fusion.cfg"]
PLACEHOLDER = "/path/to"


def _instantiate(template: Path, where: Path) -> Path:
    """The template with its placeholder paths moved under ``where`` and the inputs created."""
    text = template.read_text().replace(PLACEHOLDER, str(where))
    cfg = PLUGIN_CONFIG / template.name  # nomenclature paths are relative to the template
    out = where / "cfg" / template.name
    out.parent.mkdir(parents=True)
    for name in ("nomenclature_oso.txt", "colorFile_oso.txt"):
        (out.parent / name).write_bytes((cfg.parent / name).read_bytes())
    out.write_text(text)
    for name, value in path_fields(read_cfg(out)):
        path = Path(value)
        if not path.is_absolute() or path.exists():
            continue
        if name.endswith(("output_path", "user_feat_path")):
            path.parent.mkdir(parents=True, exist_ok=True)
        elif path.suffix:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("placeholder")
        else:
            path.mkdir(parents=True)
    return out


@pytest.mark.parametrize("name", [*TEMPLATES, "iota2_resources.cfg"])
def test_templates_parse_with_the_config_package(name: str) -> None:
    parsed = config.Config(str(PLUGIN_CONFIG / name)).as_dict()
    assert parsed
    if name == "iota2_resources.cfg":
        assert "spot_fcn_classification" in parsed
        for block in parsed.values():
            assert set(block) <= {"nb_cpu", "ram", "walltime"}


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_template_path_is_validated(name: str, tmp_path: Path) -> None:
    template = PLUGIN_CONFIG / name
    raw = read_cfg(template)
    fields = dict(path_fields(raw))
    for required in ("chain.output_path", "chain.s2_path", "chain.ground_truth",
                     "chain.nomenclature_path", "chain.color_table"):  # fmt: skip
        assert required in fields, required
    assert any(f.startswith("spot_s2_fusion.spot_images.") for f in fields)
    user_paths = [v for f, v in fields.items() if "nomenclature" not in f and "color" not in f]
    assert all(v.startswith(PLACEHOLDER) for v in user_paths), user_paths
    with pytest.raises(InputError) as err:  # as shipped, the placeholders do not exist
        check_cfg_paths(template)
    assert err.value.path == str(template) and PLACEHOLDER in err.value.problem
    cfg = _instantiate(template, tmp_path)
    checked = dict(check_cfg_paths(cfg))
    assert set(checked) == set(fields)
    run = load_config(cfg)
    assert run.chain.nomenclature_path == cfg.parent / "nomenclature_oso.txt"
    assert run.chain.list_tile and set(run.plugin.spot_images) <= set(run.chain.list_tile)


def test_feature_template_registers_user_feat_and_external_features() -> None:
    raw = read_cfg(PLUGIN_CONFIG / "iota2_feature_fusion.cfg")
    assert raw["userFeat"]["patterns"].split(",") == ["SPOT_FCN_PROBA", "SPOT_TEXTURE"]
    from iota2_spot_s2.iota2 import external_features

    for name in raw["external_features"]["functions"].split():
        assert callable(getattr(external_features, name))


SNAKE = """
chain : { output_path : 'out', list_tile : 'T1', s2_path : 's2' }
arg_train : { runs : 3 }
spot_s2_fusion : { spot_images : { T1 : 'spot.tif' } }
"""


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "s2").mkdir(exist_ok=True)
    (tmp_path / "spot.tif").write_text("x")
    path = tmp_path / "run.cfg"
    path.write_text(text)
    return path


def test_arg_train_runs_gives_the_seeds_in_both_spellings(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, SNAKE)).seeds == (0, 1, 2)
    camel = SNAKE.replace("arg_train", "argTrain")
    assert load_config(_write(tmp_path, camel)).seeds == (0, 1, 2)
    assert load_config(_write(tmp_path, SNAKE.replace("arg_train : { runs : 3 }", ""))).runs == 1


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("runs : 3", "runs : 0"), "arg_train.runs must be a positive"),
        (lambda t: t + "argTrain : { runs : 2 }\n", "argTrain.runs contradicts"),
        (
            lambda t: t.replace("T1 : 'spot.tif' }", "T1 : 'spot.tif' }, decision_rule : 'dss'"),
            "decision_rule must be one of",
        ),
        (
            lambda t: t.replace("T1 : 'spot.tif' }", "T1 : 'spot.tif' }, spot_features : 'x'"),
            "spot_features: unknown x",
        ),
        (
            lambda t: t.replace("T1 : 'spot.tif' }", "T1 : 'spot.tif' }, checkpoint : 'no.pt'"),
            "checkpoint points to a missing path",
        ),
    ],
)
def test_bad_iota2_fields_are_reported(tmp_path: Path, edit, message: str) -> None:
    with pytest.raises(InputError) as err:
        load_config(_write(tmp_path, edit(SNAKE)))
    assert message in err.value.problem


STAND_IN = '''
class Step:
    """Stand-in for iota2's Step: records what a subclass hands to its task graph."""
    graph = []
    def __init__(self, cfg, cfg_resources_file, resources_block_name=None):
        self.cfg, self.step_name = cfg, type(self).__name__
        self.resources = {"cpu": 1, "block": resources_block_name}
    def i2_task(self, task_name, log_dir, execution_mode, task_parameters, task_resources):
        return {"name": task_name, "parameters": task_parameters}
    def add_task_to_i2_processing_graph(self, task, task_group, task_sub_group=None):
        Step.graph.append((task["name"], task_group, task_sub_group, task["parameters"]))
'''


def test_step_subclasses_iota2_step_when_importable(tmp_path: Path) -> None:
    package = tmp_path / "iota2" / "steps"
    package.mkdir(parents=True)
    (tmp_path / "iota2" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "iota2_step.py").write_text(STAND_IN)
    cfg = _write(tmp_path, SNAKE.replace("runs : 3", "runs : 2"))
    script = textwrap.dedent(f"""
        from iota2.steps.iota2_step import Step
        from iota2_spot_s2.iota2.step import SpotFCNClassification
        step = SpotFCNClassification({str(cfg)!r})
        assert isinstance(step, Step), SpotFCNClassification.__mro__
        assert step.resources["block"] == "spot_fcn_classification"
        names = [(n, g, s) for n, g, s, _ in Step.graph]
        assert names == [("spot_fcn_T1_seed_0", "tile_tasks", "T1_0"),
                         ("spot_fcn_T1_seed_1", "tile_tasks", "T1_1")], names
        params = Step.graph[1][3]
        assert callable(params["f"]) and params["job"].seed == 1
        print(len(step.step_outputs()))
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["6"]  # 2 seeds x (classes, confidence, proba)


def test_standalone_step_reads_its_resources_block(tmp_path: Path) -> None:
    from iota2_spot_s2.iota2.step import SpotFCNClassification, StandaloneStep

    resources = tmp_path / "res.cfg"
    resources.write_text("spot_fcn_classification : { nb_cpu : 6, ram : '40gb' }\n")
    step = SpotFCNClassification(str(_write(tmp_path, SNAKE)), str(resources))
    assert isinstance(step, StandaloneStep)
    assert step.resources["cpu"] == 6 and step.resources["ram"] == "40gb"
    assert step.resources["walltime"] == "00:10:00"  # iota2's default
    assert [(j.tile, j.seed) for j in step.step_inputs()] == [("T1", 0), ("T1", 1), ("T1", 2)]
    assert "SPOT" in step.step_description()


CAMEL = """
chain :
{
  outputPath : 'out'
  listTile : 'T1'
  S2Path : 's2'
  groundTruth : 'gt.gpkg'
  dataField : 'CODE'
  spatialResolution : 10
}
argTrain : { runs : 2 }
spot_s2_fusion : { spot_images : { T1 : 'spot.tif' } }
"""


def test_feature_cfg_keeps_the_camel_case_of_the_source(tmp_path: Path) -> None:
    from iota2_spot_s2.iota2 import write_feature_cfg

    source = _write(tmp_path, CAMEL)
    (tmp_path / "gt.gpkg").write_text("x")
    out = write_feature_cfg(
        source, tmp_path / "elsewhere" / "f.cfg", tmp_path / "uf", ("probabilities",)
    )
    raw = config.Config(str(out)).as_dict()
    chain = raw["chain"]
    assert chain["userFeatPath"] == str(tmp_path / "uf") and "user_feat_path" not in chain
    assert chain["S2Path"] == str(tmp_path / "s2")  # relative paths made absolute
    assert chain["dataField"] == "CODE" and raw["argTrain"] == {"runs": 2}
    assert raw["spot_s2_fusion"]["spot_images"] == {"T1": str(tmp_path / "spot.tif")}
    assert raw["userFeat"]["patterns"] == "SPOT_FCN_PROBA"
    assert "external_features" not in raw  # its functions would repeat the userFeat bands
    run = load_config(out)  # the copy is a valid config from its new folder
    assert run.chain.user_feat_path == tmp_path / "uf" and run.seeds == (0, 1)


def test_a_spot_image_off_the_tile_is_one_clear_error(tmp_path: Path) -> None:
    import numpy as np
    import rasterio

    from iota2_spot_s2.grid import Grid
    from iota2_spot_s2.iota2.classify import crop_to_grid
    from iota2_spot_s2.sensors import open_spot

    spot_grid = Grid.from_bounds("EPSG:2154", 0, 0, 60, 60, 1.5)
    path = tmp_path / "spot.tif"
    profile = spot_grid.profile(driver="GTiff", count=4, dtype="uint16")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.ones((4, spot_grid.height, spot_grid.width), np.uint16))
    image = open_spot(path)
    inside = crop_to_grid(image, Grid.from_bounds("EPSG:2154", 20, 10, 40, 30, 10), path)
    assert inside.shape == (4, 14, 14)  # 20 m / 1.5 m = 13.3 -> 14 px, edges outward
    assert inside.attrs["transform"][2] == 19.5 and inside.attrs["transform"][5] == 30.0
    with pytest.raises(InputError) as err:
        crop_to_grid(image, Grid.from_bounds("EPSG:2154", 1000, 1000, 1100, 1100, 10), path)
    assert err.value.path == str(path) and "does not overlap the tile" in err.value.problem


CONFIG_04 = Path(__file__).resolve().parents[1] / ".venv" / "compat" / "config-0.4"


def test_cfgs_read_the_same_with_iota2s_config_04(tmp_path: Path) -> None:
    """iota2's conda environment pins ``config`` 0.4: reading must not depend on 0.5's API."""
    import json
    import os

    if not (CONFIG_04 / "config.py").is_file():
        message = f"config 0.4.2 not installed at {CONFIG_04} (scripts/bootstrap.sh does it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    cfg = _write(tmp_path, CAMEL)
    (tmp_path / "gt.gpkg").write_text("x")
    script = textwrap.dedent(f"""
        import json, config
        from iota2_spot_s2.settings import load_config, read_cfg
        run = load_config({str(cfg)!r})
        raw = read_cfg({str(PLUGIN_CONFIG / "iota2_feature_fusion.cfg")!r})
        print(json.dumps([config.__version__, str(run.chain.s2_path), run.seeds, raw]))
    """)
    env = {**os.environ, "PYTHONPATH": str(CONFIG_04)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    version, s2_path, seeds, raw = json.loads(done.stdout)
    assert version == "0.4.2"
    assert s2_path == str(tmp_path / "s2") and seeds == [0, 1]
    assert raw == read_cfg(PLUGIN_CONFIG / "iota2_feature_fusion.cfg")  # what 0.5 reads


def test_format_cfg_quotes_keys_that_are_not_names(tmp_path: Path) -> None:
    from iota2_spot_s2.settings import format_cfg

    sections = {"arg_train": {"otb_classifier_options": {"classifier.sharkrf.nodesize": 25}}}
    path = tmp_path / "q.cfg"
    path.write_text(format_cfg(sections))
    assert read_cfg(path) == sections


def test_texture_covered_fraction_at_the_spot_image_edge(tmp_path: Path) -> None:
    import numpy as np
    import rasterio

    from iota2_spot_s2.grid import Grid
    from iota2_spot_s2.iota2.features import write_texture
    from iota2_spot_s2.sensors import open_spot

    spot_grid = Grid.from_bounds("EPSG:2154", 0, 0, 45, 30, 1.5)  # ends inside tile column 4
    path = tmp_path / "spot.tif"
    profile = spot_grid.profile(driver="GTiff", count=4, dtype="uint16")
    with rasterio.open(path, "w", **profile) as d:
        d.write(np.full((4, spot_grid.height, spot_grid.width), 500, np.uint16))
    tile = Grid.from_bounds("EPSG:2154", 0, 0, 60, 30, 10)
    out = write_texture(open_spot(path), tile, tmp_path / "t.tif", path)
    with rasterio.open(out) as src:
        fraction, mean = src.read(11), src.read(1)
    np.testing.assert_allclose(fraction[:, :4], 1.0)
    np.testing.assert_allclose(fraction[:, 4], 0.5, atol=1e-6)  # 40-45 m of 40-50 m
    np.testing.assert_allclose(fraction[:, 5], 0.0)
    np.testing.assert_allclose(mean[:, :5], 500.0)  # the mean is over the covered part
