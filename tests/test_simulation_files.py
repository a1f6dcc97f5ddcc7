"""The simulated scene: real file names, formats, grids, manifest and reproducibility."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
from rasterio.crs import CRS

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.nomenclature import read_nomenclature
from iota2_spot_s2.simulation import SceneInfo, generate_scene, load_scene

THEIA_RE = re.compile(r"^SENTINEL2[AB]_(\d{8})-(\d{6})-(\d{3})_L2A_(T\d{2}[A-Z]{3})_C_V\d+-\d+$")
R1 = ("B2", "B3", "B4", "B8")
R2 = ("B5", "B6", "B7", "B8A", "B11", "B12")
SIZE = 240.0


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> SceneInfo:
    return generate_scene(tmp_path_factory.mktemp("scene"), size_m=SIZE, seed=3, cloud_fraction=0.3)


def _raster_digest(root: Path) -> dict[str, str]:
    """SHA-256 of the pixel arrays of every GeoTIFF below ``root``, keyed by relative path."""
    digests = {}
    for path in sorted(root.rglob("*.tif")):
        with rasterio.open(path) as src:
            digests[str(path.relative_to(root))] = hashlib.sha256(src.read().tobytes()).hexdigest()
    return digests


def test_spot_image_is_a_4_band_uint16_geotiff_at_1_5_m(scene: SceneInfo) -> None:
    assert re.fullmatch(r"SPOT6_PMS_\d{8}_simulated\.tif", scene.spot_image.name)
    with rasterio.open(scene.spot_image) as src:
        assert src.count == 4
        assert set(src.dtypes) == {"uint16"}
        assert src.crs == CRS.from_epsg(2154)
        assert src.res == (1.5, 1.5)
        assert (src.width, src.height) == (160, 160)
        assert src.descriptions == ("B0", "B1", "B2", "B3")
        assert src.tags()["SIMULATED"] == "yes"
        assert [src.tags(i)["NAME"] for i in (1, 2, 3, 4)] == ["blue", "green", "red", "nir"]
        data = src.read()
    assert data.min() > 0  # 0 is no-data
    # vegetation dominates: NIR brighter than red on most pixels
    assert (data[3] > data[2]).mean() > 0.5


def test_theia_products_have_real_names_grids_and_masks(scene: SceneInfo) -> None:
    tile_dir = scene.sensor_data / scene.tile
    folders = sorted(p for p in tile_dir.iterdir() if p.is_dir())
    assert len(folders) == 12
    assert sorted(scene.s2_products) == folders
    days = []
    for folder in folders:
        match = THEIA_RE.match(folder.name)
        assert match, folder.name
        assert match.group(4) == scene.tile
        days.append(datetime.strptime(match.group(1), "%Y%m%d"))
        for band in (*R1, *R2):
            path = folder / f"{folder.name}_FRE_{band}.tif"
            with rasterio.open(path) as src:
                assert src.dtypes[0] == "int16" and src.nodata == -10000
                assert src.crs == CRS.from_epsg(2154)
                res = 10.0 if band in R1 else 20.0
                assert src.res == (res, res)
                assert src.bounds == pytest.approx(tuple(scene.spot_grid.bounds))
        for mask in ("CLM", "EDG", "SAT"):
            for group, width in (("R1", 24), ("R2", 12)):
                with rasterio.open(folder / "MASKS" / f"{folder.name}_{mask}_{group}.tif") as src:
                    assert src.dtypes[0] == "uint8" and src.width == width
    assert (max(days) - min(days)).days > 300  # spread over the year
    assert [d.date() for d in scene.dates] == sorted(d.date() for d in days)


def test_clouds_are_flagged_and_brighten_the_bands(scene: SceneInfo) -> None:
    cloudy_seen = 0
    for folder in scene.s2_products:
        with rasterio.open(next((folder / "MASKS").glob("*_CLM_R1.tif"))) as src:
            clm = src.read(1)
        with rasterio.open(next(folder.glob("*_FRE_B2.tif"))) as src:
            blue = src.read(1)
        with rasterio.open(next((folder / "MASKS").glob("*_EDG_R1.tif"))) as src:
            assert not src.read(1).any()
        cloud = (clm & 0b10) > 0  # Theia bit 1: clouds
        if cloud.sum() >= 5 and (~cloud).sum() >= 5:
            cloudy_seen += 1
            assert blue[cloud].mean() > 2 * blue[clm == 0].mean()
    assert cloudy_seen >= 2


def test_reference_layer_holds_the_recorded_classes(scene: SceneInfo) -> None:
    info = pyogrio.read_info(scene.reference, layer="reference")
    assert CRS.from_user_input(info["crs"]) == CRS.from_epsg(2154)
    assert info["geometry_type"] == "Polygon"
    assert {"code", "name", "simulated"} <= set(info["fields"])
    assert info["layer_metadata"]["SIMULATED"] == "yes"
    _, _, _, fields = pyogrio.raw.read(
        scene.reference, layer="reference", columns=["code", "name", "simulated"]
    )
    codes, names, simulated = fields
    recorded = {c.code: c.name for c in scene.classes}
    assert set(codes) <= set(recorded)
    assert {recorded[int(c)] for c in codes} == set(names)
    assert all(simulated)


def test_nomenclature_files_and_manifest_agree(scene: SceneInfo) -> None:
    nom = read_nomenclature(scene.nomenclature, scene.color_file)
    assert list(nom.codes) == scene.codes
    assert list(nom.names) == [c.name for c in sorted(scene.classes, key=lambda c: c.code)]
    assert {c.needs for c in scene.classes} == {"spot", "s2", "either"}
    manifest = json.loads(scene.manifest.read_text())
    assert manifest["simulated"] and manifest["spot"]["simulated"] and manifest["s2"]["simulated"]
    assert manifest["seed"] == 3 and manifest["grids"]["s2_r1"]["shape"] == [24, 24]
    assert load_scene(scene.root) == scene


def test_readers_see_what_the_manifest_records(scene: SceneInfo) -> None:
    from iota2_spot_s2.sensors import open_s2_timeseries, open_spot

    spot = open_spot(scene.spot_image)
    assert spot.shape == (4, *scene.spot_grid.shape)
    assert list(spot.band.values) == ["B0", "B1", "B2", "B3"]
    s2 = open_s2_timeseries(scene.sensor_data / scene.tile)
    assert s2.shape == (len(scene.dates), 10, *scene.s2_grid.shape)
    assert list(s2.band.values) == [*R1[:3], *R2[:3], "B8", *R2[3:]]
    expected = np.array(scene.dates, dtype="datetime64[ms]")
    assert np.array_equal(s2.time.values.astype("datetime64[ms]"), expected)
    valid = s2.valid.values
    assert 0.0 < valid.mean() < 1.0  # clouds masked, most pixels valid
    assert float(s2.x.values[0]) == scene.s2_grid.transform.c + 5.0


def test_same_seed_same_rasters_other_seed_differs(scene: SceneInfo, tmp_path: Path) -> None:
    again = generate_scene(tmp_path / "again", size_m=SIZE, seed=3, cloud_fraction=0.3)
    other = generate_scene(tmp_path / "other", size_m=SIZE, seed=4, cloud_fraction=0.3)
    first = _raster_digest(scene.root)
    assert len(first) == 1 + 12 * 16
    assert _raster_digest(again.root) == first
    with rasterio.open(scene.spot_image) as a, rasterio.open(other.spot_image) as b:
        assert not np.array_equal(a.read(), b.read())
    assert other.dates != scene.dates


def test_regenerating_replaces_the_previous_products(tmp_path: Path) -> None:
    first = generate_scene(tmp_path, size_m=180, seed=1, n_dates=3)
    second = generate_scene(tmp_path, size_m=180, seed=2, n_dates=4)
    assert not any(p.exists() for p in first.s2_products if p not in second.s2_products)
    assert len(list((tmp_path / "sensor_data" / second.tile).iterdir())) == 4
    assert second.extent_m == 180.0 and second.spot_grid.shape == (120, 120)


def test_size_is_rounded_to_a_multiple_of_60_m(tmp_path: Path) -> None:
    info = generate_scene(tmp_path, size_m=200, n_dates=2)
    assert info.size_m == 200 and info.extent_m == 180
    assert info.spot_grid.bounds == info.s2_grid.bounds == info.s2_grid_r2.bounds


def test_bad_arguments_and_missing_scene(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_dates"):
        generate_scene(tmp_path, size_m=240, n_dates=1)
    with pytest.raises(ValueError, match="size_m"):
        generate_scene(tmp_path, size_m=30)
    with pytest.raises(InputError, match="scene.json"):
        load_scene(tmp_path / "nowhere")
