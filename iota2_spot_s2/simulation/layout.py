"""The landscape as polygons: roads, a village, a forest, a lake, hedges and crop parcels.

Everything is built in map coordinates (metres) from one seeded random generator, so the same
seed gives the same polygons. Polygons never overlap; what no object covers (gardens in the
village, slivers between parcels) is unlabelled background. Sizes are chosen for the sensors:
parcels are at least ~40 m wide (4 Sentinel-2 pixels), hedges and roads 3-8 m (sub-pixel at
10 m, 2-5 pixels at 1.5 m).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely import affinity
from shapely.geometry import LineString, Point, Polygon, box
from shapely.geometry.base import BaseGeometry

from iota2_spot_s2.simulation.classes import (
    BUILDING,
    CROP_CODES,
    FOREST,
    HEDGE,
    HEIGHTS_M,
    PARKING,
    ROAD,
    WATER,
)
from iota2_spot_s2.simulation.village import village_contents

Bounds = tuple[float, float, float, float]

_MIN_PARCEL_AREA = 1500.0
_MIN_PARCEL_WIDTH = 12.0
_HEDGE_PROBABILITY = 0.4


@dataclass(frozen=True)
class SceneObject:
    """One labelled landscape object (one reference polygon).

    Attributes:
        object_id: 1-based identifier, also the value burnt in object-id rasters.
        code: Class code.
        geometry: The polygon (map coordinates, EPSG:2154).
        height: Height above ground in metres (casts shadows in the SPOT image).
    """

    object_id: int
    code: int
    geometry: Polygon
    height: float


@dataclass(frozen=True)
class Car:
    """A parked car: a small detail visible at 1.5 m only (not a reference object)."""

    geometry: Polygon
    color: int


@dataclass(frozen=True)
class Layout:
    """The polygons of a scene."""

    bounds: Bounds
    objects: list[SceneObject]
    cars: list[Car]


class _Builder:
    """Accumulates non-overlapping objects; ``parts`` is the area they (and reserves) claim."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.objects: list[SceneObject] = []
        self.parts: list[BaseGeometry] = []

    def add(
        self, code: int, geom: BaseGeometry, *, min_area: float = 20.0, disjoint: bool = False
    ) -> int:
        """Add the unclaimed polygon parts of ``geom`` as objects; return how many were added.

        ``disjoint=True`` promises that ``geom`` does not overlap claimed area (saves time).
        """
        free = geom if disjoint else self._free(geom)
        added = 0
        for part in _polygons(free):
            if part.area < min_area:
                continue
            low, high = HEIGHTS_M.get(code, (0.0, 0.0))
            height = float(self.rng.uniform(low, high)) if high > 0 else 0.0
            self.objects.append(SceneObject(len(self.objects) + 1, code, part, height))
            self.parts.append(part)
            added += 1
        return added

    def union(self) -> BaseGeometry:
        """The claimed area as one geometry."""
        return shapely.union_all(self.parts)

    def _free(self, geom: BaseGeometry) -> BaseGeometry:
        parts = np.empty(len(self.parts), dtype=object)
        parts[:] = self.parts
        hits = shapely.intersects(parts, geom) if parts.size else np.zeros(0, dtype=bool)
        if not hits.any():
            return geom
        return shapely.difference(geom, shapely.union_all(parts[hits]))


def build_layout(bounds: Bounds, rng: np.random.Generator) -> Layout:
    """Draw the polygons of a scene covering ``bounds`` (left, bottom, right, top)."""
    frame = box(*bounds)
    size = bounds[2] - bounds[0]
    builder = _Builder(rng)
    roads = _main_roads(rng, bounds)
    for line, width in roads:
        builder.add(ROAD, line.buffer(width / 2, cap_style="flat").intersection(frame))
    road_area = builder.union()
    village_box = _village_box(rng, bounds, roads)
    streets, houses, lots, cars = village_contents(rng, village_box, road_area)
    for street in streets:
        builder.add(ROAD, street.intersection(frame))
    for house in houses:
        builder.add(BUILDING, house, min_area=40.0, disjoint=True)
    for lot in lots:
        builder.add(PARKING, lot, min_area=400.0, disjoint=True)
    avoid = village_box.buffer(25.0)
    lake = _place_blob(rng, bounds, (0.05, 0.08), avoid.union(road_area.buffer(15.0)))
    if lake is not None:
        builder.add(WATER, lake.intersection(frame), min_area=300.0)
        avoid = avoid.union(lake.buffer(30.0))
    for _ in range(2 if size >= 900 else 1):
        forest = _place_blob(rng, bounds, (0.11, 0.16), avoid)
        if forest is not None:
            builder.add(FOREST, forest.intersection(frame), min_area=2000.0)
            avoid = avoid.union(forest.buffer(40.0))
    _add_fields(builder, rng, bounds, village_box)
    return Layout(bounds, builder.objects, [Car(g, k) for g, k in cars])


def _add_fields(
    builder: _Builder, rng: np.random.Generator, bounds: Bounds, village_box: Polygon
) -> None:
    """Hedges along some parcel edges, then the parcels themselves (crops and meadows)."""
    frame = box(*bounds)
    cells, edges = _parcel_cells(rng, bounds)
    builder.parts.append(village_box)  # the village gardens stay unlabelled
    for edge in edges:
        if rng.random() < _HEDGE_PROBABILITY:
            width = float(rng.uniform(3.0, 6.0))
            hedge = edge.buffer(width / 2, cap_style="flat").intersection(frame)
            builder.add(HEDGE, hedge, min_area=60.0)
    free = shapely.difference(frame, builder.union())
    builder.parts.remove(village_box)
    parcels = [
        p
        for cell in cells
        for p in _polygons(cell.intersection(free))
        if p.area >= _MIN_PARCEL_AREA and 2 * p.area / p.length >= _MIN_PARCEL_WIDTH
    ]
    codes = rng.permutation(np.resize(np.array(CROP_CODES), len(parcels)))
    for parcel, code in zip(parcels, codes, strict=True):
        builder.add(int(code), parcel, disjoint=True)


def _main_roads(rng: np.random.Generator, bounds: Bounds) -> list[tuple[LineString, float]]:
    """One roughly west-east and one roughly south-north road crossing the scene."""
    left, bottom, right, top = bounds
    size = right - left
    roads = []
    for horizontal in (True, False):
        along = np.linspace(-20.0, size + 20.0, 7)
        offset = rng.uniform(0.35, 0.65) * size
        across = offset + np.cumsum(rng.normal(0.0, 0.025 * size, along.size))
        across -= across.mean() - offset
        xy = np.column_stack([along, across] if horizontal else [across, along])
        xy += (left, bottom)
        roads.append((LineString(xy), float(rng.uniform(6.0, 8.0))))
    return roads


def _village_box(
    rng: np.random.Generator, bounds: Bounds, roads: list[tuple[LineString, float]]
) -> Polygon:
    """A rectangle around the crossroads, kept inside the scene."""
    left, bottom, right, top = bounds
    size = right - left
    cross = roads[0][0].intersection(roads[1][0])
    centre = cross if isinstance(cross, Point) else Point((left + right) / 2, (bottom + top) / 2)
    width, height = rng.uniform(0.26, 0.34, 2) * size
    x0 = float(np.clip(centre.x - width / 2, left + 10, right - 10 - width))
    y0 = float(np.clip(centre.y - height / 2, bottom + 10, top - 10 - height))
    return box(x0, y0, x0 + width, y0 + height)


def _place_blob(
    rng: np.random.Generator,
    bounds: Bounds,
    radius_frac: tuple[float, float],
    avoid: BaseGeometry,
    tries: int = 200,
) -> Polygon | None:
    """An irregular blob placed where it does not touch ``avoid`` (None if nowhere fits)."""
    left, bottom, right, top = bounds
    size = right - left
    for attempt in range(tries):
        shrink = 1.0 - 0.5 * attempt / tries
        radius = float(rng.uniform(*radius_frac)) * size * shrink
        cx, cy = rng.uniform(0.05, 0.95, 2) * size + (left, bottom)
        blob = _blob(rng, float(cx), float(cy), radius)
        if not blob.intersects(avoid) and blob.intersection(box(*bounds)).area > 0.7 * blob.area:
            return blob
    return None


def _blob(rng: np.random.Generator, cx: float, cy: float, radius: float) -> Polygon:
    """A star-shaped polygon with a wavy outline."""
    theta = np.linspace(0.0, 2 * np.pi, 64, endpoint=False)
    rho = np.ones_like(theta)
    for k in range(2, 7):
        rho += rng.uniform(0.0, 0.25 / k) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    xy = np.column_stack([cx + radius * rho * np.cos(theta), cy + radius * rho * np.sin(theta)])
    return Polygon(xy)


def _parcel_cells(
    rng: np.random.Generator, bounds: Bounds
) -> tuple[list[Polygon], list[LineString]]:
    """Binary space partition of a rotated, enlarged frame: parcel cells and their split lines."""
    left, bottom, right, top = bounds
    size = right - left
    max_side = float(np.clip(0.15 * size, 110.0, 220.0))
    cx, cy = (left + right) / 2, (bottom + top) / 2
    pending = [(cx - 0.75 * size, cy - 0.75 * size, cx + 0.75 * size, cy + 0.75 * size)]
    cells: list[tuple[float, float, float, float]] = []
    edges: list[LineString] = []
    while pending:
        x0, y0, x1, y1 = pending.pop()
        if max(x1 - x0, y1 - y0) <= max_side:
            cells.append((x0, y0, x1, y1))
            continue
        t = float(rng.uniform(0.38, 0.62))
        if x1 - x0 >= y1 - y0:
            xs = x0 + t * (x1 - x0)
            pending += [(x0, y0, xs, y1), (xs, y0, x1, y1)]
            edges.append(LineString([(xs, y0), (xs, y1)]))
        else:
            ys = y0 + t * (y1 - y0)
            pending += [(x0, y0, x1, ys), (x0, ys, x1, y1)]
            edges.append(LineString([(x0, ys), (x1, ys)]))
    angle = float(rng.uniform(-15.0, 15.0))
    frame = box(*bounds)
    polys = [affinity.rotate(box(*c), angle, origin=(cx, cy)) for c in cells]
    lines = [affinity.rotate(e, angle, origin=(cx, cy)) for e in edges]
    return [p for p in polys if p.intersects(frame)], [e for e in lines if e.intersects(frame)]


def _polygons(geom: BaseGeometry) -> list[Polygon]:
    """The polygon parts of any geometry, largest first (deterministic order)."""
    parts = [g for g in shapely.get_parts(geom) if isinstance(g, Polygon) and not g.is_empty]
    multi = [shapely.get_parts(g) for g in shapely.get_parts(geom) if g.geom_type != "Polygon"]
    for group in multi:
        parts.extend(p for p in group if isinstance(p, Polygon) and not p.is_empty)
    return sorted(parts, key=lambda p: (-round(p.area, 3), p.centroid.x, p.centroid.y))
