"""Per-pixel spectro-temporal features in the spirit of iota2's defaults.

iota2 (``Sentinel_2.get_features``) stacks, for every gap-filled date, all reflectance bands and
then three indices per date, with feature labels ``<sensor>_<name>_<YYYYMMDD>``:

- reflectances, **date-major**: ``Sentinel2_B2_20210101, Sentinel2_B3_20210101, ...,
  Sentinel2_B12_20210101, Sentinel2_B2_20210111, ...``;
- then the indices, **index-major**: ``Sentinel2_NDVI_<every date>``, ``Sentinel2_NDWI_<every
  date>``, ``Sentinel2_Brightness_<every date>``.

Definitions (reflectances as given, e.g. 0-1 floats):

- ``NDVI = (B8 - B4) / (B8 + B4)``;
- ``NDWI`` = McFeeters' ``(B3 - B8) / (B3 + B8)`` by default (``ndwi="mcfeeters"``). Note:
  iota2's ``iota2FeatureExtraction`` OTB application is given the red, NIR and **SWIR** band
  positions (no green), which points to Gao's ``(B8 - B11) / (B8 + B11)``; it is offered as
  ``ndwi="gao"``;
- ``Brightness = sqrt(sum of the squares of all reflectance bands)``.

A zero denominator gives 0; NaN inputs give NaN. An index is computed only when its bands are
present; an input band that is already an index (e.g. a series whose only band is ``NDVI``) is
kept as a band channel and not recomputed. :class:`FeatureCube` keeps the features as
``(channel, date, ...)`` (what the temporal CNN reads) and flattens them in iota2's order (what
the random forest reads).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from iota2_spot_s2.timeseries.gapfill import DateLike, format_dates

SENSOR = "Sentinel2"
INDICES = ("NDVI", "NDWI", "Brightness")
REFLECTANCE_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11",
                     "B12")  # fmt: skip
_NDWI_BANDS = {"mcfeeters": ("B3", "B8"), "gao": ("B8", "B11")}


@dataclass(frozen=True)
class FeatureCube:
    """Spectro-temporal features of a set of pixels.

    Attributes:
        values: ``(C, T, ...)`` float32: channels (bands then indices) x dates x pixels.
        channels: Channel names (input bands first, then the computed indices).
        dates: ``YYYYMMDD`` strings of the ``T`` dates.
        n_bands: Number of leading channels that are input bands.
        sensor: Prefix of the feature names.
    """

    values: np.ndarray
    channels: tuple[str, ...]
    dates: tuple[str, ...]
    n_bands: int
    sensor: str = SENSOR

    @property
    def names(self) -> list[str]:
        """iota2 feature labels in :meth:`flat` order."""
        return feature_names(self.channels[: self.n_bands], self.channels[self.n_bands :],
                             self.dates, self.sensor)  # fmt: skip

    def flat(self) -> np.ndarray:
        """``(F, ...)`` features in iota2's order (bands date-major, then indices index-major)."""
        return flatten(self.values, self.n_bands)


def flatten(values: np.ndarray, n_bands: int) -> np.ndarray:
    """``(C, T, ...)`` cube -> ``(F, ...)`` in iota2's order (the first ``n_bands`` are bands)."""
    c, t = values.shape[:2]
    rest = values.shape[2:]
    bands = np.swapaxes(values[:n_bands], 0, 1).reshape((t * n_bands, *rest))
    indices = values[n_bands:].reshape(((c - n_bands) * t, *rest))
    return np.concatenate([bands, indices], axis=0)


def feature_names(
    bands: Sequence[str],
    indices: Sequence[str],
    dates: Sequence[DateLike],
    sensor: str = SENSOR,
) -> list[str]:
    """iota2 labels: ``<sensor>_<band>_<date>`` date-major, then ``<sensor>_<index>_<date>``."""
    days = format_dates(dates) if len(dates) else []
    names = [f"{sensor}_{b}_{d}" for d in days for b in bands]
    return names + [f"{sensor}_{i}_{d}" for i in indices for d in days]


def _normalized_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    num, den = a - b, a + b
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den != 0, num / np.where(den != 0, den, 1), 0).astype(np.float32)
    out[np.isnan(num) | np.isnan(den)] = np.nan
    return out


def available_indices(
    bands: Sequence[str], indices: Sequence[str] = INDICES, ndwi: str = "mcfeeters"
) -> tuple[str, ...]:
    """The requested indices that can be computed from ``bands`` and are not bands already."""
    present = set(bands)
    needs = {
        "NDVI": ("B4", "B8"),
        "NDWI": _ndwi_bands(ndwi),
        "Brightness": tuple(b for b in bands if b in REFLECTANCE_BANDS) or ("B?",),
    }
    out = []
    for name in indices:
        if name not in needs:
            raise ValueError(f"unknown index {name!r}; choose among {INDICES}")
        if name not in present and all(b in present for b in needs[name]):
            out.append(name)
    return tuple(out)


def _ndwi_bands(ndwi: str) -> tuple[str, str]:
    try:
        return _NDWI_BANDS[ndwi]
    except KeyError:
        raise ValueError(f"ndwi must be one of {sorted(_NDWI_BANDS)}, got {ndwi!r}") from None


def compute_features(
    values: np.ndarray,
    bands: Sequence[str],
    dates: Sequence[DateLike],
    *,
    indices: Sequence[str] = INDICES,
    ndwi: str = "mcfeeters",
    sensor: str = SENSOR,
) -> FeatureCube:
    """Bands and indices at every date.

    Args:
        values: ``(T, B, ...)`` gap-filled series (time first, then bands, then pixels).
        bands: The ``B`` band names (e.g. Theia order ``B2 ... B12``, or ``["NDVI"]``).
        dates: The ``T`` dates.
        indices: Indices to add where computable (see :func:`available_indices`).
        ndwi: ``"mcfeeters"`` (green/NIR, default) or ``"gao"`` (NIR/SWIR).
        sensor: Prefix of the feature names.

    Returns:
        The :class:`FeatureCube` (channels = ``bands`` then the computed indices).
    """
    values = np.asarray(values, dtype=np.float32)
    bands = list(bands)
    if values.ndim < 2 or values.shape[1] != len(bands) or values.shape[0] != len(dates):
        raise ValueError(f"values {values.shape} do not match {len(dates)} dates x {bands}")
    names = available_indices(bands, indices, ndwi)
    cube = np.swapaxes(values, 0, 1)  # (B, T, ...)
    layer = {b: cube[i] for i, b in enumerate(bands)}
    extra = []
    for name in names:
        if name == "NDVI":
            extra.append(_normalized_difference(layer["B8"], layer["B4"]))
        elif name == "NDWI":
            first, second = _ndwi_bands(ndwi)
            extra.append(_normalized_difference(layer[first], layer[second]))
        else:
            refl = np.stack([layer[b] for b in bands if b in REFLECTANCE_BANDS])
            extra.append(np.sqrt(np.sum(refl.astype(np.float64) ** 2, axis=0)).astype(np.float32))
    out = np.concatenate([cube, np.stack(extra)], axis=0) if extra else np.ascontiguousarray(cube)
    return FeatureCube(out, tuple(bands) + names, tuple(format_dates(dates)), len(bands), sensor)
