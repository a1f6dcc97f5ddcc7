"""Map production as a graph of tile tasks on ``dask.distributed``.

:func:`~iota2_spot_s2.inference.predict_map` runs in one process unless a cluster is asked for
(``scheduler=`` or ``workers=``): worker processes cost a start-up (seconds) and, for light
networks on few cores, run no faster than the plain loop. With a cluster:

1. The model (moved to CPU), the normalisation, the engine options and the input (a path, or the
   lazy ``DataArray``: its graph, not its pixels) are sent to every worker **once**
   (``client.scatter(..., broadcast=True)``); each worker builds its :class:`Engine` once and
   keeps it for all its tasks.
2. One task per group of tiles (the same groups as the single-process loop, so the numbers are the
   same): the task reads its read windows itself, runs the network, encodes the cores (class
   codes, confidence, probabilities) and saves them as a *part* file in the output folder
   (``.<name>.<fingerprint>.parts/<row>_<col>.npz``, atomic). It returns nothing but the tile.
3. The client copies each finished part into the partial GeoTIFFs window by window (the same
   :class:`~iota2_spot_s2.inference.writers.MapWriter`, journal and lock as the single-process
   run) and converts them to COGs at the end: the scene is never held in memory anywhere.

At most a few tasks per worker thread are in flight (a sliding window), so a scene of millions of
tiles does not flood the scheduler and the parts waiting on disk stay few. A worker that dies
(killed, out of memory, pre-empted) loses only the tasks it was running: the scheduler reruns
them on the other workers, and the nanny (or the batch system) starts a new worker. A killed
*client* resumes like a single-process run: journaled tiles are kept, parts already on disk are
taken without recomputing, the rest is submitted again.

Where the scheduler comes from (``scheduler=``):

- ``"local"`` (or ``None`` with ``workers=N``): a :class:`distributed.LocalCluster` of worker
  *processes* (one thread each; torch gets ``cores // workers`` threads), closed at the end. It
  spawns processes, so a script calling it needs ``if __name__ == "__main__":`` (the
  ``fuse-classify`` entry point has it).
- ``"tcp://host:8786"``: a running scheduler (``dask scheduler`` + ``dask worker``).
- a path to a ``scheduler.json`` file (``dask scheduler --scheduler-file``, dask-mpi).
- a :class:`distributed.Client` or a cluster object, e.g. ``dask_jobqueue.SLURMCluster`` /
  ``PBSCluster`` (see ``docs/DESIGN.md``, "Distributed mapping").

The output folder must be on a filesystem every worker sees (it is checked before any task runs).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.inference.engine import Engine, ModelLike
from iota2_spot_s2.inference.sources import MaskLike, open_source
from iota2_spot_s2.inference.tiling import Tile, batches
from iota2_spot_s2.inference.writers import MapWriter, encode, save_part

log = logging.getLogger(__name__)

IN_FLIGHT_PER_THREAD = 3  # tasks submitted ahead per worker thread
_ENGINE: dict[str, Engine] = {}  # per worker process: the engine of the current run


@dataclass
class PortableModel:
    """A model as sent to workers: on CPU, with what the engine needs."""

    model: torch.nn.Module
    class_codes: np.ndarray
    band_mean: np.ndarray
    band_std: np.ndarray
    model_name: str


@dataclass
class TileJob:
    """Everything a worker needs to map tiles, sent to each worker once.

    Attributes:
        model: The model on CPU.
        device: ``"cpu"`` or ``"cuda"`` (the worker's visible GPU).
        engine_options: Keyword arguments of :class:`Engine` (margin, mode, batch size...).
        image: Input path or lazy ``DataArray`` (read window by window on the worker).
        valid_mask: Optional validity mask.
        parts: Folder of the part files (shared filesystem).
        kinds: Outputs to encode (``classes``, ``confidence``, ``proba``).
        host_threads: Worker threads per host, to share each host's cores with torch.
        run: A new id per call, under which each worker keeps its engine.

    """

    model: PortableModel
    device: str
    engine_options: dict[str, Any]
    image: str | xr.DataArray | np.ndarray
    valid_mask: MaskLike | None
    parts: str
    kinds: list[str]
    host_threads: dict[str, int] = field(default_factory=dict)
    run: str = field(default_factory=lambda: uuid.uuid4().hex)


def make_job(
    model: ModelLike,
    image: str | os.PathLike[str] | xr.DataArray | np.ndarray,
    valid_mask: MaskLike | None,
    writer: MapWriter,
    engine_options: dict[str, Any],
) -> TileJob:
    """The job of one map run (the model is copied to CPU; the caller's stays where it is)."""
    net = model.model
    device = next(iter(net.parameters()), torch.empty(0)).device.type
    portable = PortableModel(
        copy.deepcopy(net).cpu().eval(),
        np.asarray(model.class_codes),
        np.asarray(model.band_mean, np.float32),
        np.asarray(model.band_std, np.float32),
        str(getattr(model, "model_name", type(net).__name__)),
    )
    source = str(image) if isinstance(image, str | os.PathLike) else image
    return TileJob(portable, device, engine_options, source, valid_mask,
                   str(writer.parts), writer.kinds)  # fmt: skip


def worker_engine(job: TileJob) -> Engine:
    """This worker's engine for ``job`` (built on its first task, then reused)."""
    engine = _ENGINE.get(job.run)
    if engine is not None:
        return engine
    _ENGINE.clear()
    threads = _worker_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    on_host = job.host_threads.get(_host(), threads)
    torch.set_num_threads(max(1, (cores or 1) // max(1, on_host)))
    model = job.model
    if job.device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"the model is on a GPU but worker {_host()} sees none")
        model = copy.copy(model)
        model.model = copy.deepcopy(model.model).cuda()
    _ENGINE[job.run] = engine = Engine(model, **job.engine_options)
    return engine


def map_tiles(job: TileJob, group: list[Tile]) -> list[int]:
    """The tile task: read the windows, predict, save each core's encoded part; tile indices."""
    import dask

    parts = Path(job.parts)
    if not parts.is_dir():
        raise FileNotFoundError(f"{parts} is not visible from worker {_host()}: the output folder "
                                "must be on a filesystem shared with the workers")  # fmt: skip
    engine = worker_engine(job)
    codes = np.asarray(job.model.class_codes)
    with dask.config.set(scheduler="synchronous"), contextlib.closing(
        open_source(job.image, job.valid_mask)
    ) as source:  # fmt: skip
        reads = [engine.read_tile(source, t) for t in group]
        results = engine.predict_batch(group, reads, skip_invalid=True)
    for res in results:
        arrays = encode(res.proba, res.invalid, codes)
        save_part(parts, res.tile.core, {k: arrays[k] for k in job.kinds})
    return [t.index for t in group]


@contextlib.contextmanager
def kept_environment() -> Iterator[None]:
    """Give the caller's environment back after a local cluster ran.

    dask's nannies write ``distributed.nanny.pre-spawn-environ`` (``OMP_NUM_THREADS=1``,
    ``MKL_NUM_THREADS=1``, ``MALLOC_TRIM_THRESHOLD_``...) into the environment of the process
    that starts them, i.e. ours: every later subprocess (a ``fuse-classify`` run, OTB) would
    then run torch on one thread. Measured: a chain run after a local cluster trained another
    FCN (one thread, another summation order) than the same run before it.
    """
    before = dict(os.environ)
    try:
        yield
    finally:
        for key in set(os.environ) - set(before):
            del os.environ[key]
        os.environ.update(before)


@contextlib.contextmanager
def connect(scheduler: Any, workers: int | None) -> Iterator[Any]:
    """A :class:`distributed.Client` for ``scheduler`` (see the module docstring), closed after.

    Raises:
        InputError: No scheduler answers at the address / in the scheduler file.

    """
    from distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        yield scheduler
        return
    if scheduler is None or scheduler == "local":
        n = workers or _usable_cores()
        with kept_environment(), LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster, Client(cluster) as client:  # fmt: skip
            yield client
        return
    if not isinstance(scheduler, str | os.PathLike):  # a cluster object (dask-jobqueue, ...)
        with Client(scheduler) as client:
            if workers:
                scheduler.scale(workers)
            yield client
        return
    name = str(scheduler)
    is_file = name.endswith(".json")
    kwargs = {"scheduler_file": os.path.expanduser(name)} if is_file else {"address": name}
    try:
        client = Client(timeout="30s", **kwargs)
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError(str(scheduler), f"no dask scheduler answers there ({exc})") from exc
    with client:
        yield client


def run_on_cluster(
    client: Any, job: TileJob, tiles: Sequence[Tile], writer: MapWriter, batch_size: int,
    progress: bool,
) -> None:  # fmt: skip
    """Map ``tiles`` with the workers of ``client``, assembling their parts with ``writer``."""
    from distributed import as_completed

    log.info("waiting for a dask worker (a batch-system cluster may still be queued)")
    client.wait_for_workers(1)
    for worker in client.scheduler_info(n_workers=-1)["workers"].values():
        host = str(worker["host"])
        job.host_threads[host] = job.host_threads.get(host, 0) + int(worker["nthreads"])
    Path(job.parts).mkdir(exist_ok=True)
    _check_shared_folder(client, Path(job.parts))
    shared = client.scatter(job, broadcast=True, hash=False)
    by_index = {t.index: t for t in tiles}
    queue = iter(batches(list(tiles), batch_size))
    running = as_completed()
    window = _Window(client)

    def top_up() -> None:  # keep a few tasks per worker thread in flight, no more
        while running.count() < window.size() and (group := next(queue, None)) is not None:
            running.add(client.submit(map_tiles, shared, group, pure=False))

    top_up()
    bar = tqdm(total=len(tiles), desc="inference", unit="tile", disable=None if progress else True)
    with bar:
        for future in running:
            indices = future.result()
            future.release()
            top_up()
            for i in indices:
                if not writer.take_part(by_index[i].core):
                    raise RuntimeError(f"tile {i}: its part vanished from {job.parts}")
            bar.update(len(indices))


class _Window:
    """How many tasks to keep in flight: a few per worker thread, refreshed as workers come."""

    def __init__(self, client: Any) -> None:
        self.client, self.checked, self.value = client, 0.0, 1

    def size(self) -> int:
        if time.monotonic() - self.checked > 5.0:
            threads = sum(self.client.nthreads().values())
            self.value, self.checked = IN_FLIGHT_PER_THREAD * max(1, threads), time.monotonic()
        return self.value


def _check_shared_folder(client: Any, parts: Path) -> None:
    seen = client.run(os.path.isdir, str(parts))
    blind = sorted(address for address, ok in seen.items() if not ok)
    if blind:
        problem = (f"is not visible from dask workers {', '.join(blind)}: the output folder "
                   "must be on a filesystem shared with the workers")  # fmt: skip
        raise InputError(parts.parent, problem)


def _worker_threads() -> int:
    try:
        from distributed import get_worker

        return int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        return 1


def _host() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address).rsplit("://", 1)[-1].rsplit(":", 1)[0]
    except (ImportError, ValueError):
        return socket.gethostname()


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
