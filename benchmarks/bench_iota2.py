"""Speed and peak memory of the iota2 routes' raster work (figures, not tests).

On synthetic rasters (content does not change the cost): a 4-band uint16 SPOT image of
``--spot-px`` x ``--spot-px`` pixels at 1.5 m, its 10-class FCN probabilities (uint16 0-1000),
and an iota2-like classification on the 10 m grid of the same ground. Measured, each in a fresh
process so that its peak RSS (VmHWM) is its own:

1. ``texture``: :func:`iota2_spot_s2.iota2.features.write_texture` (the ``SPOT_TEXTURE``
   userFeat raster), in SPOT pixels per second;
2. ``aggregate``: the step's 1.5 m probabilities averaged onto the 10 m tile grid in iota2's
   formats (``fuse_rasters`` one-source ``mean``, ``encoding="iota2"``), in SPOT pixels per s;
3. ``fuse-<rule>``: decision-level fusion of the two 10 m sources (probability rule ``mean``,
   label rule ``dempster_shafer_otb``), in 10 m pixels per second.

The FCN inference itself is ``benchmarks/bench_mapping.py``'s business.

Usage::

    python benchmarks/bench_iota2.py                  # 6000 x 6000 SPOT px (9 km), ~2 minutes
    python benchmarks/bench_iota2.py --spot-px 12000  # 18 km
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio

from iota2_spot_s2.grid import Grid

K = 10
CODES = list(range(1, K + 1))


def _write(path: Path, grid: Grid, array_fn, count: int, dtype: str) -> None:  # type: ignore[no-untyped-def]
    profile = grid.profile(driver="GTiff", count=count, dtype=dtype, tiled=True, compress="ZSTD")
    with rasterio.open(path, "w", **profile) as dst:
        for win in grid.windows(1024):
            dst.write(array_fn(win), window=win)


def make_inputs(root: Path, spot_px: int) -> dict[str, str]:
    """Synthetic SPOT image, SPOT probabilities, iota2 classification (seeded)."""
    rng = np.random.default_rng(0)
    spot = Grid.from_bounds("EPSG:2154", 500000, 6300000 - 1.5 * spot_px,
                            500000 + 1.5 * spot_px, 6300000, 1.5)  # fmt: skip
    tile = spot.with_resolution(10.0)

    def proba(win, k=K):  # type: ignore[no-untyped-def]
        p = rng.random((k, int(win.height), int(win.width)))
        return np.rint(1000 * p / p.sum(axis=0)).astype(np.uint16)

    def shape(win, count):  # type: ignore[no-untyped-def]
        return (count, int(win.height), int(win.width))

    paths = {
        name: root / f"{name}.tif"
        for name in ("spot", "spot_proba", "iota2_proba", "iota2_classes")
    }
    dn = lambda w: rng.integers(100, 3000, shape(w, 4), dtype=np.uint16)  # noqa: E731
    labels = lambda w: rng.integers(1, K + 1, shape(w, 1), dtype=np.uint8)  # noqa: E731
    _write(paths["spot"], spot, dn, 4, "uint16")
    _write(paths["spot_proba"], spot, proba, K, "uint16")
    _write(paths["iota2_proba"], tile, proba, K, "uint16")
    _write(paths["iota2_classes"], tile, labels, 1, "uint8")
    with rasterio.open(paths["spot_proba"], "r+") as dst:
        for band, code in enumerate(CODES, start=1):
            dst.update_tags(band, code=str(code))
    return {k: str(v) for k, v in paths.items()}


def run_one(task: str, paths: dict[str, str], out: str) -> dict[str, float]:
    """One measurement in this process."""
    from iota2_spot_s2.fusion import fuse_rasters
    from iota2_spot_s2.iota2.features import write_texture
    from iota2_spot_s2.sensors import open_spot

    spot_grid = Grid.from_raster(paths["spot"])
    tile = spot_grid.with_resolution(10.0)
    tic = time.perf_counter()
    if task == "texture":
        write_texture(open_spot(paths["spot"]), tile, Path(out) / "tex.tif", Path(paths["spot"]))
        pixels = spot_grid.width * spot_grid.height
    elif task == "aggregate":
        fuse_rasters([paths["spot_proba"]], out, codes=CODES, rule="mean", grid=tile,
                     kinds=("classes", "confidence", "proba"), encoding="iota2")  # fmt: skip
        pixels = spot_grid.width * spot_grid.height
    else:
        rule = task.removeprefix("fuse-")
        label = rule == "dempster_shafer_otb"
        sources = [paths["iota2_classes"]] * 2 if label else [paths["iota2_proba"]] * 2
        cm = np.eye(K) * 50 + 5
        fuse_rasters(sources, out, codes=CODES, rule=rule, confusions=[cm, cm],
                     encoding="iota2", prefix=rule)  # fmt: skip
        pixels = tile.width * tile.height
    seconds = time.perf_counter() - tic
    with open("/proc/self/status") as status:
        hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    return {"seconds": seconds, "mpx_per_s": pixels / seconds / 1e6, "peak_rss_mib": hwm / 1024}


def main() -> None:
    """Print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spot-px", type=int, default=6000)
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--paths", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.task:  # child process
        print(json.dumps(run_one(args.task, json.loads(args.paths), args.out)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_inputs(Path(tmp), args.spot_px)
        tile_px = int(np.ceil(args.spot_px * 1.5 / 10))
        print(f"SPOT {args.spot_px} x {args.spot_px} px at 1.5 m -> tile grid {tile_px} x "
              f"{tile_px} px at 10 m, {K} classes (synthetic rasters)\n")  # fmt: skip
        print("| task | seconds | Mpx/s | peak RSS (MiB) |\n|---|---|---|---|")
        for task in ("texture", "aggregate", "fuse-mean", "fuse-dempster_shafer_otb"):
            out = Path(tmp) / task
            done = subprocess.run(
                [sys.executable, __file__, "--task", task, "--paths", json.dumps(paths),
                 "--out", str(out)], capture_output=True, text=True, check=True,
            )  # fmt: skip
            r = json.loads(done.stdout.strip().splitlines()[-1])
            unit = "SPOT" if task in ("texture", "aggregate") else "10 m"
            print(f"| {task} ({unit} px) | {r['seconds']:.1f} | {r['mpx_per_s']:.2f} | "
                  f"{r['peak_rss_mib']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
