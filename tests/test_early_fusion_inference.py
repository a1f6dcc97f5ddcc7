"""Early-fusion inference: tile-size independence, S2 windows, map outputs, missing S2."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import rasterio
import torch

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.inference.paired import (
    PairedEngine,
    predict_early_fusion_array,
    predict_early_fusion_map,
)
from iota2_spot_s2.inference.tiling import PixelWindow
from iota2_spot_s2.models import build_model
from iota2_spot_s2.nomenclature import read_nomenclature
from iota2_spot_s2.sensors import open_s2_timeseries, open_spot
from iota2_spot_s2.simulation import generate_scene
from iota2_spot_s2.training.paired import LoadedEarlyFusion
from iota2_spot_s2.training.paired_data import PairGeometry, prepare_s2_series

TINY = {"widths": (8, 16, 24), "bottleneck_blocks": 1, "s2_features": 8, "s2_hidden": 8}


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def untrained(codes, n_dates: int, bands: int, *, s2_mean=0.0, s2_std=1.0, spot_std=1.0):
    """A LoadedEarlyFusion with random weights (BatchNorm statistics made non-trivial)."""
    torch.manual_seed(0)
    net = build_model("early_fusion", 4, len(codes), s2_channels=bands, n_dates=n_dates,
                      ratio="20/3", **TINY)  # fmt: skip
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
        net.missing.uniform_(-1, 1)
    channels = n_dates * bands
    return LoadedEarlyFusion(
        model=net.eval(),
        class_codes=np.asarray(codes, np.int64),
        band_mean=np.zeros(4, np.float32),
        band_std=np.full(4, spot_std, np.float32),
        model_name="early_fusion",
        meta={"s2_layout": {"gapfill": "none", "dates": []}},
        s2_mean=np.full(channels, s2_mean, np.float32),
        s2_std=np.full(channels, s2_std, np.float32),
        ratio=Fraction(20, 3),
    )


def synthetic(height: int = 200, width: int = 220, dates: int = 3, bands: int = 2):
    """SPOT (4, H, W) and an S2 series (T, C, h, w) on the same ground; NaN holes in both."""
    rng = np.random.default_rng(2)
    spot = rng.normal(size=(4, height, width)).astype(np.float32)
    spot[:, 100:103, 50:60] = np.nan
    h, w = -(-height * 3 // 20), -(-width * 3 // 20)  # the S2 pixels covering the scene
    s2 = rng.normal(size=(dates, bands, h, w)).astype(np.float32)
    s2[1, :, 5:9, 10:20] = np.nan
    return spot, s2


def test_probabilities_do_not_depend_on_the_tile_size() -> None:
    model = untrained([1, 2, 3], n_dates=3, bands=2)
    spot, s2 = synthetic()
    whole = predict_early_fusion_array(model, spot, s2)
    assert whole.shape == (3, 200, 220)
    np.testing.assert_allclose(whole.sum(0), 1.0, atol=1e-5)
    for tile in (40, 80, 120):
        tiled = predict_early_fusion_array(model, spot, s2, tile=tile, batch_size=2)
        assert np.abs(tiled - whole).max() < 1e-4, tile
    # a larger S2 series (SPOT origin 3 rows, 6 columns into it) is cropped to the same windows
    rng = np.random.default_rng(5)
    larger = rng.normal(size=(3, 2, s2.shape[2] + 5, s2.shape[3] + 9)).astype(np.float32)
    larger[:, :, 3 : 3 + s2.shape[2], 6 : 6 + s2.shape[3]] = s2
    offset = PairGeometry(Fraction(20, 3), 3, 6)
    moved = predict_early_fusion_array(model, spot, larger, geometry=offset, tile=80)
    assert np.abs(moved - whole).max() < 1e-4
    # margin below the receptive-field radius: tiles no longer see all they need
    with pytest.warns(UserWarning, match="depend on the tile size"):
        cut = predict_early_fusion_array(model, spot, s2, tile=40, margin=0)
    assert np.abs(cut - whole).max() > 1e-3
    # S2 matters, and a missing series is predicted with the learned embedding
    missing = predict_early_fusion_array(model, spot, None, tile=80)
    assert np.abs(missing - whole).max() > 1e-2
    np.testing.assert_allclose(missing, predict_early_fusion_array(model, spot, None), atol=1e-4)


def test_engine_reads_s2_windows_on_the_10m_grid_only() -> None:
    model = untrained([1, 2], n_dates=3, bands=2)
    spot, s2 = synthetic()
    stack = prepare_s2_series(s2, gapfill=False)
    engine = PairedEngine(model, stack, PairGeometry(Fraction(20, 3)))
    assert engine.margin % 40 == 0 and engine.margin >= model.model.receptive_field // 2
    tiles = engine.plan(200, 220, 80)
    for tile in tiles:
        assert tile.read.row % 40 == 0 and tile.read.height % 40 == 0
    window, has_data = engine.read_s2(PixelWindow(-40, 80, 120, 160))
    assert window.shape == (6, 18, 24) and has_data  # 120 x 160 SPOT px = 18 x 24 S2 px
    np.testing.assert_array_equal(window[:, :6], 0.0)  # above the scene: zeros
    np.testing.assert_array_equal(window[:, :, 21:], 0.0)  # right of the scene (33 S2 columns)
    expected = np.nan_to_num(stack.values[:, 0:12, 12:33])
    np.testing.assert_allclose(window[:, 6:, :21], expected)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    info = generate_scene(tmp_path_factory.mktemp("scene"), size_m=240, seed=1)
    return info, open_spot(info.spot_image), open_s2_timeseries(info.sensor_data / info.tile)


def test_map_outputs_match_the_array_prediction(scene, tmp_path) -> None:
    info, spot, series = scene
    nom = read_nomenclature(info.nomenclature, info.color_file)
    codes = info.codes
    model = untrained(codes, n_dates=12, bands=10, s2_mean=0.2, s2_std=0.1, spot_std=200.0)
    options = dict(tile=80, write_proba=True, nomenclature=nom, progress=False)
    out = predict_early_fusion_map(model, spot, series, tmp_path / "map", **options)
    expected = predict_early_fusion_array(model, spot.values, series)
    with rasterio.open(out.class_map) as src:
        classes = src.read(1)
        assert Grid(src.crs, src.transform, src.width, src.height) == info.spot_grid
        assert src.nodata == 0 and src.colormap(1)[codes[0]][:3] == nom.colors[0]
    with rasterio.open(out.proba) as src:
        proba = src.read().astype(np.float64) / 1000
    with rasterio.open(out.confidence) as src:
        confidence = src.read(1)
    np.testing.assert_allclose(proba, expected, atol=6e-4)
    top = np.sort(expected, axis=0)[-2:]
    clear = top[1] - top[0] > 1e-3  # argmax not decided by float noise
    np.testing.assert_array_equal(classes[clear], np.asarray(codes)[expected.argmax(0)][clear])
    assert np.abs(confidence - np.rint(100 * expected.max(0))).max() <= 1
    assert out.qml is not None and out.qml.is_file()
    again = predict_early_fusion_map(model, spot, series, tmp_path / "map", **options)
    assert again.resumed
    no_s2 = predict_early_fusion_map(model, spot, None, tmp_path / "no_s2", progress=False)
    with rasterio.open(no_s2.class_map) as src:
        assert (src.read(1) != classes).any()


def test_inputs_that_do_not_pair_are_rejected(scene, tmp_path) -> None:
    info, spot, series = scene
    model = untrained(info.codes, n_dates=12, bands=10)
    with pytest.raises(InputError, match="S2 channels"):
        predict_early_fusion_map(model, spot, series.isel(band=slice(0, 4)), tmp_path / "a",
                                 progress=False)  # fmt: skip
    shifted = series.copy()
    transform = list(shifted.attrs["transform"])
    transform[2] += 5.0  # half an S2 pixel
    shifted.attrs["transform"] = tuple(transform)
    with pytest.raises(InputError, match="corner"):
        predict_early_fusion_map(model, spot, shifted, tmp_path / "b", progress=False)
