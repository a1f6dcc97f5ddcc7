"""Map production as a graph of tile tasks on ``dask.distributed``, for every map kind.

Every map the package writes is a loop "read the windows of a unit (a tile, a window) ->
compute -> encode its core -> write it": the SPOT model's map
(:func:`~iota2_spot_s2.inference.predict_map`), the early-fusion map
(:func:`~iota2_spot_s2.inference.paired.predict_early_fusion_map`), the Sentinel-2 classifiers'
maps (:func:`~iota2_spot_s2.timeseries.write_s2_maps`) and decision-level fusion
(:func:`~iota2_spot_s2.fusion.fuse_rasters`). :func:`write_units` runs that loop in one process
(the default: worker processes cost a start-up of seconds and, for light work on few cores, run
no faster) or, with ``scheduler=`` / ``workers=``, as tasks on a dask cluster. Each kind says
what its workers do with a small picklable *work* object (:class:`Work`): ``build(threads)``
makes the worker's state once (an engine, a classifier, open readers) and ``compute(state,
group, kinds)`` returns the encoded cores of a group of units (only the writer's pending
kinds). With a cluster:

1. The job (the work object: the model on CPU, a classifier, a lazy input's graph or a path,
   never pixels already read) is sent to every worker **once**
   (``client.scatter(..., broadcast=True)``); each worker builds its state once per run.
2. One task per group of units (the same groups as the single-process loop, so the numbers are
   the same): the task reads its windows itself, computes, encodes the cores and saves them as
   *part* files in the output folder (``.<name>.<fingerprint>.parts/<row>_<col>_<h>x<w>.npz``,
   atomic).
   It returns the cores it saved.
3. The client copies each finished part into the partial GeoTIFFs window by window (the same
   :class:`~iota2_spot_s2.inference.writers.MapWriter`, journal and lock as the single-process
   run) and converts them to COGs at the end: the scene is never held in memory anywhere.

At most a few tasks per worker thread are in flight (a sliding window), so a scene of millions of
tiles does not flood the scheduler and the parts waiting on disk stay few. A worker that dies
(killed, out of memory, pre-empted) loses only the tasks it was running: the scheduler reruns
them on the other workers, and the nanny (or the batch system) starts a new worker. A killed
*client* resumes like a single-process run: journaled units are kept, parts already on disk are
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
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import torch
from tqdm.auto import tqdm

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.inference.tiling import PixelWindow
from iota2_spot_s2.inference.writers import MapWriter, core_key, save_part

log = logging.getLogger(__name__)

IN_FLIGHT_PER_THREAD = 3  # tasks submitted ahead per worker thread
_STATE: dict[str, Any] = {}  # per worker process: the state of the current run's work
U = TypeVar("U")
Encoded = list[tuple[PixelWindow, dict[str, np.ndarray]]]


class Work(Protocol):
    """What workers do for one map kind (a picklable object, sent to each worker once)."""

    def build(self, threads: int) -> Any:
        """The worker's state (engine, classifier, open readers), made once per run.

        Args:
            threads: Threads this worker may use for its computation (torch is already set).

        """
        ...

    def compute(self, state: Any, group: list[Any], kinds: Sequence[str]) -> Encoded:
        """``(core, {kind: encoded array})`` of every unit of ``group``, for ``kinds`` only.

        Args:
            state: From :meth:`build`.
            group: The units of one task.
            kinds: The writer's pending outputs (:attr:`TileJob.kinds`): the others are
                finished or not asked for, so they are not computed.

        """
        ...


@dataclass
class TileJob:
    """Everything a worker needs for one run, sent to each worker once.

    Attributes:
        work: The kind's :class:`Work`.
        parts: Folder of the part files (shared filesystem).
        kinds: Outputs to save in each part (the writer's pending outputs).
        host_threads: Worker threads per host, to share each host's cores.
        run: A new id per call, under which each worker keeps its state.

    """

    work: Work
    parts: str
    kinds: list[str]
    host_threads: dict[str, int] = field(default_factory=dict)
    run: str = field(default_factory=lambda: uuid.uuid4().hex)


def write_units(
    writer: MapWriter,
    units: Sequence[U],
    *,
    core_of: Callable[[U], PixelWindow],
    local: Callable[[list[U]], None],
    work: Callable[[], Work],
    groups: Callable[[list[U]], list[list[U]]] | None = None,
    scheduler: Any = None,
    workers: int | None = None,
    progress: bool = True,
) -> int:
    """Write every unit of ``units`` with ``writer``: in this process, or as tasks on a cluster.

    Units already journaled (``writer.done``) are skipped and parts a killed distributed run left
    are taken first, in both modes.

    Args:
        writer: The open writer (inside its session).
        units: Tiles or windows, in raster order.
        core_of: The core (the pixels written) of a unit.
        local: The single-process loop over the units left (writes them with ``writer``).
        work: Makes the :class:`Work` sent to the workers (called only with a cluster).
        groups: Units per task (default one each; the single-process loop's groups, so that
            the numbers are the same).
        scheduler: See the module docstring; ``None`` with ``workers=None``: one process.
        workers: Worker processes of a local cluster (or the scale of a cluster object).
        progress: Show a progress bar.

    Returns:
        The units not computed by this call (journaled, or taken from parts).

    """
    todo = [u for u in units if core_key(core_of(u)) not in writer.done]
    todo = [u for u in todo if not writer.take_part(core_of(u))]  # a killed run's parts
    if scheduler is None and workers is None:
        local(todo)
    elif todo:
        chunks = groups(todo) if groups is not None else [[u] for u in todo]
        with connect(scheduler, workers) as client:
            job = TileJob(work(), str(writer.parts), writer.kinds)
            run_on_cluster(client, job, chunks, writer, progress)
    return len(units) - len(todo)


def worker_state(job: TileJob) -> Any:
    """This worker's state for ``job`` (built on its first task, then reused)."""
    state = _STATE.get(job.run)
    if state is not None:
        return state
    for old in _STATE.values():
        getattr(old, "close", lambda: None)()
    _STATE.clear()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    on_host = job.host_threads.get(_host(), _worker_threads())
    threads = max(1, (cores or 1) // max(1, on_host))
    torch.set_num_threads(threads)
    _STATE[job.run] = state = job.work.build(threads)
    return state


def run_task(job: TileJob, group: list[Any]) -> list[PixelWindow]:
    """The task: compute a group of units and save each core's encoded part; the cores saved."""
    import dask

    parts = Path(job.parts)
    if not parts.is_dir():
        raise FileNotFoundError(f"{parts} is not visible from worker {_host()}: the output folder "
                                "must be on a filesystem shared with the workers")  # fmt: skip
    state = worker_state(job)
    with dask.config.set(scheduler="synchronous"):  # a lazy input is read in this task
        encoded = job.work.compute(state, group, job.kinds)
    for core, arrays in encoded:
        save_part(parts, core, {k: arrays[k] for k in job.kinds})
    return [core for core, _ in encoded]


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
    client: Any, job: TileJob, groups: Sequence[list[Any]], writer: MapWriter, progress: bool
) -> None:
    """Run one task per group with the workers of ``client``, assembling parts with ``writer``."""
    from distributed import as_completed

    log.info("waiting for a dask worker (a batch-system cluster may still be queued)")
    client.wait_for_workers(1)
    for worker in client.scheduler_info(n_workers=-1)["workers"].values():
        host = str(worker["host"])
        job.host_threads[host] = job.host_threads.get(host, 0) + int(worker["nthreads"])
    Path(job.parts).mkdir(exist_ok=True)
    _check_shared_folder(client, Path(job.parts))
    shared = client.scatter(job, broadcast=True, hash=False)
    queue = iter(groups)
    running = as_completed()
    window = _Window(client)

    def top_up() -> None:  # keep a few tasks per worker thread in flight, no more
        while running.count() < window.size() and (group := next(queue, None)) is not None:
            running.add(client.submit(run_task, shared, group, pure=False))

    top_up()
    total = sum(len(g) for g in groups)
    bar = tqdm(total=total, desc="map tasks", unit="unit", disable=None if progress else True)
    with bar:
        for future in running:
            cores = future.result()
            future.release()
            top_up()
            for core in cores:
                if not writer.take_part(core):
                    raise RuntimeError(f"{core}: its part vanished from {job.parts}")
            bar.update(len(cores))


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
