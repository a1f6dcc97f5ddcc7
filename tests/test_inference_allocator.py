"""The engine keeps tile-sized blocks in the heap between tiles (glibc), and gives the setting back.

Measured through the kernel's own count of minor page faults of this process: a block above
glibc's mmap threshold (64 MiB here, the threshold is 32 MiB at most) is mapped afresh, and
faulted in page by page, every time it is allocated outside :func:`heap_allocations`; inside,
the freed block is reused and nothing is faulted in again.
"""

from __future__ import annotations

import ctypes
import resource

import numpy as np
import pytest

from iota2_spot_s2.inference import Engine
from iota2_spot_s2.inference.allocator import heap_allocations, supported
from iota2_spot_s2.models import build_model
from iota2_spot_s2.training import LoadedModel

pytestmark = pytest.mark.skipif(not supported(), reason="glibc only (a no-op elsewhere)")
MADV_NOHUGEPAGE = 15


def faults(rounds: int = 4, mib: int = 64) -> int:
    """Minor page faults of ``malloc``, touching and ``free`` of a ``mib`` MiB block ``rounds`` x.

    Straight from the C library, as torch's CPU allocator gets its blocks, in 4 KiB pages: huge
    pages (numpy's advice on large arrays, or a system with transparent huge pages "always")
    would make the count depend on what the kernel has free.
    """
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    size, page = mib * 2**20, resource.getpagesize()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        block = libc.malloc(size)
        assert block, "malloc failed"
        start = -(-block // page) * page
        libc.madvise(start, (block + size - start) // page * page, MADV_NOHUGEPAGE)
        ctypes.memset(block, 1, size)
        libc.free(block)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def settled_faults() -> int:
    """:func:`faults` with no resident free block left in the heap by earlier tests (glibc
    reuses a large enough free chunk before it maps one; ``malloc_trim`` releases its pages)."""
    ctypes.CDLL(None).malloc_trim(0)
    return faults()


def test_freed_blocks_are_reused_inside_and_returned_after() -> None:
    outside = settled_faults()
    assert outside > 1000  # each round maps and faults in the block again
    with heap_allocations():
        faults(1)  # the heap grows once
        assert faults() < outside / 20
        with heap_allocations():  # nested use (an engine inside a chain's engine)
            pass
        assert faults() < outside / 20, "the inner exit must not restore the outer setting"
    assert faults() > outside / 2, "glibc's defaults must come back after the last exit"


def test_an_engine_keeps_the_blocks_only_while_entered() -> None:
    net = build_model("fcn", 4, 3)
    engine = Engine(LoadedModel(net, np.arange(1, 4), np.zeros(4), np.ones(4), "fcn", {}))
    outside = settled_faults()
    with engine:
        faults(1)
        assert faults() < outside / 20
    assert faults() > outside / 2
