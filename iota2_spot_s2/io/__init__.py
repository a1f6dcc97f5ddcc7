"""File output helpers shared by every stage: atomic writes, COGs, one writer per output."""

from iota2_spot_s2.io.atomic import (
    atomic_output,
    undo_on_failure,
    write_problem,
    written_or_refused,
)
from iota2_spot_s2.io.cog import WRITE_CACHE_MB, finalize_cog, open_tiled_gtiff, tiled_bytes
from iota2_spot_s2.io.lock import output_lock

__all__ = [
    "WRITE_CACHE_MB",
    "atomic_output",
    "finalize_cog",
    "open_tiled_gtiff",
    "tiled_bytes",
    "output_lock",
    "undo_on_failure",
    "write_problem",
    "written_or_refused",
]
