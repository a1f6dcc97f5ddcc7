"""One typed configuration, read once at the edge from an iota2 cfg file.

The file uses the syntax of the ``config`` package that iota2 parses its own cfg files with, so a
single file drives both iota2 and ``fuse-classify``:

- the ``chain`` section holds iota2's usual fields (``output_path``, ``s2_path``, ``list_tile``,
  ``ground_truth``, ``data_field``, ``nomenclature_path``, ``color_table``,
  ``spatial_resolution``, ``proj``), in today's snake_case or the older camelCase names;
- the ``spot_s2_fusion`` section holds this plugin's settings (SPOT image per tile, models,
  strategies, training recipe, tiling).

Unknown fields of our own section are errors (a typo must not silently fall back to a default);
unknown ``chain`` fields are ignored, since iota2 defines many that we do not use. A field given
in both spellings with different values is reported as a contradiction.

Functions downstream receive plain values from these dataclasses, never the config object.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import config as cfgparser

from iota2_spot_s2.errors import InputError

PLUGIN_SECTION = "spot_s2_fusion"

#: iota2's older camelCase chain field names and their current snake_case names.
CAMEL_TO_SNAKE = {
    "outputPath": "output_path",
    "S2Path": "s2_path",
    "listTile": "list_tile",
    "groundTruth": "ground_truth",
    "dataField": "data_field",
    "nomenclaturePath": "nomenclature_path",
    "colorTable": "color_table",
    "spatialResolution": "spatial_resolution",
    "userFeatPath": "user_feat_path",
}

#: Single-sensor and fused strategies; ``late-<rule>`` takes a rule of :mod:`iota2_spot_s2.fusion`.
SINGLE_STRATEGIES = ("spot", "s2-rf", "s2-tempcnn", "early")
LATE_RULES = ("mean", "weighted_mean", "product", "vote", "dempster_shafer", "dempster_shafer_otb")
STRATEGIES = SINGLE_STRATEGIES + tuple(f"late-{rule}" for rule in LATE_RULES)
#: SPOT-derived features the feature-level iota2 route can write (userFeat / external features).
SPOT_FEATURES = ("probabilities", "texture")


@dataclass(frozen=True)
class ChainSettings:
    """The iota2 ``chain`` fields we use."""

    output_path: Path
    list_tile: tuple[str, ...]
    ground_truth: Path | None = None
    data_field: str = "code"
    s2_path: Path | None = None
    nomenclature_path: Path | None = None
    color_table: Path | None = None
    spatial_resolution: float | None = None
    proj: str | None = None
    user_feat_path: Path | None = None


@dataclass(frozen=True)
class TrainingSettings:
    """The training recipe (defaults: the seed recipe, see :mod:`iota2_spot_s2.training`)."""

    epochs: int = 300
    iters_per_epoch: int | None = None
    batch_size: int = 8
    crop: int = 128
    lr: float = 1e-3
    schedule: str = "cosine"
    warmup: float = 0.03
    step_size: int = 50
    gamma: float = 0.7
    patience: int = 60
    max_minutes: float | None = None
    max_steps: int | None = None
    rounds: int = 20
    class_weighting: str = "median_frequency"
    class_balanced: bool = False
    val_max_pixels: int | None = 500_000
    bf16: bool = False


@dataclass(frozen=True)
class PluginSettings:
    """The ``spot_s2_fusion`` section."""

    spot_images: dict[str, Path] = field(default_factory=dict)
    models: tuple[str, ...] = ("fcn",)
    strategies: tuple[str, ...] = ("spot",)
    s2_classifier: str = "rf"
    tempcnn_epochs: int = 20
    fusion_model: str = "fcn"
    mob: str = "precision"
    seed: int = 0
    split_block_m: float = 96.0
    mapping_table: Path | None = None
    reference_layer: str | None = None
    tile_size: int = 512
    write_probabilities: bool = True
    simulated: bool = False
    checkpoint: Path | None = None
    iota2_model: str = "1"
    decision_rule: str = "dempster_shafer_otb"
    spot_features: tuple[str, ...] = ("probabilities", "texture")
    training: TrainingSettings = field(default_factory=TrainingSettings)
    model_steps: dict[str, int] = field(default_factory=dict)

    def recipe(self, model_name: str) -> dict[str, Any]:
        """The training arguments of one network: ``training`` with its ``model_steps`` budget."""
        values = dataclasses.asdict(self.training)
        if model_name in self.model_steps:
            values["max_steps"] = self.model_steps[model_name]
        return values


@dataclass(frozen=True)
class RunConfig:
    """Everything ``fuse-classify run`` needs, validated."""

    source: Path
    chain: ChainSettings
    plugin: PluginSettings
    runs: int = 1

    @property
    def seeds(self) -> tuple[int, ...]:
        """iota2's seeds ``0 .. arg_train.runs - 1`` (the ``seed_<S>`` of its file names)."""
        return tuple(range(self.runs))


def load_config(path: str | os.PathLike[str], *, check_paths: bool = True) -> RunConfig:
    """Read and validate an iota2 cfg file holding a ``chain`` and a ``spot_s2_fusion`` section.

    Raises:
        InputError: On syntax errors, missing or unknown fields, contradictions and, when
            ``check_paths``, input paths that do not exist.

    """
    source = Path(path)
    if not source.is_file():
        raise InputError(source, "config file not found")
    raw = read_cfg(source)
    base = source.parent
    chain = _chain_settings(source, raw.get("chain"), base)
    plugin = _plugin_settings(source, raw.get(PLUGIN_SECTION, {}), base, chain)
    run = RunConfig(source=source, chain=chain, plugin=plugin, runs=_runs(source, raw))
    if check_paths:
        _check_paths(run)
    return run


def read_cfg(path: str | os.PathLike[str], what: str = "iota2 cfg file") -> dict[str, Any]:
    """A cfg file as nested dicts and lists, with either API of the ``config`` package.

    ``config`` 0.5 (``Config(path).as_dict()``) or 0.4, which iota2's conda environment pins
    (``Config(stream)``, mappings with ``keys()``): the plugin must not force an upgrade there.

    Raises:
        InputError: If the file cannot be read or parsed.

    """
    errors = tuple(
        getattr(cfgparser, name)
        for name in ("ConfigError", "ConfigFormatError", "RecognizerError")
        if hasattr(cfgparser, name)
    )
    try:
        if hasattr(cfgparser.Config, "as_dict"):
            return dict(cfgparser.Config(str(path)).as_dict())
        with open(path) as stream:
            plain = _plain(cfgparser.Config(stream))
        assert isinstance(plain, dict)
        return plain
    except (OSError, *errors) as exc:
        raise InputError(path, f"not a valid {what} ({exc})") from exc


def _plain(value: Any) -> Any:
    """``config`` 0.4 mappings and sequences as dicts and lists."""
    if isinstance(value, str | bytes | int | float | bool) or value is None:
        return value
    if hasattr(value, "keys"):
        return {str(key): _plain(value[key]) for key in value.keys()}  # noqa: SIM118 (0.4 API)
    return [_plain(item) for item in value]


def _runs(source: Path, raw: dict[str, Any]) -> int:
    """``arg_train.runs`` (older ``argTrain.runs``): how many seeds iota2 runs (default 1)."""
    values: dict[str, Any] = {}
    for name in ("arg_train", "argTrain"):
        section = raw.get(name)
        if isinstance(section, dict) and "runs" in section:
            values[name] = section["runs"]
    if len(set(map(str, values.values()))) > 1:
        raise InputError(source, f"argTrain.runs contradicts arg_train.runs ({values})")
    runs = next(iter(values.values()), 1)
    if not isinstance(runs, int) or isinstance(runs, bool) or runs < 1:
        raise InputError(source, f"arg_train.runs must be a positive integer, got {runs!r}")
    return runs


def _normalise_chain(source: Path, chain: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in chain.items():
        name = CAMEL_TO_SNAKE.get(key, key)
        if name in out and out[name] != value:
            raise InputError(
                source, f"chain.{key} contradicts chain.{name} ({value!r} vs {out[name]!r})"
            )
        out[name] = value
    return out


def _chain_settings(source: Path, chain: Any, base: Path) -> ChainSettings:
    if not isinstance(chain, dict):
        raise InputError(source, "missing 'chain' section")
    values = _normalise_chain(source, chain)
    for required in ("output_path", "list_tile"):
        if required not in values:
            raise InputError(source, f"chain.{required} is required")
    tiles = tuple(str(values["list_tile"]).split())
    if not tiles:
        raise InputError(source, "chain.list_tile is empty")

    def opt_path(name: str) -> Path | None:
        value = values.get(name)
        return resolve_path(base, value) if value not in (None, "", "None") else None

    resolution = values.get("spatial_resolution")
    if isinstance(resolution, list | tuple):
        resolution = resolution[0] if resolution else None
    return ChainSettings(
        output_path=resolve_path(base, values["output_path"]),
        list_tile=tiles,
        ground_truth=opt_path("ground_truth"),
        data_field=str(values.get("data_field", "code")),
        s2_path=opt_path("s2_path"),
        nomenclature_path=opt_path("nomenclature_path"),
        color_table=opt_path("color_table"),
        spatial_resolution=float(resolution) if resolution not in (None, "") else None,
        proj=str(values["proj"]) if values.get("proj") else None,
        user_feat_path=opt_path("user_feat_path"),
    )


def _plugin_settings(
    source: Path, section: Any, base: Path, chain: ChainSettings
) -> PluginSettings:
    if not isinstance(section, dict):
        raise InputError(source, f"'{PLUGIN_SECTION}' must be a mapping")
    values = dict(section)
    training = _dataclass_from(
        source, f"{PLUGIN_SECTION}.training", TrainingSettings, values.pop("training", {})
    )
    spot_raw = values.pop("spot_images", {})
    if not isinstance(spot_raw, dict):
        raise InputError(source, f"{PLUGIN_SECTION}.spot_images must map tile names to paths")
    spot_images = {str(tile): resolve_path(base, p) for tile, p in spot_raw.items()}
    unknown_tiles = sorted(set(spot_images) - set(chain.list_tile))
    if unknown_tiles:
        raise InputError(
            source,
            f"{PLUGIN_SECTION}.spot_images names tiles not in chain.list_tile: "
            f"{', '.join(unknown_tiles)}",
        )
    for listed in ("models", "strategies", "spot_features"):
        if listed in values and isinstance(values[listed], str):
            values[listed] = values[listed].split()
    for name in ("mapping_table", "checkpoint"):
        if values.get(name):
            values[name] = resolve_path(base, values[name])
    steps = values.get("model_steps", {})
    if not isinstance(steps, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in steps.values()
    ):
        raise InputError(
            source,
            f"{PLUGIN_SECTION}.model_steps must map network names (fcn, patch_cnn, "
            f"early_fusion) to positive step counts, got {steps!r}",
        )
    plugin = _dataclass_from(source, PLUGIN_SECTION, PluginSettings, values)
    plugin = dataclasses.replace(
        plugin,
        spot_images=spot_images,
        training=training,
        models=tuple(plugin.models),
        strategies=tuple(plugin.strategies),
        spot_features=tuple(plugin.spot_features),
        iota2_model=str(plugin.iota2_model),
    )
    _check_strategies(source, plugin, chain)
    return plugin


def _check_strategies(source: Path, plugin: PluginSettings, chain: ChainSettings) -> None:
    unknown = [s for s in plugin.strategies if s not in STRATEGIES]
    if unknown:
        raise InputError(
            source,
            f"{PLUGIN_SECTION}.strategies: unknown {', '.join(unknown)} "
            f"(known: spot, s2-rf, s2-tempcnn, early, late-<{'|'.join(LATE_RULES)}>)",
        )
    if plugin.decision_rule not in LATE_RULES:
        raise InputError(
            source,
            f"{PLUGIN_SECTION}.decision_rule must be one of {', '.join(LATE_RULES)}, "
            f"got {plugin.decision_rule!r}",
        )
    bad = sorted(set(plugin.spot_features) - set(SPOT_FEATURES))
    if bad or not plugin.spot_features:
        raise InputError(
            source,
            f"{PLUGIN_SECTION}.spot_features: unknown {', '.join(bad) or '(empty)'} "
            f"(known: {', '.join(SPOT_FEATURES)})",
        )
    if plugin.s2_classifier not in ("rf", "tempcnn"):
        raise InputError(source, f"{PLUGIN_SECTION}.s2_classifier must be 'rf' or 'tempcnn'")
    if plugin.fusion_model not in plugin.models and any(
        s.startswith("late-") for s in plugin.strategies
    ):
        raise InputError(
            source, f"{PLUGIN_SECTION}.fusion_model {plugin.fusion_model!r} is not in models"
        )
    if chain.s2_path is None and any(s != "spot" for s in plugin.strategies):
        raise InputError(
            source, "chain.s2_path is required by the Sentinel-2 and fusion strategies"
        )


def _dataclass_from(source: Path, where: str, cls: Any, values: Any) -> Any:
    if not isinstance(values, dict):
        raise InputError(source, f"{where} must be a mapping")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(
            source,
            f"unknown field(s) in {where}: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(known))})",
        )
    try:
        return cls(**values)
    except TypeError as exc:
        raise InputError(source, f"{where}: {exc}") from exc


def resolve_path(base: Path, value: Any) -> Path:
    """A cfg path value, ``~`` and ``$VARS`` expanded, relative ones taken from ``base``."""
    path = Path(os.path.expandvars(os.path.expanduser(str(value))))
    return path if path.is_absolute() else (base / path)


def _check_paths(run: RunConfig) -> None:
    chain, plugin = run.chain, run.plugin
    named: list[tuple[str, Path | None]] = [
        ("chain.ground_truth", chain.ground_truth),
        ("chain.s2_path", chain.s2_path),
        ("chain.nomenclature_path", chain.nomenclature_path),
        ("chain.color_table", chain.color_table),
        (f"{PLUGIN_SECTION}.mapping_table", plugin.mapping_table),
        (f"{PLUGIN_SECTION}.checkpoint", plugin.checkpoint),
    ]
    named += [(f"{PLUGIN_SECTION}.spot_images.{t}", p) for t, p in plugin.spot_images.items()]
    for name, path in named:
        if path is not None and not path.exists():
            raise InputError(run.source, f"{name} points to a missing path: {path}")


def format_cfg(sections: dict[str, dict[str, Any]]) -> str:
    """Render nested dicts in the ``config`` syntax iota2 reads (strings, numbers, bools, lists)."""
    lines: list[str] = []
    for name, body in sections.items():
        lines.append(f"{name} :")
        lines.extend(_format_mapping(body, indent=0))
    return "\n".join(lines) + "\n"


def _format_mapping(body: dict[str, Any], indent: int) -> list[str]:
    pad = "  " * indent
    out = [f"{pad}{{"]
    for key, value in body.items():
        name = key if str(key).isidentifier() else _format_value(str(key))
        if isinstance(value, dict):
            out.append(f"{pad}  {name} :")
            out.extend(_format_mapping(value, indent + 1))
        else:
            out.append(f"{pad}  {name} : {_format_value(value)}")
    out.append(f"{pad}}}")
    return out


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if value is None:
        return "None"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"
