"""Mapping and training speed, and peak memory against scene size (figures, not tests).

Measures, on this machine, with untrained weights (speed does not depend on them):

1. end-to-end mapping throughput of ``predict_map`` (read GeoTIFF -> COG class map, confidence,
   probabilities) for ``fcn`` and dense ``patch_cnn``, fp32, fp32 + channels_last and
   bf16 autocast + channels_last, beside the bare network's forward pass (a batch of 4 tiles
   of 224 px, no margins, no I/O) measured in the same run, and their ratio;
2. the per-pixel sliding-window ``patch_cnn`` on a small window (it is ~1000x slower), and the
   ratios fcn / per-pixel and dense / per-pixel measured in the same run;
3. training throughput (pixels of target crops per second) of both models;
4. peak RSS of a ``predict_map`` child process for scenes of 1, 16 and 100 Mpx (run first,
   in fresh processes, so the parent's own peak does not matter).

Usage::

    python benchmarks/bench_mapping.py                 # everything (about 10 minutes on 2 cores)
    python benchmarks/bench_mapping.py --sizes 1 16    # skip the 100 Mpx scene
    python benchmarks/bench_mapping.py --only-ratio --map-side 4096   # [1] for fcn, 3 rounds,
                                                       # tiles 512 and the default (~8 minutes)
    python benchmarks/bench_mapping.py --only-core     # whole window vs forward_core (~1 min)
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.transform import from_origin

from iota2_spot_s2.inference import Engine, predict_array, predict_map
from iota2_spot_s2.inference.allocator import heap_allocations
from iota2_spot_s2.inference.tiling import DEFAULT_TILE
from iota2_spot_s2.models import build_model
from iota2_spot_s2.training import LoadedModel, train

N_CLASSES, BANDS = 10, 4


#: Numeric options of the end-to-end figures, by label.
MODES: dict[str, dict[str, Any]] = {
    "fp32": {"channels_last": False},
    "fp32+channels_last": {"channels_last": True},
    "bf16+channels_last": {"channels_last": True, "precision": "bf16"},
}


def loaded(name: str) -> LoadedModel:
    """An untrained model wrapped like a checkpoint (speed does not depend on the weights)."""
    torch.manual_seed(0)
    model = build_model(name, BANDS, N_CLASSES).eval()
    return LoadedModel(
        model=model,
        class_codes=np.arange(1, N_CLASSES + 1),
        band_mean=np.full(BANDS, 500, np.float32),
        band_std=np.full(BANDS, 100, np.float32),
        model_name=name,
        meta={},
    )


def write_scene(path: Path, side: int, block: int = 2048) -> Path:
    """A uint16 4-band 1.5 m GeoTIFF of side x side px in EPSG:2154, written by blocks."""
    rng = np.random.default_rng(0)
    profile = {
        "driver": "GTiff",
        "width": side,
        "height": side,
        "count": BANDS,
        "dtype": "uint16",
        "crs": "EPSG:2154",
        "transform": from_origin(500000, 6300000, 1.5, 1.5),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "DEFLATE",
    }
    with rasterio.open(path, "w", **profile) as dst:
        for r in range(0, side, block):
            for c in range(0, side, block):
                h, w = min(block, side - r), min(block, side - c)
                data = rng.integers(200, 900, (BANDS, h, w), dtype=np.uint16)
                dst.write(data, window=rasterio.windows.Window(c, r, w, h))
    return path


def bare_forward(
    model: LoadedModel, bf16: bool, channels_last: bool = True, tile: int = 224, batch: int = 4
) -> float:
    """Mpx/s of the network alone: a batch of ``tile``-px tiles, no I/O, no margins."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    net = model.model.to(memory_format=layout)
    x = torch.randn(batch, BANDS, tile, tile).contiguous(memory_format=layout)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
    with torch.inference_mode(), ctx:
        net(x)  # warm-up
        runs, tic = 0, time.perf_counter()
        while runs < 3 or time.perf_counter() - tic < 5.0:
            net(x)
            runs += 1
    return runs * batch * tile * tile / (time.perf_counter() - tic) / 1e6


def bare_figure(name: str, opts: dict[str, Any]) -> float:
    """The bare network's Mpx/s with a map's numeric options and the engine's allocator."""
    with heap_allocations():
        return bare_forward(loaded(name), opts.get("precision") == "bf16",
                            bool(opts["channels_last"]))  # fmt: skip


def bench_core_forward(rounds: int = 5, tiles: tuple[int, ...] = (512, DEFAULT_TILE)) -> None:
    """The FCN on one read window: whole-window pass vs ``forward_core`` (interleaved medians).

    Both on the engine's own network (BatchNorm folded, channels_last), at the engine's margin;
    Mpx/s count the core's pixels, as a map does.
    """
    engine = Engine(loaded("fcn"))
    net, margin = engine.net, engine.margin
    for bf16 in (False, True):
        ctx = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
        for tile in tiles:
            side = tile + 2 * margin
            x = torch.randn(1, BANDS, side, side).contiguous(memory_format=torch.channels_last)
            times: dict[str, list[float]] = {"whole": [], "core": []}
            with engine, torch.inference_mode(), ctx:
                net(x), net.forward_core(x, margin)  # warm-up
                for _ in range(rounds):
                    for label, run in (("whole", net), ("core", lambda t: net.forward_core(
                            t, margin))):  # fmt: skip
                        tic = time.perf_counter()
                        run(x)
                        times[label].append(time.perf_counter() - tic)
            whole, core = (float(np.median(times[k])) for k in ("whole", "core"))
            print(f"  {'bf16' if bf16 else 'fp32'} tile {tile} (window {side}): whole window "
                  f"{tile * tile / whole / 1e6:.2f} Mpx/s, core only {tile * tile / core / 1e6:.2f}"
                  f" Mpx/s: time x{core / whole:.3f}", flush=True)  # fmt: skip


def bench_mapping(
    tmp: Path,
    side: int,
    names: tuple[str, ...] = ("fcn", "patch_cnn"),
    rounds: int = 1,
    tiles: tuple[int, ...] = (DEFAULT_TILE,),
    modes: tuple[str, ...] = tuple(MODES),
) -> dict[str, float]:
    """End-to-end predict_map throughput (Mpx/s) per model, numeric option and tile size, and its
    ratio to the bare network's forward pass, measured in interleaved rounds (medians).

    Each round measures the bare net, maps the scene at every tile size (with probabilities
    too at the default tile), then measures the bare net again, so a busy spell of the machine
    hits both sides of the ratio (the maps of a large scene last minutes, a bare figure 5 s: one
    bare figure per round swung the ratios by 20 % at 16384²). The
    bare net runs with the engine's allocator setting (:mod:`iota2_spot_s2.inference.allocator`),
    like the map. "pass" is ``predict_map``'s own figure (read -> COG partial files); "wall" adds
    the fingerprint, the COG conversion and everything else the call does. "kernel CPU" and
    "page faults" (whole process, during the call) show the one-time cost of touching the
    working set's fresh pages, which the bare figure (after a warm-up pass) leaves out.
    """
    image = write_scene(tmp / f"scene_{side}.tif", side)
    out: dict[str, float] = {}
    for name in names:
        model = loaded(name)
        for label, opts in ((m, MODES[m]) for m in modes):
            bare_runs, runs = [], defaultdict(list)
            for _ in range(rounds):
                bare_runs.append(bare_figure(name, opts))
                for tile in tiles:
                    for proba in (False, True) if tile == DEFAULT_TILE else (False,):
                        out_dir = tmp / f"{name}_{label}_{tile}_{proba}"
                        before, tic = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
                        res = predict_map(model, image, out_dir, tile=tile, write_proba=proba,
                                          progress=False, **opts)  # fmt: skip
                        wall = side * side / (time.perf_counter() - tic)
                        after = resource.getrusage(resource.RUSAGE_SELF)
                        shutil.rmtree(out_dir)  # the next round maps again (no resume)
                        system = after.ru_stime - before.ru_stime
                        faults = (after.ru_minflt - before.ru_minflt) / 1e3
                        runs[tile, proba].append((res.pixels_per_second / 1e6, wall / 1e6,
                                                  system, faults))  # fmt: skip
                bare_runs.append(bare_figure(name, opts))
            bare = float(np.median(bare_runs))
            out[f"{name} bare {label}"] = bare
            print(f"  {name} {label}: bare net {bare:.3f} Mpx/s (before and after each round: "
                  f"{', '.join(f'{b:.2f}' for b in bare_runs)})", flush=True)  # fmt: skip
            for (tile, proba), speeds in runs.items():
                mpx, wall, system, faults = (float(np.median(v)) for v in zip(*speeds, strict=True))
                key = f"{name} dense {label} tile {tile}{' +proba' if proba else ''}"
                out[key], out[f"{key} / bare"], out[f"{key} wall"] = mpx, mpx / bare, wall
                out[f"{key} kernel s"] = system
                print(f"    tile {tile:5d}{' +proba' if proba else '       '} pass {mpx:6.3f} Mpx/s"
                      f" = {mpx / bare:5.1%} of bare, wall {wall:6.3f} Mpx/s = "
                      f"{wall / bare:5.1%}; kernel CPU {system:5.2f} s, {faults:.0f} k page "
                      "faults", flush=True)  # fmt: skip
    return out


def bench_per_pixel(side: int = 48) -> dict[str, float]:
    """Per-pixel sliding window vs dense patch_cnn vs fcn on the same in-memory window (px/s)."""
    rng = np.random.default_rng(1)
    array = rng.integers(200, 900, (BANDS, side, side)).astype(np.float32)
    rates = {}
    for label, name, mode in (
        ("patch_cnn per-pixel", "patch_cnn", "per_pixel"),
        ("patch_cnn dense", "patch_cnn", "dense"),
        ("fcn", "fcn", "dense"),
    ):
        model = loaded(name)
        big = array if mode == "per_pixel" else np.tile(array, (1, 8, 8))
        tic = time.perf_counter()
        predict_array(model, big, mode=mode, tile=256)
        rates[label] = big.shape[1] * big.shape[2] / (time.perf_counter() - tic)
        print(f"  {label:22s} {rates[label]:12.0f} px/s", flush=True)
    return rates


def bench_training(tmp: Path) -> dict[str, float]:
    """Training throughput (target pixels per second) on a random 512 x 512 image."""
    rng = np.random.default_rng(2)
    image = rng.normal(size=(BANDS, 512, 512)).astype(np.float32)
    labels = rng.integers(1, N_CLASSES + 1, (512, 512)).astype(np.uint16)
    split = np.ones((512, 512), np.uint8)
    split[:, 384:] = 2
    rates = {}
    for name in ("fcn", "patch_cnn"):
        res = train(
            image,
            labels,
            split,
            model_name=name,
            checkpoint_path=tmp / f"{name}.pt",
            epochs=2,
            iters_per_epoch=10,
            batch_size=8,
            crop=128,
            val_max_tiles=1,
        )
        rates[name] = res.train_pixels_per_second
        print(f"  train {name:9s} {res.train_pixels_per_second / 1e3:8.1f} kpx/s", flush=True)
    return rates


def child_peak_rss(tmp: Path, side: int) -> dict[str, float]:
    """Map a side x side scene in a fresh process; its own peak RSS (MiB) and speed.

    The peak is the child's ``VmHWM``: unlike ``ru_maxrss``, which Linux carries across
    ``execve`` from the parent, it only counts the child's own address space.
    """
    image = write_scene(tmp / f"rss_{side}.tif", side)
    here, out = str(Path(__file__).parent), str(tmp / f"rss_out_{side}")
    code = (
        f"import resource, sys, json; sys.path.insert(0, {here!r});"
        "from bench_mapping import loaded; from iota2_spot_s2.inference import predict_map;"
        f"r = predict_map(loaded('fcn'), {str(image)!r}, {out!r}, write_proba=True,"
        " progress=False);"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0];"
        "print(json.dumps({'rss_mib': int(hwm.split()[1]) / 1024,"
        " 'mpx_s': r.pixels_per_second / 1e6}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    image.unlink()
    return result


def main() -> None:
    """Run every benchmark and print the figures (and a JSON summary)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=float, nargs="*", default=[1, 16, 100], help="Mpx")
    parser.add_argument("--map-side", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (--only-ratio)")
    parser.add_argument("--tiles", type=int, nargs="+", default=[512, DEFAULT_TILE],
                        help="tile sizes (--only-ratio)")  # fmt: skip
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES),
                        help="numeric options (--only-ratio)")  # fmt: skip
    parser.add_argument("--only-rss", action="store_true", help="run part [4] only")
    parser.add_argument(
        "--only-core", action="store_true", help="FCN whole-window pass vs forward_core only"
    )
    parser.add_argument(
        "--only-ratio",
        action="store_true",
        help="run part [1] for fcn only: end to end vs the bare network",
    )
    args = parser.parse_args()
    if args.only_core:
        print(f"[core] fcn forward on one read window, {args.rounds} interleaved rounds")
        bench_core_forward(max(args.rounds, 3), tuple(args.tiles))
        return
    if args.only_ratio:
        with tempfile.TemporaryDirectory() as name:
            print(f"[1] fcn end to end on {args.map_side}x{args.map_side} px vs the bare net, "
                  f"{args.rounds} interleaved rounds, tiles {args.tiles}")  # fmt: skip
            figures = bench_mapping(Path(name), args.map_side, ("fcn",), args.rounds,
                                    tuple(args.tiles), tuple(args.modes))  # fmt: skip
            print(json.dumps(figures, indent=2))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; untrained weights")
    summary: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        print("[4] peak RSS of predict_map (fcn, fp32 + channels_last, probabilities on)")
        rss = {}
        for mpx in args.sizes:
            side = int(round((mpx * 1e6) ** 0.5))
            rss[f"{side * side / 1e6:.0f} Mpx"] = r = child_peak_rss(tmp, side)
            print(
                f"  {side}x{side}: peak RSS {r['rss_mib']:.0f} MiB, {r['mpx_s']:.2f} Mpx/s",
                flush=True,
            )
        summary["peak_rss"] = rss
        if args.only_rss:
            print(json.dumps(summary, indent=2))
            return
        print(f"[1] predict_map end to end on {args.map_side}x{args.map_side} px (Mpx/s)")
        summary["mapping_mpx_s"] = bench_mapping(tmp, args.map_side)
        print("[2] sliding window vs dense (px/s, same run)")
        rates = bench_per_pixel()
        summary["per_pixel_px_s"] = rates
        print(
            f"  fcn / per-pixel = {rates['fcn'] / rates['patch_cnn per-pixel']:.0f}x, "
            f"dense / per-pixel = {rates['patch_cnn dense'] / rates['patch_cnn per-pixel']:.0f}x"
        )
        print("[3] training throughput")
        summary["train_px_s"] = bench_training(tmp)
    print(f"parent peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
