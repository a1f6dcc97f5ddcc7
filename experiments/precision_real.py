"""REAL data: what bf16 and fp16 autocast change in an FCN's map, against fp32.

Data: the Dubai aerial benchmark of ``experiments/dubai_real.py`` (REAL RGB images, dense
labels; its README and licence in ``../shared/data/dubai_aerial``). Run ``dubai_real.py prepare``
and ``run --models fcn`` first: this script reads their ``fcn.pt`` and the held-out area
``tile_8`` (``test_image.tif``, ``test_labels.tif``; never seen in training or validation).

Each precision maps the area through :func:`~iota2_spot_s2.inference.predict_map` (the tiles,
margins and COGs of ``fuse-classify predict``), then the script prints, per precision: the pass
speed on this machine, the share of pixels whose class equals the fp32 map's, the largest and
mean probability difference (0-1000 scale of the probability COG), and OA / kappa / mean F1
against the labels. fp16 runs here on the CPU through the library (the CLI refuses it on a
CPU, where it is slow): its *numbers* are what this measures, its speed belongs to GPUs.
Usage::

    python experiments/precision_real.py --out dubai_out [--side 4096]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from iota2_spot_s2.devices import PRECISIONS
from iota2_spot_s2.evaluation.map_scoring import score_map
from iota2_spot_s2.evaluation.metrics import scores
from iota2_spot_s2.inference import predict_map
from iota2_spot_s2.training import load_model


def crop(src: Path, dst: Path, side: int) -> Path:
    """The centred ``side`` x ``side`` window of ``src`` as a GeoTIFF (the whole file if larger)."""
    with rasterio.open(src) as ds:
        h, w = min(side, ds.height), min(side, ds.width)
        win = Window((ds.width - w) // 2, (ds.height - h) // 2, w, h)
        profile = ds.profile | {"height": h, "width": w, "transform": ds.window_transform(win)}
        with rasterio.open(dst, "w", **profile) as out:
            out.write(ds.read(window=win))
    return dst


def main() -> None:
    """Map the held-out area in each precision and compare the maps."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="dubai_real.py's output folder")
    parser.add_argument("--side", type=int, default=0, help="centred crop side (0: whole area)")
    args = parser.parse_args()
    work = args.out / "precision"
    work.mkdir(exist_ok=True)
    image, labels = args.out / "test_image.tif", args.out / "test_labels.tif"
    if args.side:
        image = crop(image, work / f"image_{args.side}.tif", args.side)
        labels = crop(labels, work / f"labels_{args.side}.tif", args.side)
    model = load_model(args.out / "fcn.pt")
    codes = [int(c) for c in np.asarray(model.class_codes).tolist()]
    maps, rows = {}, {}
    for precision in PRECISIONS:
        out = predict_map(model, str(image), work / precision, write_proba=True,
                          precision=precision, prefix="fcn")  # fmt: skip
        maps[precision] = out
        scored = score_map(labels, out.class_map, codes)  # unmapped pixels count as errors
        score = scores(scored.matrix, scored.scored_codes)
        rows[precision] = {"mpx_per_s": out.pixels_per_second / 1e6,
                           "oa": score.overall_accuracy, "kappa": score.kappa,
                           "mean_f1": score.mean_f1}  # fmt: skip
    with rasterio.open(maps["fp32"].class_map) as ds:
        ref_classes = ds.read(1)
    with rasterio.open(maps["fp32"].proba) as ds:
        ref_proba = ds.read().astype(np.int32)
    for precision in PRECISIONS:
        with rasterio.open(maps[precision].class_map) as ds:
            rows[precision]["class_agreement"] = float((ds.read(1) == ref_classes).mean())
        with rasterio.open(maps[precision].proba) as ds:
            diff = np.abs(ds.read().astype(np.int32) - ref_proba)
        rows[precision]["proba_max_diff"] = int(diff.max())
        rows[precision]["proba_mean_diff"] = float(diff.mean())
    print(f"REAL Dubai aerial, held-out tile_8 ({ref_classes.shape[0]} x {ref_classes.shape[1]} px)"
          ", FCN from dubai_real.py; agreement and differences against the fp32 map")  # fmt: skip
    print("| precision | pass Mpx/s | class = fp32 | proba diff max / mean (of 1000) | OA | kappa "
          "| mean F1 |\n|---|---|---|---|---|---|---|")  # fmt: skip
    for precision, r in rows.items():
        print(f"| {precision} | {r['mpx_per_s']:.2f} | {100 * r['class_agreement']:.2f} % | "
              f"{r['proba_max_diff']} / {r['proba_mean_diff']:.2f} | {r['oa']:.4f} | "
              f"{r['kappa']:.4f} | {r['mean_f1']:.4f} |")  # fmt: skip
    (work / "precision_results.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
