"""Seeded golden outputs of the registered models (run this file to regenerate golden.npz).

Each model is built after ``torch.manual_seed(0)`` with 4 bands and 10 classes, its BatchNorm
parameters and running statistics are set from a seeded generator (so eval-mode BatchNorm is
exercised), and it is run in eval mode on a seeded ``1x4x32x32`` input. ``golden.npz`` keeps the
input's sum and sum of squares, 64 seeded pixel positions and the logits there (``(64, 10)`` per
model): a refactor that changes predictions fails ``tests/test_models_golden.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from iota2_spot_s2.models import build_model

GOLDEN_PATH = Path(__file__).with_name("golden.npz")
MODEL_NAMES = ("patch_cnn", "fcn")


def golden_input() -> torch.Tensor:
    return torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(1234))


def golden_positions() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 32, size=(64, 2))


def golden_model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(name, 4, 10)
    generator = torch.Generator().manual_seed(99)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.5)
    return model.eval()


def golden_outputs() -> dict[str, np.ndarray]:
    x = golden_input()
    positions = golden_positions()
    arrays = {
        "input_sum": np.float64(x.double().sum().item()),
        "input_sumsq": np.float64((x.double() ** 2).sum().item()),
        "positions": positions,
    }
    for name in MODEL_NAMES:
        with torch.no_grad():
            logits = golden_model(name)(x)[0]
        arrays[name] = logits[:, positions[:, 0], positions[:, 1]].T.numpy().astype(np.float32)
    return arrays


if __name__ == "__main__":
    np.savez(GOLDEN_PATH, **golden_outputs())
    print(f"wrote {GOLDEN_PATH} ({GOLDEN_PATH.stat().st_size} bytes)")
