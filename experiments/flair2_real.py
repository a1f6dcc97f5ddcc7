"""Train ``patch_cnn`` and ``fcn`` on REAL FLAIR-2 aerial patches and score them on another patch.

Data: the five IGN FLAIR-2 patches in ``../shared/data/flair2_aerial`` (512 x 512 px at 0.2 m,
R, G, B, NIR + elevation; the elevation band is dropped so that the input looks like a 4-band
VHR product). The patches keep their official FLAIR split: three *train* patches are placed side
by side with the *validation* patch as the training area, split 80/20 into train/validation by
spatially disjoint 64 px blocks (the official validation patch alone holds 3 classes, too few to
select a model on), and the *test* patch (084558, another domain) is only used for the final
scores. This is very little data (about 1 Mpx of labels,
one test patch of 0.26 Mpx with 4 classes): the figures say how the chain behaves on real
imagery, not how well the models would do with a real training set.

Usage::

    python experiments/flair2_real.py --minutes 4 --out flair2_out
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import rasterio

from iota2_spot_s2.evaluation import confusion_matrix, scores, write_report
from iota2_spot_s2.inference import predict_array
from iota2_spot_s2.reference import split_blocks
from iota2_spot_s2.training import load_model, train

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "flair2_aerial"
TRAIN_IDS = ("036294", "034217", "050549")
VAL_ID, TEST_ID = "000473", "084558"


def read_patch(patch_id: str) -> tuple[np.ndarray, np.ndarray]:
    """R, G, B, NIR as float32 and the raw FLAIR code mask of one patch."""
    with rasterio.open(DATA / f"IMG_{patch_id}.tif") as src:
        image = src.read([1, 2, 3, 4]).astype(np.float32)
    with rasterio.open(DATA / f"MSK_{patch_id}.tif") as src:
        mask = src.read(1).astype(np.uint16)
    return image, mask


def training_area(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train + validation patches side by side, split 80/20 by 64 px blocks (1 train, 2 val)."""
    parts = [read_patch(i) for i in (*TRAIN_IDS, VAL_ID)]
    image = np.concatenate([p[0] for p in parts], axis=2)
    labels = np.concatenate([p[1] for p in parts], axis=1)
    split = split_blocks(labels, block_size=64, seed=seed, fractions=(0.8, 0.2, 0.0))
    return image, labels, split


def main() -> None:
    """Train both models for the given budget, score them on the test patch, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="training budget per model")
    parser.add_argument("--out", type=Path, default=Path("flair2_out"))
    parser.add_argument("--models", default="patch_cnn,fcn")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    image, labels, split = training_area(args.seed)
    codes = sorted(int(c) for c in np.unique(labels) if c)
    test_image, test_labels = read_patch(TEST_ID)
    rows = []
    for name in args.models.split(","):
        result = train(
            image,
            labels,
            split,
            model_name=name,
            class_codes=codes,
            checkpoint_path=args.out / f"{name}.pt",
            max_minutes=args.minutes,
            epochs=1000,
            patience=1000,
            crop=128,
            class_balanced=True,
            seed=args.seed,
        )
        model = load_model(result.checkpoint_path)
        proba = predict_array(model, test_image, tile=256)
        produced = np.asarray(codes)[proba.argmax(0)]
        cm = confusion_matrix(test_labels, produced, codes)
        s = scores(cm, codes)
        title = f"{name} — REAL FLAIR-2 aerial, test patch {TEST_ID} (FLAIR test split)"
        write_report(s, cm, codes, args.out / name, title=title)
        present = [c for c, n in zip(codes, s.support, strict=True) if n > 0]
        rows.append(
            {
                "model": name,
                "OA": s.overall_accuracy,
                "kappa": s.kappa,
                "mean_F1": s.mean_f1,
                "train_s": result.train_seconds,
                "best_epoch": result.best_epoch,
                "steps": result.history[-1]["step"] if result.history else 0,
                "val_mean_F1": result.best_val_mean_f1,
                "per_class_F1": {c: s.f1[codes.index(c)] for c in present},
            }
        )
    print(json.dumps(rows, indent=2))
    (args.out / "flair2_scores.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
