"""Regularisation of a class map to a minimum mapping unit (MMU), and patch labelling.

- :func:`sieve_to_mmu`: GDAL's sieve filter (``rasterio.features.sieve``, 4-connectivity) merges
  every patch smaller than the MMU into its largest neighbouring patch. One GDAL pass can leave
  small patches (a small patch merged into a small neighbour), so the filter is repeated until
  nothing changes; patches still smaller than the MMU afterwards have no classified neighbour
  (islands in no-data) and become no-data. Result: every patch of the output holds at least
  ``min_pixels`` pixels; pixels of patches that were already large are never changed.
- :func:`majority_filter`: OTB's ``ClassificationMapRegularization`` (majority vote in a ball of
  ``radius`` pixels, ties keep the pixel's label, no-data 0 kept), the optional smoothing OSO
  applies before the sieve.
- :func:`label_patches`: 4-connected patches of equal class, numbered 1..n (0 = no-data).

Memory: the whole map is held (1-2 bytes per pixel) plus GDAL's copy, and labelling adds 4 bytes
per pixel (int32); a 10980 x 10980 Sentinel-2 tile needs about 1 GB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
from rasterio.features import sieve
from scipy import ndimage

from iota2_spot_s2 import otb

#: 4-connectivity, the same for the sieve, the labelling and the polygons.
CONNECTIVITY = 4
_STRUCTURE = ndimage.generate_binary_structure(2, 1)
MAX_PASSES = 50


@dataclass(frozen=True)
class SieveReport:
    """What the regularisation did.

    Attributes:
        min_pixels: The MMU in pixels (patches of at least this size are kept).
        passes: GDAL sieve passes run until nothing changed.
        changed_pixels: Pixels whose class changed (merged into a neighbour or dropped).
        dropped_patches: Patches below the MMU with no classified neighbour, set to no-data.
        dropped_pixels: Their pixels.

    """

    min_pixels: int
    passes: int
    changed_pixels: int
    dropped_patches: int
    dropped_pixels: int


def mmu_pixels(mmu_ha: float, res: tuple[float, float]) -> int:
    """Smallest number of pixels of ``res`` (metres) covering at least ``mmu_ha`` hectares."""
    if mmu_ha < 0:
        raise ValueError(f"mmu_ha must be >= 0, got {mmu_ha}")
    pixel_m2 = abs(res[0] * res[1])
    return max(1, math.ceil(round(mmu_ha * 10_000 / pixel_m2, 9)))


def label_patches(classes: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected patches of equal non-zero class: ``(int32 labels 1..n, 0 elsewhere), n``."""
    labels = np.zeros(classes.shape, dtype=np.int32)
    n = 0
    for code in np.unique(classes):
        if code == 0:
            continue
        part, count = ndimage.label(classes == code, structure=_STRUCTURE)
        inside = part > 0
        labels[inside] = part[inside] + n
        n += int(count)
    return labels, n


def sieve_to_mmu(classes: np.ndarray, min_pixels: int) -> tuple[np.ndarray, SieveReport]:
    """Remove every patch smaller than ``min_pixels`` (module docstring); 0 is no-data.

    Returns:
        The regularised map (same dtype) and a :class:`SieveReport`.

    """
    if classes.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"class map must be uint8 or uint16, got {classes.dtype}")
    out = classes.copy()
    passes = 0
    if min_pixels > 1:
        valid = classes != 0
        for passes in range(1, MAX_PASSES + 1):  # noqa: B007 - the count is reported
            merged = sieve(out, min_pixels, mask=valid, connectivity=CONNECTIVITY)
            if np.array_equal(merged, out):
                break
            out = merged.astype(classes.dtype, copy=False)
    labels, n = label_patches(out)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    small = sizes < min_pixels
    small[0] = False
    dropped = small[labels]
    out[dropped] = 0
    report = SieveReport(
        min_pixels=int(min_pixels),
        passes=passes,
        changed_pixels=int(np.count_nonzero(out != classes)),
        dropped_patches=int(small.sum()),
        dropped_pixels=int(dropped.sum()),
    )
    return out, report


def majority_filter(
    src: str | PathLike[str], dst: str | PathLike[str], radius: int, dtype: str = "uint8"
) -> Path:
    """OTB ``ClassificationMapRegularization``: majority vote in a ball of ``radius`` pixels.

    No-data (0) pixels stay no-data; ties keep the pixel's own label.

    Raises:
        iota2_spot_s2.otb.OTBUnavailable: Without OTB.
        iota2_spot_s2.otb.OTBError: If OTB fails.

    """
    if radius < 1:
        raise ValueError(f"radius must be >= 1, got {radius}")
    otb.run_app(
        "ClassificationMapRegularization",
        **{
            "io.in": Path(src),
            "io.out": (Path(dst), dtype),
            "ip.radius": int(radius),
            "ip.suvbool": False,
            "ip.nodatalabel": 0,
            "ip.onlyisolatedpixels": False,
        },
    )
    return Path(dst)
