"""GPU figures: the FCN on one CUDA device in fp32, bf16 and fp16 (figures, not tests).

Prepared for a session that is lent a GPU (``status`` of the device tool): one short run that
records what issue 13 asks for, with untrained weights (speed does not depend on them):

1. the bare network on the device: batches of 224 px tiles (4, 16, 64), and ``forward_core`` on
   one read window of the default tile and of 2048, per precision (CUDA-synchronised);
2. ``predict_map`` end to end on a synthetic 4-band uint16 GeoTIFF (``--map-side``, default
   8192), per precision and tile, the batch sized to the GPU's free memory (``batch_size=None``),
   class map + confidence, then + probabilities: pass and wall Mpx/s, their ratio to the bare
   figure, the batch used and the peak GPU memory;
3. training throughput (target pixels per second, crops of 128, batch 16) per precision;
4. France at 1.5 m (2.4e11 px) on N GPUs from the best measured end-to-end rate (one map
   process per GPU, as ``bench_scale.py`` does for CPU workers).

bf16 is skipped on a GPU without bf16 units (``torch.cuda.is_bf16_supported``), fp16 on a CPU
(4-7x slower there: the CLI refuses it). Usage::

    python benchmarks/bench_gpu.py                    # needs CUDA (~5 min on one H100-class GPU)
    python benchmarks/bench_gpu.py --device cpu --map-side 1024 --tiles 512 --seconds 1 \\
        --train-steps 2                               # dry run of the script on a CPU
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iota2_spot_s2.devices import PRECISIONS, autocast, resolve_device
from iota2_spot_s2.inference import Engine, predict_map
from iota2_spot_s2.inference.tiling import DEFAULT_TILE
from iota2_spot_s2.training import train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mapping import BANDS, N_CLASSES, loaded, write_scene  # noqa: E402

FRANCE_PX = 2.4e11  # ~551 700 km2 at 1.5 m


def sync(device: torch.device) -> None:
    """Wait for the device's queued kernels (timings of CUDA work end here)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(run: Any, device: torch.device, seconds: float) -> float:
    """Seconds per call of ``run()`` after a warm-up, repeated for at least ``seconds``."""
    run()
    sync(device)
    calls, tic = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - tic < seconds:
        run()
        calls += 1
    sync(device)
    return (time.perf_counter() - tic) / calls


def bare(device: torch.device, precision: str, seconds: float) -> dict[str, float]:
    """Mpx/s of the network alone: 224 px tile batches, and ``forward_core`` on read windows."""
    engine = Engine(_on(device), precision=precision)  # BatchNorm folded, channels_last
    net, margin, out = engine.net, engine.margin, {}
    with torch.inference_mode(), autocast(device.type, precision):
        for batch in (4, 16, 64):
            x = torch.randn(batch, BANDS, 224, 224, device=device)
            x = x.contiguous(memory_format=torch.channels_last)
            run = lambda x=x: net(x)  # noqa: E731
            out[f"batch {batch} x 224"] = batch * 224**2 / timed(run, device, seconds)
        for tile in (DEFAULT_TILE, 2048):
            side = tile + 2 * margin
            x = torch.randn(1, BANDS, side, side, device=device)
            x = x.contiguous(memory_format=torch.channels_last)
            run = lambda x=x: net.forward_core(x, margin)  # noqa: E731
            out[f"forward_core tile {tile}"] = tile**2 / timed(run, device, seconds)
    return {k: round(v / 1e6, 3) for k, v in out.items()}


def _on(device: torch.device) -> Any:
    model = loaded("fcn")
    model.model.to(device)
    return model


def maps(
    device: torch.device, precision: str, image: Path, tmp: Path, tiles: list[int]
) -> dict[str, Any]:
    """``predict_map`` pass / wall Mpx/s per tile, without and with probabilities."""
    side = int(image.stem.split("_")[-1])
    model, out = _on(device), {}
    for tile in tiles:
        for proba in (False, True):
            folder = tmp / f"{precision}_{tile}_{proba}"
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            tic = time.perf_counter()
            res = predict_map(model, image, folder, tile=tile, write_proba=proba,
                              precision=precision, progress=False)  # fmt: skip
            wall = side * side / (time.perf_counter() - tic)
            shutil.rmtree(folder)
            key = f"tile {tile}{' +proba' if proba else ''}"
            out[key] = {"pass_mpx_s": round(res.pixels_per_second / 1e6, 3),
                        "wall_mpx_s": round(wall / 1e6, 3)}  # fmt: skip
            if device.type == "cuda":
                out[key]["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20)
    return out


def training(device: torch.device, precision: str, tmp: Path, steps: int) -> float:
    """Target pixels per second of ``steps`` FCN training steps (random image and labels)."""
    rng = np.random.default_rng(2)
    image = rng.normal(size=(BANDS, 1024, 1024)).astype(np.float32)
    labels = rng.integers(1, N_CLASSES + 1, (1024, 1024)).astype(np.uint16)
    split = np.ones((1024, 1024), np.uint8)
    split[:, 896:] = 2
    res = train(image, labels, split, model_name="fcn", checkpoint_path=tmp / f"{precision}.pt",
                epochs=2, iters_per_epoch=max(1, steps // 2), batch_size=16, crop=128,
                val_max_tiles=1, device=str(device), precision=precision,
                final_validation=False)  # fmt: skip
    return round(res.train_pixels_per_second / 1e3, 1)


def main() -> None:
    """Measure every precision the device has and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (dry run)")
    parser.add_argument("--map-side", type=int, default=8192)
    parser.add_argument("--tiles", type=int, nargs="+", default=[DEFAULT_TILE, 2048])
    parser.add_argument("--seconds", type=float, default=5.0, help="per bare figure")
    parser.add_argument("--train-steps", type=int, default=40)
    args = parser.parse_args()
    try:
        device = resolve_device(args.device)
    except ValueError as err:
        sys.exit(f"bench_gpu: {err}: nothing measured (--device cpu checks the script)")
    precisions = [p for p in PRECISIONS if not (p == "fp16" and device.type == "cpu")
                  and not (p == "bf16" and device.type == "cuda"
                           and not torch.cuda.is_bf16_supported())]  # fmt: skip
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    figures: dict[str, Any] = {"device": f"{device} ({name})", "torch": torch.__version__,
                               "map_side": args.map_side, "precisions": {}}  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        image = write_scene(tmp / f"scene_{args.map_side}.tif", args.map_side)
        for precision in precisions:
            row = {"bare_mpx_s": bare(device, precision, args.seconds)}
            row["maps"] = maps(device, precision, image, tmp, args.tiles)
            reference = row["bare_mpx_s"]["batch 4 x 224"]
            for figure in row["maps"].values():
                figure["wall_vs_bare"] = round(figure["wall_mpx_s"] / reference, 3)
            row["train_kpx_s"] = training(device, precision, tmp, args.train_steps)
            figures["precisions"][precision] = row
            print(json.dumps({precision: row}), flush=True)
    best = max(f["wall_mpx_s"] for r in figures["precisions"].values() for k, f in
               r["maps"].items() if "proba" not in k)  # fmt: skip
    figures["france_1_5m_h"] = {f"{n} x {name}": round(FRANCE_PX / (n * best * 1e6) / 3600, 1)
                                for n in (1, 4, 16, 64)}  # fmt: skip
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
