"""Tiled, seamless, bounded-memory inference: a trained model over a whole scene.

- :func:`predict_map` writes COG class map (codes, colour table, nodata 0), confidence (0-100),
  optional probabilities (0-1000, bands in class-code order) and a QGIS ``.qml`` style.
- :func:`predict_array` returns probabilities of an in-memory ``(C, H, W)`` array.

Both use one engine (:mod:`~iota2_spot_s2.inference.engine`) and one tiling
(:mod:`~iota2_spot_s2.inference.tiling`), whose results do not depend on the tile size.
``predict_map(..., scheduler=, workers=)`` runs the same tiles as tasks on a dask cluster
(:mod:`~iota2_spot_s2.inference.distributed`); the maps are identical.

The names below are imported on first use, so that the torch-free modules of this package
(``tiling``: tile plans and the default tile size) can be read by the command-line parser
without loading torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "Engine": "engine",
    "predict_array": "engine",
    "MapOutputs": "predict",
    "predict_map": "predict",
    "Tile": "tiling",
    "default_margin": "tiling",
    "plan_tiles": "tiling",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    """The public names, imported from their module on first use (PEP 562)."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
