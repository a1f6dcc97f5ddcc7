"""The SPOT step built and run as iota2 builds and runs steps, and registered without editing iota2.

iota2 2020 (``/work/shared/iota2_2020``) runs in a subprocess (``tests/iota2_step_probe.py``,
``config`` 0.4.2 first on ``sys.path``, GDAL/OTB module names as import-only stand-ins): its
``Iota2Builder.iota2`` builds its whole chain plus our step (``builders/iota2_2020.py``), as
``Step(cfg, resources, $TMPDIR)``; its ``Step`` base reads our resources block and wraps
``step_execute`` in its ``return_decorator``; the decorated function then runs on the
iota2-shaped tree (``tests/data/iota2_tree``), writing real GeoTIFFs read back here.

Current iota2 cannot be installed: its builder and task graph are checked against stand-ins that
follow their documented API, and say so.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.settings import format_cfg, read_cfg
from iota2_spot_s2.settings.generation import to_generation
from tests.test_iota2_plugin import TILE, _assert_on_tile_grid, _open, tree_data

ROOT = Path(__file__).resolve().parents[1]
IOTA2_2020 = Path("/work/shared/iota2_2020")
CONFIG_04 = ROOT / ".venv" / "compat" / "config-0.4"
PROBE = Path(__file__).with_name("iota2_step_probe.py")
RESOURCES = "spot_fcn_classification : { nb_cpu : 3, ram : '12gb', walltime : '02:00:00' }\n"
needs_2020 = pytest.mark.skipif(
    not (IOTA2_2020.is_dir() and (CONFIG_04 / "config.py").is_file()),
    reason="no iota2 2020 source or config 0.4.2 (scripts/bootstrap.sh)",
)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory):
    return tree_data.build(tmp_path_factory.mktemp("step"))


@pytest.fixture(scope="module")
def probe(tree) -> dict:
    """iota2 2020 builds its chain with our step, then runs our step's function on the tree."""
    cfg = tree.root / "run_2020.cfg"
    cfg.write_text(format_cfg(to_generation(read_cfg(tree.cfg), "2020")))
    resources = tree.root / "resources.cfg"
    resources.write_text(RESOURCES)
    work = tree.root / "hpc_work"
    work.mkdir()
    args = [str(IOTA2_2020), str(CONFIG_04), str(cfg), str(resources), str(work), "run"]
    done = subprocess.run([sys.executable, str(PROBE), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return {"work": str(work), **json.loads(done.stdout.strip().splitlines()[-1])}


@needs_2020
def test_iota2_2020_builds_the_step_after_its_classification_steps(probe) -> None:
    names = [name for name, _ in probe["steps"]]
    at = names.index("SpotFCNClassification")
    assert probe["steps"][at][1] == "classification"
    assert names[at - 1] == "classification" and names[at + 1] == "mosaic"  # iota2's own
    assert (probe["ours"]["previous"], probe["ours"]["next"]) == ("classification", "mosaic")
    assert len(names) > 20 and names.count("SpotFCNClassification") == 1


@needs_2020
def test_built_as_iota2_builds_it_the_step_gets_the_cfg_tiles(probe) -> None:
    ours = probe["ours"]
    assert ours["is_iota2_step"]  # subclass of iota2.Steps.IOTA2Step.Step
    assert ours["working_directory"] == probe["work"]  # the third argument: $TMPDIR
    assert ours["tiles"] == [TILE]  # from the cfg's listTile, not the working directory
    assert ours["inputs"] == [[TILE, 0]]  # one tile x chain.runs = 1
    resources = ours["resources"]  # iota2's own parse_resource_file on our block
    assert (resources["cpu"], resources["ram"], resources["walltime"]) == (3, "12gb", "02:00:00")
    assert resources["resource_block_found"] is True
    summary = probe["summary"]
    assert "SPOT 6/7 FCN land-cover map" in summary
    assert "resources block name : spot_fcn_classification\n" in summary  # no "-> MISSING"


@needs_2020
def test_iota2_2020_accepts_step_execute_and_it_runs_on_the_tree(probe, tree) -> None:
    assert probe["ours"]["decorated"]  # step_execute went through iota2's return_decorator
    assert "functools.partial" in probe["refused_partial"]  # control: the old return is refused
    assert probe["pickles"]  # by reference, for MPI (dill) and dask
    [written] = probe["outputs"]
    classes, proba = Path(written["classes"]), Path(written["proba"])
    assert classes.parent == tree.output / "spot_s2" / "classif"  # never in iota2's classif/
    assert classes.name == f"Classif_{TILE}_model_1_seed_0_SPOT.tif"
    for path in written.values():
        _assert_on_tile_grid(tree, Path(path))
    with _open(classes) as src:
        codes = set(np.unique(src.read(1)).tolist())
    assert codes - {0} and codes <= set(tree.codes) | {0}
    with _open(proba) as src:
        assert src.count == len(tree.codes)


def test_a_string_is_never_taken_for_a_tile_list(tree, tmp_path: Path) -> None:
    from iota2_spot_s2.iota2.step import SpotFCNClassification

    step = SpotFCNClassification(str(tree.cfg), None, str(tmp_path))  # as iota2 builds it
    assert step.tiles == [TILE] and step.working_directory == str(tmp_path)
    assert [(j.tile, j.seed) for j in step.step_inputs()] == [(TILE, 0)]
    assert SpotFCNClassification(str(tree.cfg), tiles=["T99XXX"]).step_inputs() == []
    with pytest.raises(InputError, match="tiles must be a list of tile names, not the string"):
        SpotFCNClassification(str(tree.cfg), tiles=TILE)
    with pytest.raises(InputError, match="third argument is iota2's working directory"):
        SpotFCNClassification(str(tree.cfg), None, [TILE])  # type: ignore[arg-type]


def _run(script: str, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "always", "-c", textwrap.dedent(script)], capture_output=True,
        text=True, timeout=300, cwd=ROOT, env={"PYTHONPATH": f"{pythonpath}:{ROOT}",
                                               "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


def _package(where: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = where / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return where


def test_a_broken_iota2_step_import_is_loud(tree, tmp_path: Path) -> None:
    """iota2 installed, its Step module failing on a missing GDAL: a warning, then an error."""
    pkg = _package(tmp_path, {"iota2/__init__.py": "", "iota2/steps/__init__.py": "",
                              "iota2/steps/iota2_step.py": "from osgeo import gdal\n"})  # fmt: skip
    done = _run(f"""
        from iota2_spot_s2.errors import InputError
        from iota2_spot_s2.iota2.step import SpotFCNClassification
        try:
            SpotFCNClassification({str(tree.cfg)!r}, None, None)
        except InputError as exc:
            print("refused:", exc.problem)
        """, pkg)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "RuntimeWarning: iota2 is installed but its Step does not import" in done.stderr
    assert "No module named 'osgeo'" in done.stderr
    assert done.stdout.startswith("refused: iota2's Step does not import (iota2.steps.")


# Stand-in of the task graph of iota2's dask scheduler, as iota2's scheduling documentation
# gives ``add_task_to_i2_processing_graph``: a step that is not the first one reads
# ``task_dep_dico.items()``, so a step passing no dependencies crashes there.
DASK_STEP = """
class Step:
    step_container, tasks_graph = [], {}
    def __init__(self, cfg, cfg_resources_file, resources_block_name=None):
        self.cfg, self.step_name, self.resources = cfg, type(self).__name__, {"cpu": 1}
        self.step_container.append(self)
    def i2_task(self, task_name, log_dir, execution_mode, task_parameters, task_resources):
        return {"name": task_name, "parameters": task_parameters}
    def add_task_to_i2_processing_graph(self, task, task_group, task_sub_group=None,
                                        task_dep_dico=None):
        self.tasks_graph.setdefault(task_group, {})
        needs = []
        if len(self.step_container) > 1:
            for group, names in task_dep_dico.items():
                needs += [self.tasks_graph[group][n] for n in names]
        self.tasks_graph[task_group][task_sub_group] = (task["name"], needs)

class Earlier(Step):
    def __init__(self, cfg):
        super().__init__(cfg, None)
        for tile in ("T1", "T2"):
            self.add_task_to_i2_processing_graph({"name": "learn_" + tile}, "models", tile)
"""


def test_the_step_waits_for_every_earlier_task_of_iota2s_graph(tree, tmp_path: Path) -> None:
    pkg = _package(tmp_path, {"iota2/__init__.py": "", "iota2/steps/__init__.py": "",
                              "iota2/steps/iota2_step.py": DASK_STEP})  # fmt: skip
    done = _run(f"""
        from iota2.steps.iota2_step import Earlier, Step
        from iota2_spot_s2.iota2.step import SpotFCNClassification, classify_step_job
        Earlier({str(tree.cfg)!r})
        step = SpotFCNClassification({str(tree.cfg)!r}, None, "/tmp")
        name, needs = Step.tasks_graph["tile_tasks"]["{TILE}_0"]
        assert name == "spot_fcn_{TILE}_seed_0", name
        assert sorted(n for n, _ in needs) == ["learn_T1", "learn_T2"], needs
        print("ok")
        """, pkg)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["ok"]


# Stand-in of current iota2's classification builder (``iota2.sequence_builders``), from its
# documented shape: a builder with ``steps_group``, ``workingDirectory`` from $TMPDIR and
# ``build_steps`` returning step containers holding ``functools.partial`` step constructors.
CURRENT_BUILDER = """
import functools, os

class StepContainer(list):
    def append(self, step, step_group=""):
        step.step_group = step_group
        super().append(step)

class IotaStep:
    def __init__(self, cfg, resources, working_directory=None):
        self.args = (cfg, resources, working_directory)

class I2Classification:
    def __init__(self, cfg, config_resources, scheduler_type="local"):
        self.workingDirectory = os.getenv("TMPDIR")
        self.steps = self.build_steps(cfg, config_resources)
    def build_steps(self, cfg, config_ressources=None):
        container = StepContainer()
        container.append(functools.partial(IotaStep, cfg, config_ressources,
                                           self.workingDirectory), "validation")
        return [StepContainer(), container]
"""


def test_current_builder_is_found_by_name_and_appends_the_step(tree, tmp_path: Path) -> None:
    from iota2_spot_s2.iota2.builders import builders_folder

    builders = "iota2/sequence_builders"
    pkg = _package(tmp_path, {"iota2/__init__.py": "", f"{builders}/__init__.py": "",
                              f"{builders}/i2_classification.py": CURRENT_BUILDER})  # fmt: skip
    done = _run(f"""
        import importlib.util, os
        from pathlib import Path
        os.environ["TMPDIR"] = "/tmp/hpc"
        found = {{}}
        for path in sorted(Path({str(builders_folder())!r}).glob("*.py")):  # by file path
            spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            if hasattr(module, "I2SpotClassification"):
                found[path.name] = module.I2SpotClassification
        assert list(found) == ["current.py"], found
        chain = found["current.py"]({str(tree.cfg)!r}, None, "local")
        last = chain.steps[-1][-1]
        assert last.step_group == "validation"
        step = last()  # built lazily by iota2, as its other steps
        assert type(step).__name__ == "SpotFCNClassification"
        assert step.working_directory == "/tmp/hpc" and step.tiles == ["{TILE}"], step.tiles
        print(len(chain.steps[-1]))
        """, pkg)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["2"]


def test_without_current_iota2_the_builder_says_why() -> None:
    path = ROOT / "iota2_spot_s2" / "iota2" / "builders" / "current.py"
    spec = importlib.util.spec_from_file_location("spot_current_builder", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(InputError, match="needs iota2 .*i2_classification is not installed"):
        module.I2SpotClassification("run.cfg", None)
