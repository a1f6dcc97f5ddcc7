"""The one typed schema of a cfg: every field's type, range or choices, and the cross-field rules.

Types are strict: no ``True`` where an integer is expected, no text where a number is expected
(``tile_size : '512'`` is refused: the ``config`` syntax writes numbers without quotes, so a
quoted number is a mistake worth showing), and integers are accepted where a number is. Floats
must be finite. Lists may be written as lists or as one space-separated text.

The models are frozen pydantic models; a Python user may build them directly with typed values
(``Path``, tuples), which goes through the same checks.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from iota2_spot_s2.argtypes import SCHEDULER_PATTERN
from iota2_spot_s2.devices import PRECISIONS
from iota2_spot_s2.fusion._inputs import MOBS
from iota2_spot_s2.inference.tiling import DEFAULT_TILE
from iota2_spot_s2.models.fusion_net import EarlyFusionNet
from iota2_spot_s2.models.registry import MODELS
from iota2_spot_s2.settings.rules import CfgPath, OneOf, PathMap, Rule, Words, cfg_error
from iota2_spot_s2.training.losses import CLASS_WEIGHTINGS
from iota2_spot_s2.training.schedule import SCHEDULES

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
#: Sentinel-2 per-pixel classifiers (the ``s2-<kind>`` strategies).
S2_CLASSIFIERS = tuple(s.removeprefix("s2-") for s in SINGLE_STRATEGIES if s.startswith("s2-"))
#: Registered networks (``model_steps`` keys) and those that map the SPOT image alone (``models``).
NETWORKS = tuple(MODELS)
SPOT_MODELS = tuple(n for n, cls in MODELS.items() if not issubclass(cls, EarlyFusionNet))
#: The network the iota2 step trains (whatever ``models`` says): ``crop`` must suit it too.
IOTA2_STEP_MODEL = "fcn"
#: Largest seed every consumer takes (scikit-learn's ``random_state``).
MAX_SEED = 2**32 - 1

PositiveInt = Annotated[int, Field(ge=1), Rule("a positive integer")]
OptionalPositiveInt = Annotated[int | None, Field(ge=1), Rule("a positive integer or None")]
PositiveNumber = Annotated[float, Field(gt=0), Rule("a number > 0")]
OptionalPositiveNumber = Annotated[float | None, Field(gt=0), Rule("a number > 0 or None")]
Flag = Annotated[bool, Rule("True or False")]
Network = Annotated[str, OneOf(NETWORKS)]


def _zero_is_none(value: int | None) -> int | None:
    return value or None


def _first(value: Any) -> Any:
    """iota2 writes ``spatial_resolution`` as a number or a list (x and y): take the first."""
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    return None if value == "" else value


def _text_or_int(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class _Section(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid", allow_inf_nan=False)


class ChainSettings(_Section):
    """The iota2 ``chain`` fields we use (others are iota2's business and ignored)."""

    model_config = ConfigDict(extra="ignore")

    output_path: Annotated[Path, CfgPath()]
    list_tile: Annotated[tuple[str, ...], Words("tile names")]
    ground_truth: Annotated[Path | None, CfgPath(optional=True)] = None
    data_field: Annotated[str, Field(min_length=1), Rule("a field name (text)")] = "code"
    s2_path: Annotated[Path | None, CfgPath(optional=True)] = None
    nomenclature_path: Annotated[Path | None, CfgPath(optional=True)] = None
    color_table: Annotated[Path | None, CfgPath(optional=True)] = None
    spatial_resolution: Annotated[
        float | None, Field(gt=0), Rule("a number > 0 in metres, or a list of them")
    ] = None
    proj: Annotated[str | None, Rule("a projection such as 'EPSG:2154'")] = None
    user_feat_path: Annotated[Path | None, CfgPath(optional=True)] = None

    @model_validator(mode="before")
    @classmethod
    def _loose_forms(cls, data: Any) -> Any:
        """iota2's looser spellings: a resolution list, an integer projection, '' for unset."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "spatial_resolution" in data:
            data["spatial_resolution"] = _first(data["spatial_resolution"])
        if data.get("proj") in ("", "None"):
            data["proj"] = None
        if "proj" in data:
            data["proj"] = _text_or_int(data["proj"])
        return data


class TrainingSettings(_Section):
    """The training recipe (defaults: the seed recipe, see :mod:`iota2_spot_s2.training`)."""

    epochs: PositiveInt = 300
    iters_per_epoch: OptionalPositiveInt = None
    batch_size: PositiveInt = 8
    crop: PositiveInt = 128
    lr: PositiveNumber = 1e-3
    schedule: Annotated[str, OneOf(SCHEDULES)] = "cosine"
    warmup: Annotated[float, Field(ge=0, lt=1), Rule("a number >= 0 and < 1")] = 0.03
    step_size: PositiveInt = 50
    gamma: Annotated[float, Field(gt=0, le=1), Rule("a number > 0 and <= 1")] = 0.7
    patience: PositiveInt = 60
    max_minutes: OptionalPositiveNumber = None
    max_steps: OptionalPositiveInt = None
    rounds: PositiveInt = 20
    class_weighting: Annotated[str, OneOf(CLASS_WEIGHTINGS)] = "median_frequency"
    class_balanced: Flag = False
    val_max_pixels: Annotated[
        int | None,
        Field(ge=0),
        AfterValidator(_zero_is_none),
        Rule("an integer >= 0, or None (0 and None: every VAL pixel)"),
    ] = 500_000
    precision: Annotated[str, OneOf(PRECISIONS)] = "fp32"
    bf16: Flag = False  # the older spelling of precision = 'bf16'

    @model_validator(mode="after")
    def _one_precision(self) -> TrainingSettings:
        if self.bf16 and "precision" in self.model_fields_set and self.precision != "bf16":
            raise cfg_error(
                f"{PLUGIN_SECTION}.training.bf16 is True but training.precision is "
                f"{self.precision!r}: keep one of them"
            )
        return self


class PluginSettings(_Section):
    """The ``spot_s2_fusion`` section."""

    spot_images: Annotated[dict[str, Path], PathMap("tile names")] = Field(default_factory=dict)
    models: Annotated[tuple[str, ...], Words("SPOT networks", SPOT_MODELS)] = ("fcn",)
    strategies: Annotated[tuple[str, ...], Words("strategies", STRATEGIES)] = ("spot",)
    s2_classifier: Annotated[str, OneOf(S2_CLASSIFIERS)] = "rf"
    tempcnn_epochs: PositiveInt = 20
    fusion_model: Annotated[str, OneOf(SPOT_MODELS)] = "fcn"
    mob: Annotated[str, OneOf(MOBS)] = "precision"
    seed: Annotated[int, Field(ge=0, le=MAX_SEED), Rule(f"an integer from 0 to {MAX_SEED}")] = 0
    split_block_m: PositiveNumber = 96.0
    mapping_table: Annotated[Path | None, CfgPath(optional=True)] = None
    reference_layer: Annotated[str | None, Rule("a layer name (text), or None")] = None
    tile_size: Annotated[int, Field(ge=64), Rule("an integer >= 64, in pixels")] = DEFAULT_TILE
    write_probabilities: Flag = True
    simulated: Flag = False
    checkpoint: Annotated[Path | None, CfgPath(optional=True)] = None
    iota2_model: Annotated[
        str,
        Field(pattern=r"^[A-Za-z0-9_.+-]+$"),
        Rule("an integer or a name of letters, digits, '_', '.', '+', '-'"),
    ] = "1"
    decision_rule: Annotated[str, OneOf(LATE_RULES)] = "dempster_shafer_otb"
    spot_features: Annotated[tuple[str, ...], Words("SPOT features", SPOT_FEATURES)] = (
        "probabilities",
        "texture",
    )
    device: Annotated[
        str,
        Field(pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$"),
        Rule("auto, cpu, cuda or cuda:N (auto: CUDA when available)"),
    ] = "auto"
    map_precision: Annotated[str, OneOf(PRECISIONS)] = "fp32"
    scheduler: Annotated[
        str | None,
        Field(pattern=SCHEDULER_PATTERN),
        Rule("None, 'local', a dask scheduler address (tcp://host:port) or a scheduler .json"),
    ] = None
    workers: OptionalPositiveInt = None
    oso_product: Flag = False
    product_mmu_ha: Annotated[float, Field(ge=0), Rule("a number >= 0, in hectares")] = 0.1
    product_majority_radius: OptionalPositiveInt = None
    product_recode: Annotated[Path | None, CfgPath(optional=True)] = None
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    model_steps: Annotated[
        dict[Network, Annotated[int, Field(ge=1)]],
        Rule(f"a mapping of network names ({', '.join(NETWORKS)}) to positive step counts"),
    ] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _loose_forms(cls, data: Any) -> Any:
        """``iota2_model`` may be written as an integer."""
        if isinstance(data, dict) and "iota2_model" in data:
            data = {**data, "iota2_model": _text_or_int(data["iota2_model"])}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> PluginSettings:
        if self.fusion_model not in self.models and any(
            s.startswith("late-") for s in self.strategies
        ):
            raise cfg_error(
                f"{PLUGIN_SECTION}.fusion_model {self.fusion_model!r} is not in models "
                f"(got models {list(self.models)})"
            )
        for name in dict.fromkeys((*self.models, IOTA2_STEP_MODEL)):
            factor = downsample(name)
            if self.training.crop % factor:
                raise cfg_error(
                    f"{PLUGIN_SECTION}.training.crop must be a multiple of {factor} for {name} "
                    f"(got {self.training.crop}; the iota2 step trains {IOTA2_STEP_MODEL})"
                )
        return self

    def recipe(self, model_name: str) -> dict[str, Any]:
        """The training arguments of one network: ``training`` with its ``model_steps`` budget."""
        values = self.training.model_dump()
        if values.pop("bf16"):
            values["precision"] = "bf16"
        if model_name in self.model_steps:
            values["max_steps"] = self.model_steps[model_name]
        return values


@cache
def downsample(name: str) -> int:
    """The input-size multiple of a SPOT network (its ``downsample``)."""
    from iota2_spot_s2.models import build_model

    return int(build_model(name, 1, 1).downsample)


class RunConfig(BaseModel):
    """Everything ``fuse-classify run`` needs, validated."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    source: Path
    chain: ChainSettings
    plugin: PluginSettings = Field(default_factory=PluginSettings)
    runs: PositiveInt = 1

    @property
    def seeds(self) -> tuple[int, ...]:
        """iota2's seeds ``0 .. arg_train.runs - 1`` (the ``seed_<S>`` of its file names)."""
        return tuple(range(self.runs))

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        chain, plugin = self.chain, self.plugin
        unknown_tiles = sorted(set(plugin.spot_images) - set(chain.list_tile))
        if unknown_tiles:
            raise cfg_error(
                f"{PLUGIN_SECTION}.spot_images names tiles not in chain.list_tile: "
                f"{', '.join(unknown_tiles)}"
            )
        if chain.s2_path is None and any(s != "spot" for s in plugin.strategies):
            raise cfg_error(
                "chain.s2_path is required by the Sentinel-2 and fusion strategies "
                f"(got strategies {list(plugin.strategies)})"
            )
        return self
