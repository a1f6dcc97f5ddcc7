"""REAL VHR benchmark: ``fuse-classify`` fcn and patch_cnn on Dubai aerial images, areas held out.

Data: ``../shared/data/dubai_aerial`` (72 real RGB parts of 8 separate areas ``tile_1..8``,
dense 5-class labels, 99 Mpx; read its README: not georeferenced, public-domain per its
publisher, not to be redistributed). ``prepare`` lays every area's 9 parts on a 3 x 3 grid
(16 px gaps) and packs the 8 areas into one GeoTIFF mosaic (3 bands uint8, an *assumed* 1 m grid
in EPSG:32640 since the source has none), a label raster (codes 1 building, 2 land, 3 road,
4 vegetation, 5 water; 0 unlabelled and gaps) and a split raster by whole areas:

- test: ``tile_8`` (28.6 Mpx), also written alone as ``test_image.tif`` / ``test_labels.tif``;
- validation: ``tile_1`` + ``tile_3`` (8.7 Mpx; every class present);
- train: ``tile_2, 4, 5, 6, 7`` (61.8 Mpx).

``run`` trains each model through the CLI only (``fuse-classify train --split``, ``predict``,
``evaluate --bootstrap-block``) with the same budget, and writes ``dubai_results.json`` and a
Markdown table. Usage::

    python experiments/dubai_real.py prepare --out dubai_out
    python experiments/dubai_real.py run --out dubai_out --minutes 12 --models fcn,patch_cnn
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dubai_aerial"
CLASSES = {1: "building", 2: "land", 3: "road", 4: "vegetation", 5: "water"}
SUBSET = {"tile_8": 3, "tile_1": 2, "tile_3": 2}  # every other area trains (1)
GAP = 16
CRS = "EPSG:32640"  # assumed: the source images carry no georeference
WIDTH = 12_100


def _read(path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            return src.read()


def area_block(area: Path) -> tuple[np.ndarray, np.ndarray]:
    """The 9 parts of one area on a 3 x 3 grid: ``(3, H, W)`` uint8 image, ``(H, W)`` labels."""
    parts = [(_read(p), _read(area / "labels_idx" / p.with_suffix(".png").name)[0])
             for p in sorted((area / "images").glob("*.jpg"))]  # fmt: skip
    rows = [parts[i : i + 3] for i in range(0, len(parts), 3)]
    heights = [max(p[0].shape[1] for p in row) for row in rows]
    widths = [max(rows[r][c][0].shape[2] for r in range(len(rows))) for c in range(3)]
    image = np.zeros((3, sum(heights) + GAP * 2, sum(widths) + GAP * 2), np.uint8)
    labels = np.zeros(image.shape[1:], np.uint8)
    y = 0
    for r, row in enumerate(rows):
        x = 0
        for c, (img, lab) in enumerate(row):
            image[:, y : y + img.shape[1], x : x + img.shape[2]] = img[:3]
            labels[y : y + lab.shape[0], x : x + lab.shape[1]] = lab
            x += widths[c] + GAP
        y += heights[r] + GAP
    return image, labels


def pack(blocks: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, tuple[int, int]]:
    """Shelf packing of the area blocks (tallest first) into rows of at most ``WIDTH`` px."""
    order = sorted(blocks, key=lambda k: -blocks[k][1].shape[0])
    places, x, y, shelf = {}, 0, 0, 0
    for name in order:
        h, w = blocks[name][1].shape
        if x and x + w > WIDTH:
            x, y, shelf = 0, y + shelf + GAP, 0
        places[name] = (y, x)
        x, shelf = x + w + GAP, max(shelf, h)
    return places


def _write(path: Path, array: np.ndarray, transform: Affine, nodata: int | None = None) -> None:
    array = array if array.ndim == 3 else array[None]
    profile = {"driver": "GTiff", "width": array.shape[2], "height": array.shape[1],
               "count": array.shape[0], "dtype": "uint8", "crs": CRS, "transform": transform,
               "compress": "DEFLATE", "tiled": True, "blockxsize": 512, "blockysize": 512,
               "BIGTIFF": "IF_SAFER", "nodata": nodata}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array)


def prepare(out: Path) -> None:
    """Write the mosaic, labels, split and the test area alone (module docstring)."""
    out.mkdir(parents=True, exist_ok=True)
    blocks = {a.name: area_block(a) for a in sorted(DATA.glob("tile_*"))}
    places = pack(blocks)
    height = max(places[k][0] + blocks[k][1].shape[0] for k in blocks)
    width = max(places[k][1] + blocks[k][1].shape[1] for k in blocks)
    image = np.zeros((3, height, width), np.uint8)
    labels = np.zeros((height, width), np.uint8)
    split = np.zeros((height, width), np.uint8)
    areas = {}
    for name, (img, lab) in blocks.items():
        y, x = places[name]
        h, w = lab.shape
        image[:, y : y + h, x : x + w] = img
        labels[y : y + h, x : x + w] = lab
        split[y : y + h, x : x + w] = np.where(lab > 0, SUBSET.get(name, 1), 0)
        areas[name] = {"row": y, "col": x, "height": h, "width": w,
                       "subset": {1: "train", 2: "validation", 3: "test"}[SUBSET.get(name, 1)],
                       "labelled_pixels": int((lab > 0).sum())}  # fmt: skip
    transform = Affine(1.0, 0.0, 500_000.0, 0.0, -1.0, 2_800_000.0)
    _write(out / "mosaic.tif", image, transform)
    _write(out / "labels.tif", labels, transform, nodata=0)
    _write(out / "split.tif", split, transform, nodata=0)
    y, x = places["tile_8"]
    h, w = blocks["tile_8"][1].shape
    test_transform = transform * Affine.translation(x, y)
    _write(out / "test_image.tif", blocks["tile_8"][0], test_transform)
    _write(out / "test_labels.tif", blocks["tile_8"][1], test_transform, nodata=0)
    meta = {"shape": [height, width], "mosaic_mpx": height * width / 1e6, "areas": areas,
            "classes": CLASSES, "crs_assumed": CRS}  # fmt: skip
    (out / "layout.json").write_text(json.dumps(meta, indent=2))
    print(json.dumps({k: meta[k] for k in ("shape", "mosaic_mpx")}))


def _cli(*args: str) -> None:
    command = [sys.executable, "-m", "iota2_spot_s2.cli", *args]
    print("$ fuse-classify " + " ".join(args), flush=True)
    subprocess.run(command, check=True)


def run(out: Path, minutes: float, models: list[str], seed: int) -> None:
    """Train, map the test area and score each model through the CLI; write the results."""
    results = out / "dubai_results.json"
    rows = json.loads(results.read_text()) if results.is_file() else {}
    for name in models:
        ckpt = out / f"{name}.pt"
        _cli("train", "--image", str(out / "mosaic.tif"), "--reference", str(out / "labels.tif"),
             "--split", str(out / "split.tif"), "--model", name, "--minutes", str(minutes),
             "--seed", str(seed), "--out", str(ckpt))  # fmt: skip
        _cli("predict", "--checkpoint", str(ckpt), "--image", str(out / "test_image.tif"),
             "--out", str(out / f"maps_{name}"), "--prefix", name)  # fmt: skip
        _cli("evaluate", "--map", str(out / f"maps_{name}" / f"{name}_classes.tif"),
             "--reference", str(out / "test_labels.tif"), "--out", str(out / f"eval_{name}"),
             "--bootstrap-block", "512",
             "--title", f"{name}: REAL Dubai aerial, test area tile_8 (held out)")  # fmt: skip
        scores = json.loads((out / f"eval_{name}" / "scores.json").read_text())
        curve = json.loads((out / f"{name}_curve.json").read_text())
        rows[name] = {"scores": scores, "curve": curve}
        results.write_text(json.dumps(rows, indent=2))  # after each model: nothing lost
    print(table(rows))


def table(rows: dict) -> str:
    """Markdown table: OA, kappa, mean F1 with 95 % block-bootstrap intervals, class F1, budget."""
    names = " | ".join(f"F1 {c}" for c in CLASSES.values())
    lines = [f"| model | OA | kappa | mean F1 | {names} | steps | longest val pass (s) |",
             "|" + "---|" * (6 + len(CLASSES))]  # fmt: skip
    for name, row in rows.items():
        report = row["scores"]
        s, boot = report["scores"], report.get("bootstrap", {})

        def cell(key: str, value: float, boot: dict = boot) -> str:
            lo, hi = boot.get(key, [float("nan")] * 2)
            return f"{value:.3f} [{lo:.3f}, {hi:.3f}]"

        f1 = " | ".join(f"{v:.3f}" for v in s["f1"])
        rounds = row["curve"]["rounds"]
        val = max((r["val_seconds"] or 0) for r in rounds) if rounds else 0.0
        lines.append(f"| {name} | {cell('overall_accuracy', s['overall_accuracy'])} | "
                     f"{cell('kappa', s['kappa'])} | {cell('mean_f1', s['mean_f1'])} | {f1} | "
                     f"{rounds[-1]['step'] if rounds else 0} | {val:.1f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    """``prepare`` or ``run`` (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("prepare", "run", "table"))
    parser.add_argument("--out", type=Path, default=Path("dubai_out"))
    parser.add_argument("--minutes", type=float, default=12.0)
    parser.add_argument("--models", default="fcn,patch_cnn")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.action == "prepare":
        prepare(args.out)
    elif args.action == "run":
        run(args.out, args.minutes, args.models.split(","), args.seed)
    else:
        print(table(json.loads((args.out / "dubai_results.json").read_text())))


if __name__ == "__main__":
    main()
