"""An iota2 output tree and the grids of its tiles.

The reference grid of a tile is the one iota2 classifies on: the Sentinel-2 tile's 10 m grid
(first product's R1 band in ``<s2_path>/<TILE>``), resampled to ``chain.spatial_resolution``
over the same bounds when that differs. Every file the plugin writes into the tree lies on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.iota2.names import (
    ClassifNames,
    classif_names,
    parse_classif_name,
    validation_vector,
)


def tile_grid(s2_path: Path, tile: str, resolution: float | None = None) -> Grid:
    """The grid iota2 uses for ``tile``.

    Raises:
        InputError: If the tile folder holds no Theia product.

    """
    from iota2_spot_s2.sensors import TheiaS2L2A, find_products
    from iota2_spot_s2.sensors.theia import band_files

    folder = s2_path / tile
    products = find_products(folder)
    grid = Grid.from_raster(band_files(products[0])[TheiaS2L2A.groups["R1"][0]])
    if resolution is None or abs(resolution - grid.res[0]) < 1e-9:
        return grid
    return grid.with_resolution(resolution)


@dataclass(frozen=True)
class Iota2Classification:
    """One iota2 classification of a tile (``classif/``): what exists of its three files."""

    tile: str
    model: str
    seed: int
    classes: Path
    confidence: Path | None
    proba: Path | None


def iota2_classification(
    output_path: Path, tile: str, model: str, seed: int
) -> Iota2Classification:
    """iota2's own classification of ``tile`` (no suffix: the optical chain's output).

    Raises:
        InputError: If the class map is missing (iota2's classification step has not run),
            naming the other classifications found in ``classif/``.

    """
    names: ClassifNames = classif_names(tile, model, seed)
    paths = names.paths(output_path / "classif")
    if not paths["classes"].is_file():
        found = sorted(
            p.name
            for p in (output_path / "classif").glob("Classif_*.tif")
            if parse_classif_name(p.name)
        )
        hint = f"; found: {', '.join(found)}" if found else ""
        raise InputError(paths["classes"], f"iota2 classification not found{hint}")
    return Iota2Classification(
        tile, model, seed, paths["classes"],
        paths["confidence"] if paths["confidence"].is_file() else None,
        paths["proba"] if paths["proba"].is_file() else None,
    )  # fmt: skip


def iota2_field(vector: Path, data_field: str) -> str | None:
    """The name of ``chain.data_field`` in one of iota2's vectors (it lower-cases fields)."""
    import pyogrio

    fields = list(pyogrio.read_info(vector)["fields"])
    for name in (data_field, data_field.lower()):
        if name in fields:
            return name
    return None


def iota2_validation(output_path: Path, tile: str, seed: int) -> Path | None:
    """iota2's validation polygons of ``tile`` and ``seed`` when its sampling has run."""
    path = validation_vector(output_path, tile, seed)
    return path if path.is_file() else None
