"""Class-weighted cross-entropy with the no-data class at weight 0.

Class weights come from the TRAIN-split class frequencies ``f_c = n_c / sum(n)`` (labelled TRAIN
pixels of each class ``c``), with ``m = median(f_c)`` over the classes present in TRAIN:

- ``"median_frequency"`` (default, Eigen & Fergus 2015): ``w_c = m / f_c``;
- ``"inverse_sqrt"``: ``w_c = sqrt(m / f_c)`` (a milder boost of rare classes);
- ``"none"``: ``w_c = 1``.

Weights are then clipped to ``[0.1, 10]``. A class absent from TRAIN never appears in a target,
so its weight is irrelevant to the loss; it is set to 1.

No-data (label 0) and every pixel outside TRAIN blocks carry the target ``IGNORE_INDEX``.
With ``reduction="mean"``, PyTorch's weighted cross-entropy is
``sum_i w_{y_i} * l_i / sum_i w_{y_i}`` over non-ignored pixels: no-data pixels add 0 to both
sums, exactly as an explicit no-data class of weight 0 would (``tests/test_training.py`` checks
it against a ``K + 1``-class loss whose no-data logit never wins). The ignore index is that
weight-0 class without spending a logit (and softmax mass) on it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from iota2_spot_s2.reference import TRAIN
from iota2_spot_s2.training.sampling import IGNORE_INDEX, row_strips

CLASS_WEIGHTINGS = ("median_frequency", "inverse_sqrt", "none")
WEIGHT_CLIP = (0.1, 10.0)


def train_class_counts(labels: np.ndarray, split: np.ndarray, class_codes: list[int]) -> np.ndarray:
    """Number of labelled TRAIN pixels of each class, in ``class_codes`` order."""
    counts = np.zeros(len(class_codes), dtype=np.int64)
    for rows in row_strips(labels.shape):
        lab = labels[rows]
        train = lab[(split[rows] == TRAIN) & (lab > 0)]
        counts += [int((train == code).sum()) for code in class_codes]
    return counts


def class_weights(counts: np.ndarray, method: str = "median_frequency") -> np.ndarray:
    """Per-class loss weights from TRAIN pixel counts (formula in the module docstring).

    Raises:
        ValueError: On an unknown ``method`` or when every count is 0.
    """
    if method not in CLASS_WEIGHTINGS:
        raise ValueError(f"class_weighting must be one of {CLASS_WEIGHTINGS}, got {method!r}")
    counts = np.asarray(counts, dtype=np.float64)
    if counts.sum() <= 0:
        raise ValueError("no labelled TRAIN pixel: cannot weight classes")
    weights = np.ones_like(counts)
    if method == "none":
        return weights.astype(np.float32)
    present = counts > 0
    freq = counts / counts.sum()
    ratio = np.median(freq[present]) / freq[present]
    weights[present] = ratio if method == "median_frequency" else np.sqrt(ratio)
    return np.clip(weights, *WEIGHT_CLIP).astype(np.float32)


def make_criterion(weights: np.ndarray, device: str | torch.device = "cpu") -> nn.Module:
    """Weighted cross-entropy over ``(N, K, H, W)`` logits, ignoring ``IGNORE_INDEX`` targets."""
    weight = torch.as_tensor(np.asarray(weights, dtype=np.float32), device=device)
    return nn.CrossEntropyLoss(weight=weight, ignore_index=IGNORE_INDEX, reduction="mean")
