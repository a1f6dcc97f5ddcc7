"""Sentinel-2 L2A time series from Theia products, as one lazy ``(time, band, y, x)`` DataArray.

Contract (``docs/CONTRACTS.md``): float32 surface reflectance (Theia integer / 10000, Theia nodata
-10000 -> NaN), bands in Theia order ``B2 B3 B4 B5 B6 B7 B8 B8A B11 B12``, 20 m bands warped by
GDAL onto the 10 m grid (bilinear by default), coords ``time``/``band``/``y``/``x`` (pixel centres)
and a non-index boolean coord ``valid`` of the data's shape: False where the reflectance is NaN, the
cloud mask CLM != 0, the edge mask EDG != 0, or the band's saturation bit is set in SAT.

Masks: each band uses the masks of its own resolution group (``*_R1`` for 10 m bands, ``*_R2``
for 20 m bands), warped with nearest neighbour onto the grid; a missing R2 mask falls back on
the R1 one (everything is on the 10 m grid anyway) and a missing mask type is simply not applied
(:func:`iota2_spot_s2.sensors.inspect_path` reports it). When the 20 m bands use the R1 SAT mask,
any set bit invalidates them (R1 bits are per 10 m band).

The target grid is ``grid`` if given, else the 10 m grid of the first (earliest) product; products
of the same tile with another extent are warped onto it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from os import PathLike

import dask.array as da
import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.sensors._raster import band_on_grid, grid_attrs, pixel_centres
from iota2_spot_s2.sensors.theia import (
    ProductInfo,
    TheiaS2L2A,
    band_files,
    check_product,
    find_products,
    mask_files,
)

DIMS = ("time", "band", "y", "x")


def open_s2_timeseries(
    source: str | PathLike[str] | Sequence[str | PathLike[str]],
    *,
    product: str = "FRE",
    grid: Grid | None = None,
    chunks: int = 512,
    resampling: str | None = None,
) -> xr.DataArray:
    """Open Theia L2A products as a lazy reflectance time series.

    Only file headers are read here; pixels are read window by window when computed.

    Args:
        source: One product folder, a list of them, a folder holding product folders, or a
            single-tile ``sensor_data`` tree.
        product: ``"FRE"`` (flat reflectance, default) or ``"SRE"`` (surface reflectance).
        grid: Target grid; default the 10 m grid of the first product.
        chunks: Dask chunk size in pixels (rows and columns).
        resampling: GDAL resampling for bands not on ``grid``; ``None`` picks bilinear when
            refining (20 m -> 10 m) and average when coarsening.

    Returns:
        ``(time, band, y, x)`` float32 DataArray with a ``valid`` coord; attrs ``crs`` (WKT),
        ``transform``, ``sensor``, ``product``, ``tiles``.

    Raises:
        InputError: Missing folders or band files, unreadable rasters, several tiles without
            ``grid``.
    """
    product = check_product(product)
    products = find_products(source)
    target = grid if grid is not None else _first_grid(products, product)
    layers = [
        _open_product(info, product, target, chunks, resampling)
        for info in tqdm(products, desc="opening Sentinel-2 products", disable=None, leave=False)
    ]
    data = da.stack([refl for refl, _ in layers])
    valid = da.stack([ok for _, ok in layers])
    ys, xs = pixel_centres(target)
    coords = {
        "time": np.array([info.date for info in products], dtype="datetime64[ns]"),
        "band": list(TheiaS2L2A.bands),
        "y": ys,
        "x": xs,
        "valid": (DIMS, valid),
    }
    attrs = {
        **grid_attrs(target),
        "sensor": TheiaS2L2A.sensor,
        "product": product,
        "tiles": " ".join(sorted({info.tile for info in products})),
    }
    return xr.DataArray(data, dims=DIMS, coords=coords, attrs=attrs, name="reflectance")


def _first_grid(products: list[ProductInfo], product: str) -> Grid:
    tiles = sorted({info.tile for info in products})
    if len(tiles) > 1:
        raise InputError(
            products[0].path.parent,
            f"products of several tiles ({', '.join(tiles)}): open one tile or pass grid=",
        )
    first_r1_band = TheiaS2L2A.groups["R1"][0]
    return Grid.from_raster(band_files(products[0], product)[first_r1_band])


def _open_product(
    info: ProductInfo, product: str, grid: Grid, chunks: int, resampling: str | None
) -> tuple[da.Array, da.Array]:
    """``(band, y, x)`` reflectance and validity of one product, lazily."""
    files = band_files(info, product)
    masks, _ = mask_files(info)
    loaded: dict[str, da.Array] = {}

    def load_mask(key: str) -> da.Array:
        if key not in loaded:
            loaded[key], _ = band_on_grid(
                masks[key], 1, grid, chunks,
                resampling="mask", src_nodata=None, warped_dtype="uint8", fill=255,
            )  # fmt: skip
        return loaded[key]

    refl_layers, valid_layers = [], []
    for band in TheiaS2L2A.bands:
        raw, _ = band_on_grid(
            files[band], 1, grid, chunks,
            resampling=resampling, src_nodata=TheiaS2L2A.nodata,
            warped_dtype="float32", fill=np.nan,
        )  # fmt: skip
        refl = to_reflectance(raw)
        ok = ~da.isnan(refl)
        mask_ok = _mask_validity(band, masks, load_mask)
        refl_layers.append(refl)
        valid_layers.append(ok if mask_ok is None else ok & mask_ok)
    return da.stack(refl_layers), da.stack(valid_layers)


def to_reflectance(raw: da.Array) -> da.Array:
    """Theia integers (or warped floats) -> float32 reflectance, nodata -> NaN."""
    scaled = raw.astype(np.float32) / np.float32(TheiaS2L2A.scale)
    return da.where(raw == TheiaS2L2A.nodata, np.float32(np.nan), scaled)


def _mask_validity(
    band: str, masks: Mapping[str, object], load: Callable[[str], da.Array]
) -> da.Array | None:
    """True where CLM, EDG and SAT (when present) let this band's pixel through."""
    group = TheiaS2L2A.group_of(band)
    ok: da.Array | None = None
    for name in TheiaS2L2A.masks:
        keys = [f"{name}_{group}"] + [f"{name}_{g}" for g in TheiaS2L2A.groups if g != group]
        key = next((k for k in keys if k in masks), None)
        if key is None:
            continue
        mask = load(key)
        if name == "SAT" and key.endswith(group):
            bit = TheiaS2L2A.groups[group].index(band)
            bad = (mask & np.uint8(1 << bit)) != 0
        else:
            bad = mask != 0
        ok = ~bad if ok is None else ok & ~bad
    return ok
