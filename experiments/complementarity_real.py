"""Class complementarity of Planet (VHR-like, 3 m) and Sentinel-2 on REAL DynamicEarthNet fixtures.

The five 16 x 16 px samples of ``../shared/data/fusion_fixtures/dynamicearthnet`` are mapped by
leave-one-sample-out random forests exactly as in ``fusion_fixtures_real.py`` (each sample
predicted by forests trained on the four others; late fusion of their probabilities). The five
held-out predictions are laid side by side (16 x 80 px) and analysed by
:func:`iota2_spot_s2.analysis.complementarity.analyse` with one bootstrap block per sample, so
the interval reflects sample-to-sample variation, never pixel resampling.

TINY REAL DATA (1280 px, 5 scenes): the report checks that the analyzer runs on real maps and
states its uncertainty; with 5 blocks no verdict can be expected to be significant. Usage::

    python experiments/complementarity_real.py --out complementarity_real_out
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from fusion_fixtures_real import CLASS_NAMES, CODES, SOURCES, load_samples, run_fold

from iota2_spot_s2.analysis.complementarity import Comparison, Options, Strategy, analyse
from iota2_spot_s2.analysis.complementarity_report import console_table, write_complementarity


def main() -> None:
    """Run the folds, mosaic the held-out maps, write and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("complementarity_real_out"))
    parser.add_argument("--rule", default="dempster_shafer", help="late-fusion rule analysed")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    samples = load_samples()
    folds = [run_fold(samples, k, args.seed) for k in range(len(samples))]
    labels = np.concatenate([s.label for s in samples], axis=1)
    names = [f"{SOURCES[0]}-rf", f"{SOURCES[1]}-rf", f"late-{args.rule}"]
    maps = {n: np.concatenate([f["maps"][n] for f in folds], axis=1) for n in names}
    choice = np.concatenate([f["results"][args.rule].choice for f in folds], axis=1)
    comp = Comparison(
        reference=labels, codes=list(CODES), pixel_size_m=3.0, names=dict(CLASS_NAMES),
        strategies=[Strategy(names[0], frozenset({SOURCES[0]}), maps[names[0]]),
                    Strategy(names[1], frozenset({SOURCES[1]}), maps[names[1]]),
                    Strategy(names[2], frozenset(SOURCES), maps[names[2]], choice)],
    )  # fmt: skip
    block = samples[0].label.shape[0]
    result = analyse(comp, Options(block_px=block, n_boot=2000, seed=args.seed))
    print(console_table(result, "real"))
    paths = write_complementarity(
        result, args.out, data_kind="real",
        title=f"DynamicEarthNet fixtures, leave-one-sample-out, {args.rule} fusion",
    )  # fmt: skip
    print(f"report {paths['html']}")


if __name__ == "__main__":
    main()
