"""Training batches made in a background thread while the model trains.

:class:`BatchFeed` draws the batch of optimiser step ``t`` with its own generator
``numpy.random.default_rng([seed, t, 17])``: the batches do not depend on how many were made
ahead, on threads, or on where a resumed run restarts, so a killed and resumed training sees the
same batches as an uninterrupted one. Crop reading, normalisation and the dihedral augmentation
run in one daemon thread (NumPy releases the GIL in its copies), ``depth`` batches ahead of the
consumer; an exception in the thread is raised again in the consumer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

import numpy as np

Batch = tuple[np.ndarray, np.ndarray]


def step_rng(seed: int, step: int) -> np.random.Generator:
    """The generator of optimiser step ``step`` (0-based, counted over resumed calls)."""
    return np.random.default_rng([int(seed), int(step), 17])


class BatchFeed:
    """Batches of steps ``start, start + 1, ...`` made ahead in a background thread.

    Args:
        make: ``make(rng) -> (inputs, targets)``, e.g. a bound ``CropSampler.batch`` with its size.
        seed: Training seed.
        start: First step to make.
        depth: Batches made ahead (memory: ``depth`` batches).
    """

    def __init__(self, make: Callable[[np.random.Generator], Batch], seed: int, start: int,
                 depth: int = 3) -> None:  # fmt: skip
        self._make, self._seed, self._next = make, seed, start
        self._queue: queue.Queue[tuple[int, Batch | BaseException]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(start,), daemon=True)
        self._thread.start()

    def _work(self, step: int) -> None:
        while not self._stop.is_set():
            try:
                item: Batch | BaseException = self._make(step_rng(self._seed, step))
            except BaseException as exc:  # noqa: BLE001 (handed to the consumer)
                item = exc
            while not self._stop.is_set():
                try:
                    self._queue.put((step, item), timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return
            step += 1

    def get(self, step: int) -> Batch:
        """The batch of ``step`` (steps must be asked in order from ``start``)."""
        if step != self._next:
            raise RuntimeError(f"batch feed expected step {self._next}, asked {step}")
        made, item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        assert made == step
        self._next += 1
        return item

    def close(self) -> None:
        """Stop the thread (batches made ahead are dropped)."""
        self._stop.set()
        self._thread.join(timeout=5)
