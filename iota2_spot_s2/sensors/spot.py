"""SPOT 6/7 images (GeoTIFF or DIMAP) and plain GeoTIFFs as lazy ``(band, y, x)`` DataArrays.

Contract (``docs/CONTRACTS.md``): raw digital numbers as float32, nodata -> NaN, band names
``B0 B1 B2 B3`` = blue, green, red, NIR for 4-band MS/PMS products and ``P`` for the
panchromatic band; attrs ``crs`` (WKT), ``transform``, ``sensor="SPOT6/7"``.

DIMAP products are opened through GDAL's DIMAP driver from their ``DIM_*.XML`` (a folder holding
exactly one is accepted too). The order of the bands in the image files is read from the XML's
``Raster_Display/Band_Display_Order`` (Airbus delivers MS/PMS as ``B2 B1 B0 B3``, i.e. R, G, B,
NIR, by default), else from the ``Band_Measurement_List`` band ids; bands are returned reordered
to ``B0 B1 B2 B3``. A GeoTIFF carries no such metadata: its bands are taken as ``B0 B1 B2 B3``
unless its band descriptions name them or ``band_order`` says otherwise.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatch
from os import PathLike
from pathlib import Path
from typing import ClassVar

import dask.array as da
import numpy as np
import xarray as xr

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.sensors._raster import (
    BandSource,
    dataset_grid,
    grid_attrs,
    lazy,
    open_raster,
    pixel_centres,
)


class Spot67:
    """Declarative description of SPOT 6/7 products (class attributes only)."""

    sensor: ClassVar[str] = "SPOT6/7"
    ms_bands: ClassVar[tuple[str, ...]] = ("B0", "B1", "B2", "B3")
    pan_bands: ClassVar[tuple[str, ...]] = ("P",)
    colours: ClassVar[dict[str, str]] = {
        "B0": "blue", "B1": "green", "B2": "red", "B3": "nir", "P": "panchromatic",
    }  # fmt: skip
    #: Nominal ortho product resolutions (m).
    resolutions: ClassVar[dict[str, float]] = {"P": 1.5, "PMS": 1.5, "MS": 6.0}
    dimap_glob: ClassVar[str] = "DIM_*.XML"
    #: File names that mark a 1- or 4-band uint16 GeoTIFF as SPOT.
    name_patterns: ClassVar[tuple[str, ...]] = ("*SPOT*", "IMG_SPOT*", "*_P_*", "*_MS_*", "*_PMS*")
    #: DIMAP products mark no-data with the special value NODATA, 0 unless the XML says otherwise.
    dimap_nodata: ClassVar[float] = 0.0


@dataclass(frozen=True)
class DimapInfo:
    """The few facts read from a DIMAP ``DIM_*.XML``."""

    band_ids: tuple[str, ...] = ()
    mission: str | None = None
    date: str | None = None
    processing: str | None = None
    nodata: float | None = None


def is_dimap(path: str | PathLike[str]) -> bool:
    """True for a file named like a DIMAP product document."""
    return Path(path).is_file() and fnmatch(Path(path).name.upper(), Spot67.dimap_glob)


def find_dimap(folder: str | PathLike[str]) -> list[Path]:
    """``DIM_*.XML`` files anywhere below a folder (case-insensitive)."""
    return sorted(p for p in Path(folder).rglob("*") if is_dimap(p))


def resolve_spot_path(path: str | PathLike[str]) -> Path:
    """The file GDAL should open: the path itself, or the single DIMAP document of a folder.

    Raises:
        InputError: Missing path, or a folder with no or several ``DIM_*.XML``.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "does not exist")
    if not path.is_dir():
        return path
    found = find_dimap(path)
    if not found:
        raise InputError(path, "folder holds no DIMAP document (DIM_*.XML)")
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise InputError(path, f"folder holds several DIMAP documents ({names}); pass one")
    return found[0]


def read_dimap(path: str | PathLike[str]) -> DimapInfo:
    """Band order, mission, date, processing and no-data value of a DIMAP document.

    Raises:
        InputError: If the XML cannot be parsed.
    """
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise InputError(path, f"DIMAP XML cannot be parsed ({exc})") from exc
    display = root.find(".//Raster_Display/Band_Display_Order")
    ids: list[str] = []
    if display is not None:
        ids = [(child.text or "").strip() for child in display]
    if not ids:
        ids = [(e.text or "").strip() for e in root.iterfind(".//Band_Radiance/BAND_ID")]
    if not ids:
        ids = [(e.text or "").strip() for e in root.iterfind(".//Band_Spectral_Range/BAND_ID")]
    strip = root.find(".//Source_Identification/Strip_Source")
    mission, date = None, None
    if strip is not None:
        mission = (strip.findtext("MISSION") or "") + (strip.findtext("MISSION_INDEX") or "")
        day, time = strip.findtext("IMAGING_DATE"), strip.findtext("IMAGING_TIME")
        date = f"{day}T{time.rstrip('Z')}" if day and time else day
    return DimapInfo(
        band_ids=tuple(i for i in ids if i),
        mission=mission or None,
        date=date,
        processing=root.findtext(".//Product_Settings/SPECTRAL_PROCESSING"),
        nodata=_dimap_nodata(root),
    )


def _dimap_nodata(root: ET.Element) -> float:
    for special in root.iterfind(".//Raster_Display/Special_Value"):
        if (special.findtext("SPECIAL_VALUE_TEXT") or "").strip().upper() == "NODATA":
            return float(special.findtext("SPECIAL_VALUE_COUNT") or Spot67.dimap_nodata)
    return Spot67.dimap_nodata


def file_band_ids(
    count: int, descriptions: Sequence[str | None], dimap: DimapInfo | None
) -> tuple[str, ...]:
    """SPOT band id of each band of the file, in file order."""
    known = set(Spot67.ms_bands) | set(Spot67.pan_bands)
    if dimap is not None and len(dimap.band_ids) == count and set(dimap.band_ids) <= known:
        return dimap.band_ids
    named = tuple((d or "").strip().upper() for d in descriptions)
    if len(set(named)) == count and set(named) <= known:
        return named
    if count == 1:
        return Spot67.pan_bands
    if count == len(Spot67.ms_bands):
        return Spot67.ms_bands
    return tuple(f"B{i}" for i in range(count))


def open_spot(
    path: str | PathLike[str],
    chunks: int = 1024,
    *,
    band_order: Sequence[str] | None = None,
    nodata: float | None = None,
) -> xr.DataArray:
    """Open a SPOT 6/7 image (GeoTIFF, ``DIM_*.XML`` or a folder holding one) lazily.

    Args:
        path: GeoTIFF, DIMAP document, or folder holding one DIMAP document.
        chunks: Dask chunk size in pixels.
        band_order: SPOT band ids of the file's bands in file order, e.g. ``("B2", "B1", "B0",
            "B3")`` for an R, G, B, NIR GeoTIFF; default from the DIMAP XML or band descriptions.
        nodata: Value to turn into NaN; default the file's nodata tag, else 0 for DIMAP.

    Returns:
        ``(band, y, x)`` float32 DataArray, bands ``B0 B1 B2 B3`` (MS/PMS) or ``P``.

    Raises:
        InputError: Missing or unreadable file, no CRS, or a ``band_order`` that does not fit.
    """
    target = resolve_spot_path(path)
    dimap = read_dimap(target) if is_dimap(target) else None
    with open_raster(target) as src:
        grid = dataset_grid(src, target)
        count, dtypes, descriptions = src.count, src.dtypes, src.descriptions
        file_nodata = src.nodata
    ids = tuple(band_order) if band_order is not None else file_band_ids(count, descriptions, dimap)
    if len(ids) != count or len(set(ids)) != count:
        raise InputError(target, f"band_order {list(ids)} does not fit {count} band(s)")
    if nodata is None:
        nodata = file_nodata if file_nodata is not None else (dimap.nodata if dimap else None)
    order = canonical_order(ids)
    layers = []
    for name in order:
        index = ids.index(name) + 1
        source = BandSource(str(target), index, dtypes[index - 1], grid.shape)
        layers.append(_as_float(lazy(source, chunks), nodata))
    ys, xs = pixel_centres(grid)
    attrs: dict[str, object] = {**grid_attrs(grid), "sensor": Spot67.sensor}
    if nodata is not None:
        attrs["nodata_value"] = float(nodata)
    if dimap is not None and dimap.date:
        attrs["date"] = dimap.date
    return xr.DataArray(
        da.stack(layers),
        dims=("band", "y", "x"),
        coords={"band": order, "y": ys, "x": xs},
        attrs=attrs,
        name="spot",
    )


def canonical_order(ids: Sequence[str]) -> list[str]:
    """SPOT band ids first as ``B0 B1 B2 B3 P``, other ids after them in file order.

    Other ids are never sorted: names such as ``B10`` would sort before ``B2`` and silently
    permute the bands of a many-band GeoTIFF.
    """
    canonical = [b for b in (*Spot67.ms_bands, *Spot67.pan_bands) if b in ids]
    return canonical + [b for b in ids if b not in canonical]


def _as_float(raw: da.Array, nodata: float | None) -> da.Array:
    values = raw.astype(np.float32)
    if nodata is None:
        return values
    return da.where(raw == nodata, np.float32(np.nan), values)


def looks_like_spot(path: str | PathLike[str], count: int, dtype: str) -> bool:
    """A 1- or 4-band uint16 raster whose file name follows SPOT naming."""
    name = Path(path).name.upper()
    named = any(fnmatch(name, pattern.upper()) for pattern in Spot67.name_patterns)
    return named and count in (1, 4) and dtype == "uint16"
