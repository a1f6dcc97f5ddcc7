"""Reading a cfg file: text checks, the ``config`` parser (0.4 or 0.5 API), then the schema.

:func:`load_config` is the one entry (``fuse-classify run``, ``iota2 check|step|features|fuse``
and the demo all call it): every problem becomes one :class:`~iota2_spot_s2.errors.InputError`
naming the file, never another exception.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import config as cfgparser
from pydantic import ValidationError

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.settings.messages import one_line, single_line
from iota2_spot_s2.settings.schema import CAMEL_TO_SNAKE, PLUGIN_SECTION, RunConfig

#: Where iota2 reads its number of seeds: today's ``arg_train.runs``, the older ``argTrain.runs``
#: spelling and iota2 2020's ``chain.runs`` (``settings/generation.py``).
RUNS_KEYS = (("arg_train", "runs"), ("argTrain", "runs"), ("chain", "runs"))
#: Largest cfg file read (a bigger one is some other file given by mistake).
MAX_BYTES = 16 << 20


def load_config(path: str | os.PathLike[str], *, check_paths: bool = True) -> RunConfig:
    """Read and validate an iota2 cfg file holding a ``chain`` and a ``spot_s2_fusion`` section.

    Every field is checked against the schema of :mod:`~iota2_spot_s2.settings.schema` (type,
    range, choices, rules across fields) before anything else runs.

    Raises:
        InputError: On unreadable, binary or non-UTF-8 files, syntax errors, missing, unknown
            or invalid fields, contradictions and, when ``check_paths``, input paths that do not
            exist; one line naming the cfg key, what it allows and what it got.

    """
    source = Path(path)
    if not source.is_file():
        raise InputError(source, "config file not found")
    raw = read_cfg(source)
    values, names = _model_input(source, raw)
    try:
        run = RunConfig.model_validate(values, context={"base": source.parent})
    except ValidationError as exc:
        raise InputError(source, one_line(exc, RunConfig, values, names)) from None
    if check_paths:
        _check_paths(run)
    return run


def read_cfg(path: str | os.PathLike[str], what: str = "iota2 cfg file") -> dict[str, Any]:
    """A cfg file as nested dicts and lists, with either API of the ``config`` package.

    ``config`` 0.5 (``Config(path).as_dict()``) or 0.4, which iota2's conda environment pins
    (``Config(stream)``, mappings with ``keys()``): the plugin must not force an upgrade there.

    Raises:
        InputError: If the file cannot be read, is binary or not UTF-8 text, or cannot be
            parsed (any failure of the parser on this text, whatever its type).

    """
    _check_text(path, what)
    try:
        if hasattr(cfgparser.Config, "as_dict"):
            parsed = cfgparser.Config(str(path)).as_dict()
        else:
            with open(path, encoding="utf-8") as stream:
                parsed = _plain(cfgparser.Config(stream))
    except Exception as exc:  # the parser's errors have no common base (ValueError, ...)
        detail = single_line(str(exc).strip() or type(exc).__name__)
        raise InputError(path, f"not a valid {what} ({detail[:200]})") from None
    if not isinstance(parsed, dict):
        raise InputError(path, f"not a valid {what} (its top level is not a mapping)")
    return dict(parsed)


def _check_text(path: str | os.PathLike[str], what: str) -> None:
    """Refuse binary, huge and non-UTF-8 files with a message saying so."""
    try:
        size = Path(path).stat().st_size
        if size > MAX_BYTES:
            raise InputError(path, f"not a valid {what}: {size >> 20} MiB, not a cfg file")
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot read the {what} ({exc.strerror or exc})") from None
    if b"\x00" in data:
        raise InputError(path, f"not a valid {what}: a binary file, not text")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            path, f"not a valid {what}: not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None
    if data.startswith(b"\xef\xbb\xbf"):
        raise InputError(path, f"not a valid {what}: starts with a byte-order mark; remove it")


def _plain(value: Any) -> Any:
    """``config`` 0.4 mappings and sequences as dicts and lists."""
    if isinstance(value, str | bytes | int | float | bool) or value is None:
        return value
    if hasattr(value, "keys"):
        return {str(key): _plain(value[key]) for key in value.keys()}  # noqa: SIM118 (0.4 API)
    return [_plain(item) for item in value]


def _model_input(source: Path, raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The schema's input (``chain`` in snake_case) and how to name its keys in messages."""
    chain = raw.get("chain")
    if not isinstance(chain, dict):
        raise InputError(source, "missing 'chain' section (a mapping { output_path : ... })")
    plugin = raw.get(PLUGIN_SECTION, {})
    if not isinstance(plugin, dict):
        raise InputError(source, f"'{PLUGIN_SECTION}' must be a mapping {{ key : value ... }}")
    values: dict[str, Any] = {"source": source, "chain": _snake_chain(source, chain)}
    values["plugin"] = plugin
    names = {"plugin": PLUGIN_SECTION, "runs": "arg_train.runs"}
    names |= {f"chain.{CAMEL_TO_SNAKE[k]}": f"chain.{k}" for k in chain if k in CAMEL_TO_SNAKE}
    runs = _agreeing(source, raw, RUNS_KEYS)
    if runs:
        names["runs"], values["runs"] = runs
    proj = _agreeing(source, raw, (("chain", "proj"), ("GlobChain", "proj")))
    if proj:
        values["chain"]["proj"] = proj[1]
        names["chain.proj"] = proj[0]
    return values, names


def _agreeing(
    source: Path, raw: dict[str, Any], keys: tuple[tuple[str, str], ...]
) -> tuple[str, Any] | None:
    """``(dotted key, value)`` of the first of ``keys`` the cfg sets; all set must agree.

    Raises:
        InputError: Naming two keys that hold different values.

    """
    found = [(f"{section}.{key}", raw[section][key]) for section, key in keys
             if isinstance(raw.get(section), dict) and key in raw[section]]  # fmt: skip
    for name, value in found[1:]:
        if repr(value) != repr(found[0][1]):
            first, other = found[0]
            raise InputError(source, f"{name} contradicts {first} ({value!r} vs {other!r})")
    return found[0] if found else None


def _snake_chain(source: Path, chain: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in chain.items():
        name = CAMEL_TO_SNAKE.get(key, key)
        if name in out and out[name] != value:
            raise InputError(
                source, f"chain.{key} contradicts chain.{name} ({value!r} vs {out[name]!r})"
            )
        out[name] = value
    return out


def _check_paths(run: RunConfig) -> None:
    chain, plugin = run.chain, run.plugin
    named: list[tuple[str, Path | None]] = [
        ("chain.ground_truth", chain.ground_truth),
        ("chain.s2_path", chain.s2_path),
        ("chain.nomenclature_path", chain.nomenclature_path),
        ("chain.color_table", chain.color_table),
        (f"{PLUGIN_SECTION}.mapping_table", plugin.mapping_table),
        (f"{PLUGIN_SECTION}.checkpoint", plugin.checkpoint),
        (f"{PLUGIN_SECTION}.product_recode", plugin.product_recode),
    ]
    named += [(f"{PLUGIN_SECTION}.spot_images.{t}", p) for t, p in plugin.spot_images.items()]
    for name, path in named:
        if path is not None and not exists(path):
            shown = single_line(str(path))
            raise InputError(run.source, f"{name} points to a missing path: {shown}")


def exists(path: Path) -> bool:
    """``path.exists()``, False for names the system refuses (too long, invalid)."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False
