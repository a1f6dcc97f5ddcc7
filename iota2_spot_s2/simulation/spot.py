"""The SPOT 6/7-like image: 1.5 m pan-sharpened blue, green, red, NIR as uint16 digital numbers.

The image is rendered from the object polygons on the SPOT date: per-object reflectance
(:mod:`~iota2_spot_s2.simulation.spectra`), parked cars, gabled roofs lit from the sun's side,
tree crowns, shadows cast by buildings and trees from the sun position of a 10:30 solar-time
overpass, a slight blur (instrument MTF) and noise. Digital numbers are
``DN = reflectance * GAIN + OFFSET`` (recorded as band tags), like an ortho product's raw counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from os import PathLike
from pathlib import Path

import numpy as np
import rasterio
from scipy import ndimage

from iota2_spot_s2.grid import Grid
from iota2_spot_s2.io import atomic_output
from iota2_spot_s2.simulation._raster import burn, shift, smooth_noise
from iota2_spot_s2.simulation.classes import BUILDING, CROP_CODES, TREE_CODES
from iota2_spot_s2.simulation.layout import Layout
from iota2_spot_s2.simulation.spectra import CAR_PALETTE, SPOT_FROM_S2, Traits, object_spectra

SPOT_RES = 1.5
SPOT_BANDS = ("B0", "B1", "B2", "B3")
SPOT_COLOURS = ("blue", "green", "red", "nir")
GAIN = np.array([3000.0, 3000.0, 3000.0, 3000.0])
OFFSET = np.array([95.0, 70.0, 45.0, 30.0])
_SHADOW = np.array([0.42, 0.36, 0.32, 0.28])  # diffuse light left in shadow, per band


@dataclass(frozen=True)
class Sun:
    """Sun position: azimuth (degrees clockwise from north) and elevation (degrees)."""

    azimuth: float
    elevation: float


def sun_position(day: date, latitude: float = 44.0, solar_hour: float = 10.5) -> Sun:
    """Approximate sun position (Cooper's declination) at a solar time and latitude."""
    doy = day.timetuple().tm_yday
    decl = math.radians(23.44 * math.sin(2 * math.pi * (284 + doy) / 365.0))
    hour = math.radians(15.0 * (solar_hour - 12.0))
    lat = math.radians(latitude)
    sin_elev = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(hour)
    elev = math.asin(sin_elev)
    az = math.atan2(math.sin(hour), math.cos(hour) * math.sin(lat) - math.tan(decl) * math.cos(lat))
    return Sun(azimuth=(math.degrees(az) + 180.0) % 360.0, elevation=math.degrees(elev))


def render_spot(
    layout: Layout, traits: Traits, grid: Grid, day: date, sun: Sun, rng: np.random.Generator
) -> np.ndarray:
    """Digital numbers ``(4, height, width)`` uint16 of the SPOT-like image."""
    codes = np.array([0] + [o.code for o in layout.objects])
    ids = burn([(o.geometry, o.object_id) for o in layout.objects], grid)
    doy = day.timetuple().tm_yday
    spectra = object_spectra(codes, traits, doy, doy)[:, SPOT_FROM_S2]
    refl = np.moveaxis(spectra[ids], -1, 0).astype(np.float32)
    code_map = codes[ids]
    cars = burn([(c.geometry, c.color + 1) for c in layout.cars], grid)
    if cars.any():
        palette = np.array([p[SPOT_FROM_S2,] for p, _ in CAR_PALETTE], dtype=np.float32)
        refl[:, cars > 0] = palette[cars[cars > 0] - 1].T
    crowns = smooth_noise(rng, grid.shape, 1.3)
    trees = np.isin(code_map, TREE_CODES)
    refl *= 1.0 + 0.04 * smooth_noise(rng, grid.shape, 12.0)
    refl[:, trees] *= 1.0 + 0.22 * crowns[trees]
    crops = np.isin(code_map, CROP_CODES)
    refl[:, crops] *= 1.0 + 0.03 * smooth_noise(rng, grid.shape, 3.0)[crops]
    refl *= _roof_lighting(layout, ids, code_map, grid, sun)
    heights = np.array([0.0] + [o.height for o in layout.objects], dtype=np.float32)[ids]
    heights[trees] *= 1.0 + 0.12 * crowns[trees]
    shade = cast_shadows(heights, SPOT_RES, sun)
    refl[:, shade] *= _SHADOW[:, None].astype(np.float32)
    refl = ndimage.gaussian_filter(refl, sigma=(0.0, 0.45, 0.45), mode="nearest")
    refl += rng.normal(0.0, 0.003, refl.shape).astype(np.float32)
    refl *= 1.0 + rng.normal(0.0, 0.01, refl.shape).astype(np.float32)
    dn = refl * GAIN[:, None, None] + OFFSET[:, None, None]
    return np.clip(np.rint(dn), 1, 65535).astype(np.uint16)


def _roof_lighting(
    layout: Layout, ids: np.ndarray, code_map: np.ndarray, grid: Grid, sun: Sun
) -> np.ndarray:
    """Brightness factor of gabled roofs: the roof face turned to the sun is brighter."""
    factor = np.ones(ids.shape, dtype=np.float32)
    roofs = code_map == BUILDING
    if not roofs.any():
        return factor
    n = len(layout.objects) + 1
    cx, cy, along_x = np.zeros(n), np.zeros(n), np.zeros(n, dtype=bool)
    for obj in layout.objects:
        x0, y0, x1, y1 = obj.geometry.bounds
        cx[obj.object_id], cy[obj.object_id] = (x0 + x1) / 2, (y0 + y1) / 2
        along_x[obj.object_id] = (x1 - x0) >= (y1 - y0)
    rows, cols = np.nonzero(roofs)
    t = grid.transform
    xs, ys = t.c + (cols + 0.5) * t.a, t.f + (rows + 0.5) * t.e  # north-up grid
    owner = ids[rows, cols]
    east, north = math.sin(math.radians(sun.azimuth)), math.cos(math.radians(sun.azimuth))
    facing = np.where(
        along_x[owner], np.sign(ys - cy[owner]) * north, np.sign(xs - cx[owner]) * east
    )
    factor[rows, cols] = 1.0 + 0.14 * facing
    return factor


def cast_shadows(heights: np.ndarray, res: float, sun: Sun) -> np.ndarray:
    """Boolean mask of pixels in the shadow of taller pixels lying towards the sun."""
    tan_el = math.tan(math.radians(sun.elevation))
    drow, dcol = -math.cos(math.radians(sun.azimuth)), math.sin(math.radians(sun.azimuth))
    steps = int(math.ceil(float(heights.max(initial=0.0)) / tan_el / res))
    shade = np.zeros(heights.shape, dtype=bool)
    for k in range(1, steps + 1):
        towards_sun = shift(heights, round(k * drow), round(k * dcol))
        shade |= towards_sun - k * res * tan_el > heights + 0.3
    return shade


def write_spot(path: str | PathLike[str], dn: np.ndarray, grid: Grid, tags: dict[str, str]) -> Path:
    """Write the digital numbers as a tiled, compressed 4-band uint16 GeoTIFF (atomically)."""
    profile = grid.profile(
        driver="GTiff",
        count=4,
        dtype="uint16",
        nodata=0,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="DEFLATE",
        predictor=2,
        interleave="pixel",
    )
    with atomic_output(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(dn)
        dst.update_tags(SIMULATED="yes", **tags)
        for index, (band, colour) in enumerate(zip(SPOT_BANDS, SPOT_COLOURS, strict=True), 1):
            dst.set_band_description(index, band)
            dst.update_tags(
                index,
                NAME=colour,
                GAIN=f"{GAIN[index - 1]:g}",
                OFFSET=f"{OFFSET[index - 1]:g}",
                REFLECTANCE="(DN - OFFSET) / GAIN",
            )
    return Path(path)
