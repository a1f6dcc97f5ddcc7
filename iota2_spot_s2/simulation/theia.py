"""The Sentinel-2-like time series, written as Theia L2A (MAJA) product folders.

Each date is rendered on a 2.5 m sub-grid from the object polygons (per-object reflectance on
that day), then averaged over 4 x 4 blocks to 10 m (B2 B3 B4 B8, ``R1``) and 8 x 8 blocks to
20 m (B5 B6 B7 B8A B11 B12, ``R2``), so thin objects mix with their neighbours exactly as area
fractions dictate. Cloud blobs brighten the bands, their shadows darken them, and both are
flagged in ``MASKS/*_CLM_R1.tif`` / ``_CLM_R2.tif`` with Theia's bit values (11: cloud, bits 0,
1, 3; 33: cloud shadow, bits 0, 5). ``EDG`` and ``SAT`` masks are all zero.

Files use Theia's names: ``SENTINEL2A_20210315-105432-123_L2A_T31TCJ_C_V2-2/
SENTINEL2A_..._FRE_B2.tif``, int16 reflectance x 10000, no-data -10000.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from scipy import ndimage, sparse

from iota2_spot_s2.grid import Grid
from iota2_spot_s2.simulation._raster import block_mean, burn, shift, smooth_noise
from iota2_spot_s2.simulation.layout import Layout
from iota2_spot_s2.simulation.spectra import CLOUD, S2_BANDS, Traits, object_spectra

R1_BANDS = ("B2", "B3", "B4", "B8")
R2_BANDS = ("B5", "B6", "B7", "B8A", "B11", "B12")
SCALE = 10000.0
NODATA = -10000
CLM_CLOUD = 0b00001011
CLM_SHADOW = 0b00100001
_FINE = 4  # 2.5 m sub-pixels per 10 m pixel side
_VERSION = "C_V2-2"
_PSF_SIGMA = 0.5


@dataclass(frozen=True)
class Acquisition:
    """One Sentinel-2 date: platform, UTC time and the cloud cover drawn for it."""

    platform: str
    when: datetime
    cloud_cover: float

    def product_name(self, tile: str) -> str:
        """Theia folder name, e.g. ``SENTINEL2A_20210315-105432-123_L2A_T31TCJ_C_V2-2``."""
        stamp = self.when.strftime("%Y%m%d-%H%M%S") + f"-{self.when.microsecond // 1000:03d}"
        return f"{self.platform}_{stamp}_L2A_{tile}_{_VERSION}"


@dataclass(frozen=True)
class S2Date:
    """The rendered data of one date (int16 reflectance and uint8 cloud masks)."""

    acquisition: Acquisition
    r1: np.ndarray  # (4, h, w)
    r2: np.ndarray  # (6, h/2, w/2)
    clm_r1: np.ndarray
    clm_r2: np.ndarray


def draw_acquisitions(
    rng: np.random.Generator, year: int, n_dates: int, cloud_fraction: float
) -> list[Acquisition]:
    """``n_dates`` dates spread over the year, alternating S2A/S2B, around 10:50 UTC.

    About a third of the dates are clear; the others draw a cloud cover whose mean over all
    dates is about ``cloud_fraction`` (capped at 70 % per date).
    """
    centres = 8.0 + (np.arange(n_dates) + 0.5) * 350.0 / n_dates
    doys = np.clip(np.rint(centres + rng.uniform(-3.0, 3.0, n_dates)), 1, 365).astype(int)
    first = int(rng.integers(2))
    out = []
    for k, doy in enumerate(np.unique(doys)):
        when = datetime(
            year,
            1,
            1,
            10,
            int(rng.integers(40, 60)),
            int(rng.integers(60)),
            int(rng.integers(1000)) * 1000,
        ) + timedelta(days=int(doy) - 1)
        clear = rng.random() < 1.0 / 3.0
        cover = 0.0 if clear else min(0.7, float(rng.exponential(1.5 * cloud_fraction)))
        out.append(Acquisition(f"SENTINEL2{'AB'[(k + first) % 2]}", when, cover))
    return out


def render_s2(
    layout: Layout,
    traits: Traits,
    grid: Grid,
    acquisitions: list[Acquisition],
    anchor_doy: float,
    rng: np.random.Generator,
) -> Iterator[S2Date]:
    """Render every date on the 10 m ``grid`` (and its 20 m twin); yields one date at a time."""
    codes = np.array([0] + [o.code for o in layout.objects])
    fine = Grid(
        grid.crs, grid.transform @ Affine.scale(1 / _FINE), grid.width * _FINE, grid.height * _FINE
    )
    ids = burn([(o.geometry, o.object_id) for o in layout.objects], fine)
    mix10 = _mixing_matrix(ids, _FINE, codes.size)
    mix20 = _mixing_matrix(ids, 2 * _FINE, codes.size)
    vigour10 = 1.0 + 0.03 * smooth_noise(rng, grid.shape, 1.5)
    vigour20 = block_mean(vigour10, 2)
    shape10, shape20 = grid.shape, (grid.height // 2, grid.width // 2)
    r1_index = [S2_BANDS.index(b) for b in R1_BANDS]
    r2_index = [S2_BANDS.index(b) for b in R2_BANDS]
    for acq in acquisitions:
        spectra = object_spectra(codes, traits, acq.when.timetuple().tm_yday, anchor_doy)
        r10 = _psf((mix10 @ spectra[:, r1_index]).T.reshape(4, *shape10)) * vigour10
        r20 = _psf((mix20 @ spectra[:, r2_index]).T.reshape(6, *shape20)) * vigour20
        r10 += rng.normal(0.0, 0.004, r10.shape)
        r20 += rng.normal(0.0, 0.004, r20.shape)
        alpha, shadow = _clouds(rng, shape10, acq.cloud_cover)
        r10 = r10 * (1 - alpha) + alpha * CLOUD[r1_index, None, None]
        r10[:, shadow] *= 0.5
        alpha20, shadow20 = block_mean(alpha, 2), block_mean(shadow.astype(float), 2)
        r20 = (r20 * (1 - alpha20) + alpha20 * CLOUD[r2_index, None, None]) * (1 - 0.5 * shadow20)
        clm = np.where(alpha > 0, CLM_CLOUD, np.where(shadow, CLM_SHADOW, 0)).astype(np.uint8)
        yield S2Date(acq, _to_int16(r10), _to_int16(r20), clm, _block_or(clm))


def _mixing_matrix(ids: np.ndarray, factor: int, n_objects: int) -> sparse.csr_matrix:
    """Sparse (coarse pixels x objects) matrix of area fractions of each object in each pixel."""
    h, w = ids.shape
    rows = (np.arange(h)[:, None] // factor) * (w // factor) + np.arange(w)[None, :] // factor
    data = np.full(ids.size, 1.0 / factor**2)
    shape = ((h // factor) * (w // factor), n_objects)
    return sparse.csr_matrix((data, (rows.ravel(), ids.ravel())), shape=shape)


def _psf(bands: np.ndarray) -> np.ndarray:
    """Instrument blur: a Gaussian point-spread function of 0.5 pixel standard deviation."""
    return ndimage.gaussian_filter(bands, sigma=(0.0, _PSF_SIGMA, _PSF_SIGMA), mode="nearest")


def _clouds(
    rng: np.random.Generator, shape: tuple[int, int], cover: float
) -> tuple[np.ndarray, np.ndarray]:
    """Cloud opacity (0-1) covering about ``cover`` of the image, and the clouds' shadows."""
    if cover <= 0.0:
        return np.zeros(shape), np.zeros(shape, dtype=bool)
    field = smooth_noise(rng, shape, float(rng.uniform(3.0, 7.0)))
    threshold = np.quantile(field, 1.0 - cover)
    alpha = np.where(field > threshold, np.clip(0.35 + (field - threshold) / 0.7, 0.0, 1.0), 0.0)
    offset = rng.integers(3, 7, 2)  # shadows fall north-west of the clouds (sun in the south-east)
    shadow = shift(alpha > 0, int(offset[0]), int(offset[1]), fill=False) & (alpha == 0)
    return alpha, shadow


def _to_int16(reflectance: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(reflectance * SCALE), NODATA + 1, 32767).astype(np.int16)


def _block_or(mask: np.ndarray) -> np.ndarray:
    """Bitwise OR of 2 x 2 blocks (a 20 m mask flags any flagged 10 m pixel)."""
    h, w = mask.shape
    blocks = mask.reshape(h // 2, 2, w // 2, 2)
    return np.bitwise_or.reduce(np.bitwise_or.reduce(blocks, axis=3), axis=1)


def write_product(folder: Path, date: S2Date, grid: Grid, tags: dict[str, str]) -> Path:
    """Write one Theia L2A product folder (bands and masks); replaces an existing one."""
    name = folder.name
    grid20 = Grid(grid.crs, grid.transform @ Affine.scale(2), grid.width // 2, grid.height // 2)
    tmp = folder.with_name(f".{name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "MASKS").mkdir(parents=True)
    for bands, data, g in ((R1_BANDS, date.r1, grid), (R2_BANDS, date.r2, grid20)):
        for band, layer in zip(bands, data, strict=True):
            _write(tmp / f"{name}_FRE_{band}.tif", layer, g, NODATA, tags)
    zeros1, zeros2 = np.zeros_like(date.clm_r1), np.zeros_like(date.clm_r2)
    for mask, r1, r2 in (
        ("CLM", date.clm_r1, date.clm_r2),
        ("EDG", zeros1, zeros2),
        ("SAT", zeros1, zeros2),
    ):
        _write(tmp / "MASKS" / f"{name}_{mask}_R1.tif", r1, grid, None, tags)
        _write(tmp / "MASKS" / f"{name}_{mask}_R2.tif", r2, grid20, None, tags)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def _write(
    path: Path, array: np.ndarray, grid: Grid, nodata: int | None, tags: dict[str, str]
) -> None:
    profile = grid.profile(
        driver="GTiff",
        count=1,
        dtype=array.dtype.name,
        nodata=nodata,
        compress="DEFLATE",
        predictor=2,
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array, 1)
        dst.update_tags(SIMULATED="yes", **tags)
