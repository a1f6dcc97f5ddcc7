"""Peak memory (RSS) of scoring and of ``run`` without training, at growing scene sizes.

DESIGN.md: memory must not grow with the scene. This script simulates seeded scenes of
1, 16 and 100 Mpx (square, EPSG:2154, 1.5 m pixels) and measures, each in a fresh subprocess:

- ``evaluate``: ``fuse-classify evaluate``'s library call
  (:func:`iota2_spot_s2.pipeline.evaluate_from_files`) of a class map against a label raster,
  restricted to the test blocks of a split raster;
- ``run``: what ``fuse-classify run`` does on a tile besides training: labels + split from a
  vector reference (:func:`~iota2_spot_s2.pipeline.prepared.prepare_reference`), mapping with a
  tiny pre-made FCN checkpoint (:func:`~iota2_spot_s2.inference.predict_map`) and the chain's
  scoring of the map on the test blocks (``pipeline.chain._score``). The high-water mark is read
  after each phase, so the phase where memory grows is visible.

The child reads its own peak (``VmHWM`` in ``/proc/self/status``, i.e. ``ru_maxrss``) after its
imports and after each phase; the parent prints the figures and the 100 Mpx / 1 Mpx ratio.
Figures depend on the machine (shared CPUs, GDAL cache); no test asserts them.

Usage::

    python benchmarks/bench_memory.py [--sizes 1 16 100] [--only evaluate run] [--keep DIR]
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

PIXEL_M = 1.5
ORIGIN = (700_000.0, 6_600_000.0)  # Lambert-93
CELL = 50  # side of the reference squares, pixels
CODES = (1, 2, 3, 4, 5)
WINDOW = 1024


def _hwm_mib() -> float:
    """Peak resident memory of this process so far, MiB (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _grid(side: int):  # noqa: ANN202 - Grid, imported lazily
    from affine import Affine
    from rasterio.crs import CRS

    from iota2_spot_s2.grid import Grid

    transform = Affine(PIXEL_M, 0, ORIGIN[0], 0, -PIXEL_M, ORIGIN[1])
    return Grid(CRS.from_epsg(2154), transform, side, side)


def _cell_codes(side: int, seed: int) -> np.ndarray:
    """Code of each reference square (0 = unlabelled, about a third)."""
    n = -(-side // CELL)
    rng = np.random.default_rng([seed, side])
    codes = rng.integers(1, len(CODES) + 1, size=(n, n)).astype(np.uint8)
    codes[rng.random((n, n)) < 0.3] = 0
    return codes


def _labels_window(cells: np.ndarray, row: int, col: int, h: int, w: int) -> np.ndarray:
    rows = (np.arange(row, row + h) // CELL)[:, None]
    cols = (np.arange(col, col + w) // CELL)[None, :]
    return cells[rows, cols]


def make_scene(out: Path, side: int, seed: int = 0) -> dict[str, str]:
    """Write image, vector reference, labels, split, a noisy class map and a tiny checkpoint."""
    import rasterio
    import shapely

    from iota2_spot_s2.grid import iter_windows

    out.mkdir(parents=True, exist_ok=True)
    grid, cells = _grid(side), _cell_codes(side, seed)
    rng = np.random.default_rng([seed, side, 1])
    paths = {k: str(out / f"{k}.tif") for k in ("image", "labels", "split", "map")}
    base = grid.profile(
        driver="GTiff", tiled=True, blockxsize=256, blockysize=256, compress="DEFLATE"
    )
    blocks = max(1, side // 256)
    block_subset = rng.choice([1, 2, 3], size=(blocks + 1, blocks + 1), p=[0.64, 0.16, 0.2])
    with (
        rasterio.open(paths["image"], "w", **base, count=4, dtype="uint16") as img,
        rasterio.open(paths["labels"], "w", **base, count=1, dtype="uint8", nodata=0) as lab,
        rasterio.open(paths["split"], "w", **base, count=1, dtype="uint8", nodata=0) as spl,
        rasterio.open(paths["map"], "w", **base, count=1, dtype="uint8", nodata=0) as cls,
    ):
        for win in iter_windows(side, side, WINDOW):
            r, c, h, w = win.row_off, win.col_off, win.height, win.width
            labels = _labels_window(cells, r, c, h, w)
            bands = labels[None].astype(np.float32) * np.array([300, 500, 700, 900])[
                :, None, None
            ] + rng.normal(1000, 50, (4, h, w))
            img.write(bands.astype(np.uint16), window=win)
            lab.write(labels, 1, window=win)
            rows = (np.arange(r, r + h) // 256)[:, None]
            cols = (np.arange(c, c + w) // 256)[None, :]
            spl.write(
                np.where(labels > 0, block_subset[rows, cols], 0).astype(np.uint8), 1, window=win
            )
            noisy = np.where(rng.random((h, w)) < 0.2, rng.integers(0, 6, (h, w)), labels)
            cls.write(noisy.astype(np.uint8), 1, window=win)
    _write_vector(out / "reference.gpkg", grid, cells, shapely)
    paths["vector"] = str(out / "reference.gpkg")
    paths["checkpoint"] = str(_write_checkpoint(out / "tiny.pt"))
    return paths


def _write_vector(path: Path, grid, cells: np.ndarray, shapely) -> None:  # noqa: ANN001
    import pyogrio

    iy, ix = np.nonzero(cells)
    x0 = grid.transform.c + ix * CELL * PIXEL_M
    y0 = grid.transform.f - iy * CELL * PIXEL_M
    side = CELL * PIXEL_M
    geoms = shapely.to_wkb(shapely.box(x0, y0 - side, x0 + side, y0))
    pyogrio.raw.write(
        path,
        geoms,
        [cells[iy, ix].astype(np.int32)],
        ["code"],
        driver="GPKG",
        crs=grid.crs.to_wkt(),
        geometry_type="Polygon",
    )


def _write_checkpoint(path: Path) -> Path:
    """A tiny untrained FCN checkpoint (one level of 4 channels): mapping costs little CPU."""
    import torch

    from iota2_spot_s2.models import build_model

    torch.manual_seed(0)
    kwargs = {"widths": [4], "bottleneck_blocks": 0}
    model = build_model("fcn", 4, len(CODES), **kwargs)
    state = model.state_dict()
    torch.save(
        {
            "model_name": "fcn",
            "model_kwargs": kwargs,
            "in_channels": 4,
            "n_classes": len(CODES),
            "class_codes": list(CODES),
            "band_mean": [2000.0] * 4,
            "band_std": [1000.0] * 4,
            "state_dict": state,
            "best_state_dict": state,
            "epoch": 0,
            "best_val_mean_f1": 0.0,
            "history": [],
            "config": {},
        },
        path,
    )
    return path


def child_evaluate(paths: dict[str, str], out: Path) -> dict[str, float]:
    """``fuse-classify evaluate`` on the test blocks; peak after imports and at the end."""
    from iota2_spot_s2.pipeline import evaluate_from_files

    marks = {"imports": _hwm_mib()}
    evaluate_from_files(
        reference=Path(paths["labels"]),
        produced=Path(paths["map"]),
        out_dir=out / "evaluation",
        split=Path(paths["split"]),
        subset="test",
    )
    marks["evaluate"] = _hwm_mib()
    return marks


def child_run(paths: dict[str, str], out: Path) -> dict[str, float]:
    """Reference preparation, mapping and the chain's scoring, peak after each phase."""
    from iota2_spot_s2.inference import predict_map
    from iota2_spot_s2.pipeline.chain import _score
    from iota2_spot_s2.pipeline.prepared import prepare_reference
    from iota2_spot_s2.pipeline.strategies import StrategyOutput, TileContext
    from iota2_spot_s2.sensors import open_spot
    from iota2_spot_s2.training import load_model

    marks = {"imports": _hwm_mib()}
    image = open_spot(paths["image"])
    prepared = prepare_reference(
        image, Path(paths["vector"]), "code", out / "reference", block_m=256 * PIXEL_M, seed=0
    )
    marks["prepare_reference"] = _hwm_mib()
    maps = predict_map(
        load_model(paths["checkpoint"]), image, out / "maps", tile=512, progress=False
    )
    marks["predict_map"] = _hwm_mib()
    ctx = TileContext("T0", out, image, None, prepared, list(CODES), None, None, out / "bench.cfg")  # type: ignore[arg-type]
    _score(ctx, StrategyOutput("spot:fcn", maps.class_map, None), "simulated")
    marks["score"] = _hwm_mib()
    return marks


def _child(args: argparse.Namespace) -> None:
    paths = json.loads(Path(args.dir, "paths.json").read_text())
    out = Path(tempfile.mkdtemp(prefix=f"{args.child}-", dir=args.dir))
    tic = time.perf_counter()
    marks = (child_evaluate if args.child == "evaluate" else child_run)(paths, out)
    marks["seconds"] = time.perf_counter() - tic
    print(json.dumps(marks))


def _measure(kind: str, folder: Path) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", kind, "--dir", str(folder)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Simulate each size once, measure each kind in a fresh process, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 16, 100], help="Mpx")
    parser.add_argument(
        "--only", nargs="+", default=["evaluate", "run"], choices=["evaluate", "run"]
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep the scenes in this folder")
    parser.add_argument("--child", choices=["evaluate", "run"], help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_memory-"))
    results: dict[str, dict[float, dict[str, float]]] = {k: {} for k in args.only}
    for mpx in args.sizes:
        side = int(round((mpx * 1e6) ** 0.5))
        folder = root / f"scene_{side}"
        if not (folder / "paths.json").is_file():
            paths = make_scene(folder, side)
            (folder / "paths.json").write_text(json.dumps(paths))
        for kind in args.only:
            results[kind][mpx] = marks = _measure(kind, folder)
            print(
                f"{kind:9s} {mpx:6g} Mpx ({side}^2): peak RSS MiB "
                + ", ".join(f"{k} {v:.0f}" for k, v in marks.items() if k != "seconds")
                + f"  ({marks['seconds']:.1f} s)",
                flush=True,
            )
    lo, hi = min(args.sizes), max(args.sizes)
    for kind, by_size in results.items():
        if lo != hi:
            last = list(by_size[hi])[-2]  # the final phase's high-water mark
            ratio = by_size[hi][last] / by_size[lo][last]
            print(f"{kind}: peak RSS {hi:g} Mpx / {lo:g} Mpx = {ratio:.2f}")
    print(f"scenes in {root} (simulated data: squares of {CELL} px, 5 classes, 20 % map noise)")


if __name__ == "__main__":
    main()
