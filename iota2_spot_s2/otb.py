"""The one adapter for Orfeo ToolBox (OTB) applications.

Every call to OTB in the package goes through :func:`run_app`. Two backends, tried in order:

1. the ``otbApplication`` Python module (iota2's conda environment ships it);
2. the ``otbcli_<name>`` launcher on ``PATH`` (e.g. Debian's ``otb-bin``), run as a subprocess.

If neither exists :class:`OTBUnavailable` is raised; if OTB fails, :class:`OTBError` carries OTB's
own message (its ``(FATAL)``/``ERROR`` lines).

Parameters are given as keyword arguments named after OTB's parameter keys:

- dots in keys are written as double underscores (``ref__raster__in`` -> ``ref.raster.in``), or
  pass the dotted keys by unpacking a dict: ``run_app("X", **{"ref.raster.in": path})``;
- one trailing underscore is dropped so Python keywords can be used (``in_`` -> ``in``);
- lists and tuples are expanded (``il=[a, b]`` -> ``-il a b``); an output image with a pixel
  type is a pair (``out=("map.tif", "uint8")`` -> ``-out map.tif uint8``);
- booleans follow OTB >= 7 conventions, where a boolean parameter takes a value:
  ``progress=False`` -> ``-progress false``;
- ``None`` values are left out; paths are converted to strings.

Memory: OTB sizes its streaming from the ``-ram`` parameter, whose default comes from the
``OTB_MAX_RAM_HINT`` environment variable (256 MB when unset). Unless the caller set that variable
or passes ``ram=``, we use :func:`ram_hint_mb` — a quarter of the memory available now, clamped
to [128, 2048] MB — so OTB neither starves nor competes with the Python process holding tensors.
The caller's environment is never modified: the hint goes into the subprocess's environment, or
into the application's ``ram`` parameter with the Python API.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from types import ModuleType
from typing import Any

LOGGER = logging.getLogger(__name__)

RAM_HINT_MIN_MB = 128
RAM_HINT_MAX_MB = 2048
_ERROR_MARKERS = ("(FATAL)", "ERROR", "Exception")
# OTB keys are letters, digits and dots; otbcli silently ignores an argument such as "-bad_key"
_KEY_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9]*(\.[A-Za-z0-9]+)*")


class OTBUnavailable(RuntimeError):
    """Neither the ``otbApplication`` module nor the ``otbcli_<name>`` launcher can be found."""


class OTBError(RuntimeError):
    """An OTB application failed.

    Attributes:
        app: The application name.
        message: OTB's error lines (or the tail of its output).

    """

    def __init__(self, app: str, message: str) -> None:
        self.app = app
        self.message = message
        super().__init__(f"OTB application {app} failed: {message}")


@functools.lru_cache(maxsize=1)
def _python_api() -> ModuleType | None:
    """The ``otbApplication`` module, or ``None`` if it cannot be imported."""
    try:
        import otbApplication
    except (ImportError, OSError):
        return None
    return otbApplication


def _launcher(name: str) -> str | None:
    return shutil.which(f"otbcli_{name}")


def otb_available(name: str) -> bool:
    """Whether the OTB application ``name`` can be run by :func:`run_app`."""
    api = _python_api()
    if api is not None and name in api.Registry.GetAvailableApplications():
        return True
    return _launcher(name) is not None


def ram_hint_mb() -> int:
    """RAM budget for OTB in MB: ``$OTB_MAX_RAM_HINT`` if set, else a quarter of available memory.

    The computed value is clamped to [``RAM_HINT_MIN_MB``, ``RAM_HINT_MAX_MB``].
    """
    env = os.environ.get("OTB_MAX_RAM_HINT", "").strip()
    if env.isdigit():
        return int(env)
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    except (ValueError, OSError, AttributeError):
        available = 4 * 512
    return int(min(RAM_HINT_MAX_MB, max(RAM_HINT_MIN_MB, available // 4)))


def otb_key(key: str) -> str:
    """Turn a Python keyword into an OTB key (``ref__raster__in`` -> ``ref.raster.in``)."""
    if key.endswith("_") and not key.endswith("__"):
        key = key[:-1]
    return key.replace("__", ".")


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)


def _normalise(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    values = {otb_key(k): v for k, v in params.items() if v is not None}
    bad = sorted(k for k in values if not _KEY_PATTERN.fullmatch(k))
    if bad:
        raise OTBError(
            name,
            f"invalid parameter key(s) {', '.join(bad)}: OTB keys hold letters, digits and dots "
            "(write a dot as '__', e.g. ref__raster__in)",
        )
    return values


def cli_arguments(name: str, params: Mapping[str, Any]) -> list[str]:
    """The ``otbcli_<name>`` argument list for ``params`` (without the launcher itself)."""
    args: list[str] = []
    for key, value in _normalise(name, params).items():
        args.append(f"-{key}")
        if isinstance(value, list | tuple):
            args.extend(_as_text(v) for v in value)
        else:
            args.append(_as_text(value))
    return args


def run_app(name: str, **params: Any) -> None:
    """Run the OTB application ``name`` with ``params`` (see the module docstring for naming).

    Raises:
        OTBUnavailable: If OTB cannot be found.
        OTBError: If the application reports a failure (bad parameter, unreadable input, ...).

    """
    api = _python_api()
    if api is not None:
        _run_python(api, name, params)
        return
    launcher = _launcher(name)
    if launcher is None:
        raise OTBUnavailable(
            f"OTB application {name} not found: neither the otbApplication Python module nor "
            f"otbcli_{name} on PATH (install OTB, e.g. Debian's otb-bin, or use iota2's env)"
        )
    _run_cli(launcher, name, params)


#: Exit statuses of a launcher killed by a signal through a shell wrapper (128 + SIGSEGV/SIGABRT).
_CRASH_CODES = (139, 134)


def _run_cli(launcher: str, name: str, params: Mapping[str, Any]) -> None:
    argv = [launcher, *cli_arguments(name, params)]
    env = dict(os.environ)
    env["OTB_MAX_RAM_HINT"] = str(ram_hint_mb())
    LOGGER.debug("running %s", " ".join(argv))
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if proc.returncode < 0 or proc.returncode in _CRASH_CODES:
        # Debian's OTB 8.1 FusionOfClassifications crashed (SIGSEGV) once in a few hundred runs
        # here, never twice in a row: retry once on one ITK thread before reporting it.
        LOGGER.warning("%s crashed (status %s); retrying on one thread", name, proc.returncode)
        env["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = "1"
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    output = "\n".join(part for part in (proc.stdout, proc.stderr) if part)
    LOGGER.debug("%s output:\n%s", name, output)
    if proc.returncode != 0 or "(FATAL)" in output:
        raise OTBError(name, _error_message(output, proc.returncode))


def _error_message(output: str, returncode: int) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if any(marker in line for marker in _ERROR_MARKERS)]
    picked = errors or lines[-10:] or [f"exit status {returncode}, no output"]
    return " | ".join(picked)


def _run_python(api: ModuleType, name: str, params: Mapping[str, Any]) -> None:
    app = api.Registry.CreateApplication(name)
    if app is None:
        raise OTBError(name, "no such application in otbApplication's registry")
    values = _normalise(name, params)
    try:
        keys = set(app.GetParametersKeys())
        unknown = sorted(set(values) - keys)
        if unknown:
            listed = ", ".join(unknown)
            raise OTBError(name, f"parameter(s) {listed} do not exist in the application")
        if "ram" in keys and "ram" not in values:
            app.SetParameterInt("ram", ram_hint_mb())
        for key, value in values.items():
            _set_python_parameter(api, app, key, value)
        app.ExecuteAndWriteOutput()
    except OTBError:
        raise
    except Exception as exc:  # otbApplication raises RuntimeError with OTB's message
        raise OTBError(name, str(exc).strip() or type(exc).__name__) from exc


def _set_python_parameter(api: ModuleType, app: Any, key: str, value: Any) -> None:
    if isinstance(value, list | tuple):
        is_output_image = app.GetParameterType(key) == api.ParameterType_OutputImage
        if is_output_image and len(value) == 2:
            app.SetParameterString(key, _as_text(value[0]))
            pixel_type = getattr(api, f"ImagePixelType_{value[1]}")
            app.SetParameterOutputImagePixelType(key, pixel_type)
        else:
            app.SetParameterStringList(key, [_as_text(v) for v in value])
    elif isinstance(value, bool):
        app.SetParameterString(key, _as_text(value))
    elif isinstance(value, int):
        app.SetParameterInt(key, value)
    elif isinstance(value, float):
        app.SetParameterFloat(key, value)
    else:
        app.SetParameterString(key, _as_text(value))
