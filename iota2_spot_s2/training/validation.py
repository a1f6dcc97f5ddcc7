"""Validation on the VAL blocks: the model runs over square tiles covering the labelled VAL pixels.

Tiles of ``tile`` pixels (a multiple of the model's ``downsample``) on a regular grid are kept
when they hold at least one labelled VAL pixel; each is read with a ``margin`` of context on
every side (zero after normalisation outside the image; patch models get their full
``receptive_field // 2``, so tiling is exact for them, fully convolutional models
``min(receptive_field // 2, tile // 4)``), the model runs in eval mode on batches of tiles, and the
argmax of the centre ``tile x tile`` is compared with the VAL labels only. The confusion matrix
(rows = reference) and the mean F1 come from :mod:`iota2_spot_s2.evaluation`. Pixels with NaN in
any band are left out (inference maps them to no-data).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from iota2_spot_s2.arrays import normalize
from iota2_spot_s2.devices import autocast
from iota2_spot_s2.evaluation import confusion_matrix, scores
from iota2_spot_s2.reference import VAL
from iota2_spot_s2.training.sampling import ImageSource, read_window


@dataclass
class ValidationSet:
    """The VAL tiles of a scene, ready to score a model.

    Args:
        source: The image. labels: Label codes. split: Split raster.
        class_codes: Code of each logit. band_mean / band_std: Normalisation statistics.
        tile: Tile side. margin: Context read around each tile.
        max_tiles: Keep at most this many tiles (a fixed seeded subset), ``None`` = all.
        seed: Seed of that subset.
        max_pixels: Keep a fixed seeded subset of tiles holding about this many labelled VAL
            pixels (tiles drawn in a seeded order until the count is reached), ``None`` = all.
    """

    source: ImageSource
    labels: np.ndarray
    split: np.ndarray
    class_codes: list[int]
    band_mean: np.ndarray
    band_std: np.ndarray
    tile: int
    margin: int
    max_tiles: int | None = None
    seed: int = 0
    max_pixels: int | None = None

    def __post_init__(self) -> None:
        self.origins = [
            (y0, x0)
            for y0 in range(0, self.labels.shape[0], self.tile)
            for x0 in val_tile_origins(self._reference(y0, 0, self.labels.shape[1]), self.tile)
        ]
        if self.max_tiles is not None and len(self.origins) > self.max_tiles:
            rng = np.random.default_rng([self.seed, 11])
            keep = np.sort(rng.choice(len(self.origins), self.max_tiles, replace=False))
            self.origins = [self.origins[i] for i in keep]
        if self.max_pixels is not None:
            self.origins = self._subsample(self.max_pixels)

    def _subsample(self, max_pixels: int) -> list[tuple[int, int]]:
        """Tiles in a seeded order until they hold ``max_pixels`` labelled pixels, sorted."""
        order = np.random.default_rng([self.seed, 13]).permutation(len(self.origins))
        kept, count = [], 0
        for i in order:
            if count >= max_pixels:
                break
            kept.append(self.origins[i])
            count += int((self._ref(*self.origins[i]) > 0).sum())
        return sorted(kept)

    @property
    def n_pixels(self) -> int:
        """Number of VAL pixels scored (over the kept tiles)."""
        return sum(int((self._ref(y0, x0) > 0).sum()) for y0, x0 in self.origins)

    def evaluate(
        self, model: nn.Module, batch_size: int, device: str | torch.device, precision: str = "fp32"
    ) -> dict:
        """Confusion matrix and scores of ``model`` on the VAL tiles (autocast per ``precision``).

        Returns:
            ``{"mean_f1", "oa", "cm"}``; ``mean_f1`` is NaN when no VAL pixel exists.
        """
        codes = list(self.class_codes)
        cm = np.zeros((len(codes), len(codes)), dtype=np.int64)
        if not self.origins:
            return {"mean_f1": float("nan"), "oa": float("nan"), "cm": cm}
        was_training = model.training
        model.eval()
        try:
            for start in range(0, len(self.origins), batch_size):
                origins = self.origins[start : start + batch_size]
                with autocast(torch.device(device).type, precision):
                    produced, reference = self._predict(model, origins, device)
                cm += confusion_matrix(reference.ravel(), produced.ravel(), codes)
        finally:
            model.train(was_training)
        result = scores(cm, codes)
        return {"mean_f1": float(result.mean_f1), "oa": float(result.overall_accuracy), "cm": cm}

    def _ref(self, y0: int, x0: int) -> np.ndarray:
        return self._reference(y0, x0, self.tile)

    def _reference(self, y0: int, x0: int, width: int) -> np.ndarray:
        """VAL labels of known classes in ``tile`` rows from ``(y0, x0)``, 0 elsewhere."""
        labels = read_window(self.labels, y0, x0, self.tile, width, 0)
        inside = read_window(self.split, y0, x0, self.tile, width, 0) == VAL
        return np.where(inside & np.isin(labels, self.class_codes), labels, 0)

    @torch.no_grad()
    def _predict(self, model: nn.Module, origins: list, device: str | torch.device) -> tuple:
        side, m = self.tile + 2 * self.margin, self.margin
        windows, refs = [], []
        for y0, x0 in origins:
            window = self.source.read(y0 - m, x0 - m, side, side)
            ref = self._ref(y0, x0)
            ref[np.isnan(window[:, m : m + self.tile, m : m + self.tile]).any(axis=0)] = 0
            windows.append(normalize(window, self.band_mean, self.band_std))
            refs.append(ref)
        logits = model(torch.from_numpy(np.stack(windows)).to(device))
        index = logits[:, :, m : m + self.tile, m : m + self.tile].argmax(dim=1).cpu().numpy()
        produced = np.asarray(self.class_codes, dtype=np.int64)[index]
        return produced, np.stack(refs).astype(np.int64)


def val_tile_origins(row: np.ndarray, tile: int) -> list[int]:
    """Columns of the ``tile``-wide cells of a row of tiles holding a non-zero reference pixel."""
    if not row.any():
        return []
    return [x0 for x0 in range(0, row.shape[1], tile) if row[:, x0 : x0 + tile].any()]
