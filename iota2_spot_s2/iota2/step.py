"""The SPOT FCN as an iota2 step.

iota2's step contract: a class built as iota2's builders build every step,
``Step(cfg, resources_file, working_directory)`` (``Iota2Builder.build_steps`` in 2020, the
``I2Classification`` builder today), with ``step_description()``, ``step_inputs()`` (what the
step iterates on: here the tiles x seeds), ``step_execute()`` (the function applied to each
input) and ``step_outputs()``.

- The tiles come from the cfg (``chain.list_tile``, 2020: ``listTile``), never from the third
  argument, which is iota2's working directory (a path or None). Our own callers may limit the
  tiles with the keyword ``tiles=[...]``; a string there is refused, never split into letters.
- ``step_execute()`` returns :func:`classify_step_job`, a plain module-level function: iota2
  2020's ``return_decorator`` (``Steps/IOTA2Step.py``) accepts only ``<class 'function'>``
  (no ``functools.partial``, no bound method), and it pickles by reference for MPI (dill) and
  dask. Each input is a :class:`SpotStepJob` (tile, seed, cfg path), so the function needs
  nothing else.
- When iota2 is importable (its conda environment) :class:`SpotFCNClassification` subclasses
  iota2's own ``Step`` (``iota2.steps.iota2_step`` today, ``iota2.Steps.IOTA2Step`` in 2020)
  and, where that base offers a task graph (``i2_task`` / ``add_task_to_i2_processing_graph``),
  adds one task per tile and seed, depending on every task registered before it. Without iota2
  it runs on :class:`StandaloneStep`. When iota2 is installed but its ``Step`` fails to import,
  a ``RuntimeWarning`` says so at import and building the step raises: it never silently
  leaves iota2's chain.
- ``fuse-classify iota2 step CONFIG`` always runs :class:`StandaloneSpotFCNClassification`
  (same contract, never iota2's scheduler).

How to put the step into iota2's chain: :mod:`iota2_spot_s2.iota2.builders`.

Reruns resume each tile's FCN only when its checkpoint was trained on the same labels and split;
otherwise the old checkpoint is moved aside and the FCN trained again, and a pretrained
``spot_s2_fusion.checkpoint`` is used only with the record of its split (the rules are in
:mod:`iota2_spot_s2.iota2.classify`).
"""

from __future__ import annotations

import inspect
import logging
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.iota2.classify import SpotClassification, TileJob, classify_tile
from iota2_spot_s2.iota2.imports import first_class, package_missing
from iota2_spot_s2.iota2.names import SPOT_SUFFIX, classif_names
from iota2_spot_s2.settings import RunConfig, load_config

LOGGER = logging.getLogger(__name__)

#: iota2's defaults for a resources block (``nb_cpu``, ``ram``, ``walltime``).
DEFAULT_RESOURCES = {"cpu": 1, "ram": "5gb", "walltime": "00:10:00"}
IOTA2_STEP_MODULES = ("iota2.steps.iota2_step", "iota2.Steps.IOTA2Step")
#: The resources block and task group names of the step.
RESOURCES_BLOCK = "spot_fcn_classification"
TASK_GROUP = "tile_tasks"


def find_iota2_step() -> tuple[type | None, str | None]:
    """iota2's ``Step`` base class, and what went wrong when iota2 is there but broken.

    Returns:
        ``(Step, None)`` when a generation's module imports; ``(None, None)`` when iota2 is not
        installed (a missing module is this module or a package above it); ``(None, problem)``
        when an iota2 step module exists but fails to import (e.g. a missing ``osgeo``) or has
        no ``Step``.

    """
    candidates = [(module, "Step") for module in IOTA2_STEP_MODULES]
    base, problems = first_class(
        candidates, absent=package_missing, say_absent=False, say_no_class=True
    )
    return base, "; ".join(problems) or None


def iota2_step_base() -> type | None:
    """iota2's ``Step`` base class when iota2 is importable, else None."""
    return find_iota2_step()[0]


def read_resources(path: str | Path | None, block: str) -> dict[str, Any]:
    """One block of an iota2 resources file (``block : { nb_cpu, ram, walltime }``)."""
    from iota2_spot_s2.settings import read_cfg

    resources: dict[str, Any] = {**DEFAULT_RESOURCES, "resource_block_name": block}
    resources["resource_block_found"] = False
    if path is None:
        return resources
    raw = read_cfg(path, "iota2 resources file")
    section = raw.get(block)
    if isinstance(section, dict):
        resources["resource_block_found"] = True
        resources["cpu"] = int(section.get("nb_cpu", resources["cpu"]))
        resources["ram"] = str(section.get("ram", resources["ram"]))
        resources["walltime"] = str(section.get("walltime", resources["walltime"]))
    return resources


@dataclass(frozen=True)
class SpotStepJob(TileJob):
    """One input of the step as iota2 hands it to the function: tile, seed and the cfg path."""

    cfg: str


def classify_step_job(job: SpotStepJob) -> SpotClassification:
    """What iota2 runs per input: the SPOT FCN on one tile and seed (``classify_tile``).

    Reads the cfg and the nomenclature here, in the worker, so the job is three strings.
    """
    from iota2_spot_s2.pipeline.stages import load_nomenclature

    run = load_config(job.cfg)
    nomenclature = load_nomenclature(run.chain.nomenclature_path, run.chain.color_table)
    return classify_tile(run, TileJob(job.tile, job.seed), nomenclature=nomenclature)


def _working_directory(value: object, step: str) -> str | None:
    """iota2's third constructor argument: a working directory (path) or None, nothing else."""
    if value is None or isinstance(value, str | os.PathLike):
        return None if value is None else os.fspath(value)
    raise InputError(
        step, f"the third argument is iota2's working directory, not {type(value).__name__}; "
        "give the tiles by keyword: tiles=[...]",
    )  # fmt: skip


def _tile_list(tiles: Sequence[str] | None, run: RunConfig) -> list[str]:
    """The tiles given by keyword, else ``chain.list_tile`` of the cfg."""
    if tiles is None:
        return list(run.chain.list_tile)
    if isinstance(tiles, str | bytes):
        raise InputError(
            run.source, f"tiles must be a list of tile names, not the string {tiles!r}"
        )
    return [str(t) for t in tiles]


class StandaloneStep:
    """What a step needs of iota2's ``Step`` when iota2 is not installed."""

    def __init__(
        self, cfg: str, cfg_resources_file: str | None = None, resources_block_name: str = ""
    ) -> None:
        self.cfg = cfg
        self.step_name = type(self).__name__
        self.resources = read_resources(cfg_resources_file, resources_block_name)


class SpotFCNSteps:
    """The step's contract, whichever base class gives it ``step_name`` and ``resources``."""

    resources_block_name = RESOURCES_BLOCK
    run: RunConfig
    tiles: list[str]
    working_directory: str | None

    def __init__(
        self,
        cfg: str,
        cfg_resources_file: str | None = None,
        working_directory: str | None = None,
        *,
        tiles: Sequence[str] | None = None,
    ) -> None:
        # the base after this mixin: iota2's Step, or StandaloneStep (same three arguments)
        super().__init__(cfg, cfg_resources_file, self.resources_block_name)  # type: ignore[call-arg]
        self.working_directory = _working_directory(working_directory, type(self).__name__)
        self.run = load_config(cfg)
        self.tiles = _tile_list(tiles, self.run)

    @classmethod
    def step_description(cls) -> str:
        """One line for iota2's step listing."""
        return (
            "SPOT 6/7 FCN land-cover map per tile (iota2_spot_s2), *_SPOT.tif in spot_s2/classif/"
        )

    def step_inputs(self) -> list[SpotStepJob]:
        """Every tile with a SPOT image x every seed of ``arg_train.runs``."""
        cfg = str(self.run.source)
        tiles = [t for t in self.tiles if t in self.run.plugin.spot_images]
        return [SpotStepJob(tile, seed, cfg) for tile in tiles for seed in self.run.seeds]

    def step_execute(self) -> Callable[[SpotStepJob], SpotClassification]:
        """The per-input function: a plain function, as iota2 2020's ``return_decorator`` wants."""
        return classify_step_job

    def step_outputs(self) -> list[Path]:
        """The ``spot_s2/classif/`` files the step writes."""
        out = self.run.chain.output_path / "classif"
        model = self.run.plugin.iota2_model
        paths: list[Path] = []
        for job in self.step_inputs():
            paths += classif_names(job.tile, model, job.seed, SPOT_SUFFIX).paths(out).values()
        return paths

    def run_standalone(self, progress: bool = True) -> list[SpotClassification]:
        """Apply ``step_execute()`` to every input in turn (what iota2's scheduler would do)."""
        execute = self.step_execute()
        jobs = self.step_inputs()
        # disable=None: a bar on a terminal only (off one, stderr keeps its one error line)
        bar = tqdm(jobs, desc="SPOT FCN tiles", disable=None if progress else True)
        return [execute(job) for job in bar]


class StandaloneSpotFCNClassification(SpotFCNSteps, StandaloneStep):
    """The step without iota2 (what ``fuse-classify iota2 step`` runs, iota2 installed or not)."""


IOTA2_STEP, IOTA2_IMPORT_PROBLEM = find_iota2_step()
if IOTA2_IMPORT_PROBLEM:
    LOGGER.error("iota2's Step does not import: %s", IOTA2_IMPORT_PROBLEM)
    warnings.warn(
        f"iota2 is installed but its Step does not import ({IOTA2_IMPORT_PROBLEM}): "
        "SpotFCNClassification cannot join iota2's chain",
        RuntimeWarning,
        stacklevel=2,
    )
_Base: type = IOTA2_STEP or StandaloneStep


class SpotFCNClassification(SpotFCNSteps, _Base):
    """Map each tile's SPOT image with the FCN into ``spot_s2/classif/`` (``_SPOT`` files).

    The class iota2's builders construct (:mod:`iota2_spot_s2.iota2.builders`): on iota2's
    ``Step`` where iota2 imports, with one task per tile and seed in iota2's task graph.

    Args:
        cfg: The iota2 cfg file (with its ``spot_s2_fusion`` section).
        cfg_resources_file: iota2's resources file (block ``spot_fcn_classification``), or None.
        working_directory: iota2's working directory (its builders pass ``$TMPDIR``); kept as
            ``working_directory``, unused: our temporary files sit beside their outputs.
        tiles: Our callers only: the tiles to process (default: ``chain.list_tile``).

    """

    def __init__(
        self,
        cfg: str,
        cfg_resources_file: str | None = None,
        working_directory: str | None = None,
        *,
        tiles: Sequence[str] | None = None,
    ) -> None:
        if IOTA2_IMPORT_PROBLEM:
            raise InputError(cfg, f"iota2's Step does not import ({IOTA2_IMPORT_PROBLEM})")
        super().__init__(cfg, cfg_resources_file, working_directory, tiles=tiles)
        self._register_tasks()

    def _task_dependencies(self) -> dict[str, list[str]]:
        """Every task already in iota2's graph (``tasks_graph``): the step runs after them."""
        graph = getattr(self, "tasks_graph", None)
        if not isinstance(graph, dict):
            return {}
        return {g: list(tasks) for g, tasks in graph.items() if isinstance(tasks, dict) and tasks}

    def _register_tasks(self) -> None:
        """One task per input in iota2's task graph, where the base class has one."""
        if not (hasattr(self, "i2_task") and hasattr(self, "add_task_to_i2_processing_graph")):
            return
        add = self.add_task_to_i2_processing_graph
        takes_deps = "task_dep_dico" in inspect.signature(add).parameters
        dependencies = self._task_dependencies()
        for job in self.step_inputs():
            task = self.i2_task(
                task_name=f"spot_fcn_{job.tile}_seed_{job.seed}",
                log_dir=str(self.run.chain.output_path / "logs" / self.step_name),
                execution_mode=getattr(self, "execution_mode", "local"),
                task_parameters={"f": classify_step_job, "job": job},
                task_resources=self.resources,
            )
            extra = {"task_dep_dico": dependencies} if takes_deps else {}
            add(task, task_group=TASK_GROUP, task_sub_group=f"{job.tile}_{job.seed}", **extra)
