"""Read one field and the geometries of a vector layer, reprojected onto a grid's CRS.

Reading goes through ``pyogrio.raw.read`` (no geopandas needed) and shapely 2 arrays.
Reprojection uses pyproj (``always_xy``). Layers of more than :data:`BBOX_FILTER_MIN_FEATURES`
features are read with a bounding-box filter around the grid, so a national layer is not loaded
whole; smaller layers are read entirely, so that every feature is accounted for in reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike

import numpy as np
import pyogrio
import shapely
from pyogrio import raw
from pyogrio.errors import DataLayerError, DataSourceError
from pyproj import CRS as ProjCRS
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.warp import transform_bounds

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.grid import Grid

BBOX_FILTER_MIN_FEATURES = 50_000


@dataclass(frozen=True)
class Features:
    """Features of one layer, geometries in the target CRS.

    Attributes:
        layer: Name of the layer read.
        total: Number of features in the layer.
        values: Field value per feature read (numpy array, ``None`` for nulls in text fields).
        geometries: shapely geometries (``None`` where the feature has none), in target CRS.
        fids: Feature ids as stored in the file.

    """

    layer: str
    total: int
    values: np.ndarray
    geometries: np.ndarray
    fids: np.ndarray


def _pick_layer(path: str | PathLike[str], layer: str | int | None) -> str:
    try:
        layers = pyogrio.list_layers(path)
    except (DataSourceError, OSError) as exc:
        raise InputError(path, f"cannot be read as a vector file ({_first_line(exc)})") from exc
    names = [str(n) for n, gtype in layers]
    if isinstance(layer, int):
        if not 0 <= layer < len(names):
            raise InputError(path, f"layer index {layer} out of range (layers: {names})")
        return names[layer]
    if layer is not None:
        if layer not in names:
            raise InputError(path, f"layer {layer!r} not found (layers: {names})")
        return layer
    spatial = [str(n) for n, gtype in layers if gtype is not None]
    if len(spatial) != 1:
        raise InputError(path, f"holds layers {spatial or names}; name the one to use")
    return spatial[0]


def _layer_info(path: str | PathLike[str], layer: str, field: str) -> dict:
    try:
        info = pyogrio.read_info(path, layer=layer)
    except (DataSourceError, DataLayerError) as exc:
        raise InputError(path, f"layer {layer!r} cannot be read ({_first_line(exc)})") from exc
    fields = [str(f) for f in info["fields"]]
    if field not in fields:
        raise InputError(path, f"field {field!r} not found in layer {layer!r} (fields: {fields})")
    if not info.get("crs"):
        raise InputError(path, f"layer {layer!r} has no CRS")
    return info


def check_vector_layer(
    path: str | PathLike[str], field: str, layer: str | int | None = None
) -> tuple[str, int]:
    """The layer a reference will be read from and its feature count, checked without reading it.

    Raises:
        InputError: Unreadable file, ambiguous or missing layer, missing field, no CRS, or a
            layer without any feature.
    """
    name = _pick_layer(path, layer)
    info = _layer_info(path, name, field)
    count = int(info.get("features") or 0)
    if count == 0:
        raise InputError(path, f"layer {name!r} holds no feature")
    return name, count


def _bbox_in_layer_crs(grid: Grid, crs: CRS) -> tuple[float, float, float, float] | None:
    try:
        bbox = transform_bounds(grid.crs, crs, *grid.bounds, densify_pts=21)
    except Exception:  # noqa: BLE001 - any projection failure: read everything instead
        return None
    return bbox if np.all(np.isfinite(bbox)) else None


def read_features(
    path: str | PathLike[str],
    field: str,
    *,
    layer: str | int | None = None,
    grid: Grid | None = None,
) -> Features:
    """Read ``field`` and the geometries of a layer, reprojected to ``grid.crs`` if given.

    Raises:
        InputError: unreadable file, ambiguous or missing layer, missing field, no CRS.

    """
    name = _pick_layer(path, layer)
    info = _layer_info(path, name, field)
    src_crs = CRS.from_user_input(info["crs"])
    total = int(info.get("features", -1))
    bbox = None
    if grid is not None and total > BBOX_FILTER_MIN_FEATURES:
        bbox = _bbox_in_layer_crs(grid, src_crs)
    try:
        meta, fids, wkb, data = raw.read(
            path, layer=name, columns=[field], bbox=bbox, return_fids=True
        )
    except (DataSourceError, DataLayerError, pyogrio.errors.FieldError) as exc:
        raise InputError(path, f"layer {name!r} cannot be read ({_first_line(exc)})") from exc
    values = data[[str(f) for f in meta["fields"]].index(field)]
    geoms = shapely.from_wkb(wkb) if wkb is not None else np.full(len(values), None, object)
    if grid is not None and src_crs != grid.crs:
        geoms = _reproject(geoms, src_crs, grid.crs)
    if total < 0:
        total = len(values)
    fid_array = np.asarray(fids) if fids is not None else np.arange(len(values))
    return Features(name, total, np.asarray(values), np.asarray(geoms, dtype=object), fid_array)


def _reproject(geoms: np.ndarray, src: CRS, dst: CRS) -> np.ndarray:
    transformer = Transformer.from_crs(
        ProjCRS.from_wkt(src.to_wkt()), ProjCRS.from_wkt(dst.to_wkt()), always_xy=True
    )

    def forward(xy: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, forward)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
