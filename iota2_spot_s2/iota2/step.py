"""The SPOT FCN as an iota2 step.

iota2's step contract: a class built from the cfg file and the resources file, with
``step_description()``, ``step_inputs()`` (what the step iterates on: here the tiles x seeds),
``step_execute()`` (the function applied to each input) and ``step_outputs()``. When iota2 is
importable (its conda environment) :class:`SpotFCNClassification` subclasses iota2's own
``Step`` (``iota2.steps.iota2_step`` in current releases, ``iota2.Steps.IOTA2Step`` in older
ones) and, where that base offers its task graph (``i2_task`` /
``add_task_to_i2_processing_graph``), adds one task per tile and seed to it. Without iota2 it
runs standalone on :class:`StandaloneStep`, which gives the same attributes
(``step_name``, ``resources``). ``fuse-classify iota2 step CONFIG`` always runs
:class:`StandaloneSpotFCNClassification` (same contract, never iota2's scheduler).

``step_execute`` returns a bound function, never a lambda, so the step pickles for dask.

Reruns resume each tile's FCN only when its checkpoint was trained on the same labels and split;
otherwise the old checkpoint is moved aside and the FCN trained again, and a pretrained
``spot_s2_fusion.checkpoint`` is used only with the record of its split (the rules are in
:mod:`iota2_spot_s2.iota2.classify`).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from iota2_spot_s2.iota2.classify import SpotClassification, TileJob, classify_tile
from iota2_spot_s2.iota2.names import SPOT_SUFFIX, classif_names
from iota2_spot_s2.settings import RunConfig, load_config

#: iota2's defaults for a resources block (``nb_cpu``, ``ram``, ``walltime``).
DEFAULT_RESOURCES = {"cpu": 1, "ram": "5gb", "walltime": "00:10:00"}
IOTA2_STEP_MODULES = ("iota2.steps.iota2_step", "iota2.Steps.IOTA2Step")


def iota2_step_base() -> type | None:
    """iota2's ``Step`` base class when iota2 is importable, else None."""
    for module in IOTA2_STEP_MODULES:
        try:
            return getattr(importlib.import_module(module), "Step")  # noqa: B009
        except (ImportError, AttributeError):
            continue
    return None


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

    resources_block_name = "spot_fcn_classification"
    run: RunConfig
    tiles: list[str]

    def _configure(self, cfg: str, tiles: list[str] | None) -> None:
        self.run = load_config(cfg)
        self.tiles = list(tiles or self.run.chain.list_tile)

    @classmethod
    def step_description(cls) -> str:
        """One line for iota2's step listing."""
        return "SPOT 6/7 FCN land-cover map per tile (iota2_spot_s2), *_SPOT.tif in classif/"

    def step_inputs(self) -> list[TileJob]:
        """Every tile with a SPOT image x every seed of ``arg_train.runs``."""
        tiles = [t for t in self.tiles if t in self.run.plugin.spot_images]
        return [TileJob(tile, seed) for tile in tiles for seed in self.run.seeds]

    def step_execute(self) -> Callable[[TileJob], SpotClassification]:
        """The per-tile function (the nomenclature is read once, here)."""
        from iota2_spot_s2.pipeline.stages import load_nomenclature

        chain = self.run.chain
        nomenclature = load_nomenclature(chain.nomenclature_path, chain.color_table)
        return functools.partial(classify_tile, self.run, nomenclature=nomenclature)

    def step_outputs(self) -> list[Path]:
        """The ``classif/`` files the step writes."""
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
        return [execute(job) for job in tqdm(jobs, desc="SPOT FCN tiles", disable=not progress)]


class StandaloneSpotFCNClassification(SpotFCNSteps, StandaloneStep):
    """The step without iota2 (what ``fuse-classify iota2 step`` runs, iota2 installed or not)."""

    def __init__(
        self, cfg: str, cfg_resources_file: str | None = None, tiles: list[str] | None = None
    ) -> None:
        super().__init__(cfg, cfg_resources_file, self.resources_block_name)
        self._configure(cfg, tiles)


_Base: type = iota2_step_base() or StandaloneStep


class SpotFCNClassification(SpotFCNSteps, _Base):
    """Map each tile's SPOT image with the FCN into iota2's ``classif/`` (``_SPOT`` files).

    The class to name in an iota2 builder: on iota2's ``Step`` where iota2 imports, with one
    task per tile and seed in iota2's task graph.
    """

    def __init__(
        self, cfg: str, cfg_resources_file: str | None = None, tiles: list[str] | None = None
    ) -> None:
        super().__init__(cfg, cfg_resources_file, self.resources_block_name)
        self._configure(cfg, tiles)
        self._register_tasks()

    def _register_tasks(self) -> None:
        """One task per input in iota2's task graph, where the base class has one."""
        if not (hasattr(self, "i2_task") and hasattr(self, "add_task_to_i2_processing_graph")):
            return
        execute = self.step_execute()
        for job in self.step_inputs():
            task = self.i2_task(
                task_name=f"spot_fcn_{job.tile}_seed_{job.seed}",
                log_dir=str(self.run.chain.output_path / "logs" / self.step_name),
                execution_mode=getattr(self, "execution_mode", "local"),
                task_parameters={"f": execute, "job": job},
                task_resources=self.resources,
            )
            self.add_task_to_i2_processing_graph(
                task, task_group="tile_tasks", task_sub_group=f"{job.tile}_{job.seed}"
            )
