"""The validity raster: number of cloud-free Sentinel-2 dates per pixel, on a map's grid.

A date counts at a pixel when every band is valid there in the series' ``valid`` coord
(:func:`iota2_spot_s2.sensors.open_s2_timeseries`: not no-data, CLM == 0, EDG == 0, no SAT bit),
the same rule as the chain's ``reference/s2_clear_dates.tif``. The count is computed on the
series' own grid (dask, chunk by chunk), then carried onto the target grid by nearest neighbour
one strip of rows at a time: each map pixel takes the count of the S2 pixel holding it.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
import xarray as xr
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import Resampling, reproject
from rasterio.windows import Window
from tqdm.auto import tqdm

from iota2_spot_s2.grid import Grid
from iota2_spot_s2.io import finalize_cog, open_tiled_gtiff
from iota2_spot_s2.product.vectorize import VALIDITY_NODATA

ROWS = 1024


def clear_date_count(series: xr.DataArray) -> tuple[np.ndarray, Grid]:
    """Cloud-free dates per pixel of a ``(time, band, y, x)`` series, and the series' grid."""
    valid = series.coords["valid"]
    count = valid.all("band").sum("time").astype(np.uint16)
    grid = Grid(
        CRS.from_user_input(series.attrs["crs"]),
        Affine(*series.attrs["transform"][:6]),
        int(series.sizes["x"]),
        int(series.sizes["y"]),
    )
    return np.asarray(count.values, dtype=np.uint16), grid


def write_validity(
    series: xr.DataArray | str | PathLike[str], grid: Grid, path: str | PathLike[str]
) -> Path:
    """Write the clear-date count of ``series`` on ``grid`` as a COG (uint16, 65535 outside).

    Args:
        series: An opened S2 series, or what :func:`open_s2_timeseries` opens (a Theia product
            folder, a folder of them, a ``sensor_data`` tile folder).
        grid: The map's grid.
        path: Output file.

    """
    if not isinstance(series, xr.DataArray):
        from iota2_spot_s2.sensors import open_s2_timeseries

        series = open_s2_timeseries(series)
    count, s2_grid = clear_date_count(series)
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with open_tiled_gtiff(partial, grid, 1, "uint16", nodata=VALIDITY_NODATA) as dst:
            for top in tqdm(range(0, grid.height, ROWS), desc="validity", disable=None,
                            leave=False):  # fmt: skip
                window = Window(0, top, grid.width, min(ROWS, grid.height - top))
                out = np.full((window.height, window.width), VALIDITY_NODATA, np.uint16)
                reproject(
                    count, out, src_transform=s2_grid.transform, src_crs=s2_grid.crs,
                    dst_transform=grid.window_grid(window).transform, dst_crs=grid.crs,
                    dst_nodata=VALIDITY_NODATA, resampling=Resampling.nearest,
                )  # fmt: skip
                dst.write(out, 1, window=window)
            dst.set_band_description(1, "cloud-free Sentinel-2 dates")
        finalize_cog(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path
