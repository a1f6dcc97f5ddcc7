"""Per-patch statistics and the polygon layer of the OSO-style vector product (GeoPackage).

Every 4-connected patch of the regularised map becomes one polygon (GDAL polygonize through
``rasterio.features.shapes`` with the same 4-connectivity, so a patch is one polygon, holes
included). Attributes, computed over the polygon's pixels:

- ``class_code``, ``class_name``: the regularised class;
- ``area_m2``: pixel count x pixel area (equals the polygon's area);
- ``confidence``: mean confidence (0-100) of the pixels that have one (null if none);
- ``validity_mean``, ``validity_min``, ``validity_std``: cloud-free Sentinel-2 dates (when a
  validity raster is given; pixels at its no-data are left out; null if none);
- ``pct_<code>`` for every class of the nomenclature: percentage of the polygon's pixels of
  that class in the **unregularised** map; they sum to 100.

Statistics are accumulated strip by strip (``rows`` rows at a time) from the rasters, so only
the label array is held whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyogrio.raw
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.features import shapes
from shapely.geometry import shape
from tqdm.auto import tqdm

from iota2_spot_s2.nomenclature import Nomenclature
from iota2_spot_s2.product.regularize import CONNECTIVITY

#: ``f(row_start, row_stop) -> (original classes, regularised classes, confidence or None,
#: validity or None)`` for that strip; confidence uses 255 and validity 65535 as no-data.
StripReader = Callable[[int, int], tuple[np.ndarray, np.ndarray, np.ndarray | None,
                                         np.ndarray | None]]  # fmt: skip
CONFIDENCE_NODATA = 255
VALIDITY_NODATA = 65535
_BATCH = 20_000


@dataclass
class PatchStats:
    """Per-patch sums, indexed by patch label (row 0 = no-data, unused)."""

    pixels: np.ndarray
    code: np.ndarray
    class_counts: np.ndarray
    conf_sum: np.ndarray
    conf_n: np.ndarray
    val_sum: np.ndarray | None = None
    val_sq: np.ndarray | None = None
    val_min: np.ndarray | None = None
    val_n: np.ndarray | None = None


def patch_statistics(
    labels: np.ndarray, n: int, codes: tuple[int, ...], read: StripReader, rows: int = 1024
) -> PatchStats:
    """Accumulate :class:`PatchStats` over ``labels`` (1..n) strip by strip."""
    lut = np.full(max(codes) + 1, -1, dtype=np.int64)
    lut[list(codes)] = np.arange(len(codes))
    k = len(codes)
    stats = PatchStats(
        pixels=np.zeros(n + 1, np.int64), code=np.zeros(n + 1, np.int64),
        class_counts=np.zeros((n + 1) * k, np.int64), conf_sum=np.zeros(n + 1),
        conf_n=np.zeros(n + 1, np.int64),
    )  # fmt: skip
    steps = range(0, labels.shape[0], rows)
    for top in tqdm(steps, desc="polygon statistics", disable=None, leave=False):
        lab = labels[top : top + rows].ravel()
        original, regular, conf, val = read(top, min(top + rows, labels.shape[0]))
        inside = lab > 0
        lab, original, regular = lab[inside], original.ravel()[inside], regular.ravel()[inside]
        stats.pixels += np.bincount(lab, minlength=n + 1)
        stats.code[lab] = regular
        stats.class_counts += np.bincount(lab * k + lut[original], minlength=(n + 1) * k)
        if conf is not None:
            _add_confidence(stats, lab, conf.ravel()[inside], n)
        if val is not None:
            _add_validity(stats, lab, val.ravel()[inside], n)
    stats.class_counts = stats.class_counts.reshape(n + 1, k)
    return stats


def _add_confidence(stats: PatchStats, lab: np.ndarray, conf: np.ndarray, n: int) -> None:
    ok = conf != CONFIDENCE_NODATA
    stats.conf_sum += np.bincount(lab[ok], weights=conf[ok].astype(np.float64), minlength=n + 1)
    stats.conf_n += np.bincount(lab[ok], minlength=n + 1)


def _add_validity(stats: PatchStats, lab: np.ndarray, val: np.ndarray, n: int) -> None:
    if stats.val_sum is None:
        stats.val_sum, stats.val_sq = np.zeros(n + 1), np.zeros(n + 1)
        stats.val_min = np.full(n + 1, np.iinfo(np.int64).max, np.int64)
        stats.val_n = np.zeros(n + 1, np.int64)
    assert stats.val_sq is not None and stats.val_min is not None and stats.val_n is not None
    ok = val != VALIDITY_NODATA
    lab, v = lab[ok], val[ok].astype(np.float64)
    stats.val_sum += np.bincount(lab, weights=v, minlength=n + 1)
    stats.val_sq += np.bincount(lab, weights=v * v, minlength=n + 1)
    stats.val_n += np.bincount(lab, minlength=n + 1)
    np.minimum.at(stats.val_min, lab, val[ok].astype(np.int64))


def attribute_columns(
    stats: PatchStats, nom: Nomenclature, pixel_m2: float
) -> dict[str, np.ndarray]:
    """The attribute columns (module docstring), indexed by label 1..n (row 0 dropped)."""
    names = dict(zip(nom.codes, nom.names, strict=True))
    code = stats.code[1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        cols: dict[str, np.ndarray] = {
            "class_code": code.astype(np.int32),
            "class_name": np.array([names[int(c)] for c in code], dtype=object),
            "area_m2": stats.pixels[1:] * pixel_m2,
            "confidence": stats.conf_sum[1:] / stats.conf_n[1:],
        }
        if stats.val_n is not None:
            assert stats.val_sum is not None and stats.val_sq is not None
            vn = stats.val_n[1:]
            mean = stats.val_sum[1:] / vn
            cols["validity_mean"] = mean
            cols["validity_min"] = np.where(vn > 0, stats.val_min[1:], np.nan)  # type: ignore[index]
            cols["validity_std"] = np.sqrt(np.maximum(stats.val_sq[1:] / vn - mean * mean, 0.0))
        pct = 100.0 * stats.class_counts[1:] / stats.pixels[1:, None]
    for j, c in enumerate(nom.codes):
        cols[f"pct_{c}"] = pct[:, j]
    return cols


def _polygons(labels: np.ndarray, transform: Affine, n: int) -> Iterator[tuple[int, bytes]]:
    """``(label, WKB polygon)`` of every patch, in GDAL's scan order."""
    found = shapes(labels, mask=labels > 0, connectivity=CONNECTIVITY, transform=transform)
    for geom, value in tqdm(found, total=n, desc="polygons", disable=None, leave=False):
        yield int(value), shapely.to_wkb(shape(geom))


def write_polygons(
    path: Path, labels: np.ndarray, n: int, transform: Affine, crs: CRS,
    columns: dict[str, np.ndarray], layer: str,
) -> int:  # fmt: skip
    """Polygonize ``labels`` and write them with ``columns`` into a GeoPackage layer.

    Returns the number of polygons written (one per patch).
    """
    written = 0
    batch: list[tuple[int, bytes]] = []
    wkt = crs.to_wkt()
    names = list(columns)

    def flush() -> None:
        nonlocal written
        idx = np.array([v - 1 for v, _ in batch], dtype=np.int64)
        geoms = np.array([g for _, g in batch], dtype=object)
        data = [columns[name][idx] for name in names]
        pyogrio.raw.write(
            path, geoms, data, names, layer=layer, driver="GPKG", geometry_type="Polygon",
            crs=wkt, append=written > 0, encoding="UTF-8",
        )  # fmt: skip
        written += len(batch)
        batch.clear()

    for item in _polygons(labels, transform, n):
        batch.append(item)
        if len(batch) >= _BATCH:
            flush()
    if batch or written == 0:
        flush()
    return written
