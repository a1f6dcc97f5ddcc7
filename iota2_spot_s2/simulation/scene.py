"""``generate_scene``: write a whole simulated scene (SPOT, Sentinel-2, reference, manifest).

Layout of the scene folder::

    <out_dir>/
      SPOT6_PMS_20210625_simulated.tif          1.5 m, B0..B3 = blue, green, red, NIR, uint16
      sensor_data/T31TCJ/SENTINEL2A_..._L2A_T31TCJ_C_V2-2/   Theia L2A folders (>= 12 dates)
      reference.gpkg                             layer "reference", fields code, name, ...
      nomenclature.txt, colorFile.txt            iota2 formats
      scene.json                                 the manifest (written last)

Randomness comes from one ``numpy.random.SeedSequence(seed)`` split into independent streams
(layout, object traits, SPOT noise, dates, Sentinel-2 noise and clouds), so the same seed gives
byte-identical rasters and changing e.g. ``n_dates`` does not move the polygons.
"""

from __future__ import annotations

import shutil
from datetime import date
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from iota2_spot_s2 import __version__
from iota2_spot_s2.errors import InputError
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.nomenclature import Nomenclature, write_color_file, write_nomenclature
from iota2_spot_s2.simulation import manifest as mf
from iota2_spot_s2.simulation.classes import CLASSES
from iota2_spot_s2.simulation.layout import Layout, build_layout
from iota2_spot_s2.simulation.spectra import S2_BANDS, Traits, draw_traits
from iota2_spot_s2.simulation.spot import (
    GAIN,
    OFFSET,
    SPOT_BANDS,
    SPOT_COLOURS,
    SPOT_RES,
    render_spot,
    sun_position,
    write_spot,
)
from iota2_spot_s2.simulation.theia import Acquisition, draw_acquisitions, render_s2, write_product
from iota2_spot_s2.simulation.vector import LAYER, write_reference

CRS_CODE = "EPSG:2154"
DEFAULT_ORIGIN = (500000.0, 6300000.0)
_ALIGN_M = 60.0  # common multiple of 1.5, 10 and 20 m


def generate_scene(
    out_dir: str | PathLike[str],
    *,
    size_m: float = 1536.0,
    seed: int = 0,
    n_dates: int = 12,
    year: int = 2021,
    cloud_fraction: float = 0.15,
    spot_date: date | str | None = None,
    tile: str = "T31TCJ",
    origin: tuple[float, float] = DEFAULT_ORIGIN,
) -> mf.SceneInfo:
    """Write a seeded simulated landscape seen by SPOT 6/7 and Sentinel-2 (all "simulated").

    Args:
        out_dir: Scene folder (created; a scene already there is replaced).
        size_m: Side of the square scene in metres, rounded to a multiple of 60 m (the default
            1536 gives 1560 m: SPOT 1040 x 1040 px, Sentinel-2 156 x 156 px at 10 m).
        seed: Random seed; same seed, same files.
        n_dates: Number of Sentinel-2 dates spread over the year (>= 2).
        year: Acquisition year.
        cloud_fraction: Mean cloud cover of the Sentinel-2 dates (0-0.7).
        spot_date: SPOT acquisition date (default 25 June of ``year``); the crop phenologies
            are anchored on it so the crops look alike on the SPOT image.
        tile: Sentinel-2 tile name written in the Theia folder names.
        origin: Lower-left corner (x, y) in EPSG:2154, a multiple of 60 m is advised.

    Returns:
        The :class:`~iota2_spot_s2.simulation.manifest.SceneInfo` of the written scene.

    Raises:
        ValueError: On out-of-range arguments.
    """
    extent = _check_arguments(size_m, n_dates, cloud_fraction)
    when = _spot_date(spot_date, year)
    root = Path(out_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    _remove_previous(root)
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)]
    bounds = (origin[0], origin[1], origin[0] + extent, origin[1] + extent)
    layout = build_layout(bounds, rngs[0])
    traits = draw_traits(rngs[1], len(layout.objects))
    grids = {
        "spot": Grid.from_bounds(CRS_CODE, *bounds, SPOT_RES),
        "s2_r1": Grid.from_bounds(CRS_CODE, *bounds, 10.0),
        "s2_r2": Grid.from_bounds(CRS_CODE, *bounds, 20.0),
    }
    tags = {"SCENE_SEED": str(seed), "GENERATOR": f"iota2_spot_s2.simulation {__version__}"}
    _write_reference_files(root, layout, tags)
    spot = _write_spot_image(root, layout, traits, grids["spot"], when, rngs[2], tags)
    acquisitions = draw_acquisitions(rngs[3], year, n_dates, cloud_fraction)
    s2 = _write_time_series(
        root, layout, traits, grids["s2_r1"], acquisitions, tile, when, rngs[4], tags
    )
    s2["cloud_fraction"] = cloud_fraction
    manifest = {
        "format_version": mf.FORMAT_VERSION,
        "simulated": True,
        "generator": tags["GENERATOR"],
        "seed": seed,
        "size_m": float(size_m),
        "extent_m": float(extent),
        "origin": list(origin),
        "crs": CRS_CODE,
        "tile": tile,
        "grids": {name: mf.grid_to_json(g) for name, g in grids.items()},
        "spot": spot,
        "s2": s2,
        "reference": {
            "path": "reference.gpkg",
            "layer": LAYER,
            "field": "code",
            "n_objects": len(layout.objects),
            "simulated": True,
        },
        "nomenclature": "nomenclature.txt",
        "color_file": "colorFile.txt",
        **_class_table(layout),
    }
    mf.write_manifest(root, manifest)
    return mf.load_scene(root)


def _write_reference_files(root: Path, layout: Layout, tags: dict[str, str]) -> None:
    """The reference GeoPackage and iota2's nomenclature and colour files."""
    write_reference(root / "reference.gpkg", layout.objects, CRS_CODE, tags)
    nom = Nomenclature.from_classes(
        {c.code: c.name for c in CLASSES}, {c.code: c.color for c in CLASSES}
    )
    write_nomenclature(nom, root / "nomenclature.txt")
    write_color_file(nom, root / "colorFile.txt")


def _write_spot_image(
    root: Path,
    layout: Layout,
    traits: Traits,
    grid: Grid,
    when: date,
    rng: np.random.Generator,
    tags: dict[str, str],
) -> dict[str, Any]:
    """Render and write the SPOT-like image; return its manifest section."""
    sun = sun_position(when)
    name = f"SPOT6_PMS_{when:%Y%m%d}_simulated.tif"
    dn = render_spot(layout, traits, grid, when, sun, rng)
    sun_tags = {"SUN_AZIMUTH": f"{sun.azimuth:.2f}", "SUN_ELEVATION": f"{sun.elevation:.2f}"}
    image_tags = {"SENSOR": "SPOT6 (simulated)", "ACQUISITION_DATE": when.isoformat()}
    write_spot(root / name, dn, grid, {**tags, **image_tags, **sun_tags})
    return {
        "path": name,
        "date": when.isoformat(),
        "sensor": "SPOT6",
        "simulated": True,
        "bands": list(SPOT_BANDS),
        "band_colours": list(SPOT_COLOURS),
        "gain": GAIN.tolist(),
        "offset": OFFSET.tolist(),
        "sun_azimuth": round(sun.azimuth, 2),
        "sun_elevation": round(sun.elevation, 2),
    }


def _write_time_series(
    root: Path,
    layout: Layout,
    traits: Traits,
    grid: Grid,
    acquisitions: list[Acquisition],
    tile: str,
    spot_day: date,
    rng: np.random.Generator,
    tags: dict[str, str],
) -> dict[str, Any]:
    """Render and write the Theia L2A folders; return the Sentinel-2 manifest section."""
    tile_dir = Path("sensor_data") / tile
    anchor = spot_day.timetuple().tm_yday
    dates = render_s2(layout, traits, grid, acquisitions, anchor, rng)
    for s2date in tqdm(dates, total=len(acquisitions), desc="Sentinel-2 dates", disable=None):
        folder = root / tile_dir / s2date.acquisition.product_name(tile)
        write_product(folder, s2date, grid, tags)
    products = [
        {
            "path": str(tile_dir / a.product_name(tile)),
            "datetime": a.when.isoformat(),
            "platform": a.platform,
            "cloud_cover": round(a.cloud_cover, 4),
        }
        for a in acquisitions
    ]
    return {
        "sensor_data": "sensor_data",
        "tile_dir": str(tile_dir),
        "product": "FRE",
        "bands": list(S2_BANDS),
        "scale": 10000,
        "nodata": -10000,
        "simulated": True,
        "products": products,
    }


def _class_table(layout: Layout) -> dict[str, Any]:
    """The ``classes`` and ``groups`` sections (with object counts and areas per class)."""
    counts = {c.code: 0 for c in CLASSES}
    areas = {c.code: 0.0 for c in CLASSES}
    for obj in layout.objects:
        counts[obj.code] += 1
        areas[obj.code] += obj.geometry.area
    classes = [
        {
            "code": c.code,
            "name": c.name,
            "color": list(c.color),
            "needs": c.needs,
            "description": c.description,
            "n_objects": counts[c.code],
            "area_m2": round(areas[c.code], 1),
        }
        for c in CLASSES
    ]
    groups = {n: [c.code for c in CLASSES if c.needs == n] for n in ("spot", "s2", "either")}
    return {"classes": classes, "groups": groups}


def _check_arguments(size_m: float, n_dates: int, cloud_fraction: float) -> float:
    extent = max(_ALIGN_M, round(float(size_m) / _ALIGN_M) * _ALIGN_M)
    if not 120.0 <= float(size_m) <= 20000.0:
        raise ValueError(f"size_m must be within 120-20000 m, got {size_m}")
    if n_dates < 2:
        raise ValueError(f"n_dates must be >= 2, got {n_dates}")
    if not 0.0 <= cloud_fraction <= 0.7:
        raise ValueError(f"cloud_fraction must be within 0-0.7, got {cloud_fraction}")
    return extent


def _spot_date(spot_date: date | str | None, year: int) -> date:
    if spot_date is None:
        return date(year, 6, 25)
    return date.fromisoformat(spot_date) if isinstance(spot_date, str) else spot_date


def _remove_previous(root: Path) -> None:
    """Delete the product folders recorded by a previous scene written in ``root``."""
    try:
        old = mf.read_manifest(root)
    except InputError:  # no previous scene, or not ours: touch nothing
        return
    for product in old.get("s2", {}).get("products", []):
        folder = (root / product["path"]).resolve()
        if folder.is_dir() and root in folder.parents:
            shutil.rmtree(folder)
    (root / mf.MANIFEST).unlink(missing_ok=True)
