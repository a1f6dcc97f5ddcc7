"""Tiled, seamless, bounded-memory inference: a trained model over a whole scene.

- :func:`predict_map` writes COG class map (codes, colour table, nodata 0), confidence (0-100),
  optional probabilities (0-1000, bands in class-code order) and a QGIS ``.qml`` style.
- :func:`predict_array` returns probabilities of an in-memory ``(C, H, W)`` array.

Both use one engine (:mod:`~iota2_spot_s2.inference.engine`) and one tiling
(:mod:`~iota2_spot_s2.inference.tiling`), whose results do not depend on the tile size.
``predict_map(..., scheduler=, workers=)`` runs the same tiles as tasks on a dask cluster
(:mod:`~iota2_spot_s2.inference.distributed`); the maps are identical.
"""

from iota2_spot_s2.inference.engine import Engine, predict_array
from iota2_spot_s2.inference.predict import MapOutputs, predict_map
from iota2_spot_s2.inference.tiling import Tile, default_margin, plan_tiles

__all__ = [
    "Engine",
    "MapOutputs",
    "Tile",
    "default_margin",
    "plan_tiles",
    "predict_array",
    "predict_map",
]
