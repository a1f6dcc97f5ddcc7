"""Build a :class:`~iota2_spot_s2.analysis.complementarity.Comparison` from files.

Two routes:

- **files** (:func:`comparison_from_files`): a reference (raster or vector), optionally a split
  raster (1/2/3 = train/validation/test) and the subset to score, and maps named
  ``SOURCES[:LABEL]=PATH`` — ``SOURCES`` is ``+``-joined source names, e.g. ``spot=a.tif``,
  ``s2=b.tif``, ``spot+s2:dempster_shafer=c.tif``. Choice maps (``DSchoice``-like) are attached
  by map name, a clear-date count raster is optional. Every raster must be on the first map's
  grid.
- **chain** (:func:`comparison_from_chain`): one tile folder of ``fuse-classify run``
  (``spot_s2/<TILE>/``): reference and split from ``reference/``, maps from ``comparison.json``
  (``spot:<model>`` = SPOT, ``s2-<kind>`` = Sentinel-2, ``late-<rule>`` / ``early`` = both),
  choice maps from ``maps_fused/``, clear dates from ``reference/s2_clear_dates.tif`` if written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from iota2_spot_s2.analysis.complementarity import Comparison, Strategy
from iota2_spot_s2.errors import InputError
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.pipeline.stages import SUBSETS, check_on_grid, read_class_map, read_labels

CLEAR_DATES_FILE = "s2_clear_dates.tif"


def parse_map_name(name: str) -> frozenset[str]:
    """Sources of a map name ``SOURCES[:LABEL]`` (e.g. ``spot+s2:ds`` -> ``{spot, s2}``)."""
    sources = [s.strip() for s in name.split(":", 1)[0].split("+")]
    if not all(s and s.replace("_", "").isalnum() for s in sources):
        raise ValueError(f"map name {name!r}: expected SOURCES[:LABEL], e.g. spot, s2, spot+s2:ds")
    return frozenset(sources)


def chain_sources(strategy: str) -> frozenset[str]:
    """Sources of a chain strategy name (``spot:fcn``, ``s2-rf``, ``late-mean``, ``early``)."""
    if strategy.startswith("spot:"):
        return frozenset({"spot"})
    if strategy.startswith("s2-"):
        return frozenset({"s2"})
    return frozenset({"spot", "s2"})


def comparison_from_files(
    reference: Path,
    maps: list[tuple[str, Path]],
    *,
    field: str = "code",
    split: Path | None = None,
    subset: str = "test",
    choices: dict[str, Path] | None = None,
    clear_dates: Path | None = None,
    names: dict[int, str] | None = None,
    sources_of: Callable[[str], frozenset[str]] = parse_map_name,
) -> Comparison:
    """Read every input of the ``files`` route (see the module docstring).

    ``sources_of`` gives the sources of a map from its name (default :func:`parse_map_name`).
    """
    if not maps:
        raise ValueError("no map given")
    first, grid = read_class_map(maps[0][1])
    labels, _ = read_labels(reference, grid, field)
    objects = labels
    if split is not None:
        check_on_grid(split, grid, "split raster")
        with rasterio.open(split) as src:
            labels = np.where(src.read(1) == SUBSETS[subset], labels, 0)
    strategies = []
    for i, (name, path) in enumerate(maps):
        classes = first if i == 0 else _class_map_on(path, grid)
        choice = None
        if choices and name in choices:
            choice = _band_on(choices[name], grid, "choice map")
        strategies.append(Strategy(name, sources_of(name), classes, choice))
    unknown = set(choices or {}) - {name for name, _ in maps}
    if unknown:
        raise ValueError(f"choice maps for maps not given: {sorted(unknown)}")
    codes = sorted(int(c) for c in np.unique(objects) if c)
    dates = _band_on(clear_dates, grid, "clear-date raster") if clear_dates else None
    return Comparison(labels, codes, strategies, _pixel_size(grid, maps[0][1]), names or {},
                      objects, dates)  # fmt: skip


def comparison_from_chain(
    tile_dir: Path, names: dict[int, str] | None = None, prefer: tuple[str, ...] = ("spot:fcn",)
) -> Comparison:
    """Read the ``chain`` route's inputs from one tile folder of ``fuse-classify run``.

    ``prefer``: strategies put first, so that they are the primary maps of their sources (e.g.
    the SPOT model and S2 classifier the late fusion used).
    """
    table = tile_dir.parent / "comparison.json"
    if not table.is_file():
        raise InputError(table, "not found: run `fuse-classify run` first")
    runs = [r for r in json.loads(table.read_text())["runs"] if r["tile"] == tile_dir.name]
    if not runs:
        raise InputError(table, f"has no run of tile {tile_dir.name}")
    ref_dir = tile_dir / "reference"
    runs.sort(key=lambda r: r["model"] not in prefer)
    maps = [(r["model"], Path(r["paths"]["class_map"])) for r in runs]
    choices = {}
    for name, _ in maps:
        path = tile_dir / "maps_fused" / f"{name.replace('-', '_')}_choice.tif"
        if name.startswith("late-") and path.is_file():
            choices[name] = path
    dates = ref_dir / CLEAR_DATES_FILE
    comp = comparison_from_files(
        ref_dir / "labels.tif", maps, split=ref_dir / "split.tif", choices=choices,
        clear_dates=dates if dates.is_file() else None, names=names, sources_of=chain_sources,
    )  # fmt: skip
    return comp


def write_clear_dates(s2: Any, grid: Grid, path: Path) -> Path:
    """Count of cloud-free dates of a Sentinel-2 series (``valid`` coord), warped onto ``grid``."""
    from rasterio.warp import Resampling, reproject

    from iota2_spot_s2.io import atomic_output
    from iota2_spot_s2.pipeline.stages import image_grid

    s2_grid = image_grid(s2)
    valid = s2.coords["valid"]
    count = np.asarray(valid.all("band").sum("time").values, dtype=np.uint16)
    out = np.zeros(grid.shape, dtype=np.uint16)
    reproject(count, out, src_transform=s2_grid.transform, src_crs=s2_grid.crs,
              dst_transform=grid.transform, dst_crs=grid.crs,
              resampling=Resampling.nearest)  # fmt: skip
    profile = {"driver": "GTiff", "width": grid.width, "height": grid.height, "count": 1,
               "dtype": "uint16", "crs": grid.crs, "transform": grid.transform}  # fmt: skip
    with atomic_output(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(out, 1)
    return path


def _class_map_on(path: Path, grid: Grid) -> np.ndarray:
    classes, other = read_class_map(path)
    if other.crs != grid.crs or (other.transform, other.shape) != (grid.transform, grid.shape):
        raise InputError(path, "class map is not on the grid of the first map")
    return classes


def _band_on(path: Path, grid: Grid, what: str) -> np.ndarray:
    check_on_grid(path, grid, what)
    with rasterio.open(path) as src:
        return src.read(1)


def _pixel_size(grid: Grid, path: Path) -> float:
    size = abs(grid.transform.a)
    if not grid.crs or not grid.crs.is_projected or abs(abs(grid.transform.e) - size) > 1e-6 * size:
        raise InputError(path, "needs square pixels in a projected CRS (metres) for areas")
    return float(size)
