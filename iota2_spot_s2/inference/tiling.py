"""Cut a scene into overlapping tiles whose results do not depend on the tile size.

Design (why the map is seamless)
--------------------------------
A network with downsampling factor ``d`` (pooling strides) computes a pixel's output from the
pixels within its receptive-field radius ``r``, and the result also depends on where the pixel
falls relative to the pooling grid (its position modulo ``d``). Inference is therefore exactly
tile-size independent when:

1. The scene is *conceptually* padded with zeros **in normalised space** (i.e. after
   ``(x - mean) / std``, so a padded pixel looks like an average pixel to the network): ``margin``
   pixels before the first row/column, and after the last one up to the next multiple of ``d``
   plus ``margin``. Whole-image inference is the network applied to this padded scene.
2. Every tile's core starts at a multiple of ``d`` relative to the image origin (the tile size is
   rounded up to a multiple of ``d``), and its read window is the core grown by ``margin`` (a
   multiple of ``d``, at least ``r``) on each side and, at the scene's far edges, rounded up to a
   multiple of ``d`` exactly like the padded scene. Parts of a read window outside the scene are
   the same zeros as in (1).
3. Only the core of each tile is kept. Inside the core every pixel's receptive field lies inside
   the read window, and the read window is aligned with the pooling grid of the padded scene, so
   the tile computes the same numbers as the whole padded scene would.

Windows are expressed as ``(row0, col0, height, width)`` in scene pixel coordinates; read windows
may start at negative coordinates or end beyond the scene (those pixels are zeros).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class PixelWindow:
    """A rectangle of pixels in scene coordinates (may extend outside the scene).

    Attributes:
        row: First row.
        col: First column.
        height: Number of rows.
        width: Number of columns.

    """

    row: int
    col: int
    height: int
    width: int

    @property
    def row_stop(self) -> int:
        """One past the last row."""
        return self.row + self.height

    @property
    def col_stop(self) -> int:
        """One past the last column."""
        return self.col + self.width

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)``."""
        return (self.height, self.width)

    def clip(self, height: int, width: int) -> PixelWindow:
        """The part of this window inside a ``height`` x ``width`` scene (may be empty)."""
        row0, col0 = max(self.row, 0), max(self.col, 0)
        row1, col1 = min(self.row_stop, height), min(self.col_stop, width)
        return PixelWindow(row0, col0, max(0, row1 - row0), max(0, col1 - col0))


@dataclass(frozen=True)
class Tile:
    """One unit of work: the core pixels it writes and the (larger) window it reads.

    Attributes:
        index: Position of the tile in raster order.
        core: Pixels written by this tile (inside the scene).
        read: Pixels read and fed to the network (core + margin, aligned to ``downsample``).

    """

    index: int
    core: PixelWindow
    read: PixelWindow

    @property
    def core_offset(self) -> tuple[int, int]:
        """Position of the core's first pixel inside the read window ``(row, col)``."""
        return (self.core.row - self.read.row, self.core.col - self.read.col)


#: Default tile core side of a map (``predict``, ``spot_s2_fusion.tile_size``). The read window
#: is the core plus the FCN's 64 px margin on each side, computed again by both neighbours: 1.56x
#: the core's pixels at 512, 1.27x at 1024, 1.13x at 2048 (only the FCN's encoder pays it: its
#: decoder computes the core alone, :mod:`iota2_spot_s2.models.core_forward`). Measured end to
#: end on 2 cores (``benchmarks/bench_mapping.py``, docs/RESULTS.md), 1024 is the fastest whose
#: working set stays a few GiB (peak RSS of a map with probabilities 1.8 GiB at 16 Mpx, 1.3 GiB
#: for one tile, whatever the scene size). 2048 peaks at 3.1 GiB in bf16 (4.6 in fp32) and maps
#: bf16 4-14 % faster on scenes of 16384² px and more, but slower on small ones here (the first
#: touch of its working set is paid once per map): an option for large bf16 maps, not the
#: default. With many dask workers on one host (each gets RAM / workers), 512 halves each
#: worker's need.
DEFAULT_TILE = 1024


def round_up(value: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``value``."""
    return -(-value // multiple) * multiple


def default_margin(receptive_field: int, downsample: int) -> int:
    """Overlap margin covering the receptive-field radius, rounded up to a multiple of downsample.

    Args:
        receptive_field: Model receptive field in pixels (full width).
        downsample: Model downsampling factor (input H and W must be multiples of it).

    Returns:
        ``ceil(receptive_field / 2)`` rounded up to a multiple of ``downsample``.

    """
    return round_up(math.ceil(receptive_field / 2), max(1, downsample))


def check_margin(margin: int, downsample: int) -> int:
    """Validate a user margin and round it up to a multiple of ``downsample``.

    Raises:
        ValueError: If the margin is negative.

    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    return round_up(margin, max(1, downsample))


def plan_tiles(
    height: int, width: int, tile: int | None, margin: int, downsample: int
) -> list[Tile]:
    """Cover a ``height`` x ``width`` scene with tiles in raster order.

    Args:
        height: Scene rows.
        width: Scene columns.
        tile: Core size in pixels (rounded up to a multiple of ``downsample``); ``None`` means one
            tile covering the whole scene.
        margin: Overlap on each side, a multiple of ``downsample``.
        downsample: Model downsampling factor.

    Returns:
        Tiles whose cores partition the scene.

    Raises:
        ValueError: On empty scenes, non-positive tiles or a margin that is not a multiple of
            ``downsample``.

    """
    d = max(1, downsample)
    if height <= 0 or width <= 0:
        raise ValueError(f"empty scene {height}x{width}")
    if margin % d:
        raise ValueError(f"margin {margin} is not a multiple of downsample {d}")
    if tile is not None and tile <= 0:
        raise ValueError(f"tile must be > 0, got {tile}")
    step_r = round_up(tile, d) if tile else round_up(height, d)
    step_c = round_up(tile, d) if tile else round_up(width, d)
    tiles: list[Tile] = []
    for row0 in range(0, height, step_r):
        for col0 in range(0, width, step_c):
            core = PixelWindow(row0, col0, min(step_r, height - row0), min(step_c, width - col0))
            tiles.append(Tile(len(tiles), core, read_window(core, margin, d)))
    return tiles


def read_window(core: PixelWindow, margin: int, downsample: int) -> PixelWindow:
    """The read window of a core: grown by ``margin``, far edges rounded up to ``downsample``."""
    row1 = round_up(core.row_stop, downsample) + margin
    col1 = round_up(core.col_stop, downsample) + margin
    row0, col0 = core.row - margin, core.col - margin
    return PixelWindow(row0, col0, row1 - row0, col1 - col0)


def batches(tiles: list[Tile], size: int) -> Iterator[list[Tile]]:
    """Consecutive groups of at most ``size`` tiles sharing one read-window shape."""
    group: list[Tile] = []
    for tile in tiles:
        if group and (len(group) >= size or group[0].read.shape != tile.read.shape):
            yield group
            group = []
        group.append(tile)
    if group:
        yield group
