"""One window of a raster fusion, in this process or on a dask worker; the fusion's fingerprint.

:func:`fuse_window` reads one target window of every source and fuses it. :class:`FusionWork`
is the :class:`~iota2_spot_s2.inference.distributed.Work` of a distributed
:func:`~iota2_spot_s2.fusion.fuse_rasters`: each worker opens the sources once (paths on a
filesystem it shares with the client) and each task fuses and encodes its windows exactly as the
single-process loop does. :func:`fusion_fingerprint` names everything that sets the fused values
(sources' identity, rule and its resolved parameters, grid, windows, encoding, tags), so that a
finished output is kept and an interrupted pass is resumed only when nothing changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rasterio.enums import Resampling
from rasterio.windows import Window

from iota2_spot_s2.fusion._inputs import prepare_stacks
from iota2_spot_s2.fusion._sources import RasterSource, SourceReader
from iota2_spot_s2.fusion._writer import encode
from iota2_spot_s2.fusion.core import FusionPlan, FusionResult
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.inference.tiling import PixelWindow


def fuse_window(
    plan: FusionPlan, readers: Sequence[SourceReader], window: Window, labels_only: bool
) -> FusionResult:
    """Read one window of every source and fuse it."""
    if labels_only:
        return plan.fuse_labels(np.stack([r.read_labels(window) for r in readers]))
    arrays = []
    for reader in readers:
        if reader.source.kind == "labels":
            arrays.append(_one_hot_nan(reader.read_labels(window), plan.codes))
        else:
            arrays.append(reader.read_probabilities(window))
    return plan.fuse_stacks(*prepare_stacks(arrays, len(plan.codes)))


def _one_hot_nan(labels: np.ndarray, codes: Sequence[int]) -> np.ndarray:
    codes_arr = np.asarray(codes).reshape(-1, 1, 1)
    out = (labels[None] == codes_arr).astype(np.float64)
    out[:, ~out.any(axis=0)] = np.nan
    return out


def as_window(core: PixelWindow) -> Window:
    """The rasterio window of a core."""
    return Window(core.col, core.row, core.width, core.height)


@dataclass
class OpenReaders:
    """A worker's open sources (closed when the worker moves to another run)."""

    readers: list[SourceReader]
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def close(self) -> None:
        """Close the sources."""
        self.stack.close()


@dataclass
class FusionWork:
    """Windows of a fusion, sent to each worker once.

    Attributes:
        plan: The rule with its resolved parameters.
        sources: The inspected sources (paths readable by the workers).
        target: The output grid.
        resampling: Forced GDAL resampling of probability sources (or None).
        labels_only: Fuse raw labels (label rules on class maps only).
        encoding: ``"cog"`` or ``"iota2"``.

    """

    plan: FusionPlan
    sources: list[RasterSource]
    target: Grid
    resampling: str | Resampling | None
    labels_only: bool
    encoding: str

    def build(self, threads: int) -> OpenReaders:
        """Open every source once on this worker."""
        state = OpenReaders([])
        for source in self.sources:
            state.readers.append(SourceReader(source, self.target, state.stack, self.resampling,
                                              self.plan.nodata_label))  # fmt: skip
        return state

    def compute(
        self, state: OpenReaders, group: list[PixelWindow], kinds: Sequence[str]
    ) -> list[tuple[PixelWindow, dict[str, np.ndarray]]]:
        """Fuse each window of ``group`` and encode its ``kinds``."""
        out = []
        for core in group:
            fused = fuse_window(self.plan, state.readers, as_window(core), self.labels_only)
            out.append((core, encode(fused, self.encoding, kinds)))
        return out


def fusion_fingerprint(work: FusionWork, block: int, kinds: Sequence[str], extra: Any) -> str:
    """Hash of what sets the fused outputs (``extra``: tags and nomenclature, JSON-able)."""
    h = hashlib.sha256()
    plan = work.plan
    for array in (plan.weights, plan.masses):
        h.update(b"-" if array is None else np.ascontiguousarray(array, np.float64).tobytes())
    sources = []
    for source in work.sources:
        stat = source.path.stat()
        sources.append([str(source.path.resolve()), stat.st_size, stat.st_mtime_ns, source.kind,
                        source.scale, repr(source.nodata)])  # fmt: skip
    target = work.target
    desc = {
        "format": 1,
        "sources": sources,
        "plan": [
            list(plan.codes),
            plan.rule,
            plan.ties,
            plan.epsilon,
            plan.nodata_label,
            plan.undecided_label,
        ],
        "grid": [target.crs.to_wkt(), list(target.transform)[:6], target.width, target.height],
        "resampling": repr(work.resampling),
        "labels_only": work.labels_only,
        "encoding": work.encoding,
        "block": block,
        "kinds": list(kinds),
        "extra": extra,
    }
    h.update(json.dumps(desc, sort_keys=True, default=str).encode())
    return h.hexdigest()
