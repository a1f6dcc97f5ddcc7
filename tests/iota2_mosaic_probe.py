"""Run iota2 2020's own mosaic step function on an output tree; print what it collected.

Usage (in a subprocess, so iota2 never leaks into the test process)::

    python iota2_mosaic_probe.py IOTA2_ROOT CONFIG_04_DIR OUTPUT_PATH NOMENCLATURE COLOURS DS

Calls ``iota2.Validation.ClassificationShaping.classification_shaping`` exactly as iota2's
``Steps/mosaic.py`` does without a region file (``classifMode 'separate'``, no working
directory, probability maps on, ``dempster_shafer_SAR_Opt_fusion = DS``). Every file list it
builds comes from iota2's own code (its globs, ``FileSearch_AND``, ``fileSearchRegEx``).

Stand-ins, for what cannot run here and is not what the test checks:

- the modules ``osgeo`` (+ ``gdal``, ``ogr``, ``osr``, ``gdalconst``), top-level ``gdal`` /
  ``ogr`` / ``osr`` and ``otbApplication``: empty modules, only so that imports succeed;
- the raster commands: ``ClassificationShaping.run`` runs shell commands (``mkdir``, ``cp``,
  ``mv``) for real and records ``otbcli_*`` ones (touching their ``-out`` file, so that iota2's
  later copies succeed); ``assembleTile_Merge``, ``compress_raster`` and
  ``CreateIndexedColorImage`` (GDAL) are recorded and their output touched.

Prints one JSON object: ``{"otb": [command, ...], "merge": [[inputs, output], ...]}``.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import types
from pathlib import Path


def _stub_modules() -> None:
    gdal = types.ModuleType("osgeo.gdal")
    gdal.GDT_Byte, gdal.GDT_UInt16 = 1, 2  # type: ignore[attr-defined]
    osgeo = types.ModuleType("osgeo")
    parts = {"gdal": gdal, "ogr": types.ModuleType("osgeo.ogr"),
             "osr": types.ModuleType("osgeo.osr"),
             "gdalconst": types.ModuleType("osgeo.gdalconst")}  # fmt: skip
    for name, module in parts.items():
        setattr(osgeo, name, module)
        sys.modules[f"osgeo.{name}"] = module
    sys.modules["osgeo"] = osgeo
    for name in ("gdal", "ogr", "osr"):
        sys.modules[name] = parts[name]
    sys.modules["otbApplication"] = types.ModuleType("otbApplication")


def _touch(path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(b"")


def main(root: str, config_dir: str, output: str, nomenclature: str, colours: str, ds: str) -> None:
    """See the module docstring."""
    sys.path[:0] = [root, config_dir]
    _stub_modules()
    from iota2.Validation import ClassificationShaping as shaping

    record: dict[str, list] = {"otb": [], "merge": []}

    def run(cmd: str, *_: object, **__: object) -> None:
        if not cmd.startswith("otbcli_"):
            subprocess.run(cmd, shell=True, check=True)
            return
        record["otb"].append(cmd)
        words = shlex.split(cmd)
        _touch(words[words.index("-out") + 1])

    def merge(inputs: list[str], _res: object, out: str, *_: object, **__: object) -> None:
        record["merge"].append([list(inputs), out])
        _touch(out)

    shaping.run = run
    shaping.fu.assembleTile_Merge = merge
    shaping.compress_raster = lambda src, dst, *a, **k: _touch(dst)
    shaping.color.CreateIndexedColorImage = lambda *a, **k: None
    shaping.classification_shaping(
        f"{output}/classif", 1, f"{output}/final", None, "separate", output, ds == "True",
        2154, nomenclature, False, [10.0, 10.0], True, None, colours,
    )  # fmt: skip
    print(json.dumps(record))


if __name__ == "__main__":
    main(*sys.argv[1:7])
