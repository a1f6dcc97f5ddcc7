"""OSO-style product: tables, MMU regularisation, rasters and the GeoPackage layer.

Maps here are **simulated** (seeded smoothed random fields on an EPSG:2154 grid), written and
read back in real formats (GeoTIFF with rasterio, GeoPackage with pyogrio). The validity test
at the end uses the real Theia L2A crop of ``shared/data``.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from rasterio.features import rasterize
from rasterio.transform import from_origin
from scipy import ndimage

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.nomenclature import read_color_file, read_nomenclature
from iota2_spot_s2.product import (
    OSO_TABLES,
    majority_filter,
    mmu_pixels,
    oso_nomenclature,
    sieve_to_mmu,
    totality_problems,
    write_oso_product,
    write_validity,
)
from iota2_spot_s2.reference import read_mapping_table

PLUGIN_CONFIG = Path(__file__).resolve().parents[1] / "plugin_config"
CROSS = ndimage.generate_binary_structure(2, 1)
RES = 5.0  # metres: 0.1 ha = 40 pixels
CODES = (6, 10, 13, 16, 23)
SIZE = 96


def _patch_sizes(classes: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(code, boolean mask) of every 4-connected patch, by the test's own labelling."""
    out = []
    for code in np.unique(classes):
        if code == 0:
            continue
        lab, n = ndimage.label(classes == code, structure=CROSS)
        out += [(int(code), lab == i) for i in range(1, n + 1)]
    return out


def _simulated_map(seed: int = 0) -> np.ndarray:
    """Simulated class map: smooth blobs of 5 OSO classes, 4 % salt noise, a no-data band."""
    rng = np.random.default_rng(seed)
    fields = ndimage.gaussian_filter(rng.normal(size=(len(CODES), SIZE, SIZE)), (0, 6, 6))
    classes = np.array(CODES, dtype=np.uint8)[fields.argmax(axis=0)]
    noise = rng.random((SIZE, SIZE)) < 0.04
    classes[noise] = rng.choice(CODES, size=int(noise.sum()))
    classes[:8] = 0
    classes[2:4, 10:12] = 23  # an island inside no-data: no neighbour to merge into
    return classes


def _write(path: Path, array: np.ndarray, res: float = RES, nodata: float | None = None) -> Path:
    with rasterio.open(
        path, "w", driver="GTiff", width=array.shape[1], height=array.shape[0], count=1,
        dtype=array.dtype, crs="EPSG:2154", transform=from_origin(800_000, 6_500_000, res, res),
        nodata=nodata,
    ) as dst:  # fmt: skip
        dst.write(array, 1)
    return path


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, object]:
    rng = np.random.default_rng(1)
    classes = _simulated_map()
    conf = rng.integers(20, 101, classes.shape).astype(np.uint8)
    conf[classes == 0] = 255
    conf[10, 10:20] = 255  # some classified pixels without confidence
    validity = rng.integers(0, 25, (SIZE // 2, SIZE // 2)).astype(np.uint16)  # on a 10 m grid
    return {
        "classes": classes, "conf": conf, "validity": validity,
        "map": _write(tmp_path / "map.tif", classes, nodata=0),
        "confidence": _write(tmp_path / "conf.tif", conf, nodata=255),
        "validity_path": _write(tmp_path / "validity_10m.tif", validity, res=2 * RES),
    }  # fmt: skip


def test_oso_legend_equals_plugin_config() -> None:
    nom = oso_nomenclature()
    txt = read_nomenclature(PLUGIN_CONFIG / "nomenclature_oso.txt")
    csv_nom = read_nomenclature(PLUGIN_CONFIG / "hierarchy_oso.csv")
    colors = read_color_file(PLUGIN_CONFIG / "colorFile_oso.txt")
    assert nom.codes == txt.codes == csv_nom.codes == tuple(range(1, 24))
    assert nom.names == txt.names == csv_nom.names
    assert nom.colors == tuple(colors[c] for c in nom.codes) == csv_nom.colors


@pytest.mark.parametrize("spec", OSO_TABLES, ids=lambda s: s.table)
def test_mapping_tables_are_total_on_declared_codes(spec) -> None:  # noqa: ANN001
    # the test's own reading of the two files, with the csv module
    def rows(name: str) -> list[dict[str, str]]:
        text = (PLUGIN_CONFIG / name).read_text(encoding="utf-8").splitlines()
        return list(csv.DictReader(line for line in text if not line.startswith("#")))

    table = {r["source"].strip(): int(r["target"]) for r in rows(spec.table)}
    declared = {r["source"].strip(): r["unmapped"].strip() for r in rows(spec.declared)}
    must_map = {code for code, why in declared.items() if not why}
    assert must_map <= set(table), must_map - set(table)
    assert set(table) <= set(declared), set(table) - set(declared)
    assert not {code for code, why in declared.items() if why} & set(table)
    assert set(table.values()) <= {0, *range(1, 24)}
    assert (
        totality_problems(
            PLUGIN_CONFIG / spec.table, PLUGIN_CONFIG / spec.declared, oso_nomenclature().codes
        )
        == []
    )
    # the package's reader sees the same table
    assert read_mapping_table(PLUGIN_CONFIG / spec.table) == table


def test_rpg_declared_codes_are_the_28_groups() -> None:
    spec = next(s for s in OSO_TABLES if "rpg" in s.table)
    text = (PLUGIN_CONFIG / spec.declared).read_text(encoding="utf-8").splitlines()
    codes = [r["source"] for r in csv.DictReader(x for x in text if not x.startswith("#"))]
    assert codes == [str(i) for i in range(1, 29)]


def test_totality_problems_names_each_gap(tmp_path: Path) -> None:
    declared = tmp_path / "declared.csv"
    declared.write_text("source,label,unmapped\na,A,\nb,B,\nc,C,no class\n", encoding="utf-8")
    table = tmp_path / "table.csv"
    table.write_text("source,target\na,1\nc,2\nz,99\n", encoding="utf-8")
    problems = totality_problems(table, declared, range(1, 24))
    assert len(problems) == 4
    joined = " ".join(problems)
    assert "'b' has no row" in joined and "'c' is declared unmapped" in joined
    assert "'z' is not a declared" in joined and "maps to 99" in joined


def test_mmu_pixels() -> None:
    assert mmu_pixels(0.1, (5.0, 5.0)) == 40
    assert mmu_pixels(0.1, (10.0, 10.0)) == 10
    assert mmu_pixels(0.1, (1.5, 1.5)) == 445  # 1000 / 2.25 = 444.4
    assert mmu_pixels(0.0, (10.0, 10.0)) == 1


@pytest.mark.parametrize("min_pixels", [5, 40, 200])
def test_sieve_leaves_no_patch_below_mmu(min_pixels: int) -> None:
    classes = _simulated_map(seed=3)
    regular, report = sieve_to_mmu(classes, min_pixels)
    after = _patch_sizes(regular)
    assert min(mask.sum() for _, mask in after) >= min_pixels
    assert not regular[classes == 0].any()  # no-data never filled
    for code, mask in _patch_sizes(classes):
        if mask.sum() >= min_pixels:  # large patches are untouched
            assert (regular[mask] == code).all()
    assert report.changed_pixels == int((regular != classes).sum()) > 0
    assert report.dropped_patches >= 1 and not regular[2:4, 10:12].any()  # the island


def test_write_oso_product(inputs: dict, tmp_path: Path) -> None:  # noqa: C901
    out = tmp_path / "product"
    product = write_oso_product(inputs["map"], inputs["confidence"], inputs["validity_path"], out)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["oso_classes.tif", "oso_classes.qml", "oso_classes_mmu.tif", "oso_classes_mmu.qml",
         "oso_confidence.tif", "oso_validity.tif", "oso_vector.gpkg", "oso_vector.qml",
         "oso_product.json"]
    )  # fmt: skip
    classes, conf = inputs["classes"], inputs["conf"]
    with rasterio.open(product.classes) as src:
        assert (src.read(1) == classes).all() and src.nodata == 0
        assert src.colormap(1)[13] == (170, 170, 0, 255)  # Prairies
    with rasterio.open(product.confidence) as src:
        assert (src.read(1) == conf).all()
    # validity: each 5 m pixel takes the 10 m pixel holding it (index arithmetic)
    with rasterio.open(product.validity) as src:
        assert (src.read(1) == np.repeat(np.repeat(inputs["validity"], 2, 0), 2, 1)).all()
    validity = np.repeat(np.repeat(inputs["validity"], 2, 0), 2, 1)
    with rasterio.open(product.classes_mmu) as src:
        regular, transform = src.read(1), src.transform
    assert min(m.sum() for _, m in _patch_sizes(regular)) >= 40  # 0.1 ha at 5 m

    meta, _, geoms, fields = pyogrio.raw.read(product.vector, layer="oso")
    cols = dict(zip(meta["fields"], fields, strict=True))
    polygons = shapely.from_wkb(geoms)
    areas = shapely.area(polygons)
    assert len(polygons) == len(_patch_sizes(regular))
    assert areas.min() >= 1000.0 - 1e-6  # 0.1 ha
    assert np.allclose(areas, cols["area_m2"])
    pct = np.stack([cols[f"pct_{c}"] for c in range(1, 24)], axis=1)
    assert np.allclose(pct.sum(axis=1), 100.0)
    # attributes against the rasters, through the polygons burnt back by the test
    ids = rasterize(
        zip(polygons, range(1, len(polygons) + 1), strict=True), out_shape=regular.shape,
        transform=transform, fill=0, dtype="int32",
    )  # fmt: skip
    assert ((ids > 0) == (regular > 0)).all()
    for i in range(len(polygons)):
        inside = ids == i + 1
        assert (regular[inside] == cols["class_code"][i]).all()
        assert cols["class_name"][i] == oso_nomenclature().name_of(int(cols["class_code"][i]))
        c = conf[inside]
        assert np.isclose(cols["confidence"][i], c[c != 255].mean())
        assert cols["validity_min"][i] == validity[inside].min()
        assert np.isclose(cols["validity_mean"][i], validity[inside].mean())
        for code in CODES:
            expected = 100.0 * (classes[inside] == code).mean()
            assert np.isclose(cols[f"pct_{code}"][i], expected)
    assert "layer_styles" in pyogrio.list_layers(product.vector)[:, 0]
    assert "categorizedSymbol" in product.vector.with_suffix(".qml").read_text()


def test_float_confidence_recode_and_no_validity(inputs: dict, tmp_path: Path) -> None:
    # a map on another nomenclature (1..5) recoded to OSO, with iota2's float 0-1 confidence
    other = np.zeros_like(inputs["classes"])
    for i, code in enumerate(CODES, start=1):
        other[inputs["classes"] == code] = i
    conf = np.where(inputs["conf"] == 255, np.nan, inputs["conf"] / 100.0).astype(np.float32)
    path_map = _write(tmp_path / "other.tif", other, nodata=0)
    path_conf = _write(tmp_path / "conf_float.tif", conf, nodata=float("nan"))
    recode = {i: code for i, code in enumerate(CODES, start=1)}
    product = write_oso_product(path_map, path_conf, None, tmp_path / "p", recode=recode,
                                mmu_ha=0.05, prefix="x")  # fmt: skip
    assert product.validity is None
    with rasterio.open(product.classes) as src:
        assert (src.read(1) == inputs["classes"]).all()
    with rasterio.open(product.confidence) as src:
        assert (src.read(1) == inputs["conf"]).all()
    meta, _, geoms, _ = pyogrio.raw.read(product.vector, layer="x")
    assert not any(f.startswith("validity") for f in meta["fields"])
    assert shapely.area(shapely.from_wkb(geoms)).min() >= 500.0 - 1e-6
    with pytest.raises(InputError, match="not in the recode table"):
        write_oso_product(path_map, path_conf, None, tmp_path / "q", recode={1: 6})


def test_failure_leaves_no_partial_product(inputs: dict, tmp_path: Path) -> None:
    shifted = _write(tmp_path / "conf_10m.tif", inputs["conf"], res=10.0, nodata=255)
    out = tmp_path / "product"
    with pytest.raises(InputError, match="not on the class map's grid"):
        write_oso_product(inputs["map"], shifted, None, out)
    assert list(out.iterdir()) == []
    bad = _write(tmp_path / "bad.tif", np.full((SIZE, SIZE), 40, np.uint8))
    with pytest.raises(InputError, match=r"\[40\] are not OSO classes"):
        write_oso_product(bad, inputs["confidence"], None, out)
    assert list(out.iterdir()) == []


def _majority(a: np.ndarray, radius: int) -> np.ndarray:
    """The test's own majority vote: disc footprint, no-data neither votes nor changes, ties
    keep the pixel's label."""
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    disc = yy**2 + xx**2 <= (radius + 0.5) ** 2
    out = a.copy()
    for i, j in zip(*np.nonzero(a), strict=True):
        votes = np.zeros(256, np.int64)
        for di, dj in zip(yy[disc], xx[disc], strict=True):
            if 0 <= i + di < a.shape[0] and 0 <= j + dj < a.shape[1]:
                votes[a[i + di, j + dj]] += 1
        votes[0] = 0
        best = np.flatnonzero(votes == votes.max())
        out[i, j] = best[0] if len(best) == 1 else a[i, j]
    return out


@pytest.mark.parametrize("radius", [1, 2])
def test_otb_majority_filter_matches_independent_vote(tmp_path: Path, radius: int) -> None:
    from iota2_spot_s2 import otb

    if not otb.otb_available("ClassificationMapRegularization"):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("otbcli_ClassificationMapRegularization not available")
        pytest.skip("OTB ClassificationMapRegularization not available")
    classes = _simulated_map(seed=5)[:48, :48]
    src = _write(tmp_path / "in.tif", classes, nodata=0)
    with rasterio.open(majority_filter(src, tmp_path / "out.tif", radius)) as f:
        assert (f.read(1) == _majority(classes, radius)).all()


def test_validity_from_real_theia_l2a(shared_data: Path, tmp_path: Path) -> None:
    product = shared_data / "theia_l2a_gers" / "SENTINEL2B_20181023-105107-455_L2A_T30TYP_D_V1-9"
    clm_path = next((product / "MASKS").glob("*_CLM_R1.tif"))
    with rasterio.open(clm_path) as src:
        clm, crs, t = src.read(1), src.crs, src.transform
    # a 5 m grid over 200 x 200 pixels of the 10 m grid, around the cloud
    rows, cols = np.nonzero(clm)
    top, left = max(0, int(rows.min()) - 20), max(0, int(cols.min()) - 20)
    from iota2_spot_s2.grid import Grid

    grid = Grid(crs, from_origin(t.c + 10 * left, t.f - 10 * top, 5.0, 5.0), 400, 400)
    path = write_validity(product, grid, tmp_path / "validity.tif")
    with rasterio.open(path) as src:
        got = src.read(1)
    expected_cloud = np.repeat(np.repeat(clm[top : top + 200, left : left + 200] != 0, 2, 0), 2, 1)
    assert expected_cloud.any()
    assert (got[expected_cloud] == 0).all()  # every cloudy pixel: no clear date
    assert (got[~expected_cloud] == 1).mean() > 0.99  # one date, clear elsewhere


def _fuse_classify(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iota2_spot_s2.cli", *args],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_product_through_the_cli_and_its_bad_input(inputs: dict, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = ["--map", str(inputs["map"]), "--confidence", str(inputs["confidence"])]
    done = _fuse_classify("product", *args, "--out", str(out), "--mmu-ha", "0.1")
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)["report"]
    assert report["mmu_ha"] == 0.1 and report["polygons"] > 0
    with rasterio.open(out / "oso_classes_mmu.tif") as src:
        regular = src.read(1)
    assert min(m.sum() for _, m in _patch_sizes(regular)) >= 40  # 0.1 ha at 5 m
    missing = tmp_path / "none.tif"
    bad = _fuse_classify("product", "--map", str(missing), *args[2:], "--out", str(tmp_path / "b"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and str(missing) in bad.stderr
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())
