"""One writer per output: an exclusive, non-blocking lock beside the outputs it protects.

``output_lock(folder, name)`` holds ``fcntl.flock`` on ``<folder>/.<name>.lock`` for the duration
of a block. A second process asking for the same lock gets an :class:`InputError` at once (two
``predict`` runs into one folder would otherwise both "succeed", the last writer winning). The
lock dies with its process (even on ``kill -9``), so a crash never leaves the folder locked; the
lock file is removed on release. Windows has no ``fcntl``: there the lock is a no-op.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from iota2_spot_s2.errors import InputError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


@contextlib.contextmanager
def output_lock(folder: Path, name: str) -> Iterator[Path]:
    """Hold the lock ``<folder>/.<name>.lock`` (created with the folder) during the block.

    Raises:
        InputError: Another process holds it (names the folder and the lock's pid).

    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".{name}.lock"
    if fcntl is None:  # pragma: no cover
        yield path
        return
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise InputError(
                folder, f"another process (pid {holder}) is writing '{name}' here; wait for it "
                "or choose another output folder / prefix",
            ) from None  # fmt: skip
        if _same_file(fd, path):  # not unlinked by a releasing holder meanwhile
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False
