"""Per-pixel strata that explain why one sensor beats the other, and F1 within each stratum.

- ``object_size``: area (m²) of the reference object the pixel belongs to — the 8-connected
  region of one class in the reference. Small objects need SPOT's 1.5 m pixels.
- ``boundary_distance``: distance (m) from the pixel to the nearest pixel of another reference
  value (another class or unlabelled). Pixels near a boundary are mixed at 10 m.
- ``clear_dates``: number of cloud-free Sentinel-2 dates at the pixel (when known). Phenology
  needs dates.

Bins are fixed in metres / dates (not quantiles), so two runs are comparable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from iota2_spot_s2.analysis.stats import f1_per_class
from iota2_spot_s2.evaluation.confusion import confusion_matrix

OBJECT_SIZE_EDGES_M2 = (0.0, 100.0, 1_000.0, 10_000.0, 100_000.0, np.inf)
BOUNDARY_EDGES_M = (0.0, 5.0, 10.0, 20.0, 40.0, np.inf)
CLEAR_DATES_EDGES = (0, 2, 4, 8, 16, 10_000)


def object_area(labels: np.ndarray, pixel_area_m2: float) -> np.ndarray:
    """Area (m²) of the 8-connected one-class object holding each pixel (0 where unlabelled)."""
    area = np.zeros(labels.shape, dtype=np.float64)
    structure = np.ones((3, 3), dtype=bool)
    for code in np.unique(labels):
        if code == 0:
            continue
        regions, _ = ndimage.label(labels == code, structure=structure)
        sizes = np.bincount(regions.ravel())
        inside = regions > 0
        area[inside] = sizes[regions[inside]] * pixel_area_m2
    return area


def boundary_distance(labels: np.ndarray, pixel_size_m: float) -> np.ndarray:
    """Distance (m) from each pixel to the nearest pixel holding another reference value."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:-1] |= labels[:-1] != labels[1:]
    edge[1:] |= labels[1:] != labels[:-1]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    if not edge.any():
        return np.full(labels.shape, np.inf)
    return ndimage.distance_transform_edt(~edge) * pixel_size_m


def bin_labels(edges: Sequence[float], unit: str) -> list[str]:
    """Readable names of the ``[lo, hi)`` bins, e.g. ``"[100, 1000) m²"``, ``">= 1e+05 m²"``."""
    names = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        last = np.isinf(hi) or (unit == "dates" and hi >= CLEAR_DATES_EDGES[-1])
        names.append(f">= {lo:g} {unit}" if last else f"[{lo:g}, {hi:g}) {unit}")
    return names


def stratified_f1(
    reference: np.ndarray,
    maps: Mapping[str, np.ndarray],
    codes: Sequence[int],
    stratum: np.ndarray,
    edges: Sequence[float],
    unit: str,
) -> dict[str, Any]:
    """F1 per bin, class and map on the labelled pixels of ``reference``.

    ``maps`` hold codes with unmapped pixels already set to an extra "no decision" code
    (``max(codes) + 1``), which counts as an error.

    Returns:
        ``{"unit", "edges", "bins": [name], "pixels": [[n per class] per bin],
        "f1": {map: [[F1 per class] per bin]}}`` (NaN where a class has no pixel in a bin).

    """
    all_codes = [*codes, max(codes) + 1]
    index = np.digitize(stratum, np.asarray(edges[1:-1], dtype=float))
    out: dict[str, Any] = {"unit": unit, "edges": [float(e) for e in edges],
                           "bins": bin_labels(edges, unit), "pixels": [],
                           "f1": {name: [] for name in maps}}  # fmt: skip
    for b in range(len(edges) - 1):
        ref = np.where(index == b, reference, 0)
        counts = [int(np.sum(ref == c)) for c in codes]
        out["pixels"].append(counts)
        for name, produced in maps.items():
            cm = confusion_matrix(ref, produced, all_codes)
            out["f1"][name].append(f1_per_class(cm, len(codes)).tolist())
    return out
