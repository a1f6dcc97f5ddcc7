from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.nomenclature import (
    Level,
    Nomenclature,
    read_color_file,
    read_hierarchy_csv,
    read_nomenclature,
    write_color_file,
    write_hierarchy_csv,
    write_nomenclature,
)
from iota2_spot_s2.reference import read_mapping_table

PLUGIN_CONFIG = Path(__file__).resolve().parents[1] / "plugin_config"


def _sample() -> Nomenclature:
    return Nomenclature.from_classes(
        {13: "Prairies", 1: "Bâti dense", 5: "Colza: hiver"},
        colors={1: (255, 0, 255), 5: (255, 255, 0), 13: (170, 170, 0)},
        levels=[
            {1: (1, "Urbain"), 5: (2, "Agricole"), 13: (2, "Agricole")},
            {1: (11, "Bâti"), 5: (21, "Cultures"), 13: (22, "Prairies")},
        ],
    )


def test_from_classes_sorts_codes() -> None:
    nom = _sample()
    assert nom.codes == (1, 5, 13)
    assert nom.names == ("Bâti dense", "Colza: hiver", "Prairies")
    assert nom.colors[2] == (170, 170, 0)
    assert nom.name_of(5) == "Colza: hiver"
    assert nom.index_of(13) == 2


def test_txt_round_trip(tmp_path: Path) -> None:
    nom = _sample()
    write_nomenclature(nom, tmp_path / "nomenclature.txt")
    write_color_file(nom, tmp_path / "colorFile.txt")
    text = (tmp_path / "nomenclature.txt").read_text(encoding="utf-8")
    assert text.splitlines() == ["Bâti dense:1", "Colza: hiver:5", "Prairies:13"]
    assert (tmp_path / "colorFile.txt").read_text().splitlines()[0] == "1 255 0 255"
    back = read_nomenclature(tmp_path / "nomenclature.txt", tmp_path / "colorFile.txt")
    assert (back.codes, back.names, back.colors) == (nom.codes, nom.names, nom.colors)
    assert back.levels == ()


def test_hierarchy_csv_round_trip(tmp_path: Path) -> None:
    nom = _sample()
    write_hierarchy_csv(nom, tmp_path / "h.csv")
    back = read_nomenclature(tmp_path / "h.csv")
    assert back == nom
    assert back.parent_mapping(1) == {1: 1, 5: 2, 13: 2}
    assert back.parent_mapping(2) == {1: 11, 5: 21, 13: 22}
    coarse = back.coarsen(1)
    assert coarse.codes == (1, 2) and coarse.names == ("Urbain", "Agricole")
    assert coarse.colors == ((255, 0, 255), (255, 255, 0))  # lowest-coded child's colour
    mid = back.coarsen(2)
    assert mid.codes == (11, 21, 22) and mid.levels[0].codes == (1, 2, 2)


def test_inconsistent_levels_are_rejected() -> None:
    with pytest.raises(ValueError, match="same name"):
        Nomenclature((1, 2), ("a", "b"), ((0, 0, 0), (1, 1, 1)), (Level((9, 9), ("x", "y")),))
    with pytest.raises(ValueError, match="unique and sorted"):
        Nomenclature((2, 1), ("a", "b"), ((0, 0, 0), (1, 1, 1)))


def test_csv_without_colours_gets_distinct_palette(tmp_path: Path) -> None:
    path = tmp_path / "plain.csv"
    path.write_text("code,name\n3,c\n1,a\n2,b\n", encoding="utf-8")
    nom = read_hierarchy_csv(path)
    assert nom.codes == (1, 2, 3)
    assert len(set(nom.colors)) == 3


def test_color_table_feeds_rasterio_colormap(tmp_path: Path) -> None:
    nom = _sample()
    table = nom.color_table()
    assert table[0] == (0, 0, 0, 0)
    assert table[5] == (255, 255, 0, 255)
    assert set(table) == {0, 1, 5, 13}
    profile = {
        "driver": "GTiff",
        "width": 4,
        "height": 4,
        "count": 1,
        "dtype": "uint8",
        "crs": "EPSG:2154",
        "transform": Affine(10, 0, 0, 0, -10, 40),
        "nodata": 0,
    }
    with rasterio.open(tmp_path / "c.tif", "w", **profile) as dst:
        dst.write(np.array([[0, 1, 5, 13]] * 4, dtype=np.uint8), 1)
        dst.write_colormap(1, table)
    with rasterio.open(tmp_path / "c.tif") as src:
        cmap = src.colormap(1)
    assert cmap[1] == (255, 0, 255, 255)
    assert cmap[13] == (170, 170, 0, 255)
    assert cmap[0][3] == 0


def test_qml_is_a_paletted_style(tmp_path: Path) -> None:
    nom = _sample()
    path = nom.write_qml(tmp_path / "map.qml")
    root = ET.parse(path).getroot()
    assert root.tag == "qgis"
    renderer = root.find("pipe/rasterrenderer")
    assert renderer is not None
    assert renderer.get("type") == "paletted" and renderer.get("band") == "1"
    entries = renderer.findall("colorPalette/paletteEntry")
    assert len(entries) == len(nom)
    assert [e.get("value") for e in entries] == ["1", "5", "13"]
    assert entries[0].get("color") == "#ff00ff"
    assert entries[1].get("label") == "Colza: hiver"
    assert all(e.get("alpha") == "255" for e in entries)
    nodata = renderer.find("rasterTransparency/singleValuePixelList/pixelListEntry")
    assert nodata is not None and nodata.get("min") == "0" and nodata.get("max") == "0"
    assert not list(tmp_path.glob(".*partial*"))  # atomic write left nothing behind


BAD_NOMENCLATURES = [
    ("a:1\nb:2\nc:1\n", "line 3", "duplicate"),
    ("a:1\nnodata:0\n", "line 2", "no-data"),
    ("a:1\n\njust a name\n", "line 3", "name:code"),
    ("a:1\nb:two\n", "line 2", "not an integer"),
    ("a:70000\n", "line 1", "not in"),
]


@pytest.mark.parametrize(("content", "where", "what"), BAD_NOMENCLATURES)
def test_bad_nomenclature_lines(tmp_path: Path, content: str, where: str, what: str) -> None:
    path = tmp_path / "nomenclature.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_nomenclature(path)
    assert info.value.path == str(path)
    assert where in info.value.problem and what in info.value.problem


BAD_COLOR_FILES = [
    ("1 0 0 0\n2 0 0\n", "line 2", "code R G B"),
    ("1 0 0 0\n2 0 300 0\n", "line 2", "0..255"),
    ("1 0 0 0\n1 9 9 9\n", "line 2", "duplicate"),
    ("# comment\n1 red 0 0\n", "line 2", "integers"),
]


@pytest.mark.parametrize(("content", "where", "what"), BAD_COLOR_FILES)
def test_bad_color_file_lines(tmp_path: Path, content: str, where: str, what: str) -> None:
    path = tmp_path / "colorFile.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_color_file(path)
    assert info.value.path == str(path)
    assert where in info.value.problem and what in info.value.problem


def test_color_file_zero_line_ignored_and_missing_colour_reported(tmp_path: Path) -> None:
    (tmp_path / "n.txt").write_text("a:1\nb:2\n", encoding="utf-8")
    (tmp_path / "c.txt").write_text("0 0 0 0\n1 1 2 3\n", encoding="utf-8")
    assert read_color_file(tmp_path / "c.txt") == {1: (1, 2, 3)}
    with pytest.raises(InputError, match=r"no colour for class code\(s\) \[2\]"):
        read_nomenclature(tmp_path / "n.txt", tmp_path / "c.txt")


BAD_CSVS = [
    ("id,name\n1,a\n", "line 1", "code,name"),
    ("code,name,level1_code\n1,a,1\n", "line 1", "level1_code"),
    ("code,name,level1_code,level1_name\n1,a,1,X\n2,b,1,Y\n", "line 3", "'X' on line 2"),
    ("code,name,red,green,blue\n1,a,1,2\n", "line 2", "columns"),
    ("code,name\n1,a\n1,b\n", "line 3", "duplicate"),
]


@pytest.mark.parametrize(("content", "where", "what"), BAD_CSVS)
def test_bad_hierarchy_csv(tmp_path: Path, content: str, where: str, what: str) -> None:
    path = tmp_path / "h.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_nomenclature(path)
    assert where in info.value.problem and what in info.value.problem


def test_missing_file_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot be read"):
        read_nomenclature(tmp_path / "absent.txt")


def test_latin1_file_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "n.txt"
    path.write_bytes("Forêt:1\n".encode("latin-1"))
    assert read_nomenclature(path).names == ("Forêt",)


def test_shipped_oso_nomenclature() -> None:
    nom = read_nomenclature(
        PLUGIN_CONFIG / "nomenclature_oso.txt", PLUGIN_CONFIG / "colorFile_oso.txt"
    )
    assert nom.codes == tuple(range(1, 24))
    assert nom.name_of(13) == "Prairies" and nom.name_of(23) == "Eau"
    assert nom.colors[nom.index_of(23)] == (0, 0, 255)
    hier = read_nomenclature(PLUGIN_CONFIG / "hierarchy_oso.csv")
    assert (hier.codes, hier.names, hier.colors) == (nom.codes, nom.names, nom.colors)
    assert len(hier.levels) == 2
    level1 = hier.parent_mapping(1)
    assert {level1[c] for c in (1, 2, 3, 4)} == {1}  # urban
    assert {level1[c] for c in range(5, 16)} == {2}  # agricultural
    assert len(set(level1.values())) == 4


def test_shipped_ocsge_nomenclature() -> None:
    hier = read_nomenclature(PLUGIN_CONFIG / "hierarchy_ocsge_couverture.csv")
    txt = read_nomenclature(
        PLUGIN_CONFIG / "nomenclature_ocsge_couverture.txt",
        PLUGIN_CONFIG / "colorFile_ocsge_couverture.txt",
    )
    assert len(hier) == 14
    assert (hier.codes, hier.names, hier.colors) == (txt.codes, txt.names, txt.colors)
    # level 1 is the first digit of the code (CS1 without / CS2 with vegetation)
    assert hier.parent_mapping(1) == {c: int(str(c)[0]) for c in hier.codes}
    assert hier.parent_mapping(2) == {c: int(str(c)[:2]) for c in hier.codes}
    table = read_mapping_table(PLUGIN_CONFIG / "mapping_ocsge_code_cs_to_code.csv")
    assert len(table) == 14
    assert all(code == int(cs[2:].replace(".", "")) for cs, code in table.items())
    assert set(table.values()) == set(hier.codes)


def test_shipped_rpg_mapping_targets_are_oso_codes() -> None:
    table = read_mapping_table(PLUGIN_CONFIG / "mapping_rpg_code_group_to_oso.csv")
    assert set(table.values()) <= set(range(1, 24))
    assert table["1"] == 6 and table["2"] == 10 and table["18"] == 13
    assert "28" not in table


def test_real_eolearn_nomenclature(shared_data: Path) -> None:
    folder = shared_data / "s2_slovenia_lulc"
    nom = read_nomenclature(folder / "nomenclature.txt", folder / "colorFile.txt")
    assert nom.codes == tuple(range(1, 11))
    assert nom.name_of(8) == "Artificial Surface"
