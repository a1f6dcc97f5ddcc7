"""Spectro-temporal features: index values against independent formulas, iota2 names and order."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from iota2_spot_s2.sensors import open_s2_timeseries
from iota2_spot_s2.timeseries import compute_features, feature_names, gapfill_series

THEIA_BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
WINDOW = Window(350, 420, 64, 48)  # partly under the CLM cloud


def _band(folder, name: str) -> np.ndarray:
    """A 10 m Theia band read straight from its file, as reflectance, on ``WINDOW``."""
    path = next(folder.glob(f"*_FRE_{name}.tif"))
    with rasterio.open(path) as src:
        return src.read(1, window=WINDOW).astype(np.float64) / 10000.0


def test_indices_on_real_theia_pixels_match_independent_formulas(shared_data) -> None:
    product = next((shared_data / "theia_l2a_gers").glob("SENTINEL2*"))
    series = open_s2_timeseries(product)
    filled = gapfill_series(series, WINDOW)
    cube = compute_features(filled.values, THEIA_BANDS, filled.attrs["gapfill_dates"])
    assert cube.channels == (*THEIA_BANDS, "NDVI", "NDWI", "Brightness")
    assert cube.values.shape == (13, 1, 48, 64)
    b3, b4, b8 = (_band(product, b) for b in ("B3", "B4", "B8"))
    with rasterio.open(next((product / "MASKS").glob("*_CLM_R1.tif"))) as src:
        clear = src.read(1, window=WINDOW) == 0
    assert clear.sum() > 1000 and (~clear).sum() > 300
    rows, cols = np.nonzero(clear)
    pick = np.random.default_rng(0).choice(rows.size, 200, replace=False)
    r, c = rows[pick], cols[pick]
    ndvi = cube.values[cube.channels.index("NDVI"), 0]
    ndwi = cube.values[cube.channels.index("NDWI"), 0]
    np.testing.assert_allclose(ndvi[r, c], ((b8 - b4) / (b8 + b4))[r, c], atol=1e-5)
    np.testing.assert_allclose(ndwi[r, c], ((b3 - b8) / (b3 + b8))[r, c], atol=1e-5)
    refl = filled.values[0].astype(np.float64)  # (band, y, x) incl. warped 20 m bands
    brightness = np.sqrt((refl**2).sum(axis=0))
    np.testing.assert_allclose(cube.values[-1, 0][r, c], brightness[r, c], rtol=1e-5)
    assert np.isnan(ndvi[~clear]).all()  # cloudy and no other date: no value


def test_gao_ndwi_uses_nir_and_swir() -> None:
    values = np.zeros((2, 10, 3), dtype=np.float32)
    values[:, 6] = 0.4  # B8
    values[:, 8] = [[0.1, 0.2, 0.4], [0.0, 0.4, 0.0]]  # B11
    cube = compute_features(values, THEIA_BANDS, ["20210101", "20210111"], ndwi="gao")
    ndwi = cube.values[cube.channels.index("NDWI")]
    expected = (0.4 - values[:, 8]) / (0.4 + values[:, 8])
    np.testing.assert_allclose(ndwi, expected, rtol=1e-6)
    with pytest.raises(ValueError):
        compute_features(values, THEIA_BANDS, ["20210101", "20210111"], ndwi="other")


def test_feature_names_follow_iota2_order_and_match_the_flat_vector() -> None:
    dates = ["20210101", "20210111", "20210121"]
    rng = np.random.default_rng(3)
    values = rng.random((3, 10, 5)).astype(np.float32)
    cube = compute_features(values, THEIA_BANDS, dates)
    names = cube.names
    assert len(names) == 3 * (10 + 3) == cube.flat().shape[0]
    assert names[:11] == [f"Sentinel2_{b}_20210101" for b in THEIA_BANDS] + [
        "Sentinel2_B2_20210111"
    ]
    assert names[30:33] == [f"Sentinel2_NDVI_{d}" for d in dates]
    assert names[-1] == "Sentinel2_Brightness_20210121"
    flat = cube.flat()
    assert np.array_equal(flat[names.index("Sentinel2_B8A_20210111")], values[1, 7])
    b4, b8 = values[2, 2], values[2, 6]
    np.testing.assert_allclose(flat[names.index("Sentinel2_NDVI_20210121")],
                               (b8 - b4) / (b8 + b4), rtol=1e-6)  # fmt: skip
    assert feature_names(["NDVI"], [], ["2015-07-11"]) == ["Sentinel2_NDVI_20150711"]


def test_a_series_of_ndvi_only_keeps_ndvi_as_its_only_channel() -> None:
    values = np.full((4, 1, 2, 2), 0.5, dtype=np.float32)
    cube = compute_features(values, ["NDVI"], ["20150711", "20150721", "20150731", "20150810"])
    assert cube.channels == ("NDVI",)
    assert cube.names[0] == "Sentinel2_NDVI_20150711" and len(cube.names) == 4
