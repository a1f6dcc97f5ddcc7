"""Outputs that appear whole or not at all.

- :func:`atomic_output`: write to a temporary name beside the target, rename on success, delete
  on failure, so a crash or a bad input never leaves a partial file under the final name; a
  target the system refuses (a file in the way of its folder, a read-only folder, a full disk)
  is an :class:`~iota2_spot_s2.errors.InputError` naming it.
- :func:`undo_on_failure`: a folder left as it was found when a stage fails while writing
  (every file and folder the stage added is removed, nothing that was there is touched).
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from iota2_spot_s2.errors import InputError

#: errno values meaning "the system will not let us write there" (user-fixable, not a bug).
WRITE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT,
     errno.ENOTDIR, errno.EEXIST, errno.EISDIR}
)  # fmt: skip


def write_problem(exc: OSError) -> str:
    """A few words on why the system refused a write (``exc.strerror`` plus a hint)."""
    hints = {
        errno.EEXIST: "a file is where a folder is needed",
        errno.ENOTDIR: "a file is where a folder is needed",
        errno.EFBIG: "file too large: disk full or file-size limit",
        errno.ENOSPC: "no space left on the device",
    }
    reason = hints.get(exc.errno or 0) or exc.strerror or type(exc).__name__
    return f"cannot be written ({reason})"


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it to ``path`` if the block succeeds.

    The temporary name keeps the target's suffix (GDAL picks drivers by extension) and starts with
    a dot so that globbing tools ignore it.

    Raises:
        InputError: The folder cannot be made or the file cannot be written (names ``path``).
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(exc.filename or target.parent, write_problem(exc)) from exc
    tmp = target.with_name(f".{target.stem}.{uuid.uuid4().hex[:8]}.partial{target.suffix}")
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            raise
        raise InputError(target, write_problem(exc)) from exc
    finally:
        for leftover in tmp.parent.glob(tmp.name + "*"):
            leftover.unlink(missing_ok=True)


@contextlib.contextmanager
def undo_on_failure(
    folder: str | os.PathLike[str], on: tuple[type[BaseException], ...] = (Exception,)
) -> Iterator[Path]:
    """Run a block that writes under ``folder``; if it raises, remove what it added there.

    Files and folders present before the block are kept (a resumable run's earlier files
    included); new ones, and the folder itself and its new parents if the block made them, are
    removed, when the block raises one of ``on``. ``KeyboardInterrupt`` is never a failure
    here: an interrupted run keeps its files so that the same command resumes it.
    """
    root = Path(folder)
    top = root
    while not top.exists() and not top.parent.exists() and top.parent != top:
        top = top.parent  # the highest folder the block may create
    if root.exists() and not root.is_dir():  # a file in the way: the block fails, nothing to undo
        top, existed = root, {root}
    else:
        existed = {root, *root.rglob("*")} if root.is_dir() else set()
    try:
        yield root
    except on:
        _remove_new(top, existed)
        raise


@contextlib.contextmanager
def written_or_refused(path: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Turn a failed write under ``path`` into one :class:`InputError` naming ``path``.

    Raised for :class:`OSError` of :data:`WRITE_ERRNOS` and for the errors GDAL and OGR raise
    when the file under them cannot grow (rasterio's ``CPLE_*``/``RasterioIOError``, pyogrio's
    errors). Wrap only blocks that write (their inputs already checked): a GDAL error while
    reading would otherwise be reported as a write failure.
    """
    from pyogrio.errors import DataLayerError, DataSourceError
    from rasterio._err import CPLE_BaseError
    from rasterio.errors import RasterioIOError

    try:
        yield
    except InputError:
        raise
    except OSError as exc:
        if not isinstance(exc, RasterioIOError) and exc.errno not in WRITE_ERRNOS:
            raise
        detail = write_problem(exc) if exc.errno else f"cannot be written ({_first_line(exc)})"
        raise InputError(path, f"{what} {detail}") from exc
    except (CPLE_BaseError, DataLayerError, DataSourceError) as exc:
        raise InputError(path, f"{what} cannot be written ({_first_line(exc)})") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _remove_new(top: Path, existed: set[Path]) -> None:
    if not top.exists() or top in existed and not top.is_dir():
        return
    paths = sorted([*top.rglob("*"), top], key=lambda p: len(p.parts), reverse=True)
    for path in paths:
        if path in existed:
            continue
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                path.rmdir()  # only if empty: a kept file keeps its folder
            else:
                path.unlink()
