"""Training of :class:`~iota2_spot_s2.models.tempcnn.TempCNN` on pixel samples.

Recipe (Pelletier et al. 2019, adapted): Adam (``lr`` 1e-3, weight decay 1e-6), mini-batches
drawn by a seeded permutation, cross-entropy weighted by inverse class frequency of the training
samples (``n / (K_present * n_k)``; classes without training sample weigh 0), model selection
and early stopping on the validation mean F1 (classes present in the validation samples), with
``patience`` epochs without improvement. Without validation samples, the last epoch is kept.
Inputs are already normalised ``(N, C, T)`` float32 arrays.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from iota2_spot_s2.evaluation import confusion_matrix, scores
from iota2_spot_s2.models.tempcnn import TempCNN


@dataclass
class FitOptions:
    """TempCNN training options."""

    epochs: int = 40
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-6
    patience: int = 8
    model_kwargs: dict[str, Any] = field(default_factory=dict)


def inverse_frequency_weights(targets: np.ndarray, n_classes: int) -> torch.Tensor:
    """``n / (K_present * n_k)`` per class, 0 for classes without samples."""
    counts = np.bincount(targets, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return torch.as_tensor(weights, dtype=torch.float32)


@torch.no_grad()
def predict_logits(model: TempCNN, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Eval-mode logits ``(N, K)`` of ``(N, C, T)`` inputs, batch by batch."""
    model.eval()
    outs = [
        model(torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size]))).numpy()
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(outs) if outs else np.zeros((0, model.n_classes), dtype=np.float32)


def mean_f1(model: TempCNN, x: np.ndarray, y: np.ndarray, n_classes: int) -> float:
    """Mean F1 over the classes present in ``y`` (indices 0..K-1)."""
    produced = predict_logits(model, x).argmax(axis=1)
    codes = list(range(1, n_classes + 1))
    return scores(confusion_matrix(y + 1, produced + 1, codes), codes).mean_f1


def _epoch(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch_size: int,
    generator: torch.Generator,
) -> float:
    model.train()
    order = torch.randperm(len(x), generator=generator)
    total, seen = 0.0, 0
    for start in range(0, len(x), batch_size):
        idx = order[start : start + batch_size]
        if idx.numel() < 2:  # BatchNorm needs two samples
            continue
        optimizer.zero_grad()
        loss = criterion(model(x[idx]), y[idx])
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * idx.numel()
        seen += idx.numel()
    return total / max(seen, 1)


def fit_tempcnn(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    n_classes: int,
    *,
    seed: int,
    options: FitOptions | None = None,
) -> tuple[TempCNN, list[dict[str, float]]]:
    """Train a TempCNN; return the selected model (eval mode) and the per-epoch history."""
    opts = options or FitOptions()
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = TempCNN(x_train.shape[1], n_classes, x_train.shape[2], **opts.model_kwargs)
    criterion = nn.CrossEntropyLoss(weight=inverse_frequency_weights(y_train, n_classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    xt, yt = torch.from_numpy(np.ascontiguousarray(x_train)), torch.from_numpy(y_train)
    best_f1, best_state, stale, history = -1.0, None, 0, []
    progress = tqdm(range(opts.epochs), desc="TempCNN epochs", disable=None, leave=False)
    for epoch in progress:
        loss = _epoch(model, xt, yt, criterion, optimizer, opts.batch_size, generator)
        val_f1 = mean_f1(model, x_val, y_val, n_classes) if len(y_val) else float("nan")
        history.append({"epoch": epoch + 1, "train_loss": loss, "val_mean_f1": val_f1})
        if not len(y_val) or val_f1 > best_f1:
            best_f1, best_state, stale = val_f1, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
            if stale >= opts.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval(), history
