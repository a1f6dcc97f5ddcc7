"""Distributed map production: 1 vs 2 local workers, per-tile cost, and what France would take.

Measured in ONE run, interleaved (the machine may be shared: compare the ratios, not the
absolute figures), with untrained weights (speed does not depend on them), on a synthetic
4-band uint16 GeoTIFF at 1.5 m:

1. ``predict_map`` in one process (the default), on a LocalCluster of 1 worker and of 2 workers
   (the cluster started beforehand; its start-up is reported on its own), FCN fp32
   channels-last, class map + confidence + probabilities;
2. the per-tile cost (seconds per tile, and CPU-seconds per Mpx per worker);
3. the client's assembly cost (parts -> partial GeoTIFFs, then the COG conversion), which is
   serial per output file;
4. the host-side cost without the network (a 1x1 convolution: read, normalise, encode, write),
   the floor any GPU run pays per pixel on its CPU side, and the FCN's FLOPs per pixel;
5. from these, the wall time to map France at 1.5 m (~2.4e11 px) on N CPU workers (measured
   rate) and on N GPUs (NOT measured: an estimate from FLOPs and the measured host floor);
6. the other map kinds on the same clusters (``bench_scale_kinds.py``: the S2 random forest's
   map, the early-fusion map, late fusion) on the simulated scene of ``--kinds-size-m`` metres:
   one process vs 1 vs 2 workers, and the client's assembly time of each.

Usage::

    python benchmarks/bench_scale.py               # 2048 px scene, the default tile, 2 repeats
    python benchmarks/bench_scale.py --side 1024 --repeats 1 --kinds-size-m 960
    python benchmarks/bench_scale.py --kinds-size-m 0   # the SPOT map only
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from iota2_spot_s2.inference import predict_map, writers
from iota2_spot_s2.inference.tiling import DEFAULT_TILE
from iota2_spot_s2.training import LoadedModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_mapping import BANDS, N_CLASSES, loaded, write_scene  # noqa: E402
from bench_scale_kinds import kind_runs  # noqa: E402

CONFIGS = ("single", "1 worker", "2 workers")

FRANCE_PX = 2.4e11  # ~551 700 km2 at 1.5 m
GPU_TFLOPS_ASSUMED = 25.0  # sustained fp32/TF32 conv throughput assumed for one data-centre GPU


class Clock:
    """Accumulates the client's assembly time (taking parts, COG conversion)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, owner: Any, name: str) -> None:
        """Time every call of ``owner.name``."""
        inner = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            tic = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - tic

        setattr(owner, name, timed)


def io_only_model() -> LoadedModel:
    """A 1x1 convolution: what mapping costs without a network (read, encode, write)."""
    net = torch.nn.Conv2d(BANDS, N_CLASSES, 1).eval()
    net.downsample, net.receptive_field = 1, 1  # type: ignore[assignment]
    return LoadedModel(net, np.arange(1, N_CLASSES + 1), np.full(BANDS, 500, np.float32),
                       np.full(BANDS, 100, np.float32), "io_only")  # fmt: skip


def flops_per_pixel(model: LoadedModel, tile: int = 512) -> float:
    """Forward FLOPs per output pixel (a multiply-add counts 2)."""
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model.model(torch.zeros(1, BANDS, tile, tile))
    return counter.get_total_flops() / tile**2


def run(model: LoadedModel, image: Path, out: Path, tile: int, scheduler: Any) -> float:
    """Wall seconds of one predict_map (probabilities included)."""
    tic = time.perf_counter()
    predict_map(model, image, out, tile=tile, write_proba=True, progress=False,
                scheduler=scheduler)  # fmt: skip
    return time.perf_counter() - tic


def measure(side: int, tile: int, repeats: int, tmp: Path, kinds_size_m: float) -> dict[str, Any]:
    """Interleaved runs of every configuration; the best of ``repeats`` each."""
    from distributed import Client, LocalCluster

    image = write_scene(tmp / "scene.tif", side)
    model = loaded("fcn")
    runs, pixels = kind_runs(tmp / "kinds", kinds_size_m) if kinds_size_m else ({}, {})
    runs = {"spot_fcn": lambda out, sched: run(model, image, out, tile, sched), **runs}
    clusters, clients, startup = {}, {}, {}
    for n in (1, 2):
        tic = time.perf_counter()
        clusters[n] = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                   dashboard_address=":0", silence_logs=40)  # fmt: skip
        clients[n] = Client(clusters[n])
        startup[n] = time.perf_counter() - tic
    assembly, cog = Clock(), Clock()
    assembly.wrap(writers.MapWriter, "take_part")
    cog.wrap(writers, "finalize_cog")
    times = {kind: {k: [] for k in CONFIGS} for kind in runs}
    assembled = {kind: {k: [] for k in CONFIGS} for kind in runs}
    converted = {kind: {k: [] for k in CONFIGS} for kind in runs}
    try:
        for r in range(repeats):
            for kind, call in runs.items():
                for key, sched in zip(CONFIGS, (None, clients[1], clients[2]), strict=True):
                    assembly.seconds = cog.seconds = 0.0
                    tic = time.perf_counter()
                    call(tmp / f"{kind}_{key}_{r}", sched)
                    times[kind][key].append(time.perf_counter() - tic)
                    assembled[kind][key].append(assembly.seconds)
                    converted[kind][key].append(cog.seconds)
    finally:
        for n in (1, 2):
            clients[n].close()
            clusters[n].close()
    io_tic = time.perf_counter()
    predict_map(io_only_model(), image, tmp / "io", tile=tile, write_proba=True, progress=False)
    io_seconds = time.perf_counter() - io_tic
    return {"image": image, "model": model, "times": times.pop("spot_fcn"),
            "assembled": assembled.pop("spot_fcn"), "converted": converted.pop("spot_fcn"),
            "startup": startup, "io_seconds": io_seconds, "kinds": (times, assembled, converted),
            "pixels": pixels}  # fmt: skip


def summarise_kinds(m: dict[str, Any]) -> dict[str, Any]:
    """Per kind: best wall seconds per configuration, speed-ups, the client's assembly."""
    times, assembled, converted = m["kinds"]
    out = {}
    for kind, by_config in times.items():
        best = {k: min(v) for k, v in by_config.items()}
        out[kind] = {
            "pixels": m["pixels"][kind],
            "wall_s": {k: [round(x, 2) for x in v] for k, v in by_config.items()},
            "speedup_2_workers_vs_1_worker": round(best["1 worker"] / best["2 workers"], 3),
            "speedup_2_workers_vs_single_process": round(best["single"] / best["2 workers"], 3),
            "client_parts_to_gtiff_s_2_workers": round(min(assembled[kind]["2 workers"]), 2),
            "cog_conversion_s_2_workers": round(min(converted[kind]["2 workers"]), 2),
        }
    return out


def summarise(m: dict[str, Any], side: int, tile: int) -> dict[str, Any]:
    """Figures and the France estimate from the measurements."""
    n_side = -(-side // tile)
    px, n_tiles = side * side, n_side * n_side
    best = {k: min(v) for k, v in m["times"].items()}
    per_worker_px_s = px / best["2 workers"] / 2  # one worker on one core
    io_px_s = px / m["io_seconds"]  # host floor, one process (2 threads for GDAL/numpy)
    flops = flops_per_pixel(m["model"])
    gpu_net_px_s = GPU_TFLOPS_ASSUMED * 1e12 / flops
    out: dict[str, Any] = {
        "machine": f"{os.cpu_count()} CPU cores (shared: timings are noisy, ratios comparable)",
        "scene": f"{side}x{side} px ({px / 1e6:.1f} Mpx), tile {tile} -> {n_tiles} tiles, "
        "fcn fp32 channels-last, classes + confidence + probabilities",
        "wall_s": {k: [round(x, 2) for x in v] for k, v in m["times"].items()},
        "cluster_startup_s": {f"{k} worker(s)": round(v, 2) for k, v in m["startup"].items()},
        "speedup_2_workers_vs_1_worker": round(best["1 worker"] / best["2 workers"], 3),
        "speedup_2_workers_vs_single_process": round(best["single"] / best["2 workers"], 3),
        "cluster_1_worker_vs_single_process": round(best["single"] / best["1 worker"], 3),
        "per_tile_s_single_process": round(best["single"] / n_tiles, 3),
        "per_tile_worker_s_2_workers": round(best["2 workers"] * 2 / n_tiles, 3),
        "worker_wall_s_per_mpx": round(1e6 / per_worker_px_s, 3),
        "client_parts_to_gtiff_s": {
            k: round(min(v), 2) for k, v in m["assembled"].items() if k != "single"
        },  # fmt: skip
        "cog_conversion_s": {k: round(min(v), 2) for k, v in m["converted"].items()},
        "host_floor_io_only_mpx_s": round(io_px_s / 1e6, 3),
        "fcn_gflop_per_px": round(flops / 1e9, 6),
    }
    asm_s = min(m["assembled"]["2 workers"]) + min(m["converted"]["2 workers"])
    asm_px_s = px / max(asm_s, 1e-9)
    out["france"] = france(per_worker_px_s, io_px_s, gpu_net_px_s, asm_px_s)
    if m["kinds"][0]:
        out["other_kinds"] = summarise_kinds(m)
    return out


def france(cpu_px_s: float, io_px_s: float, gpu_net_px_s: float, asm_px_s: float) -> dict:
    """Wall-time estimates (hours) for FRANCE_PX pixels."""
    hours = lambda rate: round(FRANCE_PX / rate / 3600, 1)  # noqa: E731
    # a GPU is fed by its host: assume 8 cores per GPU, each at the measured host floor / 2
    # (the floor was measured with 2 threads), and the network at the assumed sustained rate
    gpu_px_s = min(gpu_net_px_s, 8 * io_px_s / 2)
    return {
        "pixels": FRANCE_PX,
        "cpu_workers_measured_rate_h": {n: hours(n * cpu_px_s) for n in (1, 16, 64, 256, 1024)},
        "gpus_NOT_MEASURED_h": {n: hours(n * gpu_px_s) for n in (1, 4, 16, 64)},
        "gpu_assumptions": f"network {GPU_TFLOPS_ASSUMED} TFLOP/s sustained -> "
        f"{gpu_net_px_s / 1e6:.0f} Mpx/s; host side 8 cores at the measured floor -> "
        f"{8 * io_px_s / 2 / 1e6:.1f} Mpx/s; the smaller bounds one GPU: "
        f"{gpu_px_s / 1e6:.1f} Mpx/s",
        "one_client_assembling_all_of_france_h": hours(asm_px_s),
        "note": "assembly is serial per output COG: write one COG per SPOT scene/tile (each "
        "its own predict_map call) so assembly runs in parallel across scenes",
    }


def main() -> None:
    """Run and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--side", type=int, default=2048)
    parser.add_argument("--tile", type=int, default=DEFAULT_TILE)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--kinds-size-m",
        type=float,
        default=1536.0,
        help="simulated scene of the other kinds (m; 0: SPOT map only)",
    )
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as name:
        m = measure(args.side, args.tile, args.repeats, Path(name), args.kinds_size_m)
        print(json.dumps(summarise(m, args.side, args.tile), indent=2))


if __name__ == "__main__":  # LocalCluster spawns worker processes: this guard is required
    main()
