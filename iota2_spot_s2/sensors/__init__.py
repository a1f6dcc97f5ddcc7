"""Sensor readers: Theia Sentinel-2 L2A, iota2 ``sensor_data`` trees, SPOT 6/7, and alignment.

Every reader returns a lazy (dask-backed) :class:`xarray.DataArray` with named dims and ``crs``
(WKT) / ``transform`` attrs; :func:`align` brings any of them onto a
:class:`~iota2_spot_s2.grid.Grid` by GDAL warping; :func:`inspect_path` describes any input as
JSON. Bad inputs raise :class:`~iota2_spot_s2.errors.InputError`.
"""

from iota2_spot_s2.sensors.align import align
from iota2_spot_s2.sensors.inspect import inspect_path
from iota2_spot_s2.sensors.sentinel2 import open_s2_timeseries
from iota2_spot_s2.sensors.spot import Spot67, open_spot
from iota2_spot_s2.sensors.theia import (
    ProductInfo,
    TheiaS2L2A,
    find_products,
    list_sensor_data,
    parse_product_name,
)

__all__ = [
    "ProductInfo",
    "Spot67",
    "TheiaS2L2A",
    "align",
    "find_products",
    "inspect_path",
    "list_sensor_data",
    "open_s2_timeseries",
    "open_spot",
    "parse_product_name",
]
