"""File output helpers shared by every stage: atomic writes and Cloud-Optimized GeoTIFFs."""

from iota2_spot_s2.io.atomic import atomic_output
from iota2_spot_s2.io.cog import WRITE_CACHE_MB, finalize_cog, open_tiled_gtiff

__all__ = ["WRITE_CACHE_MB", "atomic_output", "finalize_cog", "open_tiled_gtiff"]
