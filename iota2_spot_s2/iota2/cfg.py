"""iota2 cfg files written by the plugin, and the check of every path a cfg names.

:func:`write_feature_cfg` copies the user's cfg (paths made absolute, since the copy lives
elsewhere) and registers the SPOT features twice: as a userFeat sensor (``chain.user_feat_path``
+ ``userFeat: { arbo, patterns }``) and as external features (``external_features: { module,
functions, concat_mode }``, the module being :mod:`iota2_spot_s2.iota2.external_features`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.io import atomic_output
from iota2_spot_s2.iota2.names import USER_FEAT_PATTERNS
from iota2_spot_s2.settings import (
    CAMEL_TO_SNAKE,
    PLUGIN_SECTION,
    RunConfig,
    format_cfg,
    load_config,
    read_cfg,
    resolve_path,
)
from iota2_spot_s2.settings.generation import Generation, detect_generation, to_generation
from iota2_spot_s2.settings.messages import single_line

#: ``chain`` fields holding paths (snake_case; camelCase spellings are mapped).
CHAIN_PATH_FIELDS = (
    "output_path", "s2_path", "ground_truth", "nomenclature_path", "color_table",
    "user_feat_path", "region_path", "s1_path", "l8_path",
)  # fmt: skip
#: The plugin's path fields (``spot_images`` maps tiles to paths).
PLUGIN_PATH_FIELDS = ("mapping_table", "checkpoint", "product_recode")
#: Paths that are outputs (need not exist yet, but their parent must).
OUTPUT_FIELDS = ("output_path", "user_feat_path")
#: External-features functions :func:`write_feature_cfg` registers beside the userFeat sensor:
#: only those that add something (``get_spot_fcn_proba`` and ``get_spot_texture`` return the
#: userFeat bands themselves, for a cfg that uses external features alone); they need the
#: SPOT NDVI (4-band images) and the texture kind.
EXTERNAL_FUNCTIONS = {"probabilities": (), "texture": ("get_spot_s2_ndvi_gap",)}
NDVI_FUNCTIONS = ("get_spot_s2_ndvi_gap",)


def _section(raw: dict[str, Any], name: str, source: Path | None) -> dict[str, Any]:
    value = raw.get(name) or {}
    if not isinstance(value, dict):
        raise InputError(source or "<cfg>", f"'{name}' must be a mapping")
    return value


def is_chain_path(key: str) -> bool:
    """A ``chain`` field holding a path (the known ones, and any ``*_path`` / ``*Path``)."""
    return CAMEL_TO_SNAKE.get(key, key) in CHAIN_PATH_FIELDS or key.endswith(("_path", "Path"))


def path_fields(raw: dict[str, Any], source: Path | None = None) -> list[tuple[str, str]]:
    """``(field, value)`` of every path the cfg names (chain, plugin, external features).

    Raises:
        InputError: If a section, or ``spot_images``, is not a mapping.

    """
    found: list[tuple[str, str]] = []
    for key, value in _section(raw, "chain", source).items():
        if is_chain_path(key) and isinstance(value, str) and _is_set(value):
            found.append((f"chain.{key}", value))
    plugin = _section(raw, PLUGIN_SECTION, source)
    for key in PLUGIN_PATH_FIELDS:
        if _is_set(plugin.get(key)):
            found.append((f"{PLUGIN_SECTION}.{key}", str(plugin[key])))
    images = _section(plugin, "spot_images", source)
    for tile, value in images.items():
        found.append((f"{PLUGIN_SECTION}.spot_images.{tile}", str(value)))
    module = _section(raw, "external_features", source).get("module")
    if _is_set(module):
        found.append(("external_features.module", str(module)))
    return found


def check_cfg_paths(path: str | os.PathLike[str]) -> list[tuple[str, Path]]:
    """Every path the cfg names, resolved; inputs must exist, outputs' parents must.

    The cfg is first validated like :func:`~iota2_spot_s2.settings.load_config` does (types,
    ranges, choices), so a bad value is reported before any path is listed; then its iota2
    generation (:func:`cfg_generation`): a cfg mixing 2020 and current keys is refused.

    Returns:
        ``(field, resolved path)`` of every path checked.

    Raises:
        InputError: Naming the cfg, its first invalid value, the keys of each generation of a
            mixed cfg, or the first field whose path is missing.

    """
    source = Path(path)
    load_config(source, check_paths=False)
    raw = read_cfg(source)
    generation = detect_generation(raw)
    if generation.mixed:
        raise InputError(source, generation.describe())
    checked: list[tuple[str, Path]] = []
    for name, value in path_fields(raw, source):
        resolved = resolve_path(source.parent, value)
        output = CAMEL_TO_SNAKE.get(name.split(".")[-1], name.split(".")[-1]) in OUTPUT_FIELDS
        must_exist = resolved.parent if output else resolved
        if not _exists(must_exist):
            shown = single_line(str(must_exist))
            raise InputError(source, f"{name} points to a missing path: {shown}")
        checked.append((name, resolved))
    return checked


def check_cfg_inputs(run: RunConfig) -> None:
    """The inputs the step reads first open as what they must be, not only exist.

    ``iota2 check`` calls it after :func:`check_cfg_paths`.

    Raises:
        InputError: Naming the file: a ground truth without ``chain.data_field`` or without
            features, or a ``spot_images`` file GDAL cannot open or that has no CRS.
    """
    import rasterio
    from rasterio.errors import RasterioIOError

    from iota2_spot_s2.pipeline.stages import RASTER_SUFFIXES
    from iota2_spot_s2.reference.vector import check_vector_layer

    truth = run.chain.ground_truth
    rasters = [(f"{PLUGIN_SECTION}.spot_images.{t}", p) for t, p in run.plugin.spot_images.items()]
    if truth is not None and truth.suffix.lower() in RASTER_SUFFIXES:
        rasters.append(("chain.ground_truth", truth))
    elif truth is not None:
        check_vector_layer(truth, run.chain.data_field, run.plugin.reference_layer)
    for name, path in rasters:
        try:
            with rasterio.open(path) as src:
                crs = src.crs
        except RasterioIOError:
            raise InputError(path, f"is not a raster GDAL can open ({name})") from None
        if crs is None:
            raise InputError(path, f"has no CRS ({name})")


def cfg_generation(path: str | os.PathLike[str]) -> Generation:
    """The iota2 generation of a cfg file (2020 camelCase, current snake_case, or mixed)."""
    return detect_generation(read_cfg(path))


def generation_line(path: str | os.PathLike[str]) -> str:
    """What ``fuse-classify iota2 check`` prints about the cfg's generation (one line)."""
    return f"generation: {cfg_generation(path).describe()}"


def absolute_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """A copy of the cfg with every path field made absolute (relative to ``base``)."""
    out = {name: dict(body) if isinstance(body, dict) else body for name, body in raw.items()}
    chain = out.get("chain") or {}
    for key, value in list(chain.items()):
        if is_chain_path(key) and isinstance(value, str) and _is_set(value):
            chain[key] = str(resolve_path(base, value))
    plugin = out.get(PLUGIN_SECTION)
    if isinstance(plugin, dict):
        for key in PLUGIN_PATH_FIELDS:
            if _is_set(plugin.get(key)):
                plugin[key] = str(resolve_path(base, plugin[key]))
        images = plugin.get("spot_images") or {}
        plugin["spot_images"] = {t: str(resolve_path(base, p)) for t, p in images.items()}
    return out


def write_feature_cfg(
    source: Path,
    out: Path,
    user_feat_path: Path,
    features: tuple[str, ...],
    *,
    ndvi: bool = True,
    generation: str | None = None,
) -> Path:
    """Write ``out``: the cfg ``source`` with the SPOT features registered (module docstring).

    ``ndvi=False`` (a panchromatic SPOT image: no NDVI in ``SPOT_TEXTURE``) leaves out the
    external feature that needs it. ``generation`` (``'2020'`` or ``'current'``) renames the
    copy's keys for that iota2 generation (``settings.generation.to_generation``); ``None``
    keeps the source's.
    """
    from iota2_spot_s2.iota2 import external_features

    source = Path(source).resolve()
    raw = absolute_paths(read_cfg(source), source.parent)
    chain = raw.setdefault("chain", {})
    camel = detect_generation(raw).name == "2020" or any(k in CAMEL_TO_SNAKE for k in chain)
    chain.pop("userFeatPath", None)
    chain.pop("user_feat_path", None)
    chain["userFeatPath" if camel else "user_feat_path"] = str(user_feat_path)
    raw["userFeat"] = {
        "arbo": "/*",
        "patterns": ",".join(USER_FEAT_PATTERNS[f] for f in features),
    }
    functions = [
        name
        for f in features
        for name in EXTERNAL_FUNCTIONS[f]
        if ndvi or name not in NDVI_FUNCTIONS
    ]
    raw.pop("external_features", None)
    if functions:
        raw["external_features"] = {
            "module": str(Path(external_features.__file__).resolve()),
            "functions": " ".join(functions),
            "concat_mode": True,
        }
    if generation is not None:
        raw = to_generation(raw, generation)
    with atomic_output(out) as tmp:
        tmp.write_text(format_cfg(raw))
    return out


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):  # a name the system refuses (too long, NUL byte)
        return False


def _is_set(value: Any) -> bool:
    return value not in (None, "", "None")
