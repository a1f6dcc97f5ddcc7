"""``predict_map``: a whole scene to COG class map, confidence and probabilities.

Memory stays flat with scene size: the input is read one batch of tile windows at a time (the
next batch is read in a background thread while the current one runs), and each tile's core is
written straight into the output files. See :mod:`~iota2_spot_s2.inference.writers` for the file
layout, nodata values and how an interrupted run is resumed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

import iota2_spot_s2
from iota2_spot_s2.errors import InputError
from iota2_spot_s2.inference.distributed import write_units
from iota2_spot_s2.inference.engine import Engine, ModelLike
from iota2_spot_s2.inference.engine_work import EngineWork, engine_work
from iota2_spot_s2.inference.sources import (
    ArraySource,
    MaskLike,
    RasterSource,
    WindowSource,
    open_source,
    source_grid,
    source_identity,
)
from iota2_spot_s2.inference.tiling import DEFAULT_TILE, Tile, batches
from iota2_spot_s2.inference.writers import (
    FINGERPRINT_TAG,
    MapWriter,
    OutputFile,
    is_complete,
    output_files,
    read_timing,
)
from iota2_spot_s2.io import output_lock
from iota2_spot_s2.nomenclature import Nomenclature

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MapOutputs:
    """Paths and speed of a :func:`predict_map` run.

    Attributes:
        class_map: ``<prefix>_classes.tif``.
        confidence: ``<prefix>_confidence.tif``.
        proba: ``<prefix>_proba.tif`` or None when not requested.
        qml: ``<prefix>_classes.qml`` or None without a nomenclature.
        seconds: Wall time of the inference pass (of the original run when resumed).
        pixels_per_second: Scene pixels / seconds.
        resumed: True when every requested file was already complete and nothing was computed.
        resumed_tiles: Tiles an interrupted earlier pass had written (not computed again).

    """

    class_map: Path
    confidence: Path
    proba: Path | None
    qml: Path | None
    seconds: float
    pixels_per_second: float
    resumed: bool = False
    resumed_tiles: int = 0


def predict_map(
    model: ModelLike,
    image: str | os.PathLike[str] | xr.DataArray,
    out_dir: str | os.PathLike[str],
    *,
    tile: int = DEFAULT_TILE,
    margin: int | None = None,
    write_proba: bool = False,
    nomenclature: Nomenclature | None = None,
    prefix: str = "map",
    batch_size: int | None = None,
    mode: str = "dense",
    precision: str = "fp32",
    channels_last: bool = True,
    valid_mask: MaskLike | None = None,
    progress: bool = True,
    scheduler: Any = None,
    workers: int | None = None,
) -> MapOutputs:
    """Map a scene with a trained model, tile by tile, into COGs on the input's grid.

    Args:
        model: A :class:`~iota2_spot_s2.training.LoadedModel`.
        image: GeoTIFF (any GDAL raster) path, or a lazy ``xr.DataArray (band, y, x)`` with
            ``crs``/``transform`` attributes (as from :func:`iota2_spot_s2.sensors.open_spot`).
        out_dir: Output folder (created).
        tile: Tile core size in pixels (rounded up to a multiple of the model's downsample). The
            map does not depend on it; it only trades memory for overhead.
        margin: Overlap per side; default covers the receptive-field radius.
        write_proba: Also write ``<prefix>_proba.tif``.
        nomenclature: Colours (colour table, ``.qml``) and class names (band descriptions).
        prefix: File-name prefix.
        batch_size: Tiles per forward call; ``None``: in a single-process run on a GPU, as many
            as fit in its free memory (:meth:`~iota2_spot_s2.inference.engine.Engine.
            fitting_batch`, measured on the first tile's window); else 1 (on a CPU a batch is no
            faster; dask workers may share a GPU).
        mode: ``"dense"``, or ``"per_pixel"`` (patch_cnn sliding-window baseline, slow).
        precision: ``"fp32"`` (default), ``"bf16"`` or ``"fp16"`` autocast (see
            :class:`~iota2_spot_s2.inference.engine.Engine`).
        channels_last: channels-last memory format (default; fp32 results equal the
            contiguous layout within 1e-4 and run ~1.5-2x faster on CPU).
        valid_mask: Optional bool ``(H, W)`` array/DataArray, False = do not map (nodata).
        progress: Show a tqdm bar over tiles.
        scheduler: ``None`` (default): one process, unless ``workers`` is given. ``"local"``: a
            local cluster of worker processes; ``"tcp://host:port"``: a running dask scheduler;
            a ``scheduler.json`` path; or a ``distributed.Client`` / cluster object (e.g.
            dask-jobqueue's ``SLURMCluster``). See :mod:`~iota2_spot_s2.inference.distributed`.
            The maps are the same whatever runs them.
        workers: Worker processes of the local cluster (default: the usable cores); with a
            cluster object, scale it to this many workers; ignored with a ``Client`` or an
            address. ``workers`` alone means ``"local"``.

    Returns:
        The output paths and the speed of the pass.

    Raises:
        InputError: Unreadable input, no CRS, wrong band count.
        ValueError: Bad options, or model codes missing from the nomenclature.

    """
    out = Path(out_dir)
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    codes = [int(c) for c in np.asarray(model.class_codes).tolist()]
    _check_codes(codes, nomenclature)
    engine = Engine(
        model,
        margin=margin,
        mode=mode,
        batch_size=batch_size or 1,
        precision=precision,
        channels_last=channels_last,
    )
    options = dict(margin=engine.margin, mode=mode, batch_size=engine.batch_size,
                   precision=precision, channels_last=channels_last)  # fmt: skip
    with engine, contextlib.closing(open_source(image, valid_mask)) as source:
        _check_bands(source, engine, image)
        grid = source_grid(source)
        fingerprint = _fingerprint(model, source, nomenclature, mode, precision)
        specs = output_files(out, prefix, codes, write_proba)
        with output_lock(out, prefix):
            pending = [s for s in specs if not is_complete(s, grid, fingerprint)]
            if not pending:
                seconds, speed = read_timing(specs[0].path)
                qml = _write_qml(nomenclature, out / f"{prefix}_classes.qml")
                return _outputs(specs, qml, seconds, speed, resumed=True)
            tags = {FINGERPRINT_TAG: fingerprint, **_human_tags(model, codes, mode, precision)}
            tiles = engine.plan(source.height, source.width, tile)
            if batch_size is None and scheduler is None and workers is None:
                # measured on this process's GPU: workers may share one, so they keep 1
                engine.batch_size = engine.fitting_batch(tiles[0].read.shape)
            writer = MapWriter(pending, grid, codes, nomenclature, tags, n_tiles=len(tiles))
            with writer.session():
                start = time.perf_counter()
                skipped = write_tiles(
                    engine, source, writer, tiles, progress=progress, scheduler=scheduler,
                    workers=workers, work=lambda: engine_work(model, image, valid_mask, Engine,
                                                              options),
                )  # fmt: skip
                if skipped:
                    log.info("%s: resumed, %d of %d tiles already written", prefix, skipped,
                             len(tiles))  # fmt: skip
                seconds = writer.seconds_before + time.perf_counter() - start
                speed = source.height * source.width / max(seconds, 1e-9)
                writer.set_timing(seconds, speed)
            qml = _write_qml(nomenclature, out / f"{prefix}_classes.qml")
    return _outputs(specs, qml, seconds, speed, resumed=False, resumed_tiles=skipped)


def write_tiles(
    engine: Engine,
    source: WindowSource,
    writer: MapWriter,
    tiles: list[Tile],
    *,
    progress: bool,
    scheduler: Any,
    workers: int | None,
    work: Callable[[], EngineWork],
) -> int:
    """Write every tile not yet done, in this process or as tile tasks on a dask cluster.

    Args:
        engine: The engine of the single-process loop (its batches are the tasks' groups).
        source: The input's window reader (single process).
        writer: The open writer.
        tiles: Every tile of the scene.
        progress: Show a progress bar.
        scheduler: See :func:`predict_map`.
        workers: See :func:`predict_map`.
        work: Makes the workers' :class:`~iota2_spot_s2.inference.engine_work.EngineWork`.

    Returns:
        The tiles not computed (journaled, or taken from parts a killed distributed run left).

    """

    def local(todo: list[Tile]) -> None:
        # encode + write tile k in a thread while the network runs tile k + 1 (one in flight)
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending: Future[None] | None = None
            try:
                for res in engine.iter_results(source, todo, progress=progress):
                    if pending is not None:
                        pending.result()
                    pending = pool.submit(writer.write, res.tile.core, res.proba, res.invalid)
            except BaseException as exc:  # the write in flight may have failed too: say so
                failed = pending.exception() if pending is not None else None
                if failed is not None and failed is not exc:
                    exc.add_note(f"the previous tile's write failed as well: {failed!r}")
                raise
            if pending is not None:
                pending.result()

    return write_units(
        writer, tiles, core_of=lambda t: t.core, local=local, work=work,
        groups=lambda todo: list(batches(todo, engine.batch_size)), scheduler=scheduler,
        workers=workers, progress=progress,
    )  # fmt: skip


def _outputs(
    specs: list[OutputFile], qml: Path | None, seconds: float, speed: float, resumed: bool,
    resumed_tiles: int = 0,
) -> MapOutputs:  # fmt: skip
    paths = {s.kind: s.path for s in specs}
    return MapOutputs(
        paths["classes"], paths["confidence"], paths.get("proba"), qml, seconds, speed, resumed,
        resumed_tiles,
    )  # fmt: skip


def _check_codes(codes: list[int], nomenclature: Nomenclature | None) -> None:
    if not codes or min(codes) < 1 or max(codes) > 65535:
        raise ValueError(f"class codes must be in 1..65535 (0 is nodata), got {codes}")
    if codes != sorted(set(codes)):
        raise ValueError(f"class codes must be unique and increasing, got {codes}")
    if nomenclature is not None:
        missing = sorted(set(codes) - set(nomenclature.codes))
        if missing:
            raise ValueError(f"model class codes {missing} are not in the nomenclature")


def _check_bands(source: WindowSource, engine: Engine, image: object) -> None:
    expected, count = engine.mean.shape[0], source.count
    if count != expected:
        where = image if isinstance(image, str | os.PathLike) else "<DataArray>"
        raise InputError(where, f"has {count} bands, the model expects {expected}")


def _write_qml(nomenclature: Nomenclature | None, path: Path) -> Path | None:
    if nomenclature is None:
        return None
    return nomenclature.write_qml(path)


def _fingerprint(
    model: ModelLike,
    source: ArraySource | RasterSource,
    nomenclature: Nomenclature | None,
    mode: str,
    precision: str,
) -> str:
    """Hash of everything that determines the maps' content (see writers' docstring)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    desc = {
        "format": 1,
        "model": getattr(model, "model_name", type(model.model).__name__),
        "codes": [int(c) for c in np.asarray(model.class_codes).tolist()],
        "mean": np.asarray(model.band_mean, np.float64).tolist(),
        "std": np.asarray(model.band_std, np.float64).tolist(),
        "input": source_identity(source),
        "nomenclature": repr(nomenclature),
        "mode": mode,
        "bf16": precision == "bf16",  # the key of fp32 and bf16 maps written before fp16
        **({"precision": precision} if precision not in ("fp32", "bf16") else {}),
    }
    h.update(json.dumps(desc, sort_keys=True).encode())
    return h.hexdigest()


def _human_tags(model: ModelLike, codes: list[int], mode: str, precision: str) -> dict[str, str]:
    return {
        "MODEL_NAME": str(getattr(model, "model_name", type(model.model).__name__)),
        "CLASS_CODES": " ".join(map(str, codes)),
        "INFERENCE_MODE": mode,
        "PRECISION": precision,
        "SOFTWARE": f"iota2_spot_s2 {iota2_spot_s2.__version__}",
    }
