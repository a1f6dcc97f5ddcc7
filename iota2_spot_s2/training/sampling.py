"""Training samples: windows of the image, train-only targets, normalisation and augmentation.

Only TRAIN pixels ever reach the loss. A training sample is a square label crop of ``crop``
pixels whose targets are the class indices (position in ``class_codes``) of the labelled pixels
lying in TRAIN blocks of the split raster; every other pixel (no-data label 0, unassigned,
VAL and TEST blocks, NaN image pixels, outside the image) is set to :data:`IGNORE_INDEX`. The
image window fed to the model is the crop plus a ``context`` margin on each side (zero after
normalisation outside the image); the loss is computed on the centre ``crop x crop`` of the
output. Patch models (those with ``forward_patches``) train densely with ``context =
receptive_field // 2``, so each centre output pixel equals ``forward_patches`` on the true
65x65 patch around it: dense crop training is patch training on every train pixel of the crop
at once. Fully convolutional models train on plain crops (``context = 0``).

Crop placement: a centre pixel is drawn among labelled train pixels (uniformly, or stratified by
class: class first, uniformly among present classes, then a pixel of it) and the crop is shifted
at random so that it contains that pixel; up to ``tries`` placements are drawn and the first one
lying fully inside the TRAIN region is kept (else the last one, whose non-train targets are
ignored). Augmentation: a random rot90 (k = 0..3) then a random horizontal flip, applied to the
input window and the targets alike.

Normalisation: ``(x - band_mean) / band_std`` with statistics over the TRAIN-block pixels only
(finite values; a zero std becomes 1); NaN (no-data) becomes 0 after normalisation.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import xarray as xr

from iota2_spot_s2.arrays import normalize
from iota2_spot_s2.errors import InputError
from iota2_spot_s2.reference import TRAIN

#: Target value of pixels that must not contribute to the loss (``CrossEntropyLoss`` default).
IGNORE_INDEX = -100

#: Images (``DataArray``) up to this size are loaded once; bigger ones are read window by window.
MAX_IN_MEMORY_BYTES = 1 << 30

#: At most this many candidate crop centres are kept per class (a seeded random subset).
MAX_CENTRES_PER_CLASS = 1_000_000
#: Pixels per row strip when scanning labels/split: no scene-sized mask or index copy is built.
STRIP_PIXELS = 1 << 22


def row_strips(shape: tuple[int, ...]) -> Iterator[slice]:
    """Row slices of about :data:`STRIP_PIXELS` pixels covering a ``(y, x)`` raster."""
    rows = max(1, STRIP_PIXELS // max(1, int(shape[1])))
    for y in range(0, int(shape[0]), rows):
        yield slice(y, min(y + rows, int(shape[0])))


#: Share of the machine's available memory a training cache may take (see :func:`cache_budget`).
CACHE_MEMORY_FRACTION = 0.4


def cache_budget(fraction: float = CACHE_MEMORY_FRACTION) -> int:
    """Bytes a training cache may hold: ``fraction`` of the memory available now (Linux).

    2 GiB where the available memory cannot be read.
    """
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 2 << 30
    return int(available * fraction)


class ImageSource:
    """Window reads from a ``(band, y, x)`` image: a numpy array or a (lazy) ``xr.DataArray``.

    Args:
        image: The image. A ``DataArray`` smaller than ``max_in_memory_bytes`` (as float32) is
            loaded once; a bigger one stays lazy and each window is computed on demand, unless
            :meth:`cache_region` later loads the part that training reads.
        max_in_memory_bytes: Load threshold.

    Attributes:
        cache_report: How the training windows are served: ``{"mode": "memory" | "stream",
            "bytes": ..., "region": [y0, y1, x0, x1]}`` (set by :meth:`cache_region`).
    """

    def __init__(
        self, image: np.ndarray | xr.DataArray, max_in_memory_bytes: int = MAX_IN_MEMORY_BYTES
    ) -> None:
        if image.ndim != 3:
            raise InputError("image", f"expected (band, y, x), got shape {tuple(image.shape)}")
        self.shape: tuple[int, int, int] = tuple(int(s) for s in image.shape)  # type: ignore[assignment]
        small = int(np.prod(self.shape)) * 4 <= max_in_memory_bytes
        if isinstance(image, xr.DataArray) and small:
            image = np.asarray(image.values, dtype=np.float32)
        self._data = image
        self._cache: np.ndarray | None = None
        self._origin = (0, 0)
        in_memory = isinstance(image, np.ndarray)
        self.cache_report: dict[str, object] = {
            "mode": "memory" if in_memory else "stream",
            "bytes": int(np.prod(self.shape)) * 4 if in_memory else 0,
            "region": [0, self.shape[1], 0, self.shape[2]] if in_memory else None,
        }

    @property
    def in_memory(self) -> bool:
        """Whether every read of the cached region is served from memory."""
        return self.cache_report["mode"] == "memory"

    def cache_region(self, mask: np.ndarray, margin: int, budget: int | None = None) -> None:
        """Load into memory the bounding box of ``mask`` (plus ``margin``) when it fits ``budget``.

        Training reads crops around TRAIN pixels and validation tiles around VAL pixels: with
        ``mask`` = TRAIN or VAL, those reads come from memory (float32, NaN kept) instead of one
        disk read per crop. A lazy image whose box exceeds ``budget`` (default
        :func:`cache_budget`) keeps streaming, and ``cache_report`` says so.
        """
        if isinstance(self._data, np.ndarray) or not mask.any():
            return
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        y0, y1 = max(0, rows[0] - margin), min(self.shape[1], rows[-1] + 1 + margin)
        x0, x1 = max(0, cols[0] - margin), min(self.shape[2], cols[-1] + 1 + margin)
        size = self.shape[0] * (y1 - y0) * (x1 - x0) * 4
        limit = cache_budget() if budget is None else budget
        self.cache_report = {"mode": "stream", "bytes": size, "region": [y0, y1, x0, x1],
                             "budget": int(limit)}  # fmt: skip
        if size > limit:
            return
        cache = np.empty((self.shape[0], y1 - y0, x1 - x0), dtype=np.float32)
        for r in range(y0, y1, 1024):  # row strips: no float64 copy of the whole box
            r1 = min(r + 1024, y1)
            cache[:, r - y0 : r1 - y0] = np.asarray(self._data[:, r:r1, x0:x1], dtype=np.float32)
        self._cache, self._origin = cache, (y0, x0)
        self.cache_report["mode"] = "memory"

    def read(self, y0: int, x0: int, height: int, width: int) -> np.ndarray:
        """Float32 ``(band, height, width)`` window at ``(y0, x0)``; NaN outside the image."""
        if self._cache is not None:
            cy, cx = y0 - self._origin[0], x0 - self._origin[1]
            ch, cw = self._cache.shape[1:]
            if min(cy, cx) >= 0 and cy + height <= ch and cx + width <= cw:
                return self._cache[:, cy : cy + height, cx : cx + width].copy()
        out = np.full((self.shape[0], height, width), np.nan, dtype=np.float32)
        (ys, yd), (xs, xd) = _overlap(y0, height, self.shape[1]), _overlap(x0, width, self.shape[2])
        if ys.stop > ys.start and xs.stop > xs.start:
            out[:, yd, xd] = np.asarray(self._data[:, ys, xs], dtype=np.float32)
        return out

    def row_strips(self, rows: int = 256) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(y0, strip)`` float32 strips of full width."""
        for y0 in range(0, self.shape[1], rows):
            height = min(rows, self.shape[1] - y0)
            yield y0, self.read(y0, 0, height, self.shape[2])


def _overlap(start: int, size: int, limit: int) -> tuple[slice, slice]:
    """Source and destination slices of a window ``[start, start + size)`` over ``[0, limit)``."""
    lo, hi = max(start, 0), min(start + size, limit)
    hi = max(hi, lo)
    return slice(lo, hi), slice(lo - start, hi - start)


def read_window(
    array: np.ndarray, y0: int, x0: int, height: int, width: int, fill: int
) -> np.ndarray:
    """2-D window of ``array`` with ``fill`` outside it."""
    out = np.full((height, width), fill, dtype=array.dtype)
    (ys, yd), (xs, xd) = _overlap(y0, height, array.shape[0]), _overlap(x0, width, array.shape[1])
    out[yd, xd] = array[ys, xs]
    return out


def band_statistics(source: ImageSource, split: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and std over the finite pixels of TRAIN blocks (streamed by row strips).

    Raises:
        InputError: If no finite TRAIN pixel exists.
    """
    count = np.zeros(source.shape[0])
    mean = np.zeros(source.shape[0])
    m2 = np.zeros(source.shape[0])
    any_train = np.zeros(split.shape[1], dtype=bool)
    for rows in row_strips(split.shape):
        any_train |= (split[rows] == TRAIN).any(axis=0)
    cols = np.flatnonzero(any_train)
    x0, x1 = (int(cols[0]), int(cols[-1]) + 1) if cols.size else (0, 0)
    for y0 in range(0, source.shape[1], 256):
        mask = split[y0 : y0 + 256, x0:x1] == TRAIN
        if not mask.any():
            continue  # only rows and columns holding TRAIN pixels are read
        strip = source.read(y0, x0, mask.shape[0], x1 - x0)
        for band in range(source.shape[0]):
            values = strip[band][mask].astype(np.float64)
            values = values[np.isfinite(values)]
            if values.size:  # Chan et al. parallel update
                n_b, mean_b = values.size, values.mean()
                delta, total = mean_b - mean[band], count[band] + n_b
                m2[band] += ((values - mean_b) ** 2).sum() + delta**2 * count[band] * n_b / total
                mean[band] += delta * n_b / total
                count[band] = total
    if not (count > 0).all():
        raise InputError("split", "no finite image pixel in the TRAIN blocks")
    std = np.sqrt(m2 / count)
    std[std == 0] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def code_lookup(class_codes: list[int], max_code: int) -> np.ndarray:
    """Table mapping label codes ``0..max_code`` to class indices, :data:`IGNORE_INDEX` else.

    ``max_code`` must be at least the largest code in the labels (0 and unknown codes map to
    :data:`IGNORE_INDEX`).
    """
    lut = np.full(max(max_code, max(class_codes)) + 1, IGNORE_INDEX, dtype=np.int64)
    lut[np.asarray(class_codes)] = np.arange(len(class_codes))
    return lut


def augment(window: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> tuple:
    """Random rot90 then random horizontal flip of a ``(C, S, S)`` window and its target."""
    k, flip = int(rng.integers(4)), bool(rng.integers(2))
    window, target = np.rot90(window, k, axes=(1, 2)), np.rot90(target, k)
    if flip:
        window, target = window[:, :, ::-1], target[:, ::-1]
    return np.ascontiguousarray(window), np.ascontiguousarray(target)


@dataclass
class CropSampler:
    """Draws training batches of ``(inputs, targets)`` from TRAIN pixels only.

    Args:
        source: The image.
        labels: ``(y, x)`` label codes, 0 = no-data.
        split: ``(y, x)`` split raster; only ``TRAIN`` pixels give targets.
        lut: Code -> class index table (:func:`code_lookup`).
        band_mean: Per-band mean. band_std: Per-band std.
        crop: Side of the target crop. context: Input margin on each side.
        class_balanced: Stratify crop centres by class.
        tries: Placements tried to find a crop fully inside the TRAIN region.
        seed: Seed of the (fixed) subsampling of candidate centres.
    """

    source: ImageSource
    labels: np.ndarray
    split: np.ndarray
    lut: np.ndarray
    band_mean: np.ndarray
    band_std: np.ndarray
    crop: int
    context: int = 0
    class_balanced: bool = False
    tries: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        self.centres = train_centres(self.labels, self.split, self.lut, self.seed)
        if not self.centres:
            raise InputError("labels", "no labelled pixel of a known class in the TRAIN blocks")
        self._all = np.concatenate(list(self.centres.values()))

    def batch(self, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Float32 inputs ``(size, C, crop + 2 * context, ...)``, targets ``(size, crop, crop)``."""
        pairs = [augment(*self.sample(rng), rng) for _ in range(size)]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One normalised input window and its train-only targets."""
        y0, x0 = self._place(self._centre(rng), rng)
        side = self.crop + 2 * self.context
        window = self.source.read(y0 - self.context, x0 - self.context, side, side)
        codes = read_window(self.labels, y0, x0, self.crop, self.crop, 0)
        inside = read_window(self.split, y0, x0, self.crop, self.crop, 0) == TRAIN
        target = np.where(inside, self.lut[codes], IGNORE_INDEX)
        c = self.context
        nodata = np.isnan(window[:, c : c + self.crop, c : c + self.crop]).any(axis=0)
        target[nodata] = IGNORE_INDEX
        return normalize(window, self.band_mean, self.band_std), target

    def _centre(self, rng: np.random.Generator) -> int:
        if self.class_balanced:
            keys = sorted(self.centres)
            pool = self.centres[keys[int(rng.integers(len(keys)))]]
        else:
            pool = self._all
        return int(pool[int(rng.integers(len(pool)))])

    def _place(self, flat: int, rng: np.random.Generator) -> tuple[int, int]:
        cy, cx = divmod(flat, self.labels.shape[1])
        for _ in range(self.tries):
            y0, x0 = cy - int(rng.integers(self.crop)), cx - int(rng.integers(self.crop))
            if (read_window(self.split, y0, x0, self.crop, self.crop, 0) == TRAIN).all():
                break
        return y0, x0


def present_codes(labels: np.ndarray) -> np.ndarray:
    """Sorted codes present in an integer raster (0 included if present), by row strips."""
    counts = np.zeros(1, dtype=np.int64)
    for rows in row_strips(labels.shape):
        found = np.bincount(labels[rows].ravel())
        if found.size > counts.size:
            found[: counts.size] += counts
            counts = found
        else:
            counts[: found.size] += found
    return np.flatnonzero(counts)


def train_centres(
    labels: np.ndarray, split: np.ndarray, lut: np.ndarray, seed: int
) -> dict[int, np.ndarray]:
    """Flat indices of labelled TRAIN pixels per class index (seeded subset if very many).

    Scanned by row strips (no scene-sized mask); the indices of each class are ascending.
    """
    rng = np.random.default_rng([seed, 7])
    width = labels.shape[1]
    found: dict[int, list[np.ndarray]] = {}
    for rows in row_strips(labels.shape):
        lab = labels[rows]
        flat = np.flatnonzero((split[rows] == TRAIN) & (lab > 0))
        classes = lut[lab.ravel()[flat]]
        flat += rows.start * width
        for k in np.unique(classes[classes >= 0]):
            found.setdefault(int(k), []).append(flat[classes == k])
    out: dict[int, np.ndarray] = {}
    for k in sorted(found):
        idx = np.concatenate(found[k])
        if idx.size > MAX_CENTRES_PER_CLASS:
            idx = np.sort(rng.choice(idx, MAX_CENTRES_PER_CLASS, replace=False))
        out[k] = idx
    return out
