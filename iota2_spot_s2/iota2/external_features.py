"""iota2 external-features functions for the SPOT-derived features (feature-level fusion).

Register with (``fuse-classify iota2 features`` writes the first, beside the userFeat block;
the other two repeat the userFeat bands, for a cfg that uses external features alone)::

    external_features : { module : '<this file>'
                          functions : 'get_spot_s2_ndvi_gap get_spot_fcn_proba get_spot_texture'
                          concat_mode : True }

Contract, as iota2 documents it: each function takes iota2's data container ``self`` and returns
``(array, labels)`` where ``array`` is ``(rows, cols, n)`` float32 (no NaN or inf: iota2 rejects
them) and ``labels`` has ``n`` names. Sentinel-2 series come from the container's getters,
``get_interpolated_Sentinel2_<BAND>()`` (current iota2) or ``get_Sentinel2_<BAND>()`` (older),
each ``(rows, cols, dates)``. The SPOT features are the userFeat bands written by the plugin,
taken from the container's getters named after iota2's userFeat feature names
(``get_userFeatures_<PATTERN>_band_<n>()``, ``n`` from 0, each ``(rows, cols)``), so chunks,
tiles and grids stay iota2's business.

When iota2 is importable the labels are its ``I2Label`` / ``I2TemporalLabel`` objects (current
releases refuse plain strings), else plain strings.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SPOT_SENSOR = "spot"
PROBA_PATTERN = "SPOT_FCN_PROBA"
TEXTURE_PATTERN = "SPOT_TEXTURE"
#: Bands at the end of ``SPOT_TEXTURE`` for a 4-band SPOT image (see iota2.features).
NDVI_MEAN_FROM_END, FRACTION_FROM_END = 3, 1
#: ``SPOT_TEXTURE`` bands of a 4-band image: 4 x (mean, std), NDVI mean and std, fraction.
TEXTURE_BANDS_4 = 11


def get_spot_fcn_proba(self: Any) -> tuple[np.ndarray, list[Any]]:
    """SPOT FCN class probabilities per 10 m pixel, in [0, 1], one band per class."""
    bands = user_feat_bands(self, PROBA_PATTERN) / 1000.0
    return bands, labels([f"fcn_proba_{i}" for i in range(bands.shape[2])])


def get_spot_texture(self: Any) -> tuple[np.ndarray, list[Any]]:
    """SPOT band means / standard deviations per 10 m pixel, NDVI ones, covered fraction."""
    bands = user_feat_bands(self, TEXTURE_PATTERN)
    return bands, labels([f"texture_{i}" for i in range(bands.shape[2])])


def get_spot_s2_ndvi_gap(self: Any) -> tuple[np.ndarray, list[Any]]:
    """Sentinel-2 NDVI of each date minus the SPOT NDVI mean of the pixel (0 where no SPOT).

    Large gaps on dates far from the SPOT acquisition show how the pixel's phenology departs
    from what the single SPOT date saw: the two sensors' information side by side.
    """
    texture = user_feat_bands(self, TEXTURE_PATTERN)
    if texture.shape[2] != TEXTURE_BANDS_4:
        raise ValueError(
            f"SPOT_TEXTURE has {texture.shape[2]} bands, not the {TEXTURE_BANDS_4} of a 4-band "
            "SPOT image with NDVI"
        )
    spot_ndvi = texture[:, :, -NDVI_MEAN_FROM_END]
    covered = texture[:, :, -FRACTION_FROM_END] > 0
    s2_ndvi = s2_series(self, "NDVI")
    gap = np.where(covered[:, :, None], s2_ndvi - spot_ndvi[:, :, None], 0.0)
    dates = _dates(self, gap.shape[2])
    return gap.astype(np.float32), labels([f"ndvi_gap_{d}" for d in dates], dates=dates)


def s2_series(self: Any, band: str) -> np.ndarray:
    """A Sentinel-2 band or index ``(rows, cols, dates)`` (NDVI computed if not offered)."""
    for name in (f"get_interpolated_Sentinel2_{band}", f"get_Sentinel2_{band}"):
        getter = getattr(self, name, None)
        if getter is not None:
            return np.nan_to_num(np.asarray(getter(), np.float32))
    if band == "NDVI":
        red, nir = s2_series(self, "B4"), s2_series(self, "B8")
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.nan_to_num((nir - red) / (nir + red))
    raise AttributeError(f"the iota2 data container offers no Sentinel-2 {band} getter")


def user_feat_bands(self: Any, pattern: str) -> np.ndarray:
    """Every ``get_userFeatures_<pattern>_band_<n>()`` of the container, stacked ``(r, c, n)``."""
    layers: list[np.ndarray] = []
    while (getter := getattr(self, f"get_userFeatures_{pattern}_band_{len(layers)}", None)):
        layers.append(np.asarray(getter(), np.float32))
    if not layers:
        raise AttributeError(
            f"the iota2 data container has no userFeat band {pattern}_band_0: register the "
            f"SPOT userFeat tree (userFeat.patterns must list {pattern})"
        )
    return np.nan_to_num(np.stack([np.squeeze(x) for x in layers], axis=2))


def labels(names: list[str], dates: list[str] | None = None) -> list[Any]:
    """Feature labels: iota2's label objects when importable, else the names."""
    try:
        from iota2.learning.utils import I2Label, I2TemporalLabel
    except ImportError:
        return list(names)
    if dates is None:
        return [I2Label(sensor_name=SPOT_SENSOR, feat_name=n) for n in names]
    return [
        I2TemporalLabel(sensor_name=SPOT_SENSOR, feat_name="ndvigap", date=d) for d in dates
    ]


def _dates(self: Any, count: int) -> list[str]:
    dates = getattr(self, "interpolated_dates", None)
    if isinstance(dates, dict) and len(dates.get("Sentinel2", [])) == count:
        return [str(d) for d in dates["Sentinel2"]]
    return [f"{i + 1}" for i in range(count)]
