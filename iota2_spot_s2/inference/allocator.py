"""Keep the memory freed between tiles inside the process while a map is computed (glibc).

glibc's ``malloc`` serves every block larger than its mmap threshold (32 MiB at most) with fresh
pages from ``mmap`` and hands them back at ``free``. A tile's activations are such blocks (a
64-channel float32 feature map of a 1168 px read window is 350 MiB), so every forward pass had
the kernel zero and map its whole working set again: on the 2-core AMD EPYC of
``benchmarks/bench_mapping.py`` the bare FCN ran at 1.37 Mpx/s on 656 px windows and 0.68 Mpx/s
on 1168 px ones, against 2.31 and 2.11 Mpx/s with the blocks kept (same run, fp32,
channels_last). That page-fault cost, not arithmetic, is what made larger tiles slower here.

:func:`heap_allocations` sets ``M_MMAP_MAX = 0`` (every block from the heap) and a trim threshold
of 2 GiB while a map runs, so the next tile reuses the freed blocks; on leaving it puts glibc's
default values back (its dynamic mmap threshold stays off, as after any ``mallopt``; a user's
``MALLOC_*_`` environment settings of these two are overwritten) and gives the freed heap back
to the system (``malloc_trim``). Peak memory is the same bounded working set (one batch of
tiles), measured flat against scene size by ``benchmarks/bench_memory.py``. Elsewhere (macOS,
musl) it does nothing.

It helps the thread that runs the network from glibc's main arena: the single-process loop (the
caller's thread). A dask worker runs its tasks in other threads, whose secondary arenas map any
block above 64 MiB whatever ``M_MMAP_MAX`` says, so it is not applied there (not measured).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt parameters (malloc.h)
_DEFAULT_TRIM_THRESHOLD, _DEFAULT_MMAP_MAX = 128 * 1024, 65536  # glibc's defaults
_KEEP_BELOW = 2**31 - 1  # bytes of free heap top kept (mallopt takes a C int)
_lock = threading.Lock()
_depth = 0


@cache
def _glibc() -> ctypes.CDLL | None:
    """glibc, or None where the C library is another one (no ``mallopt`` semantics to rely on)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()
    except (OSError, AttributeError):
        return None
    return libc


def supported() -> bool:
    """True where :func:`heap_allocations` has an effect (Linux with glibc)."""
    return _glibc() is not None


def _set(keep: bool) -> None:
    libc = _glibc()
    if libc is None:
        return
    if keep:
        libc.mallopt(_M_MMAP_MAX, 0)
        libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_BELOW)
    else:
        libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
        libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
        libc.malloc_trim(0)


@contextmanager
def heap_allocations() -> Iterator[None]:
    """Keep freed blocks in the heap meanwhile (nested and threaded uses count)."""
    global _depth
    with _lock:
        _depth += 1
        if _depth == 1:
            _set(True)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _set(False)
