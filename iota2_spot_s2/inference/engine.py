"""The inference engine: normalise, pad, run the network tile by tile, keep the cores.

Contract with the model (see :mod:`iota2_spot_s2.models`): ``forward((N, C, H, W)) -> logits
(N, K, H, W)`` for H, W multiples of ``model.downsample``; ``model.receptive_field`` bounds the
context a pixel's output depends on, ``model.context`` (optional) the context a core aligned on
``downsample`` needs on each side (the default margin); ``model.has_core_forward`` says it has
``forward_core(x, margin) -> logits`` of the window less ``margin`` px; ``patch_cnn`` also has
``forward_patches((N, C, 65, 65)) -> (N, K)`` for the centre pixel. Logits are for the K classes
in increasing code order; the engine returns softmax probabilities in that order.

Normalisation: ``(x - band_mean) / band_std``; NaN inputs and everything outside the scene become
0 *after* normalisation (an "average" pixel). See :mod:`iota2_spot_s2.inference.tiling` for why
results do not depend on the tile size.

Modes: ``"dense"`` runs the network on whole read windows (the fast path; a model with
``forward_core``, the FCN, computes only what the window's core needs, see
:mod:`iota2_spot_s2.models.core_forward`); ``"per_pixel"``
(``patch_cnn`` only) cuts a 65x65 patch around every core pixel and calls ``forward_patches``
in batches: the slow sliding-window baseline, kept for benchmarks and as a correctness check.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from iota2_spot_s2.arrays import normalize, zero_nonfinite
from iota2_spot_s2.devices import autocast, autocast_dtype
from iota2_spot_s2.inference.allocator import heap_allocations
from iota2_spot_s2.inference.logits import core_probabilities
from iota2_spot_s2.inference.sources import ArraySource, WindowSource
from iota2_spot_s2.inference.tiling import (
    Tile,
    batches,
    check_margin,
    default_margin,
    plan_tiles,
    round_up,
)

MODES = ("dense", "per_pixel")
PATCH_BATCH = 1024  # patches per forward_patches call in per_pixel mode


class ModelLike(Protocol):
    """What inference needs from :class:`iota2_spot_s2.training.LoadedModel`."""

    @property
    def model(self) -> nn.Module: ...  # noqa: D102

    @property
    def class_codes(self) -> Sequence[int] | np.ndarray: ...  # noqa: D102

    @property
    def band_mean(self) -> Any: ...  # noqa: D102

    @property
    def band_std(self) -> Any: ...  # noqa: D102


@dataclass(frozen=True)
class TileResult:
    """Probabilities of one tile's core.

    Attributes:
        tile: The tile.
        proba: float32 ``(K, h, w)`` softmax probabilities (zeros where skipped).
        invalid: bool ``(h, w)``, True where the input is invalid.

    """

    tile: Tile
    proba: np.ndarray
    invalid: np.ndarray


def fold_batchnorm(net: torch.nn.Module) -> torch.nn.Module:
    """Fold each ``Conv2d`` + ``BatchNorm2d`` pair of a ``Sequential`` into one convolution.

    In place, for an eval-mode network: ``w' = w * g / s``, ``b' = (b - mu) * g / s + beta``
    with ``s = sqrt(var + eps)``. Same function, one pass less over the activations (results
    equal within float rounding, ~1e-6); every tile uses the folded net, so maps stay seamless
    bit for bit.
    """
    for module in net.modules():
        if not isinstance(module, torch.nn.Sequential):
            continue
        for i in range(len(module) - 1):
            conv, bn = module[i], module[i + 1]
            if not (isinstance(conv, torch.nn.Conv2d) and isinstance(bn, torch.nn.BatchNorm2d)):
                continue
            if bn.running_mean is None or bn.running_var is None or conv.groups != 1:
                continue
            with torch.no_grad():
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
                fused = torch.nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                                        conv.stride, conv.padding, conv.dilation, bias=True,
                                        padding_mode=conv.padding_mode)  # fmt: skip
                fused = fused.to(conv.weight.device)
                fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
                fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
            module[i], module[i + 1] = fused, torch.nn.Identity()
    return net


class Engine:
    """Runs a loaded model over a window source.

    Args:
        loaded: A :class:`~iota2_spot_s2.training.LoadedModel` (or anything with the same fields).
        margin: Overlap in pixels; default: the model's ``context`` (the widest reach of an
            aligned core's pixels, 63 px for the FCN) else half its receptive field, rounded up
            to its downsampling factor (64 px for the FCN).
        mode: ``"dense"`` or ``"per_pixel"`` (``patch_cnn`` only).
        batch_size: Tiles per forward call in dense mode.
        precision: ``"fp32"`` (default), ``"bf16"`` (``torch.autocast(dtype=bfloat16)``, about
            2x faster on recent CPUs; argmax agrees with fp32 on ~99 % of pixels) or ``"fp16"``
            (float16 autocast, for GPUs without bf16; see :mod:`iota2_spot_s2.devices`).
        channels_last: Use the channels-last memory format (on a copy of the model).

    """

    def __init__(
        self,
        loaded: ModelLike,
        *,
        margin: int | None = None,
        mode: str = "dense",
        batch_size: int = 1,
        precision: str = "fp32",
        channels_last: bool = True,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        net = loaded.model
        if mode == "per_pixel" and not hasattr(net, "forward_patches"):
            raise ValueError("mode='per_pixel' needs a model with forward_patches (patch_cnn)")
        self.mode = mode
        self.downsample = int(getattr(net, "downsample", 1))
        self.receptive_field = int(getattr(net, "receptive_field", 1))
        context = getattr(net, "context", None)
        # without a model context: the receptive-field radius warns, half the field is the default
        self.context = (self.receptive_field - 1) // 2 if context is None else int(context)
        self.patch_size = int(getattr(net, "patch_size", 65))
        default = (
            default_margin(self.receptive_field, self.downsample)
            if context is None
            else round_up(self.context, self.downsample)
        )
        self.margin = self._margin(margin, default)
        self.batch_size = max(1, int(batch_size))
        autocast_dtype(precision)  # an unknown precision is refused here, not at the first tile
        self.precision = precision
        self.channels_last = channels_last
        self._user_net, self._was_training = net, net.training
        net = fold_batchnorm(copy.deepcopy(net).eval())
        if channels_last:
            net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.net = net
        #: Pixels :meth:`run_dense` leaves out on every side of a window: the margin, when the
        #: network computes a window's core alone (``forward_core``, exact), else 0. Only in
        #: channels_last: on contiguous tensors the cropped views cost as much as they save
        #: (whole window 0.771 s, core 0.779 s on a 1152 px window, fp32, 2 cores).
        core_forward = mode == "dense" and channels_last and getattr(net, "has_core_forward", False)
        self.trimmed = self.margin if core_forward else 0
        self.device = next(iter(net.parameters()), torch.empty(0)).device
        self.mean = np.asarray(loaded.band_mean, np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(loaded.band_std, np.float32).reshape(-1, 1, 1)
        self.n_classes = len(loaded.class_codes)
        self._heap = contextlib.ExitStack()

    def __enter__(self) -> Engine:
        """Keep freed tile memory in the process meanwhile (see :mod:`.allocator`)."""
        self._heap.enter_context(heap_allocations())
        return self

    def __exit__(self, *exc: object) -> None:
        """Put the caller's model back in training mode if it was (eval is set for inference)."""
        self._user_net.train(self._was_training)
        self._heap.close()

    def _margin(self, margin: int | None, default: int) -> int:
        """The user's margin, checked against the model's context; else ``default``."""
        if margin is None:
            needed = self.patch_size // 2 if self.mode == "per_pixel" else 0
            return max(default, needed)
        margin = check_margin(margin, self.downsample)
        if self.mode == "per_pixel" and margin < self.patch_size // 2:
            raise ValueError(f"per_pixel mode needs margin >= {self.patch_size // 2}")
        if margin < self.context:
            warnings.warn(
                f"margin {margin} < the model's context {self.context} px (receptive field "
                f"{self.receptive_field}): results will depend on the tile size",
                stacklevel=3,
            )
        return margin

    def plan(self, height: int, width: int, tile: int | None) -> list[Tile]:
        """Tiles covering a scene with this engine's margin and alignment."""
        return plan_tiles(height, width, tile, self.margin, self.downsample)

    def normalise(self, data: np.ndarray, in_place: bool = False) -> np.ndarray:
        """``(x - mean) / std`` with NaN -> 0, float32; ``in_place``: into ``data`` if float32."""
        if data.shape[0] != self.mean.shape[0]:
            raise ValueError(f"image has {data.shape[0]} bands, model expects {self.mean.shape[0]}")
        if in_place and data.dtype == np.float32:
            np.subtract(data, self.mean, out=data)
            np.divide(data, self.std, out=data)
            return zero_nonfinite(data)
        return normalize(data, self.mean, self.std)

    def read_tile(
        self, source: WindowSource, tile: Tile, buffer: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Normalised, zero-padded read window ``(C, H, W)`` and the core's invalid mask.

        ``buffer``: a flat float32 array of at least ``C * H * W`` values that the window is
        read into and returned as a view of (see :meth:`iter_results`); else a new array.
        """
        inside = tile.read.clip(source.height, source.width)
        shape = (source.count, *tile.read.shape)
        size = shape[0] * shape[1] * shape[2]
        window = np.empty(shape, np.float32) if buffer is None else buffer[:size].reshape(shape)
        r0, c0 = inside.row - tile.read.row, inside.col - tile.read.col
        if inside != tile.read:
            window.fill(0.0)  # beyond the scene: 0 after normalisation
        part = window[:, r0 : r0 + inside.height, c0 : c0 + inside.width]
        data, invalid = source.read(inside, out=part)
        if data is not part:  # a source that returned its own array
            np.copyto(part, data)
        self.normalise(part, in_place=True)
        cr, cc = tile.core.row - inside.row, tile.core.col - inside.col
        core_invalid = invalid[cr : cr + tile.core.height, cc : cc + tile.core.width]
        return window, np.ascontiguousarray(core_invalid)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        return autocast(self.device.type, self.precision)

    def run_dense(self, windows: np.ndarray) -> torch.Tensor:
        """Logits ``(N, K, H - 2t, W - 2t)`` of read windows ``(N, C, H, W)``, ``t = trimmed``."""
        x = torch.from_numpy(windows)
        if self.device.type == "cuda":  # page-locked host memory: an asynchronous copy
            x = x.pin_memory().to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), self._autocast():
            if self.trimmed:
                return self.net.forward_core(x, self.trimmed)  # type: ignore[operator]
            return self.net(x)

    def fitting_batch(self, read_shape: tuple[int, int], limit: int = 16) -> int:
        """Tiles per forward call that fit in the GPU's free memory; 1 on a CPU.

        Measured, not guessed: one forward of a zero window of ``read_shape`` (same autocast,
        layout and model) gives the peak memory a tile needs; the batch takes 70 % of the free
        memory, at most ``limit`` tiles. On a CPU a larger batch computes no faster per pixel
        (``benchmarks/bench_mapping.py``: 4 x 224 px as fast as 1 x 448 px), so it stays 1.
        """
        if self.device.type != "cuda" or self.mode != "dense":
            return 1
        torch.cuda.synchronize(self.device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(self.device)
        before = torch.cuda.memory_allocated(self.device)
        self.run_dense(np.zeros((1, self.mean.shape[0], *read_shape), np.float32))
        torch.cuda.synchronize(self.device)
        per_tile = max(1, torch.cuda.max_memory_allocated(self.device) - before)
        free, _ = torch.cuda.mem_get_info(self.device)
        return int(max(1, min(limit, 0.7 * free // per_tile)))

    def run_per_pixel(self, window: np.ndarray, tile: Tile) -> np.ndarray:
        """Core probabilities ``(K, h, w)`` from one 65x65 patch per core pixel."""
        half, size = self.patch_size // 2, self.patch_size
        (r0, c0), (h, w) = tile.core_offset, tile.core.shape
        x = torch.from_numpy(window).to(self.device)
        patches = x.unfold(1, size, 1).unfold(2, size, 1)  # (C, H', W', P, P), a view
        patches = patches[:, r0 - half : r0 - half + h, c0 - half : c0 - half + w]
        out = np.empty((self.n_classes, h, w), np.float32)
        rows_per_call = max(1, PATCH_BATCH // w)
        for row in range(0, h, rows_per_call):
            part = patches[:, row : row + rows_per_call].permute(1, 2, 0, 3, 4)
            n_rows = part.shape[0]
            batch = part.reshape(n_rows * w, -1, size, size)
            if self.channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode(), self._autocast():
                logits = self.net.forward_patches(batch)  # type: ignore[operator]
            proba = torch.softmax(logits.float(), dim=1).cpu().numpy()
            out[:, row : row + n_rows] = proba.T.reshape(self.n_classes, n_rows, w)
        return out

    def predict_batch(
        self, group: list[Tile], reads: list[tuple[np.ndarray, np.ndarray]], skip_invalid: bool
    ) -> list[TileResult]:
        """Run the network on a group of tiles sharing one read shape (zeros where skipped)."""
        todo = [i for i, (_, inv) in enumerate(reads) if not (skip_invalid and inv.all())]
        results = self.core_results(group, reads, todo)
        out = []
        for i, (tile, (_, invalid)) in enumerate(zip(group, reads, strict=True)):
            empty = np.zeros((self.n_classes, *tile.core.shape), np.float32)
            out.append(TileResult(tile, results.get(i, empty), invalid))
        return out

    def core_results(
        self, group: list[Tile], reads: list[tuple[np.ndarray, np.ndarray]], todo: list[int]
    ) -> dict[int, np.ndarray]:
        """Core probabilities of the tiles ``group[i]`` for ``i`` in ``todo`` (may be empty)."""
        if not todo:
            return {}
        if self.mode == "dense":
            one = len(todo) == 1  # a view, not a copy, of a single window
            logits = self.run_dense(reads[todo[0]][0][None] if one else np.stack(
                [reads[i][0] for i in todo]))  # fmt: skip
            return core_probabilities(logits, [group[i] for i in todo], todo, self.trimmed)
        return {i: self.run_per_pixel(reads[i][0], group[i]) for i in todo}

    def predict_in_memory(
        self, array: np.ndarray, tile: int | None, *, progress: bool = False
    ) -> np.ndarray:
        """Probabilities ``(K, H, W)`` of an in-memory ``(C, H, W)`` image, tile by tile."""
        source = ArraySource(array)
        out = np.empty((self.n_classes, source.height, source.width), np.float32)
        tiles = self.plan(source.height, source.width, tile)
        for res in self.iter_results(source, tiles, skip_invalid=False, progress=progress):
            core = res.tile.core
            out[:, core.row : core.row_stop, core.col : core.col_stop] = res.proba
        return out

    def iter_results(
        self,
        source: WindowSource,
        tiles: list[Tile],
        *,
        skip_invalid: bool = True,
        progress: bool = True,
    ) -> Iterator[TileResult]:
        """Yield each tile's core probabilities, reading the next batch while computing this one.

        Windows are read into two sets of buffers taken in turn (batch computed, batch read):
        a window allocated per tile by the reading thread came from a glibc arena that gave it
        back to the system when freed, so every tile paid its page faults again.

        Args:
            source: Window reader.
            tiles: Tiles from :meth:`plan`.
            skip_invalid: Do not run the network on tiles whose core is entirely invalid.
            progress: Show a tqdm bar over tiles (``disable=None``: hidden when not a TTY).

        """
        groups = list(batches(tiles, self.batch_size))
        bar = tqdm(
            total=len(tiles), desc="inference", unit="tile", disable=None if progress else True
        )

        size = source.count * max((t.read.height * t.read.width for t in tiles), default=0)
        buffers = [[np.empty(size, np.float32) for _ in range(self.batch_size)] for _ in "ab"]

        def read(k: int) -> list[tuple[np.ndarray, np.ndarray]]:
            mine = buffers[k % 2]  # free: batch k - 2 is done when batch k is asked for
            return [self.read_tile(source, t, mine[i]) for i, t in enumerate(groups[k])]

        with bar, ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(read, 0) if groups else None
            for k, group in enumerate(groups):
                assert pending is not None
                reads = pending.result()
                pending = pool.submit(read, k + 1) if k + 1 < len(groups) else None
                yield from self.predict_batch(group, reads, skip_invalid)
                bar.update(len(group))


def predict_array(
    model: ModelLike,
    array: np.ndarray,
    *,
    tile: int | None = None,
    margin: int | None = None,
    batch_size: int = 1,
    mode: str = "dense",
    precision: str = "fp32",
    channels_last: bool = True,
    progress: bool = False,
) -> np.ndarray:
    """Probabilities of an in-memory image, with the same engine as :func:`predict_map`.

    Args:
        model: A loaded model (``model``, ``class_codes``, ``band_mean``, ``band_std``).
        array: ``(C, H, W)`` raw (un-normalised) image; NaN allowed.
        tile: Tile core size; ``None`` processes the whole (padded) image at once. The result does
            not depend on it (up to float rounding).
        margin: Overlap per side (see :class:`Engine`).
        batch_size: Tiles per forward call.
        mode: ``"dense"`` or ``"per_pixel"`` (patch_cnn only).
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` autocast (see :class:`Engine`).
        channels_last: channels-last memory format (default; fp32 results equal the
            contiguous layout within 1e-4 and run ~1.5-2x faster on CPU).
        progress: Show a progress bar.

    Returns:
        float32 ``(K, H, W)`` softmax probabilities, classes in increasing code order. Pixels with
        NaN inputs are *not* masked: they are predicted from zero-filled (normalised) values; mask
        them with ``np.isnan(array).any(0)`` if needed.

    """
    engine = Engine(
        model,
        margin=margin,
        mode=mode,
        batch_size=batch_size,
        precision=precision,
        channels_last=channels_last,
    )
    with engine:
        return engine.predict_in_memory(np.asarray(array), tile, progress=progress)
