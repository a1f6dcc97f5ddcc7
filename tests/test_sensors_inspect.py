"""inspect_path on every input kind, and the InputError each bad input must raise."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import shapely
from affine import Affine

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.sensors import inspect_path
from tests.test_sensors_data import (
    theia_name,
    write_dimap,
    write_spot_tif,
    write_theia_product,
    write_tif,
)

GERS = "theia_l2a_gers/SENTINEL2B_20181023-105107-455_L2A_T30TYP_D_V1-9"
RPG = "rpg_parcels_ain/import-gpkg-test.gpkg"


def inspect_json(path: Path, **kwargs: object) -> dict:
    """inspect_path, checked to survive a strict JSON round trip."""
    info = inspect_path(path, **kwargs)
    return json.loads(json.dumps(info, allow_nan=False))


def test_gers_product(shared_data: Path) -> None:
    info = inspect_json(shared_data / GERS)
    assert info["kind"] == "theia_l2a_product"
    assert info["sensor"] == "Sentinel-2" and info["product_level"] == "L2A"
    assert info["platform"] == "SENTINEL2B" and info["tile"] == "T30TYP"
    assert info["version"] == "1.9"
    assert info["dates"] == ["2018-10-23T10:51:07.455000"]
    assert info["bands"] == ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"]
    assert info["band_resolution"]["B4"] == 10.0 and info["band_resolution"]["B8A"] == 20.0
    assert info["shape"] == [1170, 1198]
    assert info["grids"]["R2"]["shape"] == [585, 599]
    assert info["crs"]["epsg"] == 32630
    assert info["transform"] == [10.0, 0.0, 742910.0, 0.0, -10.0, 4848610.0]
    assert info["masks_found"] == ["CLM_R1", "EDG_R1", "SAT_R1"]
    assert sorted(info["masks_missing"]) == ["CLM_R2", "EDG_R2", "SAT_R2"]
    assert info["products_available"] == ["FRE"]


def test_sensor_data_tree(tmp_path: Path, shared_data: Path) -> None:
    root = tmp_path / "sensor_data"
    write_theia_product(root / "T31TCJ", date="20200301-103000-000")
    write_theia_product(root / "T31TCJ", date="20200101-103000-000")
    info = inspect_json(root)
    assert info["kind"] == "sensor_data"
    assert info["tiles"]["T31TCJ"]["n_dates"] == 2
    assert info["tiles"]["T31TCJ"]["dates"][0].startswith("2020-01-01")
    gers = inspect_json(shared_data / "theia_l2a_gers")
    assert gers["tiles"]["T30TYP"]["dates"] == ["2018-10-23T10:51:07.455000"]


def test_spot_geotiff_and_dimap(tmp_path: Path) -> None:
    data = np.ones((4, 10, 12), "uint16")
    tif = inspect_json(write_spot_tif(tmp_path / "IMG_SPOT6_MS_001_R1C1.TIF", data))
    assert tif["format"] == "SPOT6/7 GeoTIFF" and tif["sensor"] == "SPOT6/7"
    assert tif["bands"] == ["B0", "B1", "B2", "B3"]
    assert tif["crs"]["epsg"] == 2154 and tif["shape"] == [10, 12]
    assert tif["band_resolution"]["B3"] == 6.0
    assert tif["nodata"] == 0.0
    xml = write_dimap(tmp_path / "prod", data, ("B2", "B1", "B0", "B3"))
    for source in (xml, tmp_path / "prod"):
        dim = inspect_json(source)
        assert dim["format"] == "SPOT6/7 DIMAP" and dim["driver"] == "DIMAP"
        assert dim["mission"] == "SPOT7"
        assert dim["file_band_order"] == ["B2", "B1", "B0", "B3"]
        assert dim["dates"][0].startswith("2019-06-02T10:41:12")
    pan = inspect_json(write_spot_tif(tmp_path / "IMG_SPOT7_P_R1C1.TIF", data[:1], res=1.5))
    assert pan["bands"] == ["P"] and pan["band_resolution"]["P"] == 1.5


def test_plain_geotiff_is_not_spot(tmp_path: Path, shared_data: Path) -> None:
    info = inspect_json(shared_data / "vhr_toulouse" / "tif_file.tif")
    assert info["format"] == "GeoTIFF" and info["sensor"] is None
    assert info["count"] == 4 and info["dtype"] == "uint16"
    assert info["shape"] == [432, 1195]
    assert info["crs"]["epsg"] == 4326
    assert info["nodata"] == 65535.0
    float_tif = write_spot_tif(tmp_path / "IMG_SPOT6_MS.tif", np.ones((4, 5, 5), "float32"))
    assert inspect_json(float_tif)["format"] == "GeoTIFF"  # SPOT name but not uint16


def test_rpg_geopackage_with_field(shared_data: Path) -> None:
    info = inspect_json(shared_data / RPG, field="code_group")
    assert info["kind"] == "vector" and info["driver"] == "GPKG"
    (layer,) = info["layers"]
    assert layer["name"] == "lpis_iacs" and layer["geometry_type"] == "Polygon"
    assert layer["crs"]["epsg"] == 2154 and layer["features"] == 193
    assert "code_cultu" in layer["fields"]
    values = layer["field_values"]
    assert values["n_distinct"] == 14
    assert sum(c["count"] for c in values["counts"]) == 193
    assert values["counts"][0] == {"value": "2", "count": 62}  # maize, per the data README
    assert "field_values" not in inspect_json(shared_data / RPG)["layers"][0]


def test_shapefile(tmp_path: Path) -> None:
    path = tmp_path / "labels.shp"
    geometry = shapely.to_wkb([shapely.box(i, 0, i + 1, 1) for i in range(5)])
    codes = np.array([3, 1, 3, 3, 2], dtype="int32")
    pyogrio.raw.write(
        path, geometry, [codes], ["code"], driver="ESRI Shapefile", geometry_type="Polygon",
        crs="EPSG:2154",
    )  # fmt: skip
    info = inspect_json(path, field="code")
    (layer,) = info["layers"]
    assert layer["features"] == 5 and layer["crs"]["epsg"] == 2154
    assert layer["field_values"]["counts"] == [
        {"value": 3, "count": 3},
        {"value": 1, "count": 1},
        {"value": 2, "count": 1},
    ]


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        inspect_path(tmp_path / "nope.tif")


def test_theia_folder_without_band_files(tmp_path: Path) -> None:
    empty = tmp_path / theia_name()
    (empty / "MASKS").mkdir(parents=True)
    with pytest.raises(InputError, match="no FRE band files") as err:
        inspect_path(empty)
    assert err.value.path == str(empty)


def test_truncated_and_garbage_tiff(tmp_path: Path, shared_data: Path) -> None:
    source = (shared_data / "vhr_toulouse" / "tif_file.tif").read_bytes()
    for size in (4096, len(source) // 2):
        broken = tmp_path / f"truncated_{size}.tif"
        broken.write_bytes(source[:size])
        with pytest.raises(InputError) as err:
            inspect_path(broken)
        assert err.value.path == str(broken)
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"II*\x00" + b"\x00" * 100)
    with pytest.raises(InputError, match="cannot be read as a raster"):
        inspect_path(garbage)


def test_truncated_band_in_theia_product(tmp_path: Path) -> None:
    product = write_theia_product(tmp_path)
    band = product / f"{product.name}_FRE_B12.tif"
    band.write_bytes(band.read_bytes()[: band.stat().st_size // 2])
    with pytest.raises(InputError, match="truncated") as err:
        inspect_path(product)
    assert err.value.path == str(band)


def test_vector_without_requested_field(tmp_path: Path, shared_data: Path) -> None:
    with pytest.raises(InputError, match="CODE_XYZ") as err:
        inspect_path(shared_data / RPG, field="CODE_XYZ")
    assert "code_group" in err.value.problem
    bad = tmp_path / "bad.gpkg"
    bad.write_text("hello")
    with pytest.raises(InputError, match="cannot be read as a vector"):
        inspect_path(bad)


def test_raster_without_crs(tmp_path: Path) -> None:
    path = write_tif(tmp_path / "no_crs.tif", np.ones((1, 8, 8), "uint16"), Affine.identity(), None)
    with pytest.raises(InputError, match="no CRS"):
        inspect_path(path)


def test_unrecognised_folder(tmp_path: Path) -> None:
    (tmp_path / "holiday_photos").mkdir()
    with pytest.raises(InputError, match="not a Theia L2A product"):
        inspect_path(tmp_path / "holiday_photos")


def test_shared_rasters_all_inspect(shared_data: Path) -> None:
    """Every real GeoTIFF fixture describes itself with a CRS (none raises)."""
    tifs = sorted(shared_data.rglob("*.tif"))
    assert len(tifs) > 20
    for tif in tifs:
        info = inspect_json(tif)
        assert info["crs"] is not None and len(info["shape"]) == 2, tif
