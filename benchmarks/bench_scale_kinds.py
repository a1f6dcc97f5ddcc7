"""The other map kinds of ``bench_scale.py``: S2 classifier map, early fusion, late fusion.

One map call per kind on the seeded simulated scene (real formats; SPOT 1.5 m, S2 10 m), each
with the ``scheduler=`` it is given, so that ``bench_scale.py`` times them in one process, on 1
worker and on 2 workers like the SPOT map:

- ``s2_rf``: :func:`~iota2_spot_s2.timeseries.write_s2_maps` of a random forest (trained here on
  the scene's TRAIN pixels, 100 trees, 500 px per class) on the 10 m series;
- ``early_fusion``: :func:`~iota2_spot_s2.inference.paired.predict_early_fusion_map` of an
  untrained early-fusion net (speed does not depend on the weights), probabilities included;
- ``late_mean``: :func:`~iota2_spot_s2.fusion.fuse_rasters` of the early-fusion probabilities
  (1.5 m) and the RF's (10 m, warped window by window) on the SPOT grid, rule ``mean``.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iota2_spot_s2.fusion import fuse_rasters
from iota2_spot_s2.inference.paired import predict_early_fusion_map
from iota2_spot_s2.models import build_model
from iota2_spot_s2.reference import rasterize_reference, split_blocks
from iota2_spot_s2.sensors import open_s2_timeseries, open_spot
from iota2_spot_s2.simulation import generate_scene
from iota2_spot_s2.timeseries import train_s2_classifier, write_s2_maps
from iota2_spot_s2.training.paired import LoadedEarlyFusion

Run = Callable[[Path, Any], None]


def early_fusion_model(codes: list[int], n_dates: int, bands: int) -> LoadedEarlyFusion:
    """An untrained early-fusion net wrapped like a checkpoint (series used as given)."""
    torch.manual_seed(0)
    net = build_model("early_fusion", 4, len(codes), s2_channels=bands, n_dates=n_dates,
                      ratio="20/3").eval()  # fmt: skip
    channels = n_dates * bands
    return LoadedEarlyFusion(
        model=net, class_codes=np.asarray(codes, np.int64), band_mean=np.full(4, 500, np.float32),
        band_std=np.full(4, 200, np.float32), model_name="early_fusion",
        meta={"s2_layout": {"gapfill": "none", "dates": []}},
        s2_mean=np.full(channels, 0.2, np.float32), s2_std=np.full(channels, 0.1, np.float32),
        ratio=Fraction(20, 3),
    )  # fmt: skip


def kind_runs(tmp: Path, size_m: float) -> tuple[dict[str, Run], dict[str, int]]:
    """``{kind: run(out_dir, scheduler)}`` and each kind's pixel count."""
    info = generate_scene(tmp / "scene", size_m=size_m, seed=0)
    series = open_s2_timeseries(info.sensor_data / info.tile)
    spot = open_spot(info.spot_image)
    labels = rasterize_reference(info.reference, info.s2_grid, "code",
                                 layer=info.reference_layer).labels  # fmt: skip
    split = split_blocks(labels, block_size=10, seed=0)
    clf = train_s2_classifier(series, labels, split, kind="rf", class_codes=info.codes, seed=0,
                              max_per_class=500)  # fmt: skip
    early = early_fusion_model(info.codes, series.sizes["time"], series.sizes["band"])
    s2_proba = write_s2_maps(clf, series, tmp / "s2_ref", progress=False)["proba"]
    early_proba = predict_early_fusion_map(early, spot, series, tmp / "early_ref", tile=480,
                                           write_proba=True, progress=False).proba  # fmt: skip
    assert early_proba is not None
    runs: dict[str, Run] = {
        "s2_rf": lambda out, sched: write_s2_maps(
            clf, series, out, progress=False, scheduler=sched
        ),  # fmt: skip
        "early_fusion": lambda out, sched: predict_early_fusion_map(
            early, spot, series, out, tile=480, write_proba=True, progress=False, scheduler=sched
        ),
        "late_mean": lambda out, sched: fuse_rasters(
            [early_proba, s2_proba],
            out,
            codes=info.codes,
            rule="mean",
            grid=info.spot_grid,
            progress=False,
            scheduler=sched,
        ),  # fmt: skip
    }
    spot_px = info.spot_grid.width * info.spot_grid.height
    pixels = {"s2_rf": info.s2_grid.width * info.s2_grid.height, "early_fusion": spot_px,
              "late_mean": spot_px}  # fmt: skip
    return runs, pixels
