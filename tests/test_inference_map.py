"""predict_map: COG outputs on the input grid, codes, colours, nodata, atomicity, resuming."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import dask.array as dsk
import numpy as np
import pytest
import rasterio
import torch
import xarray as xr
from affine import Affine
from rasterio.crs import CRS

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.inference import Engine, predict_map
from iota2_spot_s2.nomenclature import Nomenclature
from iota2_spot_s2.sensors import open_spot
from iota2_spot_s2.training import LoadedModel
from tests.test_inference_tiling import CODES, loaded, reference_proba, spot_like

NOM = Nomenclature.from_classes(
    {11: "urban", 22: "water", 31: "forest", 44: "crops", 200: "meadow"},
    colors={
        11: (230, 0, 77),
        22: (0, 100, 255),
        31: (0, 120, 0),
        44: (255, 230, 0),
        200: (180, 255, 80),
    },
)
TRANSFORM = Affine(6.0, 0.0, 650_000.0, 0.0, -6.0, 6_860_000.0)
H, W = 150, 130


def fcn() -> LoadedModel:
    return loaded("fcn", widths=(8, 16, 24))


@pytest.fixture()
def scene(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """4-band uint16 SPOT-like GeoTIFF, nodata 0; returns the path and the float image (NaN)."""
    image = np.clip(np.rint(spot_like(H, W, seed=1)), 1, 65535).astype(np.uint16)
    image[2, 5:9, 100:104] = 0  # one band nodata
    image[:, 0:64, 64:128] = 0  # a whole 64-px tile core of nodata (skipped by the engine)
    path = tmp_path / "IMG_SPOT6_MS.tif"
    profile = dict(driver="GTiff", width=W, height=H, count=4, dtype="uint16", nodata=0)
    with rasterio.open(path, "w", crs=CRS.from_epsg(2154), transform=TRANSFORM, **profile) as dst:
        dst.write(image)
    as_float = image.astype(np.float32)
    as_float[image == 0] = np.nan
    return path, as_float


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def test_outputs_are_cogs_with_codes_colours_nodata_and_probabilities(scene, tmp_path):
    path, image = scene
    model = fcn()
    out = predict_map(model, path, tmp_path / "out", tile=64, write_proba=True, nomenclature=NOM)
    invalid = np.isnan(image).any(0)
    expected = reference_proba(model, image, 80)  # independent whole-image inference
    for file in (out.class_map, out.confidence, out.proba):
        with rasterio.open(file) as src:
            assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            assert src.profile["tiled"] and src.crs == CRS.from_epsg(2154)
            assert src.transform == TRANSFORM and src.shape == (H, W)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "map_classes.qml", "map_classes.tif", "map_confidence.tif", "map_proba.tif"
    ]  # fmt: skip

    with rasterio.open(out.class_map) as src:
        classes, cmap = src.read(1), src.colormap(1)
        assert src.dtypes[0] == "uint8" and src.nodata == 0
    for code, rgb in zip(NOM.codes, NOM.colors, strict=True):
        assert cmap[code] == (*rgb, 255)
    assert ((classes == 0) == invalid).all()
    top2 = np.sort(expected, 0)[-2:]
    clear = ~invalid & (top2[1] - top2[0] > 1e-3)
    assert (classes[clear] == np.array(CODES)[expected.argmax(0)][clear]).all()
    assert len(np.unique(classes[~invalid])) >= 2

    with rasterio.open(out.confidence) as src:
        confidence = src.read(1)
        assert src.dtypes[0] == "uint8" and src.nodata == 255
    assert (confidence[invalid] == 255).all()
    assert confidence[~invalid].min() >= 20 and confidence[~invalid].max() <= 100
    assert np.abs(confidence[~invalid] - 100 * expected.max(0)[~invalid]).max() <= 0.51

    with rasterio.open(out.proba) as src:
        proba, descriptions = src.read(), src.descriptions
        assert src.dtypes[0] == "uint16" and src.nodata == 65535 and src.count == 5
    assert [int(d.split()[0]) for d in descriptions] == sorted(CODES)
    assert descriptions[1] == "22 water"
    assert (proba[:, invalid] == 65535).all()
    sums = proba[:, ~invalid].sum(0, dtype=np.int64)
    assert np.abs(sums - 1000).max() <= len(CODES)
    assert np.abs(proba[:, ~invalid] - 1000 * expected[:, ~invalid]).max() <= 0.51

    palette = ET.parse(out.qml).getroot().findall(".//paletteEntry")
    assert [int(e.get("value")) for e in palette] == sorted(CODES)
    assert palette[0].get("color") == "#e6004d"


def test_maps_people_look_at_have_overviews_probabilities_do_not(tmp_path):
    """Class map and confidence get overviews (QGIS zoomed out); probabilities, read by
    programs, are a COG without them (building them was most of the COG conversion), with
    TIFF's horizontal-differencing predictor (smaller and faster to write on real
    probabilities), which the categorical class map does not get."""
    image = np.clip(np.rint(spot_like(1100, 700, seed=2)), 1, 65535).astype(np.uint16)
    path = tmp_path / "big.tif"
    profile = dict(driver="GTiff", width=700, height=1100, count=4, dtype="uint16")
    with rasterio.open(path, "w", crs=CRS.from_epsg(2154), transform=TRANSFORM, **profile) as dst:
        dst.write(image)
    out = predict_map(fcn(), path, tmp_path / "out", write_proba=True, progress=False)
    levels = {}
    for file in (out.class_map, out.confidence, out.proba):
        with rasterio.open(file) as src:
            assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            levels[file.name] = src.overviews(1)
            structure = src.tags(ns="IMAGE_STRUCTURE")
            assert structure.get("COMPRESSION") == "DEFLATE"
            assert structure.get("PREDICTOR") == ("2" if file == out.proba else None), structure
    assert levels["map_classes.tif"] and levels["map_confidence.tif"], levels
    assert levels["map_proba.tif"] == []


def test_batches_of_tiles_give_the_same_maps(scene, tmp_path):
    """Default batch (1 on a CPU) and groups of 3 tiles per forward call: the same maps."""
    path, _ = scene
    one = predict_map(fcn(), path, tmp_path / "one", tile=64, write_proba=True, progress=False)
    three = predict_map(fcn(), path, tmp_path / "three", tile=64, batch_size=3,
                        write_proba=True, progress=False)  # fmt: skip
    assert (read(one.class_map) == read(three.class_map)).all()
    assert np.abs(read(one.proba).astype(int) - read(three.proba)).max() <= 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_the_batch_fills_its_memory_and_the_map_stays_the_cpu_one(scene, tmp_path):
    path, _ = scene
    cpu = predict_map(fcn(), path, tmp_path / "cpu", tile=64, progress=False)
    model = fcn()
    model.model.cuda()
    assert Engine(model).fitting_batch((208, 208)) > 1
    gpu = predict_map(model, path, tmp_path / "gpu", tile=64, progress=False)
    assert (read(cpu.class_map) == read(gpu.class_map)).mean() > 0.999


def test_lazy_dataarray_input_gives_the_same_maps(scene, tmp_path):
    path, _ = scene
    model = fcn()
    from_path = predict_map(model, path, tmp_path / "a", tile=64, write_proba=True)
    lazy = open_spot(path, chunks=32)
    assert isinstance(lazy.data, dsk.Array)
    from_da = predict_map(model, lazy, tmp_path / "b", tile=96, write_proba=True)
    assert from_path.qml is None and not Path(tmp_path / "a" / "map_classes.qml").exists()
    np.testing.assert_array_equal(read(from_path.class_map), read(from_da.class_map))
    diff = read(from_path.proba).astype(int) - read(from_da.proba)  # tiles differ: rounding only
    assert np.abs(diff).max() <= 1 and (diff != 0).mean() < 1e-3
    with rasterio.open(from_da.class_map) as src:
        assert src.transform == TRANSFORM and src.crs == CRS.from_epsg(2154)


class Exploding(torch.nn.Module):
    """Wraps a network and raises on its n-th forward call."""

    def __init__(self, net: torch.nn.Module, fail_at: int) -> None:
        super().__init__()
        self.net, self.fail_at, self.calls = net, fail_at, 0
        self.downsample, self.receptive_field = net.downsample, net.receptive_field

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("boom")
        return self.net(x)


class Recording:
    """A numpy array that records which pixels were read through it."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.shape, self.dtype, self.ndim = array, array.shape, array.dtype, 3
        self.read = np.zeros(array.shape[1:], bool)

    def __getitem__(self, key: tuple) -> np.ndarray:
        self.read[key[1:]] = True
        return self.array[key]


def test_failure_midway_leaves_no_files_and_reads_only_windows(tmp_path):
    base = fcn()
    image = Recording(spot_like(512, 512, seed=2))
    lazy = xr.DataArray(
        dsk.from_array(image, chunks=(4, 32, 32), asarray=False),
        dims=("band", "y", "x"),
        attrs={"crs": CRS.from_epsg(2154).to_wkt(), "transform": tuple(TRANSFORM)[:6]},
    )
    model = LoadedModel(
        Exploding(base.model, 3), base.class_codes, base.band_mean, base.band_std, "x"
    )
    out_dir = tmp_path / "out"
    with pytest.raises(RuntimeError, match="boom"):
        predict_map(model, lazy, out_dir, tile=64, batch_size=1, write_proba=True, nomenclature=NOM)
    assert list(out_dir.rglob("*")) == []  # no final, temp or .qml file
    assert 0 < image.read.mean() < 0.25  # windows were read, never the whole 64-tile scene


def test_rerun_keeps_finished_files_and_recomputes_stale_ones(scene, tmp_path):
    path, _ = scene
    out_dir = tmp_path / "out"
    first = predict_map(fcn(), path, out_dir, tile=256, nomenclature=NOM)
    assert not first.resumed and first.pixels_per_second > 0
    stamp = {p: p.stat().st_mtime_ns for p in (first.class_map, first.confidence)}
    again = predict_map(fcn(), path, out_dir, tile=512, nomenclature=NOM)
    assert again.resumed and again.pixels_per_second == pytest.approx(first.pixels_per_second, 1e-3)
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp
    first.confidence.unlink()
    partly = predict_map(fcn(), path, out_dir, tile=256, nomenclature=NOM)
    assert not partly.resumed and partly.confidence.exists()
    assert first.class_map.stat().st_mtime_ns == stamp[first.class_map]
    other = predict_map(loaded("fcn", seed=7, widths=(8, 16, 24)), path, out_dir, tile=256)
    assert not other.resumed and first.class_map.stat().st_mtime_ns != stamp[first.class_map]
    assert sorted(p.name for p in out_dir.iterdir() if p.name.startswith(".")) == []


def test_valid_mask_masks_outputs_without_changing_other_pixels(scene, tmp_path):
    path, image = scene
    mask = np.ones((H, W), bool)
    mask[100:120, 10:40] = False
    plain = read(predict_map(fcn(), path, tmp_path / "a", tile=64).class_map)[0]
    masked = read(predict_map(fcn(), path, tmp_path / "b", tile=64, valid_mask=mask).class_map)[0]
    assert (masked[~mask] == 0).all() and (plain[~mask] != 0).all()
    np.testing.assert_array_equal(masked[mask], plain[mask])


def test_per_pixel_map_equals_dense_map_and_large_codes_use_uint16(tmp_path):
    base = loaded("patch_cnn", seed=4)
    model = LoadedModel(
        base.model, np.array([1, 2, 300, 301, 999]), base.band_mean, base.band_std, "p"
    )
    image = spot_like(24, 30, seed=6)
    da = xr.DataArray(
        image, dims=("band", "y", "x"), attrs={"crs": "EPSG:2154", "transform": TRANSFORM}
    )
    dense = predict_map(model, da, tmp_path / "d", tile=16, write_proba=True)
    slow = predict_map(model, da, tmp_path / "s", tile=16, write_proba=True, mode="per_pixel")
    with rasterio.open(dense.class_map) as src:
        assert src.dtypes[0] == "uint16"
        assert set(np.unique(src.read(1))) <= {1, 2, 300, 301, 999}
    np.testing.assert_array_equal(read(dense.class_map), read(slow.class_map))
    assert np.abs(read(dense.proba).astype(int) - read(slow.proba)).max() <= 1


def test_bad_inputs_are_reported(scene, tmp_path):
    path, _ = scene
    three_bands = loaded("fcn", widths=(8, 16))
    three_bands.band_mean, three_bands.band_std = (
        three_bands.band_mean[:3],
        three_bands.band_std[:3],
    )
    with pytest.raises(InputError, match="4 bands"):
        predict_map(three_bands, path, tmp_path / "o")
    with pytest.raises(ValueError, match="not in the nomenclature"):
        predict_map(fcn(), path, tmp_path / "o", nomenclature=Nomenclature.from_classes({11: "a"}))
    with pytest.raises(InputError, match="does not exist"):
        predict_map(fcn(), tmp_path / "missing.tif", tmp_path / "o")
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


def test_real_vhr_image_maps_seamlessly_on_its_own_grid(shared_data, tmp_path):
    path = shared_data / "vhr_toulouse" / "tif_file.tif"  # uint16, nodata 65535, EPSG:4326
    model = fcn()
    out = predict_map(model, path, tmp_path / "out", tile=256, nomenclature=NOM)
    with rasterio.open(path) as src:
        raw, grid = src.read(), (src.crs, src.transform, src.shape)
    invalid = (raw == 65535).any(0)
    assert invalid.any()
    image = np.where(raw == 65535, np.nan, raw.astype(np.float32))
    expected = np.array(CODES)[reference_proba(model, image, 80).argmax(0)]
    with rasterio.open(out.class_map) as dst:
        classes = dst.read(1)
        assert (dst.crs, dst.transform, dst.shape) == grid
    assert ((classes == 0) == invalid).all()
    assert (classes[~invalid] == expected[~invalid]).mean() > 0.999


def test_the_room_check_counts_the_uncompressed_partial_files(tmp_path, monkeypatch):
    """Partial files are written uncompressed (GDAL forgets a compression level when a file is
    reopened at a checkpoint): a file-size limit below their raw size is refused up front."""
    import resource
    import signal
    from types import SimpleNamespace

    from iota2_spot_s2.grid import Grid
    from iota2_spot_s2.inference import writers

    side = 8192
    grid = Grid(CRS.from_epsg(2154), TRANSFORM, side, side)
    specs = writers.output_files(tmp_path, "map", list(CODES), proba=True)
    proba_bytes = side * side * len(CODES) * 2  # uint16 per class
    roomy = SimpleNamespace(f_bavail=1 << 40, f_frsize=1)  # this test is about the limit
    monkeypatch.setattr(writers.os, "statvfs", lambda _: roomy)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # nothing may die meanwhile
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (proba_bytes - 1, hard))
        with pytest.raises(InputError, match=f"limit .* is {proba_bytes - 1} bytes"):
            writers.check_room(specs, grid)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2 * proba_bytes, hard))
        writers.check_room(specs, grid)  # twice the raw size: room for the header too
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
