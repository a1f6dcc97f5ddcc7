"""Build iota2 2020's chain with the SPOT step as iota2 does, run the step as iota2 runs it.

Usage (in a subprocess, so iota2 never leaks into the test process)::

    python iota2_step_probe.py IOTA2_ROOT CONFIG_04_DIR CFG RESOURCES WORKING_DIR RUN

What runs is iota2 2020's own code: ``Iota2Builder.iota2(cfg, resources)`` (looked up as
``Iota2.py`` looks it up, after :func:`~iota2_spot_s2.iota2.builders.iota2_2020.install_builder`
replaced the attribute in memory), its ``build_steps`` building all of iota2's steps as
``Step(cfg, resources, workingDirectory)`` with ``workingDirectory = $TMPDIR``, its
``StepContainer``, ``Step.__init__`` (``parse_resource_file``, ``return_decorator`` around
``step_execute``) and ``print_step_summarize``. With ``RUN == "run"`` it then does what
``Iota2.py``'s scheduler does with a step (``launchTask``: ``function(parameter)`` for each
parameter of ``step_inputs()``, the function from ``step_execute()``).

Stand-ins, only so that imports succeed (GDAL/OTB cannot be installed here; nothing the probe
checks calls them): the modules ``osgeo`` (+ ``gdal``, ``ogr``, ``osr``, ``gdalconst``), top-level
``gdal`` / ``ogr`` / ``osr`` and ``otbApplication`` (``iota2_mosaic_probe._stub_modules``); any
attribute read from the GDAL ones at import time (type hints such as ``ogr.Geometry``,
constants such as ``GDT_Int16``) is a placeholder that raises when used.

Prints one JSON object (see :func:`main`).
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import sys
from pathlib import Path


class _Placeholder:
    """A GDAL name read at import time; using it is an error (it is not GDAL)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *_: object, **__: object) -> None:
        raise RuntimeError(f"GDAL stand-in {self.name} used: not available in this probe")


def _stub_imports(tests_dir: str) -> None:
    sys.path.insert(0, tests_dir)
    from iota2_mosaic_probe import _stub_modules

    _stub_modules()
    for name in ("osgeo.gdal", "osgeo.ogr", "osgeo.osr", "osgeo.gdalconst"):
        module = sys.modules[name]
        module.__getattr__ = functools.partial(_missing, name)  # type: ignore[attr-defined]


def _missing(module: str, attribute: str) -> _Placeholder:
    if attribute.startswith("__"):
        raise AttributeError(attribute)
    return _Placeholder(f"{module}.{attribute}")


def main(root: str, config_dir: str, cfg: str, resources: str, work: str, run: str) -> None:
    """Print ``{"steps", "ours", "summary", "refused_partial", "outputs"}`` as JSON."""
    sys.path[:0] = [root, config_dir]
    _stub_imports(str(Path(__file__).parent))
    os.environ["TMPDIR"] = work  # iota2's builder reads its working directory from $TMPDIR
    from iota2_spot_s2.iota2.builders.iota2_2020 import install_builder

    install_builder()
    import Iota2Builder as chain  # the module object Iota2.py uses
    from iota2.Steps.IOTA2Step import Step, return_decorator

    built = chain.iota2(cfg, resources)
    steps = [built.steps[i] for i in range(len(built.steps))]
    ours = next(s for s in steps if s.step_name == "SpotFCNClassification")
    record: dict = {
        "steps": [[s.step_name, s.step_group] for s in steps],
        "ours": {
            "is_iota2_step": isinstance(ours, Step),
            "working_directory": ours.working_directory,
            "tiles": ours.tiles,
            "inputs": [[j.tile, j.seed] for j in ours.step_inputs()],
            "resources": ours.resources,
            "log_dir": ours.log_step_dir,
            "decorated": hasattr(ours.step_execute, "__wrapped__"),
            "previous": str(ours.previous_step),
            "next": str(ours.next_step),
        },
        "summary": built.print_step_summarize(1, len(steps), True),
    }
    partial = functools.partial(len)
    try:  # control: iota2's decorator does refuse what step_execute used to return
        return_decorator(lambda: partial)()
        record["refused_partial"] = False
    except Exception as exc:  # noqa: BLE001
        record["refused_partial"] = str(exc)
    execute = ours.step_execute()  # through iota2's return_decorator
    record["pickles"] = pickle.loads(pickle.dumps(execute)) is execute
    record["outputs"] = []
    if run == "run":
        for parameter in ours.step_inputs():
            done = execute(parameter)
            record["outputs"].append({k: str(p) for k, p in done.classif.items()})
    print(json.dumps(record))


if __name__ == "__main__":
    main(*sys.argv[1:7])
