"""``inspect_path``: a JSON-serialisable description of any input the pipeline accepts.

Kinds recognised, in this order: a Theia L2A product folder, a folder holding one SPOT DIMAP
document, an iota2 ``sensor_data`` tree (or a folder of products), a vector file (by extension:
GeoPackage, Shapefile, GeoJSON...), a SPOT 6/7 raster (DIMAP ``DIM_*.XML``, or a 1- or 4-band
uint16 GeoTIFF named like SPOT), and any other raster GDAL opens (reported as ``GeoTIFF`` for
the GTiff driver). Every raster is checked for a CRS and for a readable last row, so that a
truncated file is reported as such rather than at read time.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

from rasterio.errors import RasterioIOError
from rasterio.io import DatasetReader
from rasterio.windows import Window

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.sensors._describe import crs_info, grid_info, inspect_vector, json_value
from iota2_spot_s2.sensors._raster import dataset_grid, first_line, open_raster
from iota2_spot_s2.sensors.spot import (
    Spot67,
    canonical_order,
    file_band_ids,
    find_dimap,
    is_dimap,
    looks_like_spot,
    read_dimap,
    resolve_spot_path,
)
from iota2_spot_s2.sensors.theia import (
    TheiaS2L2A,
    available_products,
    band_files,
    check_product,
    is_product_dir,
    list_sensor_data,
    mask_files,
    product_info,
)

VECTOR_SUFFIXES = frozenset(
    {".gpkg", ".shp", ".geojson", ".json", ".sqlite", ".fgb", ".gml", ".kml", ".tab"}
)
_DATE_TAGS = ("ACQUISITION_DATETIME", "ACQUISITION_DATE", "IMAGING_DATE", "DATE_ACQUIRED")


def inspect_path(
    path: str | PathLike[str], *, field: str | None = None, product: str = "FRE"
) -> dict[str, Any]:
    """Describe an input: sensor, dates, bands, grid, masks, or vector layers and fields.

    Args:
        path: Theia product folder, ``sensor_data`` tree, SPOT image/DIMAP, raster or vector.
        field: For vectors, a field whose distinct values are counted (must exist).
        product: Theia product type to describe (``FRE`` or ``SRE``).

    Returns:
        A dict made of str, int, float, bool, None, lists and dicts only.

    Raises:
        InputError: Missing path, unrecognised folder, product without band files, corrupt or
            truncated raster, raster without CRS, vector without ``field``.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "does not exist")
    if path.is_dir():
        return _inspect_folder(path, product)
    if path.suffix.lower() in VECTOR_SUFFIXES:
        return inspect_vector(path, field)
    return inspect_raster(path)


def _inspect_folder(path: Path, product: str) -> dict[str, Any]:
    if is_product_dir(path):
        return inspect_theia_product(path, product)
    if find_dimap(path):
        return inspect_raster(resolve_spot_path(path))
    try:
        tiles = list_sensor_data(path)
    except InputError:
        raise InputError(
            path, "not a Theia L2A product, an iota2 sensor_data tree or a SPOT DIMAP folder"
        ) from None
    return {
        "path": str(path),
        "kind": "sensor_data",
        "sensor": TheiaS2L2A.sensor,
        "product_level": TheiaS2L2A.level,
        "tiles": {
            tile: {
                "n_dates": len(infos),
                "dates": [info.date.isoformat() for info in infos],
                "products": [info.name for info in infos],
            }
            for tile, infos in tiles.items()
        },
    }


def inspect_theia_product(path: str | PathLike[str], product: str = "FRE") -> dict[str, Any]:
    """Describe one Theia L2A product folder (see :func:`inspect_path`)."""
    info = product_info(path)
    product = check_product(product)
    files = band_files(info, product)
    grids, dtypes = {}, set()
    for band, file in files.items():
        with open_raster(file) as src:
            grids[band] = dataset_grid(src, file)
            check_readable(src, file)
            dtypes.add(src.dtypes[0])
    found, missing = mask_files(info)
    groups = {g: grids[names[0]] for g, names in TheiaS2L2A.groups.items()}
    grid = groups["R1"]
    result: dict[str, Any] = {
        "path": str(info.path),
        "kind": "theia_l2a_product",
        "sensor": TheiaS2L2A.sensor,
        "platform": info.platform,
        "product_level": info.level,
        "product": product,
        "products_available": available_products(info),
        "tile": info.tile,
        "version": info.version,
        "dates": [info.date.isoformat()],
        "bands": list(files),
        "band_resolution": {band: grids[band].res[0] for band in files},
        "shape": [grid.height, grid.width],
        "dtype": "/".join(sorted(dtypes)),
        "crs": crs_info(grid.crs),
        "transform": list(tuple(grid.transform)[:6]),
        "grids": {g: grid_info(gr) for g, gr in groups.items()},
        "nodata": TheiaS2L2A.nodata,
        "scale": TheiaS2L2A.scale,
        "masks_found": sorted(found),
        "masks_missing": missing,
    }
    fallback = [k for k in missing if k.endswith("_R2") and k.replace("_R2", "_R1") in found]
    if fallback:
        result["mask_fallback"] = {k: k.replace("_R2", "_R1") for k in fallback}
    return result


def inspect_raster(path: str | PathLike[str]) -> dict[str, Any]:
    """Describe a SPOT image (GeoTIFF or DIMAP) or any other georeferenced raster."""
    path = resolve_spot_path(path)
    dimap = read_dimap(path) if is_dimap(path) else None
    with open_raster(path) as src:
        grid = dataset_grid(src, path)
        check_readable(src, path)
        count, dtype, driver = src.count, src.dtypes[0], src.driver
        descriptions, nodata, tags = src.descriptions, src.nodata, src.tags()
    result: dict[str, Any] = {"path": str(path), "kind": "raster", "driver": driver}
    if dimap is not None or looks_like_spot(path, count, dtype):
        ids = file_band_ids(count, descriptions, dimap)
        bands = canonical_order(ids)
        result.update(
            format="SPOT6/7 DIMAP" if dimap else "SPOT6/7 GeoTIFF",
            sensor=Spot67.sensor,
            mission=dimap.mission if dimap else None,
            spectral_processing=dimap.processing if dimap else None,
            bands=bands,
            file_band_order=list(ids),
        )
        if nodata is None and dimap is not None:
            nodata = dimap.nodata
        dates = [dimap.date] if dimap and dimap.date else []
    else:
        result.update(
            format="GeoTIFF" if driver == "GTiff" else driver,
            sensor=None,
            bands=[d or f"band{i}" for i, d in enumerate(descriptions, start=1)],
        )
        dates = [tags[k] for k in _DATE_TAGS if k in tags][:1]
    res = grid.res[0] if grid.res[0] == grid.res[1] else list(grid.res)
    result.update(
        dates=dates,
        band_resolution={b: res for b in result["bands"]},
        count=count,
        dtype=dtype,
        shape=[grid.height, grid.width],
        crs=crs_info(grid.crs),
        transform=list(tuple(grid.transform)[:6]),
        bounds=list(grid.bounds),
        nodata=json_value(nodata),
    )
    return result


def check_readable(src: DatasetReader, path: str | PathLike[str]) -> None:
    """Read the last row of the last band: a truncated file fails here, not later."""
    try:
        src.read(src.count, window=Window(0, src.height - 1, src.width, 1))
    except RasterioIOError as exc:
        raise InputError(path, f"corrupt or truncated raster ({first_line(exc)})") from exc
