"""JSON-friendly descriptions of CRSs, grids and vector files (used by ``inspect_path``)."""

from __future__ import annotations

import math
from collections import Counter
from os import PathLike
from typing import Any

import numpy as np
import pyogrio
import pyogrio.errors
from pyproj import CRS as ProjCRS
from rasterio.crs import CRS

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.sensors._raster import first_line

_WKT_CHARS = 120
_VECTOR_ERRORS = (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError)


def json_value(value: Any) -> Any:
    """NumPy scalars -> Python; NaN -> None (strict JSON has no NaN)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def crs_info(crs: CRS | str | None) -> dict[str, Any] | None:
    """EPSG code (None if there is none), name and a shortened WKT."""
    if crs is None:
        return None
    parsed = crs if isinstance(crs, CRS) else CRS.from_user_input(crs)
    wkt = parsed.to_wkt()
    short = wkt if len(wkt) <= _WKT_CHARS else wkt[: _WKT_CHARS - 3] + "..."
    return {"epsg": parsed.to_epsg(), "name": ProjCRS.from_wkt(wkt).name, "wkt": short}


def grid_info(grid: Grid) -> dict[str, Any]:
    """Shape ``[rows, cols]``, pixel size, transform and bounds of a grid."""
    return {
        "shape": [grid.height, grid.width],
        "res": list(grid.res),
        "transform": list(tuple(grid.transform)[:6]),
        "bounds": list(grid.bounds),
    }


def inspect_vector(path: str | PathLike[str], field: str | None = None) -> dict[str, Any]:
    """Layers, geometry types, CRS, fields, feature counts (and ``field`` value counts).

    Raises:
        InputError: Unreadable file, or ``field`` in none of the layers.
    """
    try:
        layers = pyogrio.list_layers(path)
        infos = [pyogrio.read_info(path, layer=str(name)) for name, _ in layers]
    except _VECTOR_ERRORS as exc:
        raise InputError(path, f"cannot be read as a vector ({first_line(exc)})") from exc
    described = []
    for info in infos:
        fields = [str(f) for f in info["fields"]]
        entry: dict[str, Any] = {
            "name": info["layer_name"],
            "geometry_type": info["geometry_type"],
            "crs": crs_info(info["crs"]),
            "features": int(info["features"]),
            "bounds": [json_value(v) for v in info["total_bounds"]]
            if info.get("total_bounds") is not None
            else None,
            "fields": dict(zip(fields, (str(d) for d in info["dtypes"]), strict=True)),
        }
        if field is not None and field in fields:
            entry["field_values"] = _value_counts(path, info["layer_name"], field)
        described.append(entry)
    if field is not None and not any("field_values" in entry for entry in described):
        names = ", ".join(f for entry in described for f in entry["fields"])
        raise InputError(path, f"field {field!r} not found (fields: {names or 'none'})")
    driver = infos[0].get("driver") if infos else None
    return {"path": str(path), "kind": "vector", "driver": driver, "layers": described}


def _value_counts(path: str | PathLike[str], layer: str, field: str) -> dict[str, Any]:
    """Distinct values of one field with their feature counts, most frequent first."""
    try:
        _, _, _, columns = pyogrio.raw.read(path, layer=layer, columns=[field], read_geometry=False)
    except _VECTOR_ERRORS as exc:
        raise InputError(path, f"field {field!r} cannot be read ({first_line(exc)})") from exc
    counts = Counter(json_value(v) for v in columns[0])
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    return {
        "field": field,
        "n_distinct": len(counts),
        "counts": [{"value": value, "count": count} for value, count in ordered],
    }
