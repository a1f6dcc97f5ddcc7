"""Surface reflectance of the simulated objects: endmember spectra mixed by phenology curves.

Reflectances are given for the ten Theia Sentinel-2 bands (``S2_BANDS``); the SPOT 6/7 bands
(blue, green, red, NIR) take the values of B2, B3, B4 and B8 (``SPOT_FROM_S2``).

Crops mix green vegetation and soil, trees mix canopy and bare branches, with a green cover
``cover(doy)`` given by a double-logistic curve (plus mowing dips for the meadow). The three crop
curves are *anchored* on the SPOT acquisition date: a narrow Gaussian correction makes their
nominal cover equal there, so the crops look alike on the SPOT image while their Sentinel-2
NDVI curves differ. Each object draws its own shifts (sowing/harvest dates, peak cover,
brightness) from :func:`draw_traits`, which gives within-class variability.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from iota2_spot_s2.simulation.classes import (
    BUILDING,
    CEREAL,
    CROP_CODES,
    FOREST,
    HEDGE,
    MAIZE,
    MEADOW,
    PARKING,
    ROAD,
    WATER,
)

S2_BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
SPOT_FROM_S2 = (0, 1, 2, 6)

GREEN = np.array([0.030, 0.070, 0.035, 0.110, 0.300, 0.380, 0.420, 0.440, 0.220, 0.110])
SOIL = np.array([0.070, 0.100, 0.130, 0.160, 0.190, 0.210, 0.230, 0.245, 0.330, 0.280])
CANOPY = np.array([0.025, 0.050, 0.028, 0.085, 0.230, 0.290, 0.320, 0.335, 0.160, 0.075])
BRANCHES = np.array([0.045, 0.060, 0.075, 0.095, 0.120, 0.135, 0.150, 0.160, 0.200, 0.150])
WATER_SPECTRUM = np.array([0.060, 0.060, 0.035, 0.025, 0.015, 0.012, 0.010, 0.009, 0.005, 0.003])
IMPERVIOUS = np.array([0.090, 0.100, 0.110, 0.120, 0.130, 0.135, 0.140, 0.145, 0.160, 0.150])
GARDEN = 0.55 * GREEN + 0.45 * SOIL
CLOUD = np.array([0.450, 0.450, 0.460, 0.470, 0.480, 0.480, 0.490, 0.490, 0.400, 0.300])

#: Car colours as (reflectance over the 10 bands, frequency).
CAR_PALETTE: tuple[tuple[np.ndarray, float], ...] = (
    (np.full(10, 0.45), 0.25),  # white
    (np.full(10, 0.035), 0.20),  # black
    (np.full(10, 0.20), 0.25),  # silver
    (np.full(10, 0.09), 0.12),  # dark grey
    (np.array([0.05, 0.05, 0.30, 0.30, 0.32, 0.33, 0.34, 0.34, 0.30, 0.25]), 0.09),  # red
    (np.array([0.14, 0.08, 0.05, 0.05, 0.06, 0.07, 0.08, 0.08, 0.07, 0.06]), 0.09),  # blue
)


@dataclass(frozen=True)
class Phenology:
    """Green cover over the year: double logistic, optional autumn regrowth and mowing dips."""

    before: float
    peak: float
    after: float
    sos: float
    sos_rate: float
    eos: float
    eos_rate: float
    autumn: tuple[float, float] | None = None  # (day of year, cover reached)
    cuts: tuple[tuple[float, float, float], ...] = field(default_factory=tuple)  # doy, depth, w

    def cover(
        self,
        doy: float,
        sos_shift: np.ndarray | float = 0.0,
        eos_shift: np.ndarray | float = 0.0,
        peak_delta: np.ndarray | float = 0.0,
    ) -> np.ndarray:
        """Green cover fraction on day ``doy`` for objects with the given shifts."""
        peak = self.peak + np.asarray(peak_delta)
        rise = _sigmoid((doy - self.sos - sos_shift) / self.sos_rate)
        fall = _sigmoid((doy - self.eos - eos_shift) / self.eos_rate)
        cover = self.before + (peak - self.before) * rise - (peak - self.after) * fall
        if self.autumn is not None:
            day, level = self.autumn
            cover = cover + (level - self.after) * _sigmoid((doy - day - eos_shift) / 12.0)
        for day, depth, width in self.cuts:
            cover = cover - depth * np.exp(-(((doy - day - sos_shift) / width) ** 2))
        return np.clip(cover, 0.0, 1.0)


PHENOLOGY: dict[int, Phenology] = {
    CEREAL: Phenology(0.30, 0.90, 0.05, 80.0, 10.0, 180.0, 7.0, autumn=(300.0, 0.25)),
    MAIZE: Phenology(0.05, 0.90, 0.08, 173.0, 9.0, 262.0, 9.0),
    MEADOW: Phenology(
        0.55, 0.85, 0.55, 80.0, 12.0, 300.0, 15.0, cuts=((167.0, 0.45, 12.0), (235.0, 0.35, 12.0))
    ),
    FOREST: Phenology(0.30, 0.92, 0.30, 105.0, 8.0, 295.0, 10.0),
}
PHENOLOGY[HEDGE] = PHENOLOGY[FOREST]

_ANCHOR_WIDTH_DAYS = 10.0


@dataclass(frozen=True)
class Traits:
    """Per-object random deviations (index 0 is the unlabelled background)."""

    sos_shift: np.ndarray
    eos_shift: np.ndarray
    peak_delta: np.ndarray
    brightness: np.ndarray
    soil: np.ndarray


def draw_traits(rng: np.random.Generator, n_objects: int) -> Traits:
    """Draw the deviations of ``n_objects`` objects (arrays of length ``n_objects + 1``)."""
    n = n_objects + 1
    return Traits(
        sos_shift=np.clip(rng.normal(0.0, 4.0, n), -9.0, 9.0),
        eos_shift=np.clip(rng.normal(0.0, 4.0, n), -9.0, 9.0),
        peak_delta=rng.normal(0.0, 0.03, n),
        brightness=rng.normal(1.0, 0.04, n),
        soil=np.clip(rng.normal(1.0, 0.1, n), 0.7, 1.3),
    )


def anchored_cover(
    code: int, doy: float, anchor_doy: float, traits: Traits, index: np.ndarray
) -> np.ndarray:
    """Cover of the objects ``index`` of class ``code``; crops anchored on ``anchor_doy``."""
    phen = PHENOLOGY[code]
    cover = phen.cover(
        doy, traits.sos_shift[index], traits.eos_shift[index], traits.peak_delta[index]
    )
    if code in CROP_CODES:
        target = float(np.mean([PHENOLOGY[c].cover(anchor_doy) for c in CROP_CODES]))
        delta = target - float(phen.cover(anchor_doy))
        cover = cover + delta * np.exp(-(((doy - anchor_doy) / _ANCHOR_WIDTH_DAYS) ** 2))
    return np.clip(cover, 0.0, 1.0)


def object_spectra(codes: np.ndarray, traits: Traits, doy: float, anchor_doy: float) -> np.ndarray:
    """Reflectance ``(n_objects + 1, 10)`` of every object on day ``doy``.

    Args:
        codes: Class code per object id (index 0 = background, code 0).
        traits: The objects' deviations.
        doy: Day of year of the acquisition.
        anchor_doy: Day of year of the SPOT acquisition, where crop covers coincide.
    """
    spectra = np.tile(GARDEN, (codes.size, 1))
    for code in (*CROP_CODES, FOREST, HEDGE):
        index = np.flatnonzero(codes == code)
        cover = anchored_cover(code, doy, anchor_doy, traits, index)[:, None]
        if code in CROP_CODES:
            spectra[index] = cover * GREEN + (1.0 - cover) * SOIL * traits.soil[index, None]
        else:
            spectra[index] = cover * CANOPY + (1.0 - cover) * BRANCHES
    for code in (BUILDING, ROAD, PARKING):
        spectra[codes == code] = IMPERVIOUS
    turbidity = 1.0 + 0.15 * np.sin(2 * np.pi * (doy - 60.0) / 365.0)
    spectra[codes == WATER] = WATER_SPECTRUM * turbidity
    return spectra * traits.brightness[:, None]


def ndvi(red: np.ndarray, nir: np.ndarray) -> np.ndarray:
    """Normalised difference vegetation index (NaN where both bands are 0)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (nir - red) / (nir + red)


def _sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))
