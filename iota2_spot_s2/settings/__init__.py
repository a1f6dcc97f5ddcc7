"""One typed configuration, read and validated once at the edge from an iota2 cfg file.

The file uses the syntax of the ``config`` package that iota2 parses its own cfg files with, so a
single file drives both iota2 and ``fuse-classify``:

- the ``chain`` section holds iota2's usual fields (``output_path``, ``s2_path``, ``list_tile``,
  ``ground_truth``, ``data_field``, ``nomenclature_path``, ``color_table``,
  ``spatial_resolution``, ``proj``), in today's snake_case or the older camelCase names;
- ``arg_train.runs`` (older ``argTrain.runs``, iota2 2020's ``chain.runs``; all given must
  agree): how many seeds iota2 runs; ``chain.proj`` or 2020's ``GlobChain.proj``;
- :mod:`.generation` tells a 2020 (camelCase) cfg from a current (snake_case) one and renames
  a cfg's keys into either;
- the ``spot_s2_fusion`` section holds this plugin's settings (SPOT image per tile, models,
  strategies, training recipe, tiling).

:func:`load_config` checks every field against one schema (:mod:`.schema`: pydantic models with
strict types, ranges and choices, plus the rules across fields) and reports any violation as one
:class:`~iota2_spot_s2.errors.InputError` line naming the key, e.g. ``spot_s2_fusion.tile_size
must be an integer >= 64 (pixels) (got 0)``. Numbers written in quotes are refused (the
``config`` syntax types its values); binary and non-UTF-8 files are refused with a line saying so.

Unknown fields of our own section are errors (a typo must not silently fall back to a default);
unknown ``chain`` fields are ignored, since iota2 defines many that we do not use. A field given
in both spellings with different values is reported as a contradiction.

Functions downstream receive plain values from these models, never the config object.
"""

from iota2_spot_s2.settings.generation import Generation, detect_generation, to_generation
from iota2_spot_s2.settings.reader import load_config, read_cfg
from iota2_spot_s2.settings.rules import resolve_path
from iota2_spot_s2.settings.schema import (
    CAMEL_TO_SNAKE,
    LATE_RULES,
    NETWORKS,
    PLUGIN_SECTION,
    S2_CLASSIFIERS,
    SINGLE_STRATEGIES,
    SPOT_FEATURES,
    SPOT_MODELS,
    STRATEGIES,
    ChainSettings,
    PluginSettings,
    RunConfig,
    TrainingSettings,
)
from iota2_spot_s2.settings.writer import format_cfg

__all__ = [
    "CAMEL_TO_SNAKE",
    "LATE_RULES",
    "NETWORKS",
    "PLUGIN_SECTION",
    "S2_CLASSIFIERS",
    "SINGLE_STRATEGIES",
    "SPOT_FEATURES",
    "SPOT_MODELS",
    "STRATEGIES",
    "ChainSettings",
    "Generation",
    "PluginSettings",
    "RunConfig",
    "TrainingSettings",
    "detect_generation",
    "format_cfg",
    "load_config",
    "read_cfg",
    "resolve_path",
    "to_generation",
]
