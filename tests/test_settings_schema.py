"""The cfg schema at the edge: every bad value is one error line naming its key, before any work.

Through the real command line (``run`` and ``iota2 check`` in subprocesses) for the values users
reported, and in-process for the rest of the schema's rules.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.settings import (
    PLUGIN_SECTION,
    PluginSettings,
    TrainingSettings,
    format_cfg,
    load_config,
)
from iota2_spot_s2.simulation import SceneInfo, generate_scene


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> SceneInfo:
    return generate_scene(tmp_path_factory.mktemp("schema") / "scene", size_m=240.0, seed=0)


def _sections(scene: SceneInfo, out: Path) -> dict[str, dict[str, Any]]:
    """A complete valid cfg on the simulated scene (as in test_pipeline_fusion)."""
    return {
        "chain": {"output_path": str(out), "list_tile": scene.tile,
                  "ground_truth": str(scene.reference), "data_field": "code",
                  "s2_path": str(scene.sensor_data), "nomenclature_path": str(scene.nomenclature),
                  "color_table": str(scene.color_file), "spatial_resolution": 10},
        "arg_train": {"runs": 1},
        PLUGIN_SECTION: {"spot_images": {scene.tile: str(scene.spot_image)},
                         "models": ["fcn"], "strategies": ["spot", "s2-rf", "late-mean"],
                         "split_block_m": 60.0, "simulated": True, "seed": 0, "tile_size": 64,
                         "training": {"epochs": 2, "iters_per_epoch": 2, "batch_size": 2,
                                      "crop": 64, "schedule": "constant"}},
    }  # fmt: skip


def _with(sections: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """``sections`` with the dotted ``key`` set to ``value``."""
    out = copy.deepcopy(sections)
    *path, last = key.split(".")
    node = out
    for part in path:
        node = node.setdefault(part, {})
    node[last] = value
    return out


def _write(tmp_path: Path, sections: dict[str, Any]) -> Path:
    cfg = tmp_path / "run.cfg"
    cfg.write_text(format_cfg(sections))
    return cfg


#: (dotted cfg key, bad value): the failures users reported, and their neighbours.
REPORTED = [
    ("spot_s2_fusion.tile_size", "big"),
    ("spot_s2_fusion.tile_size", 0),
    ("spot_s2_fusion.tile_size", -512),
    ("spot_s2_fusion.tile_size", "512"),
    ("spot_s2_fusion.training.epochs", "many"),
    ("spot_s2_fusion.training.epochs", 0),
    ("spot_s2_fusion.training.epochs", True),
    ("spot_s2_fusion.training.crop", 0),
    ("spot_s2_fusion.training.crop", 60),
    ("spot_s2_fusion.training.batch_size", 0),
    ("spot_s2_fusion.training.lr", 0),
    ("spot_s2_fusion.training.schedule", "linear"),
    ("spot_s2_fusion.training.max_minutes", -1),
    ("chain.spatial_resolution", "ten"),
    ("spot_s2_fusion.seed", -1),
    ("spot_s2_fusion.split_block_m", 0),
    ("spot_s2_fusion.models", "fcn unet"),
    ("spot_s2_fusion.mob", "median"),
]


def _cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "iota2_spot_s2.cli", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _one_error_line(process: subprocess.Popen[str], cfg: Path, key: str) -> str:
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 2, stderr
    assert "Traceback" not in stderr and stdout == ""  # nothing done, nothing listed
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "error:" in lines[0], stderr
    assert lines[0].startswith(f"fuse-classify: error: {cfg}: ")
    assert key in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(("key", "value"), REPORTED, ids=[f"{k}={v!r}" for k, v in REPORTED])
def test_run_and_iota2_check_refuse_a_bad_value_in_one_line(
    scene: SceneInfo, tmp_path: Path, key: str, value: Any
) -> None:
    out = tmp_path / "out"
    cfg = _write(tmp_path, _with(_sections(scene, out), key, value))
    run, check = _cli("run", str(cfg)), _cli("iota2", "check", str(cfg))  # side by side
    for process in (run, check):
        line = _one_error_line(process, cfg, key)
        assert f"(got {value!r}" in line  # what was written, beside what is allowed
    assert not out.exists()  # the error came before any work
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.cfg"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"\x00\x01\x02\xff" * 64, "binary"),
        ("chain : { output_path : 'sortie_\xe9t\xe9' }\n".encode("latin-1"), "not UTF-8"),
        (b"chain : { output_path : 'o' \n", "not a valid iota2 cfg file"),
    ],
    ids=["binary", "latin-1", "unparsable"],
)
def test_unreadable_cfg_files_are_one_line_naming_the_file(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    cfg = tmp_path / "run.cfg"
    cfg.write_bytes(content)
    run, check = _cli("run", str(cfg)), _cli("iota2", "check", str(cfg))
    for process in (run, check):
        assert problem in _one_error_line(process, cfg, str(cfg))


def test_the_valid_cfg_passes_iota2_check(scene: SceneInfo, tmp_path: Path) -> None:
    cfg = _write(tmp_path, _sections(scene, tmp_path / "out"))
    check = _cli("iota2", "check", str(cfg))
    stdout, stderr = check.communicate(timeout=300)
    assert check.returncode == 0, stderr
    assert "the spot_s2_fusion section is valid" in stdout
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("spot_s2_fusion.tile_size", "512", "(got '512': numbers are written without quotes)"),
        ("spot_s2_fusion.tile_size", 32, "tile_size must be an integer >= 64, in pixels (got 32)"),
        ("spot_s2_fusion.training.crop", 65, "crop must be a multiple of 8 for fcn (got 65"),
        ("spot_s2_fusion.training.warmup", 1.0, "warmup must be a number >= 0 and < 1 (got 1.0)"),
        ("spot_s2_fusion.training.val_max_pixels", -5, "val_max_pixels must be an integer >= 0"),
        ("chain.spatial_resolution", -10, "spatial_resolution must be a number > 0 in metres"),
        ("spot_s2_fusion.training.gamma", 0, "gamma must be a number > 0 and <= 1 (got 0)"),
        ("spot_s2_fusion.training.gamma", 1.5, "gamma must be a number > 0 and <= 1"),
        ("spot_s2_fusion.training.patience", 0, "patience must be a positive integer"),
        ("spot_s2_fusion.training.max_steps", 0, "max_steps must be a positive integer or None"),
        ("spot_s2_fusion.training.rounds", 0, "rounds must be a positive integer"),
        ("spot_s2_fusion.training.iters_per_epoch", 1.5, "iters_per_epoch must be a positive"),
        ("spot_s2_fusion.training.class_weighting", "balanced", "one of median_frequency"),
        ("spot_s2_fusion.training.bf16", "yes", "bf16 must be True or False (got 'yes')"),
        ("spot_s2_fusion.map_precision", "fp64", "map_precision must be one of fp32, bf16, fp16"),
        ("spot_s2_fusion.training.precision", "half", "precision must be one of fp32, bf16, fp16"),
        ("spot_s2_fusion.tempcnn_epochs", 0, "tempcnn_epochs must be a positive integer"),
        ("spot_s2_fusion.s2_classifier", "svm", "s2_classifier must be one of rf, tempcnn"),
        ("spot_s2_fusion.fusion_model", "early_fusion", "fusion_model must be one of patch_cnn"),
        ("spot_s2_fusion.decision_rule", "dss", "decision_rule must be one of mean"),
        ("spot_s2_fusion.seed", 2**40, "seed must be an integer from 0 to 4294967295"),
        ("spot_s2_fusion.write_probabilities", 1, "write_probabilities must be True or False"),
        ("spot_s2_fusion.iota2_model", "a/b", "iota2_model must be an integer or a name"),
        ("spot_s2_fusion.model_steps", {"fcn": 0}, "model_steps must be a mapping of network"),
        ("spot_s2_fusion.model_steps", {"unet": 5}, "(got {'unet': 5})"),
        ("spot_s2_fusion.strategies", ["spot", "late-max"], "strategies: unknown late-max"),
        ("spot_s2_fusion.spot_features", [], "spot_features must be a non-empty list"),
        ("spot_s2_fusion.spot_images", "spot.tif", "spot_images must be a mapping of tile"),
        ("spot_s2_fusion.checkpoint", 3, "checkpoint must be a path as text"),
        ("spot_s2_fusion.training", 5, "spot_s2_fusion.training must be a mapping"),
        ("chain.list_tile", "", "chain.list_tile must be a non-empty list of tile names"),
        ("chain.output_path", "", "chain.output_path must be a path as text"),
        ("chain.data_field", 3, "chain.data_field must be a field name (text) (got 3)"),
        ("chain.spatial_resolution", [], "chain.s2_path"),  # [] = unset; s2_path is removed
        ("arg_train.runs", 0, "arg_train.runs must be a positive integer (got 0)"),
        ("arg_train.runs", "2", "arg_train.runs must be a positive integer (got '2': numbers"),
    ],
)
def test_every_rule_names_the_key_what_it_allows_and_what_it_got(
    scene: SceneInfo, tmp_path: Path, key: str, value: Any, message: str
) -> None:
    sections = _with(_sections(scene, tmp_path / "out"), key, value)
    if key == "chain.spatial_resolution":
        sections["chain"].pop("s2_path")
    cfg = _write(tmp_path, sections)
    with pytest.raises(InputError) as err:
        load_config(cfg)
    assert err.value.path == str(cfg)
    assert message in err.value.problem and "\n" not in err.value.problem


def test_numbers_must_be_finite(scene: SceneInfo, tmp_path: Path) -> None:
    sections = _with(_sections(scene, tmp_path / "out"), "spot_s2_fusion.training.lr", 12345.0)
    cfg = _write(tmp_path, sections)
    cfg.write_text(cfg.read_text().replace("12345.0", "1e999"))  # what config reads as inf
    with pytest.raises(InputError) as err:
        load_config(cfg)
    assert "spot_s2_fusion.training.lr must be a number > 0 (got inf)" in err.value.problem
    with pytest.raises(ValueError, match="finite"):
        format_cfg({"chain": {"spatial_resolution": float("nan")}})


def test_every_problem_of_a_cfg_is_on_the_one_line(scene: SceneInfo, tmp_path: Path) -> None:
    sections = _with(_sections(scene, tmp_path / "out"), "spot_s2_fusion.tile_size", 0)
    sections = _with(sections, "spot_s2_fusion.training.epochs", "many")
    sections = _with(sections, "spot_s2_fusion.training.epoch", 3)
    with pytest.raises(InputError) as err:
        load_config(_write(tmp_path, sections))
    problem = err.value.problem
    assert "spot_s2_fusion.tile_size must be" in problem
    assert "spot_s2_fusion.training.epochs must be" in problem
    assert "unknown field(s) in spot_s2_fusion.training: epoch (known: " in problem


def test_camel_case_keys_are_named_as_written(scene: SceneInfo, tmp_path: Path) -> None:
    sections = _sections(scene, tmp_path / "out")
    chain = sections["chain"]
    chain["spatialResolution"] = chain.pop("spatial_resolution")
    chain["outputPath"] = chain.pop("output_path")
    sections["argTrain"] = sections.pop("arg_train")
    run = load_config(_write(tmp_path, sections))
    assert run.chain.spatial_resolution == 10.0 and run.chain.output_path == tmp_path / "out"
    for key, value in (("chain.spatialResolution", "ten"), ("argTrain.runs", -1)):
        with pytest.raises(InputError) as err:
            load_config(_write(tmp_path, _with(sections, key, value)))
        assert err.value.problem.startswith(f"{key} must be "), err.value.problem


def test_loose_iota2_forms_are_accepted(scene: SceneInfo, tmp_path: Path) -> None:
    sections = _sections(scene, tmp_path / "out")
    sections["chain"] |= {"spatial_resolution": [10, 10], "proj": "EPSG:2154"}
    sections[PLUGIN_SECTION] |= {"models": "fcn patch_cnn", "iota2_model": 2, "seed": 3}
    sections[PLUGIN_SECTION]["training"] |= {"val_max_pixels": 0, "lr": 1, "max_minutes": None}
    run = load_config(_write(tmp_path, sections))
    assert run.chain.spatial_resolution == 10.0 and run.plugin.models == ("fcn", "patch_cnn")
    assert run.plugin.iota2_model == "2" and run.plugin.training.val_max_pixels is None
    assert run.plugin.training.lr == 1.0 and isinstance(run.plugin.training.lr, float)
    assert run.plugin.recipe("fcn")["crop"] == 64


def test_python_users_get_the_same_checks() -> None:
    assert TrainingSettings(epochs=5).epochs == 5
    with pytest.raises(ValidationError):
        TrainingSettings(epochs=0)
    with pytest.raises(ValidationError):
        PluginSettings(tile_size=True)
    with pytest.raises(ValidationError):
        PluginSettings(models=("fcn",), strategies=("late-mean",), fusion_model="patch_cnn")


def test_the_older_bf16_key_is_the_training_precision(scene: SceneInfo, tmp_path: Path) -> None:
    sections = _sections(scene, tmp_path / "out")
    assert load_config(_write(tmp_path, sections)).plugin.recipe("fcn")["precision"] == "fp32"
    older = _with(sections, "spot_s2_fusion.training.bf16", True)
    recipe = load_config(_write(tmp_path, older)).plugin.recipe("fcn")
    assert recipe["precision"] == "bf16" and "bf16" not in recipe  # train() takes precision
    fp16 = _with(sections, "spot_s2_fusion.training.precision", "fp16")
    assert load_config(_write(tmp_path, fp16)).plugin.recipe("fcn")["precision"] == "fp16"
    for other in ("fp16", "fp32"):  # an explicit precision that disagrees
        with pytest.raises(InputError) as err:
            load_config(_write(tmp_path, _with(older, "spot_s2_fusion.training.precision", other)))
        assert f"training.bf16 is True but training.precision is '{other}'" in err.value.problem
