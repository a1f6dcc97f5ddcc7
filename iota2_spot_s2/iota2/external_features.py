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

iota2 2020 (``iota2/Common/customNumpyFeatures.py``) has no userFeat getters: its
``data_container`` only builds ``get_<sensor>_<band>()`` for the optical sensors (each one
``np.take(data, indices, axis=2)`` on the chunk iota2 passes to ``process``), binds the plugin
functions to the class, and documents external features with a userFeat sensor as unsupported.
Its stack still holds the userFeat bands: iota2 appends the userFeat sensor last. So, when no
``get_userFeatures_*`` getter exists, the SPOT bands are the bands after the last one any
``get_<sensor>_<band>`` getter reads (the chunk being the array those getters read), laid out
as ``STACK_TAIL_PATTERNS`` says (the ``userFeat.patterns`` order ``fuse-classify iota2
features`` writes; ``SPOT_TEXTURE`` has ``TEXTURE_BANDS_4`` bands, ``SPOT_FCN_PROBA`` the rest).
Set the environment variable ``SPOT_S2_USERFEAT_PATTERNS`` (comma-separated, as
``userFeat.patterns``) for another cfg. Sentinel-1 bands break iota2 2020's own getters; not
supported.

NDVI scale: the gap is in NDVI units ([-1, 1] per sensor). iota2 stores its NDVI as
``1000 x NDVI``; ``S2_NDVI_SCALE`` declares the Sentinel-2 getter's scale, and when it is
``None`` (the default) a chunk whose NDVI goes beyond [-1.5, 1.5] is taken as ``x 1000``.

When iota2 is importable the labels are its ``I2Label`` / ``I2TemporalLabel`` objects (current
releases refuse plain strings), else plain strings.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import numpy as np

SPOT_SENSOR = "spot"
PROBA_PATTERN = "SPOT_FCN_PROBA"
TEXTURE_PATTERN = "SPOT_TEXTURE"
#: Bands at the end of ``SPOT_TEXTURE`` for a 4-band SPOT image (see iota2.features).
NDVI_MEAN_FROM_END, FRACTION_FROM_END = 3, 1
#: ``SPOT_TEXTURE`` bands of a 4-band image: 4 x (mean, std), NDVI mean and std, fraction.
TEXTURE_BANDS_4 = 11
#: userFeat patterns at the end of an iota2 2020 stack, in ``userFeat.patterns`` order.
STACK_TAIL_PATTERNS = (PROBA_PATTERN, TEXTURE_PATTERN)
PATTERNS_ENV = "SPOT_S2_USERFEAT_PATTERNS"
#: Scale of the Sentinel-2 NDVI getter (1000 for iota2's int16 NDVI); ``None``: detect.
S2_NDVI_SCALE: float | None = None
#: An NDVI beyond this (in absolute value) is on iota2's x 1000 scale.
NDVI_UNIT_LIMIT = 1.5
CHUNK_MEMO = "_spot_s2_chunk"


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
            values = np.nan_to_num(np.asarray(getter(), np.float32))
            return values / ndvi_scale(values) if band == "NDVI" else values
    if band == "NDVI":
        red, nir = s2_series(self, "B4"), s2_series(self, "B8")
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.nan_to_num((nir - red) / (nir + red))
    raise AttributeError(f"the iota2 data container offers no Sentinel-2 {band} getter")


def ndvi_scale(ndvi: np.ndarray) -> float:
    """``S2_NDVI_SCALE`` when set, else 1000 if ``ndvi`` goes beyond [-1.5, 1.5], else 1."""
    if S2_NDVI_SCALE is not None:
        return float(S2_NDVI_SCALE)
    big = ndvi.size > 0 and float(np.abs(ndvi).max()) > NDVI_UNIT_LIMIT
    return 1000.0 if big else 1.0


def user_feat_bands(self: Any, pattern: str) -> np.ndarray:
    """The userFeat bands of ``pattern``, stacked ``(r, c, n)``.

    From every ``get_userFeatures_<pattern>_band_<n>()`` of the container (current iota2), else
    from the end of iota2 2020's stack (``stack_tail``, ``STACK_TAIL_PATTERNS``).
    """
    layers: list[np.ndarray] = []
    while getter := getattr(self, f"get_userFeatures_{pattern}_band_{len(layers)}", None):
        layers.append(np.asarray(getter(), np.float32))
    if layers:
        return np.nan_to_num(np.stack([np.squeeze(x) for x in layers], axis=2))
    tail = stack_tail(self)
    patterns = tail_patterns()
    if tail is None or pattern not in patterns or tail.shape[2] == 0:
        raise AttributeError(
            f"the iota2 data container has no userFeat band {pattern}_band_0: register the "
            f"SPOT userFeat tree (userFeat.patterns must list {pattern})"
        )
    texture = TEXTURE_BANDS_4 if TEXTURE_PATTERN in patterns else 0
    if pattern == TEXTURE_PATTERN:
        bands = tail[:, :, tail.shape[2] - texture :]
    else:
        bands = tail[:, :, : tail.shape[2] - texture]
    return np.nan_to_num(np.asarray(bands, np.float32))


def tail_patterns() -> tuple[str, ...]:
    """The userFeat patterns at the end of an iota2 2020 stack (env. override, else default)."""
    value = os.environ.get(PATTERNS_ENV, "")
    names = tuple(p.strip() for p in value.split(",") if p.strip())
    return names or STACK_TAIL_PATTERNS


def stack_tail(self: Any) -> np.ndarray | None:
    """iota2 2020: the chunk's bands after the last one a ``get_<sensor>_<band>`` getter reads.

    iota2 2020 builds each getter as a closure over its container (whose ``data`` is the chunk
    ``process`` received) with the band indices as default argument; ``None`` when the
    container has no such getter (not iota2 2020).
    """
    data, end = None, 0
    for name in dir(self):
        getter = getattr(self, name, None) if name.startswith("get_") else None
        if not inspect.isfunction(getter) or not getter.__defaults__:
            continue
        owner = inspect.getclosurevars(getter).nonlocals.get("self")
        indices = np.asarray(getter.__defaults__[0]).ravel()
        if not isinstance(getattr(owner, "data", None), np.ndarray) or indices.size == 0:
            continue
        data, end = owner, max(end, int(indices.max()) + 1)
    return None if data is None else _chunk(data)[:, :, end:]


def _chunk(owner: Any) -> np.ndarray:
    """The chunk iota2 2020 gave ``process``, without the features appended since.

    ``process`` concatenates each function's output to ``data`` before calling the next one,
    so the chunk is remembered at the first plugin call (list the plugin functions first).
    """
    data, seen = owner.data, getattr(owner, CHUNK_MEMO, None)
    fresh = (
        seen is None
        or seen.shape[:2] != data.shape[:2]
        or seen.shape[2] > data.shape[2]
        or not np.array_equal(data[:, :, : seen.shape[2]], seen)
    )
    if fresh:
        setattr(owner, CHUNK_MEMO, data)
        return data
    return seen


def labels(names: list[str], dates: list[str] | None = None) -> list[Any]:
    """Feature labels: iota2's label objects when importable, else the names."""
    try:
        from iota2.learning.utils import I2Label, I2TemporalLabel
    except ImportError:
        return list(names)
    if dates is None:
        return [I2Label(sensor_name=SPOT_SENSOR, feat_name=n) for n in names]
    return [I2TemporalLabel(sensor_name=SPOT_SENSOR, feat_name="ndvigap", date=d) for d in dates]


def _dates(self: Any, count: int) -> list[str]:
    dates = getattr(self, "interpolated_dates", None)
    if isinstance(dates, dict) and len(dates.get("Sentinel2", [])) == count:
        return [str(d) for d in dates["Sentinel2"]]
    return [f"{i + 1}" for i in range(count)]
