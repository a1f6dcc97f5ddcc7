"""The workers' side of a network's map (SPOT model or early-fusion net) on a dask cluster.

:class:`EngineWork` is the :class:`~iota2_spot_s2.inference.distributed.Work` of
:func:`~iota2_spot_s2.inference.predict_map` and
:func:`~iota2_spot_s2.inference.paired.predict_early_fusion_map`: each worker builds the same
engine as the single-process run once (``builder(model, **options)``: an
:class:`~iota2_spot_s2.inference.engine.Engine`, or a
:class:`~iota2_spot_s2.inference.paired.PairedEngine` with its S2 series in ``options``), then
each task reads its tiles' windows, runs the network on them as one batch and encodes the cores
with :func:`~iota2_spot_s2.inference.writers.encode`, exactly as the single-process loop does.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import xarray as xr

from iota2_spot_s2.inference.engine import Engine, ModelLike
from iota2_spot_s2.inference.sources import MaskLike, open_source
from iota2_spot_s2.inference.tiling import PixelWindow, Tile
from iota2_spot_s2.inference.writers import encode


@dataclass
class EngineWork:
    """Tiles of a network's map, sent to each worker once.

    Attributes:
        model: The loaded model (a shallow copy whose network is on CPU).
        device: ``"cpu"`` or ``"cuda"`` (the worker's visible GPU).
        builder: ``Engine`` or ``PairedEngine`` (any callable ``builder(model, **options)``).
        options: Keyword arguments of ``builder`` (margin, batch size, the S2 series...).
        image: Input path or lazy ``DataArray`` (read window by window on the worker).
        valid_mask: Optional validity mask.

    """

    model: Any
    device: str
    builder: Callable[..., Engine]
    options: dict[str, Any]
    image: str | xr.DataArray | np.ndarray
    valid_mask: MaskLike | None

    def build(self, threads: int) -> Engine:
        """The worker's engine (the network moved to the worker's GPU for a CUDA run)."""
        model = self.model
        if self.device == "cuda":
            if not torch.cuda.is_available():
                raise RuntimeError("the model is on a GPU but this dask worker sees none")
            model = copy.copy(model)
            model.model = copy.deepcopy(model.model).cuda()
        return self.builder(model, **self.options)

    def compute(
        self, engine: Engine, group: list[Tile], kinds: Sequence[str]
    ) -> list[tuple[PixelWindow, dict[str, np.ndarray]]]:
        """Read the group's windows, predict them as one batch, encode each core's ``kinds``."""
        codes = np.asarray(self.model.class_codes)
        with contextlib.closing(open_source(self.image, self.valid_mask)) as source:
            reads = [engine.read_tile(source, t) for t in group]
            results = engine.predict_batch(group, reads, skip_invalid=True)
        return [(res.tile.core, encode(res.proba, res.invalid, codes, kinds))
                for res in results]  # fmt: skip


def engine_work(
    model: ModelLike,
    image: str | os.PathLike[str] | xr.DataArray | np.ndarray,
    valid_mask: MaskLike | None,
    builder: Callable[..., Engine],
    options: dict[str, Any],
) -> EngineWork:
    """The work of one map run (the network is copied to CPU; the caller's stays where it is)."""
    net = model.model
    device = next(iter(net.parameters()), torch.empty(0)).device.type
    portable = copy.copy(model)
    portable.model = copy.deepcopy(net).cpu().eval()  # type: ignore[misc]
    source = str(image) if isinstance(image, str | os.PathLike) else image
    return EngineWork(portable, device, builder, options, source, valid_mask)
