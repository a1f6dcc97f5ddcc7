"""Raster-level fusion: files, grids, alignment of a coarser source, atomic outputs."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.fusion import fuse_labels, fuse_rasters, iota2_names
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.nomenclature import Nomenclature

CODES = [11, 12, 31]
X0, Y0 = 650000.0, 6860000.0


def random_probamap(rng, shape) -> np.ndarray:
    p = rng.random((len(CODES), *shape)) ** 3  # peaked, so that argmaxes differ clearly
    return np.rint(1000 * p / p.sum(axis=0)).astype(np.uint16)


def write_probamap(path, data, res, *, x0=X0, y0=Y0, codes=CODES, nodata=65535, tags=True):
    profile = {
        "driver": "GTiff", "width": data.shape[2], "height": data.shape[1],
        "count": data.shape[0], "dtype": data.dtype.name, "crs": "EPSG:2154",
        "transform": Affine(res, 0.0, x0, 0.0, -res, y0), "nodata": nodata,
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if tags:
            for band, code in enumerate(codes, start=1):
                dst.update_tags(band, code=str(code))
    return path


def read(path):
    """``(data, grid, extras)`` with the COG layout tag and the colour table (if any)."""
    with rasterio.open(path) as src:
        extras = {"layout": src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT")}
        try:
            extras["colormap"] = src.colormap(1)
        except ValueError:
            extras["colormap"] = None
        return src.read(), Grid(src.crs, src.transform, src.width, src.height), extras


@pytest.fixture
def two_sources(tmp_path):
    rng = np.random.default_rng(7)
    a = random_probamap(rng, (40, 56))
    b = random_probamap(rng, (40, 56))
    a[:, :5, :5] = 65535  # a no-data corner in source a ...
    b[:, :3, :3] = 65535  # ... overlapping one in source b
    pa = write_probamap(tmp_path / "a.tif", a, 2.0)
    pb = write_probamap(tmp_path / "b.tif", b, 2.0)
    return pa, pb, a, b


def test_fuse_rasters_mean_writes_consistent_cogs(tmp_path, two_sources):
    pa, pb, a, b = two_sources
    nom = Nomenclature.from_classes({11: "urban", 12: "water", 31: "forest"})
    out = fuse_rasters([pa, pb], tmp_path / "out", codes=CODES, rule="mean", nomenclature=nom,
                       block=16)  # fmt: skip
    assert sorted(p.name for p in out.paths.values()) == [
        "fused_choice.tif",
        "fused_classes.tif",
        "fused_confidence.tif",
        "fused_proba.tif",
    ]
    proba, grid, extras = read(out.paths["proba"])
    assert grid == Grid.from_raster(pa)
    assert extras["layout"] == "COG"
    both_missing = np.zeros((40, 56), bool)
    both_missing[:3, :3] = True
    assert (proba[:, both_missing] == 65535).all()
    valid = ~both_missing
    sums = proba[:, valid].astype(int).sum(axis=0)
    assert np.abs(sums - 1000).max() <= 2  # 1000 within rounding (K/2 with K = 3)
    # expected: mean of the sources that have data, computed here from the inputs
    fa = np.where(a == 65535, np.nan, a / np.where(a == 65535, 1, a.sum(0)))
    fb = b / b.sum(0)
    expected = np.where(np.isnan(fa), fb, (np.nan_to_num(fa) + fb) / 2)
    assert np.abs(proba[:, valid] - 1000 * expected[:, valid]).max() <= 0.5 + 1e-6
    classes, _, extras = read(out.paths["classes"])
    assert extras["colormap"][31][:3] == nom.colors[2] and extras["layout"] == "COG"
    best = np.asarray(CODES)[np.argmax(expected, axis=0)]
    clear = np.sort(expected, axis=0)[-1] - np.sort(expected, axis=0)[-2] > 0.01
    np.testing.assert_array_equal(classes[0][valid & clear], best[valid & clear])
    assert (classes[0][both_missing] == 0).all()
    confidence = read(out.paths["confidence"])[0][0]
    assert (confidence[both_missing] == 255).all()
    np.testing.assert_allclose(confidence[valid], np.rint(100 * expected.max(0))[valid], atol=1)
    choice = read(out.paths["choice"])[0][0]
    la, lb = np.argmax(a, axis=0), np.argmax(b, axis=0)
    only_b = np.zeros_like(both_missing)
    only_b[:5, :5] = True
    only_b &= valid
    assert (choice[only_b] == 3).all()
    both = valid & ~only_b & (la == lb) & clear
    assert (choice[both] == 1).all()


def test_output_grid_is_the_requested_grid(tmp_path, two_sources):
    pa, pb, _, _ = two_sources
    grid = Grid.from_bounds("EPSG:2154", X0 + 10, Y0 - 60, X0 + 90, Y0 - 4, 4.0)
    out = fuse_rasters([pa, pb], tmp_path, codes=CODES, rule="product", grid=grid)
    for path in out.paths.values():
        with rasterio.open(path) as src:
            assert Grid(src.crs, src.transform, src.width, src.height) == grid


def test_iota2_names():
    names = iota2_names("T31TCJ", 1, 2)
    assert names == {
        "classes": "Classif_T31TCJ_model_1_seed_2_DS.tif",
        "confidence": "T31TCJ_model_1_confidence_seed_2_DS.tif",
        "proba": "PROBAMAP_T31TCJ_model_1_seed_2_DS.tif",
        "choice": "DSchoice_T31TCJ_model_1_seed_2.tif",
    }


def coarse_and_fine(tmp_path):
    """A 1.5 m source (80 x 80 px = 120 m) and a 10 m source (12 x 12 px) over the same area."""
    rng = np.random.default_rng(3)
    fine = random_probamap(rng, (80, 80))
    coarse = random_probamap(rng, (12, 12))
    pf = write_probamap(tmp_path / "fine.tif", fine, 1.5)
    pc = write_probamap(tmp_path / "coarse.tif", coarse, 10.0)
    return pf, pc, fine, coarse


def fine_centres(rows, cols):
    return X0 + (cols + 0.5) * 1.5, Y0 - (rows + 0.5) * 1.5


def test_coarse_source_nearest_at_pixel_centres(tmp_path):
    pf, pc, fine, coarse = coarse_and_fine(tmp_path)
    out = fuse_rasters([pf, pc], tmp_path / "o", codes=CODES, rule="mean", resampling="nearest")
    proba, grid, _ = read(out.paths["proba"])
    assert grid == Grid.from_raster(pf)
    rows, cols = np.meshgrid(np.arange(80), np.arange(80), indexing="ij")
    x, y = fine_centres(rows, cols)
    # the 10 m pixel holding each 1.5 m pixel centre, by map coordinates
    crow = np.floor((Y0 - y) / 10.0).astype(int)
    ccol = np.floor((x - X0) / 10.0).astype(int)
    pc_vals = coarse[:, crow, ccol] / coarse.sum(0)[crow, ccol]
    expected = (fine / fine.sum(0) + pc_vals) / 2
    assert np.abs(proba - 1000 * expected).max() <= 0.5 + 1e-6


def test_coarse_source_bilinear_at_pixel_centres(tmp_path):
    pf, pc, fine, coarse = coarse_and_fine(tmp_path)
    out = fuse_rasters([pf, pc], tmp_path / "o", codes=CODES, rule="mean")  # default: bilinear
    proba = read(out.paths["proba"])[0]
    c = coarse / coarse.sum(0)
    checked = 0
    for row in range(8, 72, 5):
        for col in range(9, 72, 7):
            x, y = fine_centres(row, col)
            u, v = (x - X0) / 10.0 - 0.5, (Y0 - y) / 10.0 - 0.5  # in coarse centre units
            i, j = int(np.floor(v)), int(np.floor(u))
            dv, du = v - i, u - j
            interp = (
                c[:, i, j] * (1 - dv) * (1 - du) + c[:, i, j + 1] * (1 - dv) * du
                + c[:, i + 1, j] * dv * (1 - du) + c[:, i + 1, j + 1] * dv * du
            )  # fmt: skip
            expected = (fine[:, row, col] / fine[:, row, col].sum() + interp / interp.sum()) / 2
            assert np.abs(proba[:, row, col] - 1000 * expected).max() <= 1.0
            checked += 1
    assert checked > 100


def test_fine_source_averaged_onto_a_coarse_grid(tmp_path):
    rng = np.random.default_rng(5)
    fine = random_probamap(rng, (30, 30))  # 2 m: 5 x 5 fine pixels per 10 m pixel
    pf = write_probamap(tmp_path / "fine.tif", fine, 2.0)
    grid = Grid.from_bounds("EPSG:2154", X0, Y0 - 60, X0 + 60, Y0, 10.0)
    out = fuse_rasters([pf], tmp_path / "o", codes=CODES, rule="mean", grid=grid)
    proba = read(out.paths["proba"])[0]
    p = fine / fine.sum(0)
    block_mean = p.reshape(3, 6, 5, 6, 5).mean(axis=(2, 4))
    assert np.abs(proba - 1000 * block_mean).max() <= 1.0


def test_class_maps_vote_through_rasters_equals_arrays(tmp_path):
    rng = np.random.default_rng(9)
    maps = [
        np.asarray([0, *CODES])[rng.integers(0, 4, (20, 30))].astype(np.uint8) for _ in range(3)
    ]
    paths = []
    for i, m in enumerate(maps):
        profile = {
            "driver": "GTiff", "width": 30, "height": 20, "count": 1, "dtype": "uint8",
            "crs": "EPSG:2154", "transform": Affine(2.0, 0, X0, 0, -2.0, Y0),
        }  # fmt: skip
        with rasterio.open(tmp_path / f"m{i}.tif", "w", **profile) as dst:
            dst.write(m, 1)
        paths.append(tmp_path / f"m{i}.tif")
    out = fuse_rasters(paths, tmp_path / "o", codes=CODES, rule="vote", ties="otb",
                       undecided_label=255, block=8)  # fmt: skip
    expected = fuse_labels(maps, CODES, "vote", ties="otb", undecided_label=255)
    np.testing.assert_array_equal(read(out.paths["classes"])[0][0], expected.classes)
    np.testing.assert_array_equal(read(out.paths["choice"])[0][0], expected.choice)


def test_mismatched_band_codes_raise(tmp_path, two_sources):
    pa, _, a, _ = two_sources
    other = write_probamap(tmp_path / "other.tif", a, 2.0, codes=[11, 12, 32])
    with pytest.raises(InputError, match=r"class codes \[11, 12, 32\]"):
        fuse_rasters([pa, other], tmp_path / "out", codes=CODES, rule="mean")
    four = write_probamap(tmp_path / "four.tif", np.concatenate([a, a[:1]]), 2.0, tags=False)
    with pytest.raises(InputError, match="4 bands"):
        fuse_rasters([pa, four], tmp_path / "out", codes=CODES, rule="mean")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_no_partial_files_on_error(tmp_path, two_sources, monkeypatch):
    import iota2_spot_s2.fusion.rasters as rasters

    pa, pb, _, _ = two_sources
    real = rasters.fuse_window
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(rasters, "fuse_window", failing)
    out_dir = tmp_path / "out"
    with pytest.raises(RuntimeError, match="disk full"):
        fuse_rasters([pa, pb], out_dir, codes=CODES, rule="mean", block=16)
    assert len(calls) == 3
    assert list(out_dir.iterdir()) == []  # no final, no hidden partial file


@pytest.mark.parametrize("block", [37, 512])
def test_sources_in_another_crs_warp_like_one_whole_raster_reproject(tmp_path, block: int) -> None:
    """Window-by-window warping equals GDAL warping the whole source at once, across CRSs and
    the source's footprint edge (a UTM source covering part of a Lambert-93 target)."""
    from rasterio.warp import Resampling, reproject, transform_bounds

    from iota2_spot_s2.fusion import fuse_rasters
    from iota2_spot_s2.grid import Grid

    target = Grid.from_bounds("EPSG:2154", 500000, 6300000, 501200, 6301200, 10)
    left, bottom, right, top = transform_bounds("EPSG:2154", "EPSG:32631", *target.bounds)
    src_grid = Grid.from_bounds("EPSG:32631", left + 300, bottom - 50, right + 50, top - 400, 1.5)
    rng = np.random.default_rng(1)
    p = rng.random((3, src_grid.height, src_grid.width))
    proba = np.rint(1000 * p / p.sum(axis=0)).astype(np.uint16)
    labels = (np.argmax(p, axis=0) + 1).astype(np.uint8)[None]
    paths = {}
    for name, array in (("proba", proba), ("labels", labels)):
        paths[name] = tmp_path / f"{name}.tif"
        profile = src_grid.profile(driver="GTiff", count=len(array), dtype=array.dtype.name)
        with rasterio.open(paths[name], "w", **profile, nodata=None if name == "proba" else 0) as d:
            d.write(array)
    fused = fuse_rasters([paths["proba"]], tmp_path / "p", codes=[1, 2, 3], grid=target,
                         block=block, kinds=("proba",), encoding="iota2")  # fmt: skip
    vote = fuse_rasters([paths["labels"]], tmp_path / "l", codes=[1, 2, 3], grid=target,
                        rule="vote", block=block, kinds=("classes",))  # fmt: skip
    whole = np.full((3, *target.shape), np.nan, np.float32)
    reproject(
        proba.astype(np.float32), whole, src_transform=src_grid.transform, src_crs=src_grid.crs,
        dst_transform=target.transform, dst_crs=target.crs, resampling=Resampling.average,
        src_nodata=np.nan, dst_nodata=np.nan,
    )  # fmt: skip
    modes = np.zeros(target.shape, np.int32)
    reproject(
        labels.astype(np.int32), modes, src_transform=src_grid.transform, src_crs=src_grid.crs,
        dst_transform=target.transform, dst_crs=target.crs, resampling=Resampling.mode,
        src_nodata=0, dst_nodata=0,
    )  # fmt: skip
    with rasterio.open(fused.paths["proba"]) as src:
        ours = src.read().astype(np.float64)
    with rasterio.open(vote.paths["classes"]) as src:
        ours_labels = src.read(1)
    covered = np.isfinite(whole).all(axis=0)
    assert 0.2 < covered.mean() < 0.9  # partly covered target
    ours_covered = ours.sum(axis=0) > 0
    assert (ours_covered != covered).sum() <= 3  # same footprint, up to rounding at its edge
    both = covered & ours_covered
    expected = whole / whole.sum(axis=0)
    error = np.abs(ours[:, both] / 1000 - expected[:, both]).max(axis=0)
    # equal up to the 0-1000 rounding, except a few footprint-edge pixels where GDAL's
    # approximate transformer (0.125 px) sees another extent
    assert (error <= 2e-3).mean() > 0.995 and error.max() < 0.03
    assert ((ours_labels == modes) | ~covered).mean() > 0.995
