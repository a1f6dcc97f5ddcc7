from __future__ import annotations

from pathlib import Path

import config
import pytest

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.settings import format_cfg, load_config

SNAKE = """
chain :
{
  output_path : 'out'
  list_tile : 'T31TCJ T31TDJ'
  ground_truth : 'gt.gpkg'
  data_field : 'CODE'
  nomenclature_path : 'nomenclature.txt'
  spatial_resolution : 10
  first_step : 'init'
}
spot_s2_fusion :
{
  spot_images : { T31TCJ : 'spot.tif' }
  models : 'fcn patch_cnn'
  training : { epochs : 7, lr : 0.0005 }
}
"""

CAMEL = """
chain :
{
  outputPath : 'out'
  listTile : 'T31TCJ T31TDJ'
  groundTruth : 'gt.gpkg'
  dataField : 'CODE'
  nomenclaturePath : 'nomenclature.txt'
  spatialResolution : [10]
}
spot_s2_fusion :
{
  spot_images : { T31TCJ : 'spot.tif' }
  models : ['fcn', 'patch_cnn']
  training : { epochs : 7, lr : 0.0005 }
}
"""


def _write(tmp_path: Path, text: str, name: str = "run.cfg") -> Path:
    for f in ("gt.gpkg", "nomenclature.txt", "spot.tif"):
        (tmp_path / f).write_text("x")
    path = tmp_path / name
    path.write_text(text)
    return path


def test_snake_and_camel_case_give_the_same_settings(tmp_path: Path) -> None:
    snake = load_config(_write(tmp_path, SNAKE, "a.cfg"))
    camel = load_config(_write(tmp_path, CAMEL, "b.cfg"))
    assert snake.chain == camel.chain
    assert snake.plugin == camel.plugin
    assert snake.chain.list_tile == ("T31TCJ", "T31TDJ")
    assert snake.chain.output_path == tmp_path / "out"  # relative paths resolve next to the file
    assert snake.chain.data_field == "CODE"
    assert snake.chain.spatial_resolution == 10.0
    assert snake.plugin.models == ("fcn", "patch_cnn")
    assert snake.plugin.training.epochs == 7
    assert snake.plugin.training.lr == pytest.approx(5e-4)
    assert snake.plugin.training.step_size == 50  # the recipe's default survives a partial section
    assert snake.plugin.spot_images == {"T31TCJ": tmp_path / "spot.tif"}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("models :", "modles :"), "unknown field(s) in spot_s2_fusion: modles"),
        (
            lambda t: t.replace("epochs : 7", "epoch : 7"),
            "unknown field(s) in spot_s2_fusion.training: epoch",
        ),
        (
            lambda t: t.replace(
                "  output_path : 'out'\n", "  output_path : 'out'\n  outputPath : 'other'\n"
            ),
            "chain.outputPath contradicts chain.output_path",
        ),
        (
            lambda t: t.replace("spot.tif", "missing.tif"),
            "spot_images.T31TCJ points to a missing path",
        ),
        (lambda t: t.replace("T31TCJ :", "T99XXX :"), "names tiles not in chain.list_tile: T99XXX"),
        (lambda t: t.replace("  list_tile : 'T31TCJ T31TDJ'\n", ""), "chain.list_tile is required"),
        (lambda t: t.replace("chain :\n{", "chain :\n{{"), "not a valid iota2 cfg file"),
    ],
)
def test_bad_configs_are_reported_with_the_file(tmp_path: Path, edit, message: str) -> None:
    path = _write(tmp_path, edit(SNAKE))
    with pytest.raises(InputError) as err:
        load_config(path)
    assert err.value.path == str(path)
    assert message in err.value.problem


def test_format_cfg_round_trips_through_the_config_package(tmp_path: Path) -> None:
    sections = {
        "chain": {
            "output_path": "/o",
            "list_tile": "T1",
            "spatial_resolution": 10.0,
            "check_inputs": True,
            "proj": None,
        },
        "spot_s2_fusion": {
            "spot_images": {"T1": "/it's/a.tif"},
            "models": ["fcn"],
            "training": {"epochs": 3, "max_minutes": 1.5},
        },
    }
    path = tmp_path / "w.cfg"
    path.write_text(format_cfg(sections))
    assert config.Config(str(path)).as_dict() == sections
