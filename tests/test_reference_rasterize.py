from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine
from pyogrio import raw
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.features import geometry_mask

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.nomenclature import Nomenclature, read_nomenclature
from iota2_spot_s2.reference import rasterize_reference, write_labels

PLUGIN_CONFIG = Path(__file__).resolve().parents[1] / "plugin_config"
X0, Y0, RES = 850_000.0, 6_520_200.0, 10.0
GRID = Grid(CRS.from_epsg(2154), Affine(RES, 0, X0, 0, -RES, Y0), 20, 20)


def _box(col0: int, row0: int, col1: int, row1: int) -> shapely.Polygon:
    """Polygon over pixel columns col0..col1-1 and rows row0..row1-1 of GRID."""
    return shapely.box(X0 + col0 * RES, Y0 - row1 * RES, X0 + col1 * RES, Y0 - row0 * RES)


def _write(
    path: Path,
    geoms: list,
    values: list,
    *,
    crs: str = "EPSG:2154",
    layer: str = "ref",
    append: bool = False,
) -> None:
    raw.write(
        path,
        np.array(shapely.to_wkb(np.array(geoms, dtype=object)), dtype=object),
        [np.array(values, dtype=object)],
        ["cls"],
        layer=layer,
        driver="GPKG",
        geometry_type="Unknown",
        crs=crs,
        append=append,
    )


@pytest.fixture()
def synthetic(tmp_path: Path) -> Path:
    bowtie = shapely.Polygon(
        [(X0 + 100, Y0 - 200), (X0 + 140, Y0 - 160), (X0 + 140, Y0 - 200), (X0 + 100, Y0 - 160)]
    )
    geoms = [
        _box(0, 0, 10, 10),  # A class 1, 100 px
        _box(7, 5, 15, 13),  # B class 2, 64 px, overlaps A on 3 x 5 = 15 px (B wins)
        _box(14, 12, 18, 16),  # C class 2, 16 px, 1 px shared with B (same class)
        _box(0, 17, 3, 20),  # D class 99 (unknown to the nomenclature), 9 px
        None,  # E empty geometry
        shapely.box(0, 0, 10, 10),  # F far outside the grid
        bowtie,  # G class 3, invalid
        _box(16, 0, 20, 4),  # H null class value, 16 px
    ]
    values = ["1", "2", "2", "99", "1", "1", "3", None]
    path = tmp_path / "ref.gpkg"
    _write(path, geoms, values)
    return path


NOM = Nomenclature.from_classes({1: "one", 2: "two", 3: "three"})


def test_synthetic_rules_and_report(synthetic: Path) -> None:
    res = rasterize_reference(synthetic, GRID, "cls", nomenclature=NOM, feature_ids=True)
    lab, rep = res.labels, res.report
    assert lab.dtype == np.uint16 and lab.shape == (20, 20)
    assert (lab[5:10, 7:10] == 2).all()  # overlap: last feature (B) wins
    assert rep.conflict_pixels == 15
    assert (lab[0:5, 0:10] == 1).all() and (lab[5:10, 0:7] == 1).all()
    assert rep.class_pixel_counts[1] == 100 - 15
    assert rep.class_pixel_counts[2] == 64 + 16 - 1
    assert (lab[17:20, 0:3] == 0).all()  # unknown code 99 reset to no-data
    assert rep.unknown_code_features == {99: 1} and rep.unknown_code_pixels == {99: 9}
    assert (lab[0:4, 16:20] == 0).all() and rep.features_null_value == 1
    assert rep.features_empty_geometry == 1
    assert rep.features_outside_grid == 1
    assert rep.features_invalid_geometry == 1
    g_pixels = lab[16:20, 10:14]
    assert rep.class_pixel_counts[3] == int((lab == 3).sum()) == int((g_pixels == 3).sum()) > 0
    assert rep.features_total == 8 and rep.features_burned == 6
    assert rep.labelled_pixels + rep.nodata_pixels == 400
    assert res.feature_ids is not None and res.fids is not None
    assert set(np.unique(res.feature_ids[5:10, 7:10])) == {2}  # B is the 2nd feature read
    json.loads(rep.to_json())


def test_mapping_dict_with_int_keys_and_unmapped_values(synthetic: Path) -> None:
    res = rasterize_reference(synthetic, GRID, "cls", mapping={1: 5, 2: 5})
    rep = res.report
    assert rep.conflict_pixels == 0  # A and B now burn the same code
    assert rep.class_pixel_counts == {5: 100 + 64 - 15 + 16 - 1}
    assert rep.unmapped_values == {"3": 1, "99": 1}
    assert rep.unknown_code_features == {}


def test_bbox_filtered_read_gives_the_same_labels(
    synthetic: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = rasterize_reference(synthetic, GRID, "cls", nomenclature=NOM)
    monkeypatch.setattr("iota2_spot_s2.reference.vector.BBOX_FILTER_MIN_FEATURES", 0)
    filtered = rasterize_reference(synthetic, GRID, "cls", nomenclature=NOM)
    np.testing.assert_array_equal(filtered.labels, full.labels)
    assert filtered.report.features_read < full.report.features_read == 8
    assert filtered.report.features_total == 8
    assert filtered.report.features_burned == full.report.features_burned == 6


def test_all_touched_burns_at_least_the_centre_pixels(tmp_path: Path) -> None:
    path = tmp_path / "tri.gpkg"
    tri = shapely.Polygon([(X0 + 3, Y0 - 3), (X0 + 97, Y0 - 41), (X0 + 23, Y0 - 88)])
    _write(path, [tri], ["1"])
    centre = rasterize_reference(path, GRID, "cls").labels
    touched = rasterize_reference(path, GRID, "cls", all_touched=True).labels
    assert (touched[centre == 1] == 1).all()
    assert (touched == 1).sum() > (centre == 1).sum()


def test_reprojection_from_wgs84_matches_native(synthetic: Path, tmp_path: Path) -> None:
    geoms = [_box(0, 0, 10, 10), _box(7, 5, 15, 13)]
    to_wgs = Transformer.from_crs(2154, 4326, always_xy=True)
    wgs = shapely.transform(np.array(geoms), lambda xy: np.column_stack(to_wgs.transform(*xy.T)))
    path = tmp_path / "wgs.gpkg"
    _write(path, list(wgs), ["1", "2"], crs="EPSG:4326")
    res = rasterize_reference(path, GRID, "cls")
    expected = np.zeros((20, 20), np.uint16)
    expected[0:10, 0:10] = 1
    expected[5:13, 7:15] = 2
    np.testing.assert_array_equal(res.labels, expected)


def test_input_errors(synthetic: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        rasterize_reference(synthetic, GRID, "code_group")
    assert info.value.path == str(synthetic) and "'code_group'" in info.value.problem
    with pytest.raises(InputError, match="layer 'nope' not found"):
        rasterize_reference(synthetic, GRID, "cls", layer="nope")
    text = tmp_path / "text.gpkg"
    _write(text, [_box(0, 0, 2, 2)], ["CS2.2.1"])
    with pytest.raises(InputError, match="non-integer value 'CS2.2.1'"):
        rasterize_reference(text, GRID, "cls")
    assert rasterize_reference(text, GRID, "cls", mapping={"CS2.2.1": 221}).labels.max() == 221
    _write(text, [_box(0, 0, 2, 2)], ["1"], layer="second", append=True)
    with pytest.raises(InputError, match="name the one to use"):
        rasterize_reference(text, GRID, "cls")
    assert rasterize_reference(text, GRID, "cls", layer="second").report.layer == "second"
    with pytest.raises(InputError, match="cannot be read"):
        rasterize_reference(tmp_path / "absent.gpkg", GRID, "cls")


def test_write_labels_with_colour_table(synthetic: Path, tmp_path: Path) -> None:
    res = rasterize_reference(synthetic, GRID, "cls", nomenclature=NOM)
    out = write_labels(res.labels, GRID, tmp_path / "labels.tif", NOM)
    with rasterio.open(out) as src:
        np.testing.assert_array_equal(src.read(1), res.labels)
        assert src.nodata == 0 and src.crs == GRID.crs and src.transform == GRID.transform
        assert src.colormap(1)[2][:3] == NOM.colors[1]


def test_lulc_gpkg_reproduces_lulc_tif(shared_data: Path) -> None:
    folder = shared_data / "s2_slovenia_lulc"
    grid = Grid.from_raster(folder / "LULC.tif")
    res = rasterize_reference(folder / "LULC.gpkg", grid, "LULC_ID")
    with rasterio.open(folder / "LULC.tif") as src:
        expected = src.read(1)
    np.testing.assert_array_equal(res.labels, expected)
    assert res.report.features_total == 88  # per the data README
    codes, counts = np.unique(expected[expected != 0], return_counts=True)
    assert res.report.class_pixel_counts == dict(zip(codes.tolist(), counts.tolist(), strict=True))


# The test's own reading of the RPG groups present in the file (independent of plugin_config).
RPG_TO_OSO = {
    "1": 6,
    "2": 10,
    "3": 6,
    "4": 6,
    "5": 5,
    "6": 9,
    "7": 8,
    "8": 7,
    "11": 13,
    "16": 13,
    "18": 13,
    "19": 13,
    "25": 12,
}


def test_rpg_parcels_class_counts_are_independently_checked(shared_data: Path) -> None:
    path = shared_data / "rpg_parcels_ain" / "import-gpkg-test.gpkg"
    info = pyogrio.read_info(path, layer="lpis_iacs")
    grid = Grid.from_bounds(2154, *info["total_bounds"], 10.0)
    res = rasterize_reference(path, grid, "code_group", layer="lpis_iacs", mapping=RPG_TO_OSO)
    _, _, wkb, fields = raw.read(path, layer="lpis_iacs", columns=["code_group"])
    geoms, groups = shapely.from_wkb(wkb), fields[0]
    covered = np.zeros(grid.shape, np.int32)
    for code in sorted(set(RPG_TO_OSO.values())):
        sel = np.array([RPG_TO_OSO.get(g) == code for g in groups])
        mask = geometry_mask(
            geoms[sel], out_shape=grid.shape, transform=grid.transform, invert=True
        )
        covered += mask
        n = int(mask.sum())
        assert res.report.class_pixel_counts[code] == n == int((res.labels == code).sum())
        area_px = shapely.area(geoms[sel]).sum() / 100.0  # 10 m pixels
        assert abs(n - area_px) <= 0.03 * area_px
    assert covered.max() == 1 and res.report.conflict_pixels == 0
    unmapped = np.array([g == "28" for g in groups])
    assert res.report.unmapped_values == {"28": int(unmapped.sum())} == {"28": 16}
    outside = geometry_mask(geoms[~unmapped], grid.shape, grid.transform)
    assert (res.labels[outside] == 0).all()


def test_rpg_through_shipped_mapping_table(shared_data: Path) -> None:
    path = shared_data / "rpg_parcels_ain" / "import-gpkg-test.gpkg"
    info = pyogrio.read_info(path, layer="lpis_iacs")
    grid = Grid.from_bounds(2154, *info["total_bounds"], 10.0)
    nom = read_nomenclature(PLUGIN_CONFIG / "nomenclature_oso.txt")
    res = rasterize_reference(
        path,
        grid,
        "code_group",
        layer="lpis_iacs",
        nomenclature=nom,
        mapping=PLUGIN_CONFIG / "mapping_rpg_code_group_to_oso.csv",
    )
    assert res.report.unmapped_values == {"28": 16}
    assert res.report.unknown_code_features == {}
    assert res.report.features_burned == 193
    assert set(res.report.class_pixel_counts) <= set(nom.codes)
