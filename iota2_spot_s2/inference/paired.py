"""Tiled inference of the early-fusion net: SPOT tiles with their Sentinel-2 windows at 10 m.

The SPOT side is the engine of :mod:`~iota2_spot_s2.inference.engine` (same tiling, zero padding
in normalised space, background reads, precision and channels-last options, same writers and
outputs as :func:`~iota2_spot_s2.inference.predict_map`). :class:`PairedEngine` adds, for each
tile, the S2 window under its read window: the model's ``downsample`` is the common SPOT/S2 period
(``lcm(8, p)`` = 40 SPOT px = 6 S2 px for 1.5 m / 10 m) and the default margin is a multiple of it
covering the receptive-field radius, so every read window starts and ends on both grids and the S2
window is an exact integer window of the 10 m series (read window by window; the series is never
resampled to 1.5 m). Outside the S2 series (or the scene) S2 values are 0 after normalisation,
exactly like the SPOT padding. The series is first cropped to the S2 pixels under the SPOT scene
(:func:`~iota2_spot_s2.training.paired_data.crop_to_spot`) and gap-filled onto the dates recorded
in the checkpoint; the stacked result is loaded when under :data:`S2_IN_MEMORY_BYTES`, else read
lazily window by window.

Tile-size independence: a tile computes the same function of the same padded inputs as the whole
scene on its core (pooling grid and S2 grid phases are preserved by the alignment, and every
core pixel's receptive field, S2 path included, lies in the read window). The only difference is
float rounding inside ``F.interpolate`` (PyTorch computes the sample coordinates in floating point
from each tile's own sizes), so probabilities agree to ~1e-6, not bit for bit
(``tests/test_early_fusion_inference.py`` asserts 1e-4 like the SPOT-only engine).

S2 availability is decided per tile: a tile whose S2 window holds no finite value (S2 missing for
that part of the scene, or ``s2_series=None``) is predicted with the model's missing-S2 embedding.
Near the edge of a partial S2 coverage this per-tile decision makes results tile-dependent.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from iota2_spot_s2.arrays import normalize
from iota2_spot_s2.errors import InputError
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.inference.engine import Engine
from iota2_spot_s2.inference.engine_work import engine_work
from iota2_spot_s2.inference.logits import core_probabilities
from iota2_spot_s2.inference.predict import (
    MapOutputs,
    _check_bands,
    _check_codes,
    _fingerprint,
    _human_tags,
    _outputs,
    _write_qml,
    write_tiles,
)
from iota2_spot_s2.inference.sources import (
    ArraySource,
    MaskLike,
    RasterSource,
    WindowSource,
    open_source,
    source_grid,
    source_identity,
)
from iota2_spot_s2.inference.tiling import PixelWindow, Tile
from iota2_spot_s2.inference.writers import (
    FINGERPRINT_TAG,
    MapWriter,
    is_complete,
    output_files,
    read_timing,
)
from iota2_spot_s2.io import output_lock
from iota2_spot_s2.nomenclature import Nomenclature
from iota2_spot_s2.training.paired import LoadedEarlyFusion
from iota2_spot_s2.training.paired_data import (
    PairGeometry,
    crop_to_spot,
    grid_attrs,
    prepare_s2_series,
)
from iota2_spot_s2.training.sampling import ImageSource

#: Stacked S2 series up to this size are loaded once; bigger ones are read window by window
#: (open them with small ``chunks``, e.g. 128, so that a window touches little data).
S2_IN_MEMORY_BYTES = 512 << 20


class PairedEngine(Engine):
    """The inference engine with an S2 window per tile.

    Args:
        loaded: A :class:`~iota2_spot_s2.training.paired.LoadedEarlyFusion`.
        s2: Stacked ``(T * C, y, x)`` series (from
            :func:`~iota2_spot_s2.training.paired_data.prepare_s2_series`) or None (missing).
        geometry: SPOT/S2 pairing.
        margin, batch_size, precision, channels_last: As for :class:`Engine`.
    """

    def __init__(
        self,
        loaded: LoadedEarlyFusion,
        s2: xr.DataArray | np.ndarray | None,
        geometry: PairGeometry,
        *,
        margin: int | None = None,
        batch_size: int = 1,
        precision: str = "fp32",
        channels_last: bool = True,
    ) -> None:
        super().__init__(
            loaded,
            margin=margin,
            batch_size=batch_size,
            precision=precision,
            channels_last=channels_last,
        )
        if geometry.ratio != loaded.ratio:
            raise InputError("s2_series", f"S2/SPOT ratio {geometry.ratio}, model {loaded.ratio}")
        self.geometry = geometry
        self.s2_mean = np.asarray(loaded.s2_mean, np.float32).reshape(-1, 1, 1)
        self.s2_std = np.asarray(loaded.s2_std, np.float32).reshape(-1, 1, 1)
        self.s2 = None if s2 is None else ImageSource(s2, S2_IN_MEMORY_BYTES)
        if self.s2 is not None and self.s2.shape[0] != self.s2_mean.shape[0]:
            raise InputError(
                "s2_series",
                f"{self.s2.shape[0]} S2 channels (dates x bands), model {self.s2_mean.shape[0]}",
            )
        self._s2_windows: dict[int, tuple[np.ndarray, bool]] = {}

    def read_s2(self, window: PixelWindow) -> tuple[np.ndarray, bool]:
        """Normalised S2 window under a SPOT read window, and whether it holds data."""
        rows, cols, height, width = self.geometry.s2_window(
            window.row, window.col, window.height, window.width
        )
        if self.s2 is None:
            return np.zeros((self.s2_mean.shape[0], height, width), np.float32), False
        raw = self.s2.read(rows, cols, height, width)
        return normalize(raw, self.s2_mean, self.s2_std), bool(np.isfinite(raw).any())

    def read_tile(
        self, source: WindowSource, tile: Tile, buffer: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """SPOT window as in :class:`Engine`; the tile's S2 window is kept for its batch."""
        window, invalid = super().read_tile(source, tile, buffer)
        self._s2_windows[tile.index] = self.read_s2(tile.read)
        return window, invalid

    def run_pair(self, spot: np.ndarray, s2: np.ndarray, valid: np.ndarray) -> torch.Tensor:
        """Logits ``(N, K, H, W)`` of a batch of paired read windows."""
        x = torch.from_numpy(spot).to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        s = torch.from_numpy(s2).to(self.device)
        v = torch.from_numpy(valid).to(self.device)
        with torch.inference_mode(), self._autocast():
            return self.net(x, s, v)

    def core_results(
        self, group: list[Tile], reads: list[tuple[np.ndarray, np.ndarray]], todo: list[int]
    ) -> dict[int, np.ndarray]:
        """As :class:`Engine`, with each tile's S2 window (released for skipped tiles too)."""
        s2 = [self._s2_windows.pop(tile.index) for tile in group]
        if not todo:
            return {}
        logits = self.run_pair(
            np.stack([reads[i][0] for i in todo]),
            np.stack([s2[i][0] for i in todo]),
            np.array([s2[i][1] for i in todo], dtype=bool),
        )
        return core_probabilities(logits, [group[i] for i in todo], todo)


def _stack(
    model: LoadedEarlyFusion, s2_series: xr.DataArray | np.ndarray | None
) -> xr.DataArray | np.ndarray | None:
    """The S2 series prepared as in training (gap-filling recorded in the checkpoint)."""
    if s2_series is None:
        return None
    layout = model.meta.get("s2_layout", {})
    gapfill = layout.get("gapfill", "linear") != "none"
    dates = layout.get("dates") if gapfill else None
    return prepare_s2_series(s2_series, gapfill=gapfill, out_dates=dates or None)


def predict_early_fusion_array(
    model: LoadedEarlyFusion,
    spot: np.ndarray,
    s2_series: np.ndarray | xr.DataArray | None,
    *,
    tile: int | None = None,
    margin: int | None = None,
    geometry: PairGeometry | None = None,
    batch_size: int = 1,
    precision: str = "fp32",
    channels_last: bool = True,
    progress: bool = False,
) -> np.ndarray:
    """Probabilities ``(K, H, W)`` of an in-memory SPOT array and its raw S2 series.

    Args:
        model: A loaded early-fusion net.
        spot: ``(C, H, W)`` raw SPOT values (NaN allowed; not masked in the result).
        s2_series: ``(time, band, h, w)`` raw series on the paired grid, or None (missing).
        tile: Tile core size (rounded up to the model period); None = one tile.
        margin: Overlap per side; default covers the receptive-field radius.
        geometry: SPOT/S2 pairing; default the model's ratio with no offset.
        batch_size: Tiles per forward call.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` autocast (see :class:`Engine`).
        channels_last: channels-last memory format.
        progress: Show a progress bar.
    """
    geometry = geometry or PairGeometry(model.ratio)
    if s2_series is not None:
        s2_series, geometry = crop_to_spot(s2_series, geometry, tuple(spot.shape[-2:]))
    engine = PairedEngine(
        model,
        _stack(model, s2_series),
        geometry,
        margin=margin,
        batch_size=batch_size,
        precision=precision,
        channels_last=channels_last,
    )
    with engine:
        return engine.predict_in_memory(np.asarray(spot), tile, progress=progress)


def predict_early_fusion_map(
    model: LoadedEarlyFusion,
    spot: str | os.PathLike[str] | xr.DataArray,
    s2_series: xr.DataArray | None,
    out_dir: str | os.PathLike[str],
    *,
    tile: int = 480,
    margin: int | None = None,
    write_proba: bool = False,
    nomenclature: Nomenclature | None = None,
    prefix: str = "map",
    batch_size: int = 1,
    precision: str = "fp32",
    channels_last: bool = True,
    valid_mask: MaskLike | None = None,
    progress: bool = True,
    scheduler: Any = None,
    workers: int | None = None,
) -> MapOutputs:
    """Map a SPOT scene with its S2 series into the outputs of :func:`predict_map`.

    Args:
        model: A :class:`~iota2_spot_s2.training.paired.LoadedEarlyFusion`.
        spot: SPOT GeoTIFF path or ``(band, y, x)`` DataArray with ``crs``/``transform``.
        s2_series: Raw ``(time, band, y, x)`` series with ``crs``/``transform`` attrs on a grid
            paired with the SPOT one (:func:`~iota2_spot_s2.sensors.open_s2_timeseries`), or
            None: the whole scene is predicted with the missing-S2 embedding.
        out_dir: Output folder (created).
        tile: Tile core size in SPOT pixels (rounded up to the model period, 40 for 1.5 / 10 m).
        margin: Overlap per side; default covers the receptive-field radius.
        write_proba: Also write ``<prefix>_proba.tif``.
        nomenclature: Colours and class names.
        prefix: File-name prefix.
        batch_size: Tiles per forward call.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` autocast (see :class:`Engine`).
        channels_last: channels-last memory format.
        valid_mask: Optional bool ``(H, W)``, False = nodata in the outputs.
        progress: Show a tqdm bar over tiles.
        scheduler: ``None`` (one process), ``"local"``, a scheduler address or file, a
            ``distributed.Client`` or cluster object: tile tasks as for
            :func:`~iota2_spot_s2.inference.predict_map` (the S2 series is sent to the
            workers once, lazily when it is lazy); the maps are the same.
        workers: Worker processes of a local cluster (alone it means ``"local"``).

    Raises:
        InputError: Unreadable inputs, grids that do not pair, wrong band or date counts.
    """
    out, codes = Path(out_dir), [int(c) for c in np.asarray(model.class_codes).tolist()]
    _check_codes(codes, nomenclature)
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    with contextlib.closing(open_source(spot, valid_mask)) as source:
        grid = source_grid(source)
        geometry = _geometry(model, grid, s2_series)
        cropped: xr.DataArray | np.ndarray | None = None
        if s2_series is not None:
            cropped, geometry = crop_to_spot(s2_series, geometry, grid.shape)
        stack = _loaded_if_small(_stack(model, cropped))
        engine = PairedEngine(
            model,
            stack,
            geometry,
            margin=margin,
            batch_size=batch_size,
            precision=precision,
            channels_last=channels_last,
        )
        _check_bands(source, engine, spot)
        fingerprint = _paired_fingerprint(model, source, stack, nomenclature, precision)
        specs = output_files(out, prefix, codes, write_proba)
        qml_path = out / f"{prefix}_classes.qml"
        with output_lock(out, prefix):
            pending = [s for s in specs if not is_complete(s, grid, fingerprint)]
            if not pending:
                seconds, speed = read_timing(specs[0].path)
                return _outputs(specs, _write_qml(nomenclature, qml_path), seconds, speed, True)
            tags = {FINGERPRINT_TAG: fingerprint, **_human_tags(model, codes, "dense", precision)}
            tags["S2_INPUT"] = "none (missing-S2 embedding)" if stack is None else "10 m windows"
            tiles = engine.plan(source.height, source.width, tile)
            writer = MapWriter(pending, grid, codes, nomenclature, tags, n_tiles=len(tiles))
            options = dict(s2=stack, geometry=geometry, margin=engine.margin,
                           batch_size=batch_size, precision=precision,
                           channels_last=channels_last)  # fmt: skip
            with engine, writer.session():
                start = time.perf_counter()
                skipped = write_tiles(
                    engine, source, writer, tiles, progress=progress, scheduler=scheduler,
                    workers=workers, work=lambda: engine_work(model, spot, valid_mask,
                                                              PairedEngine, options),
                )  # fmt: skip
                seconds = writer.seconds_before + time.perf_counter() - start
                speed = source.height * source.width / max(seconds, 1e-9)
                writer.set_timing(seconds, speed)
    return _outputs(specs, _write_qml(nomenclature, qml_path), seconds, speed, False, skipped)


def _loaded_if_small(
    stack: xr.DataArray | np.ndarray | None,
) -> xr.DataArray | np.ndarray | None:
    """The prepared series, computed once here when small.

    This process's engine and every dask worker then use these values instead of each
    gap-filling the whole series again.
    """
    if isinstance(stack, xr.DataArray) and stack.size * 4 <= S2_IN_MEMORY_BYTES:
        return stack.astype(np.float32).load()
    return stack


def _geometry(model: LoadedEarlyFusion, grid: Grid, s2_series: xr.DataArray | None) -> PairGeometry:
    """Pairing from the SPOT grid and the series' attrs (the model's ratio when it has none)."""
    s2_grid = None if s2_series is None else grid_attrs(s2_series)
    if s2_grid is None:
        return PairGeometry(model.ratio)
    return PairGeometry.from_grids((grid.crs, grid.transform), s2_grid)


def _paired_fingerprint(
    model: LoadedEarlyFusion,
    source: ArraySource | RasterSource,
    stack: xr.DataArray | np.ndarray | None,
    nomenclature: Nomenclature | None,
    precision: str,
) -> str:
    """The SPOT map fingerprint extended with the S2 input and normalisation."""
    h = hashlib.sha256(_fingerprint(model, source, nomenclature, "dense", precision).encode())
    h.update(b"none" if stack is None else source_identity(ArraySource(stack)).encode())
    h.update(np.asarray(model.s2_mean, np.float64).tobytes())
    h.update(np.asarray(model.s2_std, np.float64).tobytes())
    return h.hexdigest()
