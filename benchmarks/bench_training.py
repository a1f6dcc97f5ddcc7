"""Training: the tool against a plain in-memory PyTorch loop, on the REAL Dubai mosaic.

Two measurements on the files written by ``experiments/dubai_real.py prepare`` (real VHR RGB,
whole areas held out: train tiles 2, 4, 5, 6, 7; validation 1, 3; test 8):

- ``accuracy``: a plain loop (about the 200 lines anyone would write: whole image in memory,
  random 128 x 128 TRAIN crops, flips and rot90, Adam 1e-3, unweighted cross-entropy, no
  validation, no schedule) trains the same registered ``fcn`` for ``--minutes``, maps the test
  area with overlapping tiles and is scored on it with the project's scorer. Its scores go to
  ``<out>/plain_<model>.json`` for the comparison with ``fuse-classify``.
- ``throughput``: in one run, training pixels per second of ``fuse-classify train`` on the
  mosaic GeoTIFF (through the CLI, ``--steps``) and of the plain loop's steps on the same
  model, batch and crop in memory; prints both and their ratio.

Usage::

    python benchmarks/bench_training.py accuracy --data dubai_out --minutes 12
    python benchmarks/bench_training.py throughput --data dubai_out --steps 40
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
import torch.nn.functional as F

from iota2_spot_s2.evaluation import confusion_matrix, scores
from iota2_spot_s2.evaluation.bootstrap import block_confusions, bootstrap_scores
from iota2_spot_s2.models import build_model

CODES = [1, 2, 3, 4, 5]
CROP, BATCH, MARGIN, TILE = 128, 8, 64, 512


def load(data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mosaic as float32, labels as class indices (-100 = ignore), TRAIN mask."""
    with rasterio.open(data / "mosaic.tif") as src:
        image = src.read().astype(np.float32)
    with rasterio.open(data / "labels.tif") as src:
        labels = src.read(1).astype(np.int64)
    with rasterio.open(data / "split.tif") as src:
        train = src.read(1) == 1
    return image, labels, train


class PlainLoop:
    """The loop: normalise with TRAIN statistics, random TRAIN crops, Adam, cross-entropy."""

    def __init__(self, image: np.ndarray, labels: np.ndarray, train: np.ndarray, seed: int) -> None:
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        values = image[:, train]
        self.mean, self.std = values.mean(axis=1), values.std(axis=1)
        self.image = (image - self.mean[:, None, None]) / self.std[:, None, None]
        self.target = np.where(train & (labels > 0), labels - 1, -100)
        self.centres = np.flatnonzero(self.target.ravel() >= 0)
        self.model = build_model("fcn", image.shape[0], len(CODES))
        self.model = self.model.to(memory_format=torch.channels_last).train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.steps = 0

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = self.target.shape
        xs, ys = [], []
        for flat in self.rng.choice(self.centres, BATCH):
            cy, cx = divmod(int(flat), width)
            y0 = int(np.clip(cy - self.rng.integers(CROP), 0, height - CROP))
            x0 = int(np.clip(cx - self.rng.integers(CROP), 0, width - CROP))
            x = self.image[:, y0 : y0 + CROP, x0 : x0 + CROP]
            y = self.target[y0 : y0 + CROP, x0 : x0 + CROP]
            k = int(self.rng.integers(4))
            x, y = np.rot90(x, k, (1, 2)), np.rot90(y, k)
            if self.rng.integers(2):
                x, y = x[:, :, ::-1], y[:, ::-1]
            xs.append(np.ascontiguousarray(x))
            ys.append(np.ascontiguousarray(y))
        x = torch.from_numpy(np.stack(xs)).contiguous(memory_format=torch.channels_last)
        return x, torch.from_numpy(np.stack(ys))

    def step(self) -> float:
        x, y = self.batch()
        loss = F.cross_entropy(self.model(x), y, ignore_index=-100)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.steps += 1
        return float(loss.detach())

    @torch.no_grad()
    def predict(self, image: np.ndarray) -> np.ndarray:
        """Class codes of a whole image: tiles of TILE with MARGIN of context, centres kept."""
        self.model.eval()
        x = (image.astype(np.float32) - self.mean[:, None, None]) / self.std[:, None, None]
        _, height, width = x.shape
        out = np.zeros((height, width), np.uint8)
        side = TILE + 2 * MARGIN
        for y0 in range(0, height, TILE):
            for x0 in range(0, width, TILE):
                window = np.zeros((x.shape[0], side, side), np.float32)
                ys, xs = max(0, y0 - MARGIN), max(0, x0 - MARGIN)
                ye, xe = min(height, y0 + TILE + MARGIN), min(width, x0 + TILE + MARGIN)
                dy, dx = ys - y0 + MARGIN, xs - x0 + MARGIN
                window[:, dy : dy + ye - ys, dx : dx + xe - xs] = x[:, ys:ye, xs:xe]
                logits = self.model(torch.from_numpy(window)[None])[0]
                codes = logits.argmax(0).numpy()[MARGIN : MARGIN + TILE, MARGIN : MARGIN + TILE] + 1
                h, w = min(TILE, height - y0), min(TILE, width - x0)
                out[y0 : y0 + h, x0 : x0 + w] = codes[:h, :w]
        return out


def accuracy(data: Path, minutes: float, seed: int) -> None:
    """Plain loop for ``minutes``, then scores on the test area (written to plain_fcn.json)."""
    torch.set_num_threads(torch.get_num_threads())
    loop = PlainLoop(*load(data), seed=seed)
    tic, losses = time.monotonic(), []
    while time.monotonic() - tic < 60 * minutes:
        losses.append(loop.step())
    train_s = time.monotonic() - tic
    with rasterio.open(data / "test_image.tif") as src:
        test = src.read()
    with rasterio.open(data / "test_labels.tif") as src:
        reference = src.read(1)
    produced = loop.predict(test)
    cm = confusion_matrix(reference, produced, CODES)
    s = scores(cm, CODES)
    result = {"model": "fcn (plain loop)", "data": "REAL Dubai aerial, test area tile_8",
              "minutes": minutes, "steps": loop.steps, "train_seconds": train_s,
              "last_losses": losses[-20:], "overall_accuracy": s.overall_accuracy,
              "kappa": s.kappa, "mean_f1": s.mean_f1, "f1": dict(zip(CODES, s.f1, strict=True)),
              "confusion": cm.tolist(),
              "bootstrap": bootstrap_scores(block_confusions(reference, produced, CODES, 512),
                                            CODES)}  # fmt: skip
    (data / "plain_fcn.json").write_text(json.dumps(result, indent=2))
    keys = ("steps", "overall_accuracy", "kappa", "mean_f1", "f1", "bootstrap")
    print(json.dumps({k: result[k] for k in keys}))


def throughput(data: Path, steps: int) -> None:
    """Tool (CLI on the GeoTIFF) vs plain loop (in memory) training pixels per second."""
    ckpt = data / "bench_throughput.pt"
    ckpt.unlink(missing_ok=True)
    subprocess.run([sys.executable, "-m", "iota2_spot_s2.cli", "train", "--image",
                    str(data / "mosaic.tif"), "--reference", str(data / "labels.tif"), "--split",
                    str(data / "split.tif"), "--steps", str(steps), "--out", str(ckpt)],
                   check=True)  # fmt: skip
    curve = json.loads((data / "bench_throughput_curve.json").read_text())
    tool = float(curve["train_pixels_per_second"])
    val = max(r["val_seconds"] for r in curve["rounds"])
    loop = PlainLoop(*load(data), seed=0)
    loop.step()  # warm-up
    tic = time.perf_counter()
    for _ in range(steps):
        loop.step()
    plain = steps * BATCH * CROP * CROP / (time.perf_counter() - tic)
    print(f"tool (CLI, GeoTIFF {data / 'mosaic.tif'}): {tool / 1e3:.1f} kpx/s")
    print(f"plain loop (in memory): {plain / 1e3:.1f} kpx/s")
    print(f"ratio tool / plain: {tool / plain:.3f}; longest validation pass {val:.1f} s")


def main() -> None:
    """``accuracy`` or ``throughput`` (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("accuracy", "throughput"))
    parser.add_argument("--data", type=Path, default=Path("dubai_out"))
    parser.add_argument("--minutes", type=float, default=12.0)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.mode == "accuracy":
        accuracy(args.data, args.minutes, args.seed)
    else:
        throughput(args.data, args.steps)


if __name__ == "__main__":
    main()
