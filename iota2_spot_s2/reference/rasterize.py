"""Burn a reference vector layer onto a grid as uint16 class codes (0 = no-data), with a report.

Rules (what a user needs to know to trust the labels):

- Every feature burns one code: its field value (which must then be an integer), or, with a
  mapping table, ``mapping[value]``. Null values, unmapped values and targets of 0 burn **0**.
- Features are burned in layer order and the **last feature wins** where polygons overlap (the
  same rule as ``gdal_rasterize``). Pixels covered by two or more features that would burn
  different codes (0 included) are counted in ``report.conflict_pixels``, so the rule's effect
  is visible. The optional feature-id raster follows the same rule.
- A pixel belongs to a polygon when its centre is inside (GDAL's rule), or when the polygon
  touches it at all with ``all_touched=True``.
- With a nomenclature, burned codes it does not list are reset to 0 afterwards and reported.
- Empty or missing geometries are skipped; invalid ones are repaired with
  ``shapely.make_valid(method="structure")``; both are counted.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.features import rasterize
from rasterio.windows import Window, from_bounds

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.io import atomic_output
from iota2_spot_s2.nomenclature import Nomenclature
from iota2_spot_s2.reference.mapping import MAX_CODE, read_mapping_table, source_key
from iota2_spot_s2.reference.vector import read_features

CONFLICT_RULE = "last feature in layer order wins"


@dataclass
class RasterizeReport:
    """What happened to each feature; ``to_dict()`` is JSON-serialisable.

    ``features_total == features_outside_grid + features_empty_geometry + features_burned``.
    """

    vector_path: str
    layer: str
    field: str
    features_total: int = 0
    features_read: int = 0
    features_outside_grid: int = 0
    features_empty_geometry: int = 0
    features_invalid_geometry: int = 0
    features_burned: int = 0
    features_null_value: int = 0
    features_mapped_to_nodata: int = 0
    unmapped_values: dict[str, int] = dataclasses.field(default_factory=dict)
    unknown_code_features: dict[int, int] = dataclasses.field(default_factory=dict)
    unknown_code_pixels: dict[int, int] = dataclasses.field(default_factory=dict)
    class_pixel_counts: dict[int, int] = dataclasses.field(default_factory=dict)
    labelled_pixels: int = 0
    nodata_pixels: int = 0
    conflict_pixels: int = 0
    conflict_rule: str = CONFLICT_RULE

    def to_dict(self) -> dict[str, object]:
        """Plain dict with string keys everywhere (JSON-ready)."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, dict):
                out[key] = {str(k): v for k, v in value.items()}
        return out

    def to_json(self, indent: int = 2) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


@dataclass
class RasterizeResult:
    """Labels on ``grid`` and the report; optional per-pixel feature index.

    Attributes:
        labels: uint16 ``(height, width)`` codes, 0 = no-data.
        report: :class:`RasterizeReport`.
        grid: The grid the labels lie on.
        feature_ids: int32 raster of ``1 + index`` of the feature that won each pixel (0 none),
            only with ``feature_ids=True``; ``fids[feature_ids - 1]`` gives the file's FIDs.
        fids: FID of each feature read, in read order.

    """

    labels: np.ndarray
    report: RasterizeReport
    grid: Grid
    feature_ids: np.ndarray | None = None
    fids: np.ndarray | None = None


def _codes_from_values(
    values: np.ndarray,
    mapping: Mapping[str, int] | None,
    report: RasterizeReport,
    path: str | PathLike[str],
) -> np.ndarray:
    codes = np.zeros(len(values), dtype=np.int64)
    unmapped: Counter[str] = Counter()
    for i, value in enumerate(values):
        key = source_key(value)
        if key is None:
            report.features_null_value += 1
            continue
        if mapping is not None:
            if key not in mapping:
                unmapped[key] += 1
                continue
            codes[i] = mapping[key]
        else:
            codes[i] = _as_code(key, report.field, path)
        report.features_mapped_to_nodata += int(codes[i] == 0)
    report.unmapped_values = dict(sorted(unmapped.items()))
    return codes


def _as_code(key: str, field_name: str, path: str | PathLike[str]) -> int:
    try:
        code = int(key)
    except ValueError:
        raise InputError(
            path, f"field {field_name!r} holds non-integer value {key!r}; give a mapping table"
        ) from None
    if not 0 <= code <= MAX_CODE:
        raise InputError(path, f"field {field_name!r} holds {code}, not a code in 0..{MAX_CODE}")
    return code


def _clean_geometries(geoms: np.ndarray, report: RasterizeReport) -> np.ndarray:
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    report.features_empty_geometry = int(empty.sum())
    invalid = ~empty & ~shapely.is_valid(geoms)
    report.features_invalid_geometry = int(invalid.sum())
    if invalid.any():
        geoms = geoms.copy()
        geoms[invalid] = shapely.make_valid(
            geoms[invalid], method="structure", keep_collapsed=False
        )
    geoms = geoms.copy()
    geoms[empty] = None
    return geoms


def _burn(
    geoms: np.ndarray, values: np.ndarray, grid: Grid, all_touched: bool, dtype: str
) -> np.ndarray:
    if len(geoms) == 0:
        return np.zeros(grid.shape, dtype=dtype)
    return rasterize(
        zip(geoms, (int(v) for v in values), strict=True),
        out_shape=grid.shape,
        transform=grid.transform,
        fill=0,
        all_touched=all_touched,
        dtype=dtype,
    )


def _conflict_pixels(geoms: np.ndarray, codes: np.ndarray, grid: Grid, all_touched: bool) -> int:
    """Pixels covered by >= 2 features burning different codes (exact, on a sub-window)."""
    if len(geoms) < 2:
        return 0
    tree = shapely.STRtree(geoms)
    if all_touched:  # features near the same pixel may both touch it without meeting
        diag = float(np.hypot(*grid.res))
        i, j = tree.query(geoms, predicate="dwithin", distance=diag)
    else:  # centre rule: only overlapping interiors can share a pixel
        i, j = tree.query(geoms, predicate="intersects")
    keep = (i < j) & (codes[i] != codes[j])
    i, j = i[keep], j[keep]
    if not all_touched and len(i):
        inner = ~shapely.touches(geoms[i], geoms[j])
        i, j = i[inner], j[inner]
    if len(i) == 0:
        return 0
    cand = np.unique(np.concatenate([i, j]))
    window = _window_of(geoms[cand], grid)
    if window is None:
        return 0
    shift = Affine.translation(window.col_off, window.row_off)
    sub = Grid(grid.crs, grid.transform @ shift, int(window.width), int(window.height))
    count = np.zeros(sub.shape, dtype=np.uint16)
    for code in np.unique(codes[cand]):
        members = cand[codes[cand] == code]
        count += _burn(geoms[members], np.ones(len(members)), sub, all_touched, "uint8")
    return int((count >= 2).sum())


def _window_of(geoms: np.ndarray, grid: Grid) -> Window | None:
    left, bottom, right, top = shapely.total_bounds(geoms)
    win = from_bounds(left, bottom, right, top, transform=grid.transform)
    col0 = max(int(np.floor(win.col_off)) - 1, 0)
    row0 = max(int(np.floor(win.row_off)) - 1, 0)
    col1 = min(int(np.ceil(win.col_off + win.width)) + 1, grid.width)
    row1 = min(int(np.ceil(win.row_off + win.height)) + 1, grid.height)
    if col1 <= col0 or row1 <= row0:
        return None
    return Window(col0, row0, col1 - col0, row1 - row0)


def _resolve_mapping(
    mapping: Mapping[object, int] | str | PathLike[str] | None,
) -> dict[str, int] | None:
    if mapping is None:
        return None
    if isinstance(mapping, str | PathLike):
        return read_mapping_table(mapping)
    return {str(source_key(k)): int(v) for k, v in mapping.items()}


def features_to_burn(
    vector_path: str | PathLike[str],
    grid: Grid,
    field: str,
    layer: str | int | None,
    mapping: Mapping[object, int] | str | PathLike[str] | None,
) -> tuple[Any, RasterizeReport, np.ndarray, np.ndarray, np.ndarray]:
    """Read, code and clean a layer's features: ``(features, report, geometries, codes, idx)``.

    ``idx`` indexes the features that lie on ``grid`` (burned); the report counts the rest.
    Shared by the whole-scene and the windowed rasterisers.
    """
    table = _resolve_mapping(mapping)
    feats = read_features(vector_path, field, layer=layer, grid=grid)
    report = RasterizeReport(str(vector_path), feats.layer, field, features_total=feats.total)
    report.features_read = len(feats.values)
    codes = _codes_from_values(feats.values, table, report, vector_path)
    geoms = _clean_geometries(feats.geometries, report)
    box = shapely.box(*grid.bounds)
    inside = np.asarray(shapely.intersects(geoms, box), dtype=bool) & ~shapely.is_missing(geoms)
    idx = np.flatnonzero(inside)
    report.features_burned = len(idx)
    report.features_outside_grid = (
        report.features_total - report.features_burned - report.features_empty_geometry
    )
    return feats, report, geoms, codes, idx


def rasterize_reference(
    vector_path: str | PathLike[str],
    grid: Grid,
    field: str,
    *,
    layer: str | int | None = None,
    mapping: Mapping[object, int] | str | PathLike[str] | None = None,
    nomenclature: Nomenclature | None = None,
    all_touched: bool = False,
    feature_ids: bool = False,
) -> RasterizeResult:
    """Rasterize a reference layer's ``field`` onto ``grid`` (see the module docstring for rules).

    Args:
        vector_path: Any OGR vector file (GeoPackage, Shapefile, GeoJSON, ...).
        grid: Target grid; geometries are reprojected to its CRS.
        field: Attribute holding the class (integer code, or any value with ``mapping``).
        layer: Layer name or index; needed when the file holds several spatial layers.
        mapping: ``{source value: code}`` or the path of a ``source,target`` CSV table.
        nomenclature: If given, codes it does not list are reset to 0 and reported.
        all_touched: Burn every pixel a polygon touches instead of the pixel-centre rule.
        feature_ids: Also return the int32 raster of the winning feature per pixel.

    Raises:
        InputError: unreadable file, missing layer/field, non-integer values without mapping.

    """
    feats, report, geoms, codes, idx = features_to_burn(vector_path, grid, field, layer, mapping)
    labels = _burn(geoms[idx], codes[idx], grid, all_touched, "uint16")
    report.conflict_pixels = _conflict_pixels(geoms[idx], codes[idx], grid, all_touched)
    if nomenclature is not None:
        _drop_unknown_codes(labels, codes[idx], nomenclature, report)
    present, counts = np.unique(labels, return_counts=True)
    report.class_pixel_counts = {int(c): int(n) for c, n in zip(present, counts, strict=True) if c}
    report.labelled_pixels = int(counts[present != 0].sum())
    report.nodata_pixels = labels.size - report.labelled_pixels
    ids = _burn(geoms[idx], idx + 1, grid, all_touched, "int32") if feature_ids else None
    return RasterizeResult(labels, report, grid, ids, feats.fids)


def _drop_unknown_codes(
    labels: np.ndarray, codes: np.ndarray, nomenclature: Nomenclature, report: RasterizeReport
) -> None:
    known = np.asarray(nomenclature.codes)
    feature_codes = codes[(codes != 0) & ~np.isin(codes, known)]
    report.unknown_code_features = dict(sorted(Counter(int(c) for c in feature_codes).items()))
    unknown = (labels != 0) & ~np.isin(labels, known)
    if unknown.any():
        values, counts = np.unique(labels[unknown], return_counts=True)
        report.unknown_code_pixels = {int(v): int(n) for v, n in zip(values, counts, strict=True)}
        labels[unknown] = 0


def label_profile(grid: Grid, dtype: str) -> dict[str, Any]:
    """The GeoTIFF profile of a label raster on ``grid``: one band, nodata 0, DEFLATE, tiled."""
    return grid.profile(
        driver="GTiff",
        count=1,
        dtype=dtype,
        nodata=0,
        compress="deflate",
        tiled=True,
        blockxsize=256,
        blockysize=256,
    )


def write_labels(
    labels: np.ndarray,
    grid: Grid,
    path: str | PathLike[str],
    nomenclature: Nomenclature | None = None,
) -> Path:
    """Write a uint16 label raster (nodata 0, DEFLATE, tiled), with a colour table if given.

    Colour tables need 8-bit data in most readers, so they are attached only when every code
    fits in uint8; the raster is then written as uint8.
    """
    small = nomenclature is not None and max(nomenclature.codes) <= 255 and labels.max() <= 255
    dtype = "uint8" if small else "uint16"
    with atomic_output(path) as tmp, rasterio.open(tmp, "w", **label_profile(grid, dtype)) as dst:
        dst.write(labels.astype(dtype), 1)
        if small and nomenclature is not None:
            dst.write_colormap(1, nomenclature.color_table())
    return Path(path)
