"""Paired SPOT / Sentinel-2 samples for the early-fusion net: grids, S2 series, crops.

Geometry (:class:`PairGeometry`). The SPOT and S2 grids share a CRS, are north-up, and the SPOT
origin (upper-left corner) lies on an S2 pixel corner; the pixel-size ratio is a fraction
``p / q`` (``10 / 1.5 = 20 / 3``). Then ``p`` SPOT pixels are exactly ``q`` S2 pixels, and a SPOT
window whose origin and size are multiples of ``p`` maps to an integer S2 window covering the same
ground (:meth:`PairGeometry.s2_window`): the S2 series is always read at 10 m, never resampled
to 1.5 m. (Bring other data onto such grids with :func:`iota2_spot_s2.sensors.align`.)

Sentinel-2 series (:func:`prepare_s2_series`). A ``(time, band, y, x)`` series (as from
:func:`iota2_spot_s2.sensors.open_s2_timeseries`, with its ``valid`` coord) is gap-filled with
:func:`iota2_spot_s2.timeseries.gapfill` (linear in time between valid samples, onto a regular
10-day grid from the first to the last acquisition, like iota2) and stacked time-major into
``(T * C, y, x)`` — lazily with dask when the input is lazy; the dates are recorded in the
checkpoint and reused at inference. Normalisation: per stacked channel, mean and std over the
S2 pixels that hold at least one TRAIN SPOT pixel centre (:func:`s2_train_split`, then
:func:`~iota2_spot_s2.training.sampling.band_statistics`); NaN becomes 0 after normalisation.

Crops (:class:`PairedCropSampler`): the training recipe of
:class:`~iota2_spot_s2.training.sampling.CropSampler` (train-only targets, centre drawn among
labelled TRAIN pixels, up to ``tries`` placements to stay inside TRAIN) with crop origins on
multiples of ``p`` SPOT pixels and ``crop`` a multiple of the model's ``downsample``; the matching
S2 window is read with it and the same random rot90 + horizontal flip is applied to the SPOT
window, the S2 window and the targets. A sample's S2 flag is False when its S2 window holds no
finite value, or, with probability ``s2_dropout``, to train the missing-S2 path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from fractions import Fraction
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from affine import Affine
from rasterio.crs import CRS

from iota2_spot_s2.arrays import normalize
from iota2_spot_s2.errors import InputError
from iota2_spot_s2.models.fusion_net import RatioLike, as_ratio
from iota2_spot_s2.reference import TRAIN
from iota2_spot_s2.timeseries import DEFAULT_STEP_DAYS, format_dates, regular_dates
from iota2_spot_s2.timeseries import gapfill as gapfill_values
from iota2_spot_s2.timeseries.gapfill import as_days
from iota2_spot_s2.training.sampling import (
    IGNORE_INDEX,
    CropSampler,
    ImageSource,
    read_window,
)

S2_DIMS = ("time", "band", "y", "x")

#: Tolerance (in S2 pixels) on the SPOT origin lying on an S2 pixel corner.
CORNER_TOLERANCE = 1e-6


@dataclass(frozen=True)
class PairGeometry:
    """Where SPOT windows fall on the S2 grid.

    Attributes:
        ratio: S2 pixel size / SPOT pixel size, ``p / q``.
        row_offset: S2 row of the SPOT origin.
        col_offset: S2 column of the SPOT origin.
    """

    ratio: Fraction
    row_offset: int = 0
    col_offset: int = 0

    @property
    def p(self) -> int:
        """SPOT pixels per common period."""
        return self.ratio.numerator

    @property
    def q(self) -> int:
        """S2 pixels per common period."""
        return self.ratio.denominator

    def s2_window(self, row: int, col: int, height: int, width: int) -> tuple[int, int, int, int]:
        """S2 ``(row, col, height, width)`` covering a SPOT window on the common period.

        Raises:
            ValueError: If the SPOT window does not start and end on multiples of ``p``.
        """
        if any(v % self.p for v in (row, col, height, width)):
            raise ValueError(
                f"SPOT window {(row, col, height, width)} is not on multiples of {self.p}"
            )
        q, p = self.q, self.p
        return (
            row // p * q + self.row_offset,
            col // p * q + self.col_offset,
            height // p * q,
            width // p * q,
        )

    @classmethod
    def from_grids(cls, spot: tuple[Any, Affine], s2: tuple[Any, Affine]) -> PairGeometry:
        """Geometry of two ``(crs, transform)`` grids.

        Raises:
            InputError: Different CRS, rotated or non-square pixels, an irrational size ratio, or a
                SPOT origin off the S2 pixel corners.
        """
        (spot_crs, a), (s2_crs, b) = spot, s2
        if CRS.from_user_input(spot_crs) != CRS.from_user_input(s2_crs):
            raise InputError("s2_series", "SPOT and Sentinel-2 grids have different CRS")
        if a.b or a.d or b.b or b.d or a.a != -a.e or b.a != -b.e:
            raise InputError("s2_series", "grids must be north-up with square pixels")
        try:
            ratio = as_ratio(b.a / a.a)
        except ValueError as exc:
            raise InputError("s2_series", str(exc)) from exc
        col, row = (a.c - b.c) / b.a, (b.f - a.f) / b.a
        if max(abs(col - round(col)), abs(row - round(row))) > CORNER_TOLERANCE:
            raise InputError(
                "s2_series",
                "the SPOT origin is not on a Sentinel-2 pixel corner: align the SPOT image "
                "(sensors.align) on a grid whose origin is an S2 pixel corner",
            )
        return cls(ratio, int(round(row)), int(round(col)))

    @classmethod
    def from_inputs(cls, spot: Any, s2: Any, ratio: RatioLike | None = None) -> PairGeometry:
        """From the ``crs``/``transform`` attrs of two DataArrays, else from ``ratio`` (offset 0).

        Raises:
            InputError: Grids that do not pair (see :meth:`from_grids`) or no way to tell.
        """
        if ratio is not None:
            return cls(as_ratio(ratio))
        grids = [grid_attrs(x) for x in (spot, s2)]
        if grids[0] is None or grids[1] is None:
            raise InputError("s2_series", "give ratio= (numpy inputs carry no grid)")
        return cls.from_grids(grids[0], grids[1])


def grid_attrs(x: Any) -> tuple[Any, Affine] | None:
    """``(crs, transform)`` from a DataArray's attrs, None if it has none."""
    attrs = getattr(x, "attrs", {})
    if "crs" not in attrs or "transform" not in attrs:
        return None
    transform = attrs["transform"]
    return attrs["crs"], transform if isinstance(transform, Affine) else Affine(*transform[:6])


def crop_to_spot(
    series: xr.DataArray | np.ndarray, geometry: PairGeometry, spot_shape: tuple[int, int]
) -> tuple[xr.DataArray | np.ndarray, PairGeometry]:
    """The part of an S2 series under a SPOT scene (e.g. a SPOT scene in a 110 km S2 tile).

    Keeps the S2 pixels that touch the SPOT extent, updates a DataArray's ``transform`` attr and
    returns the geometry relative to the cropped series (nothing is resampled).
    """
    rows = -(-spot_shape[0] * geometry.q // geometry.p)
    cols = -(-spot_shape[1] * geometry.q // geometry.p)
    r0, c0 = max(geometry.row_offset, 0), max(geometry.col_offset, 0)
    r1 = min(geometry.row_offset + rows, series.shape[-2])
    c1 = min(geometry.col_offset + cols, series.shape[-1])
    if (r0, c0, r1, c1) == (0, 0, *series.shape[-2:]):
        return series, geometry
    if r1 <= r0 or c1 <= c0:
        raise InputError("s2_series", "the Sentinel-2 series does not overlap the SPOT scene")
    cropped = series[..., r0:r1, c0:c1]
    grid = grid_attrs(series)
    if isinstance(cropped, xr.DataArray) and grid is not None:
        cropped.attrs["transform"] = tuple(grid[1] @ Affine.translation(c0, r0))[:6]
    offsets = PairGeometry(geometry.ratio, geometry.row_offset - r0, geometry.col_offset - c0)
    return cropped, offsets


def prepare_s2_series(
    series: xr.DataArray | np.ndarray,
    *,
    gapfill: bool = True,
    out_dates: Sequence[Any] | np.ndarray | None = None,
    step_days: int = DEFAULT_STEP_DAYS,
) -> xr.DataArray:
    """Gap-filled, time-major stacked ``(T * C, y, x)`` float32 series (lazy if the input is).

    Args:
        series: ``(time, band, y, x)`` reflectances; a DataArray's ``valid`` coord (if any) and
            NaN mark invalid values and its ``time`` coord gives the dates. A numpy array has no
            dates: it is gap-filled at its own, equally spaced, dates.
        gapfill: Gap-fill with :func:`iota2_spot_s2.timeseries.gapfill` onto ``out_dates``
            (default: every ``step_days`` days from the first to the last acquisition). False:
            keep the acquisition dates, invalid values become NaN (0 once normalised).
        out_dates: Output dates (those of a trained model).
        step_days: Spacing of the default output dates.

    Returns:
        ``(feature, y, x)`` DataArray (``feature = date * n_bands + band``) with the input's
        attrs plus ``s2_dates`` (``YYYYMMDD``), ``s2_bands``, ``s2_gapfill`` (``"linear"`` or
        ``"none"``) and ``s2_step_days``.

    Raises:
        InputError: If the series is not 4-D, or has no valid sample around ``out_dates``.
    """
    if series.ndim != 4:
        raise InputError("s2_series", f"expected (time, band, y, x), got shape {series.shape}")
    if not isinstance(series, xr.DataArray):
        days = np.datetime64("2000-01-01") + np.arange(series.shape[0]).astype("timedelta64[D]")
        series = xr.DataArray(np.asarray(series, np.float32), dims=S2_DIMS, coords={"time": days})
        out_dates = days if out_dates is None else out_dates
    times = as_days(series["time"].values)
    if out_dates is None:
        out_dates = regular_dates(times.min(), times.max(), step_days) if gapfill else times
    targets = as_days(out_dates)
    if gapfill and (
        targets.min() < times.min() - step_days or targets.max() > times.max() + step_days
    ):
        raise InputError("s2_series", "the series does not cover the model's gap-filling dates")
    func = _fill if gapfill else _mask
    data = series.data
    valid = series.coords["valid"].data if "valid" in series.coords else ~np.isnan(data)
    if isinstance(data, da.Array):
        data = data.rechunk({0: -1, 1: -1})
        valid = da.asarray(valid).rechunk(data.chunks)
        chunks = ((targets.size,), *data.chunks[1:]) if gapfill else data.chunks
        out = da.map_blocks(
            func, data, valid, times=times, targets=targets, chunks=chunks, dtype=np.float32
        )
    else:
        out = func(np.asarray(data), np.asarray(valid, bool), times=times, targets=targets)
    t_out, c, h, w = (int(n) for n in (out.shape[0], *series.shape[1:]))
    coords = {k: series.coords[k] for k in ("y", "x") if k in series.coords}
    attrs = {
        **series.attrs,
        "s2_dates": format_dates(targets if gapfill else times),
        "s2_bands": [str(b) for b in series["band"].values] if "band" in series.coords else [],
        "s2_gapfill": "linear" if gapfill else "none",
        "s2_step_days": int(step_days),
    }
    stacked = out.reshape(t_out * c, h, w)
    return xr.DataArray(stacked, dims=("feature", "y", "x"), coords=coords, attrs=attrs)


def _fill(
    values: np.ndarray, valid: np.ndarray, times: np.ndarray, targets: np.ndarray
) -> np.ndarray:
    return gapfill_values(values, valid, times, out_dates=targets).values


def _mask(
    values: np.ndarray, valid: np.ndarray, times: np.ndarray, targets: np.ndarray
) -> np.ndarray:
    return np.where(valid, values, np.nan).astype(np.float32)


def s2_train_split(
    split: np.ndarray, geometry: PairGeometry, s2_shape: tuple[int, int]
) -> np.ndarray:
    """Split-like S2 raster: ``TRAIN`` where an S2 pixel holds a TRAIN SPOT pixel centre, else 0."""
    train = split == TRAIN
    out = np.zeros(s2_shape, dtype=np.uint8)
    idx = [
        (2 * np.arange(n) + 1) * geometry.q // (2 * geometry.p) + off
        for n, off in zip(train.shape, (geometry.row_offset, geometry.col_offset), strict=True)
    ]
    rows = np.flatnonzero(train.any(axis=1))
    for row in rows:
        r = idx[0][row]
        if 0 <= r < s2_shape[0]:
            cols = idx[1][np.flatnonzero(train[row])]
            cols = cols[(cols >= 0) & (cols < s2_shape[1])]
            out[r, cols] = TRAIN
    return out


@dataclass
class S2Windows:
    """Normalised S2 windows for SPOT windows (the S2 side of a paired sample).

    Args:
        source: The stacked ``(T * C, y, x)`` series.
        geometry: The SPOT/S2 pairing.
        mean: Per-channel mean. std: Per-channel std.
    """

    source: ImageSource
    geometry: PairGeometry
    mean: np.ndarray
    std: np.ndarray

    def read(self, row: int, col: int, height: int, width: int) -> tuple[np.ndarray, bool]:
        """Normalised ``(T * C, h, w)`` window under a SPOT window, and whether it holds data."""
        raw = self.source.read(*self.geometry.s2_window(row, col, height, width))
        return normalize(raw, self.mean, self.std), bool(np.isfinite(raw).any())


def dihedral(arrays: tuple[np.ndarray, ...], k: int, flip: bool) -> tuple[np.ndarray, ...]:
    """rot90 by ``k`` then optional horizontal flip of the last two axes of every array."""
    out = []
    for a in arrays:
        a = np.rot90(a, k, axes=(-2, -1))
        out.append(np.ascontiguousarray(a[..., ::-1] if flip else a))
    return tuple(out)


@dataclass
class PairedCropSampler(CropSampler):
    """A :class:`CropSampler` whose crops start on the common SPOT/S2 grid and carry S2 windows.

    Extra args:
        s2: The S2 window reader (required).
        s2_dropout: Probability of flagging a sample's S2 as missing.
    """

    s2: S2Windows | None = None
    s2_dropout: float = 0.1

    @classmethod
    def from_sampler(cls, base: CropSampler, s2: S2Windows, s2_dropout: float) -> PairedCropSampler:
        """The paired version of a SPOT sampler (same data, statistics and crop size)."""
        if base.crop % s2.geometry.p or base.context:
            raise ValueError(f"crop {base.crop} must be a multiple of {s2.geometry.p}, no context")
        values = {f.name: getattr(base, f.name) for f in fields(CropSampler)}
        return cls(**values, s2=s2, s2_dropout=s2_dropout)

    def batch_pairs(
        self, size: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Batch ``spot (N, C, S, S)``, ``s2 (N, T*C2, s, s)``, ``s2_valid (N,)``, ``targets``."""
        samples = [self.sample_pair(rng) for _ in range(size)]
        spot, s2, valid, target = zip(*samples, strict=True)
        return np.stack(spot), np.stack(s2), np.array(valid, dtype=bool), np.stack(target)

    def sample_pair(
        self, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, bool, np.ndarray]:
        """One augmented paired sample (see the module docstring)."""
        assert self.s2 is not None
        y0, x0 = self._place(self._centre(rng), rng)
        window = self.source.read(y0, x0, self.crop, self.crop)
        codes = read_window(self.labels, y0, x0, self.crop, self.crop, 0)
        inside = read_window(self.split, y0, x0, self.crop, self.crop, 0) == TRAIN
        target = np.where(inside, self.lut[codes], IGNORE_INDEX)
        target[np.isnan(window).any(axis=0)] = IGNORE_INDEX
        s2, has_data = self.s2.read(y0, x0, self.crop, self.crop)
        spot = normalize(window, self.band_mean, self.band_std)
        k, flip = int(rng.integers(4)), bool(rng.integers(2))
        spot, s2, target = dihedral((spot, s2, target), k, flip)
        keep = has_data and bool(rng.random() >= self.s2_dropout)
        return spot, s2, keep, target

    def _place(self, flat: int, rng: np.random.Generator) -> tuple[int, int]:
        """A crop origin on multiples of ``p`` containing the centre pixel ``flat``."""
        assert self.s2 is not None
        p, n = self.s2.geometry.p, self.crop // self.s2.geometry.p
        cy, cx = divmod(flat, self.labels.shape[1])
        for _ in range(self.tries):
            y0, x0 = p * (cy // p - int(rng.integers(n))), p * (cx // p - int(rng.integers(n)))
            if (read_window(self.split, y0, x0, self.crop, self.crop, 0) == TRAIN).all():
                break
        return y0, x0
