"""``scene.json``: the manifest of a simulated scene, and :class:`SceneInfo`, its Python view.

The manifest records everything a consumer needs without re-deriving it: seed and size, the
grids (CRS, affine transform, shape) of SPOT and Sentinel-2, the dates, the product folders, the
file paths (relative to the scene folder) and the class table with the sensor each class needs.
Every section says ``"simulated": true``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from os import PathLike
from pathlib import Path
from typing import Any

from affine import Affine
from rasterio.crs import CRS

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.io import atomic_output
from iota2_spot_s2.simulation.classes import ClassInfo

MANIFEST = "scene.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class SceneInfo:
    """Where a simulated scene's files are and what they hold (all paths absolute).

    Attributes:
        root: The scene folder.
        seed: Random seed the scene was generated with.
        size_m: Requested side length (m); ``extent_m`` is the side actually written.
        extent_m: Side of the square scene, a multiple of 60 m (so 1.5, 10 and 20 m grids align).
        tile: Sentinel-2 tile name used in the Theia folder names (``T31TCJ``).
        spot_image: The SPOT-like GeoTIFF.
        spot_date: Its acquisition date.
        sensor_data: iota2 ``sensor_data`` root (``s2_path``): holds ``<tile>/<products>``.
        s2_products: The Theia L2A product folders, in date order.
        dates: Sentinel-2 acquisition date-times (UTC), aligned with ``s2_products``.
        reference: The reference GeoPackage (layer ``reference_layer``, field ``code``).
        reference_layer: Its layer name.
        nomenclature: iota2 ``nomenclature.txt``.
        color_file: iota2 ``colorFile.txt``.
        manifest: ``scene.json``.
        classes: The class table (code, name, colour, needs).
        spot_grid: Grid of the SPOT image (1.5 m).
        s2_grid: 10 m Sentinel-2 grid (R1 bands), same bounds as ``spot_grid``.
        s2_grid_r2: 20 m Sentinel-2 grid (R2 bands), same bounds.
    """

    root: Path
    seed: int
    size_m: float
    extent_m: float
    tile: str
    spot_image: Path
    spot_date: date
    sensor_data: Path
    s2_products: tuple[Path, ...]
    dates: tuple[datetime, ...]
    reference: Path
    reference_layer: str
    nomenclature: Path
    color_file: Path
    manifest: Path
    classes: tuple[ClassInfo, ...]
    spot_grid: Grid
    s2_grid: Grid
    s2_grid_r2: Grid

    @property
    def codes(self) -> list[int]:
        """Class codes in increasing order."""
        return sorted(c.code for c in self.classes)

    def codes_needing(self, needs: str) -> list[int]:
        """Codes of the classes whose ``needs`` is ``"spot"``, ``"s2"`` or ``"either"``."""
        return sorted(c.code for c in self.classes if c.needs == needs)


def grid_to_json(grid: Grid) -> dict[str, Any]:
    """A JSON-serialisable description of a grid."""
    return {
        "crs": grid.crs.to_string(),
        "transform": list(grid.transform)[:6],
        "shape": [grid.height, grid.width],
        "res": grid.res[0],
    }


def grid_from_json(data: dict[str, Any]) -> Grid:
    """Inverse of :func:`grid_to_json`."""
    height, width = data["shape"]
    return Grid(CRS.from_user_input(data["crs"]), Affine(*data["transform"]), width, height)


def write_manifest(root: Path, manifest: dict[str, Any]) -> Path:
    """Write ``scene.json`` (atomically)."""
    path = root / MANIFEST
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def read_manifest(root: str | PathLike[str]) -> dict[str, Any]:
    """The parsed ``scene.json`` of a scene folder.

    Raises:
        InputError: Missing, unreadable or not a simulated-scene manifest.
    """
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise InputError(root, f"no {MANIFEST}: not a simulated scene folder")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(path, f"cannot be read as JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        raise InputError(path, f"not a version-{FORMAT_VERSION} simulated scene manifest")
    return data


def load_scene(root: str | PathLike[str]) -> SceneInfo:
    """Rebuild the :class:`SceneInfo` of a scene folder from its ``scene.json``.

    Raises:
        InputError: If the manifest is missing or malformed, or a recorded file is missing.
    """
    base = Path(root).resolve()
    data = read_manifest(base)
    try:
        info = _scene_info(base, data)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(base / MANIFEST, f"malformed manifest ({exc!r})") from exc
    for path in (info.spot_image, info.reference, *info.s2_products):
        if not path.exists():
            raise InputError(path, "recorded in scene.json but missing")
    return info


def _scene_info(base: Path, data: dict[str, Any]) -> SceneInfo:
    spot, s2, ref = data["spot"], data["s2"], data["reference"]
    return SceneInfo(
        root=base,
        seed=int(data["seed"]),
        size_m=float(data["size_m"]),
        extent_m=float(data["extent_m"]),
        tile=str(data["tile"]),
        spot_image=base / spot["path"],
        spot_date=date.fromisoformat(spot["date"]),
        sensor_data=base / s2["sensor_data"],
        s2_products=tuple(base / p["path"] for p in s2["products"]),
        dates=tuple(datetime.fromisoformat(p["datetime"]) for p in s2["products"]),
        reference=base / ref["path"],
        reference_layer=str(ref["layer"]),
        nomenclature=base / data["nomenclature"],
        color_file=base / data["color_file"],
        manifest=base / MANIFEST,
        classes=tuple(
            ClassInfo(
                int(c["code"]),
                str(c["name"]),
                tuple(c["color"]),
                str(c["needs"]),
                str(c["description"]),
            )
            for c in data["classes"]
        ),
        spot_grid=grid_from_json(data["grids"]["spot"]),
        s2_grid=grid_from_json(data["grids"]["s2_r1"]),
        s2_grid_r2=grid_from_json(data["grids"]["s2_r2"]),
    )
