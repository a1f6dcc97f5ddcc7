"""The village: a grid of streets, houses along them, and parking lots full of cars."""

from __future__ import annotations

import numpy as np
from shapely.geometry import Polygon, box
from shapely.geometry.base import BaseGeometry

from iota2_spot_s2.simulation.spectra import CAR_PALETTE

_BAY_W, _BAY_D, _AISLE = 2.5, 5.0, 6.0
_CAR_W, _CAR_L = 1.8, 4.3


def village_contents(
    rng: np.random.Generator, village: Polygon, road_area: BaseGeometry
) -> tuple[list[Polygon], list[Polygon], list[Polygon], list[tuple[Polygon, int]]]:
    """Streets, houses, parking lots and cars (with palette index) inside ``village``.

    Houses, lots and cars that would touch ``road_area`` (the main roads) are dropped.
    """
    x0, y0, x1, y1 = village.bounds
    width = float(rng.uniform(5.0, 6.5))
    xs = _positions(rng, x0, x1)
    ys = _positions(rng, y0, y1)
    streets = [box(x - width / 2, y0 - width / 2, x + width / 2, y1 + width / 2) for x in xs]
    streets += [box(x0 - width / 2, y - width / 2, x1 + width / 2, y + width / 2) for y in ys]
    keepout = road_area.buffer(2.0)
    blocks = [
        (xa + width / 2, ya + width / 2, xb - width / 2, yb - width / 2)
        for xa, xb in zip(xs[:-1], xs[1:], strict=True)
        for ya, yb in zip(ys[:-1], ys[1:], strict=True)
    ]
    clear = [i for i, b in enumerate(blocks) if not box(*b).intersects(keepout)]
    order = [int(i) for i in rng.permutation(clear)] + [int(rng.integers(len(blocks)))] * 2
    parking_block, big_block = order[0], order[1]  # at least one of each, off the main roads
    houses: list[Polygon] = []
    lots: list[Polygon] = []
    cars: list[tuple[Polygon, int]] = []
    for index, block in enumerate(blocks):
        draw = rng.random()
        if index == parking_block or draw < 0.1:
            lot, lot_cars = _parking(rng, block)
            if lot is not None:
                lot = lot.difference(keepout)
                lots.append(lot)
                cars += [(c, k) for c, k in lot_cars if lot.contains(c)]
                continue
        if index == big_block or draw > 0.8:
            houses += _big_building(rng, block)
        else:
            houses += _house_rows(rng, block)
    houses = [h for h in houses if not h.intersects(keepout)]
    return streets, houses, lots, cars


def _positions(rng: np.random.Generator, start: float, stop: float) -> np.ndarray:
    """Street centre lines every 45-60 m, jittered by a few metres."""
    count = max(1, round((stop - start) / rng.uniform(45.0, 60.0)))
    pos = np.linspace(start, stop, count + 1)
    pos[1:-1] += rng.uniform(-4.0, 4.0, count - 1)
    return pos


def _house_rows(rng: np.random.Generator, block: tuple[float, ...]) -> list[Polygon]:
    """Houses along the lower (and, if there is room, the upper) edge of a block."""
    bx0, by0, bx1, by1 = block
    houses: list[Polygon] = []
    two_rows = by1 - by0 >= 2 * 18.0 + 3.0
    for edge, direction in ((by0, 1.0), (by1, -1.0)) if two_rows else ((by0, 1.0),):
        x = bx0 + float(rng.uniform(1.0, 4.0))
        while True:
            w, d = float(rng.uniform(8.0, 15.0)), float(rng.uniform(8.0, 13.0))
            depth = min(d, (by1 - by0) / (2 if two_rows else 1) - 6.0)
            if x + w > bx1 - 1.0 or depth < 6.0:
                break
            near = edge + direction * float(rng.uniform(2.0, 5.0))
            far = near + direction * depth
            houses.append(box(x, min(near, far), x + w, max(near, far)))
            x += w + float(rng.uniform(3.0, 9.0))
    return houses


def _big_building(rng: np.random.Generator, block: tuple[float, ...]) -> list[Polygon]:
    """One large flat-roofed building (warehouse, supermarket, school) filling much of a block.

    Its size matches a parking lot's, so at 10 m both are pure pixels of the same material.
    """
    bx0, by0, bx1, by1 = block
    w = min(float(rng.uniform(25.0, 45.0)), bx1 - bx0 - 6.0)
    d = min(float(rng.uniform(20.0, 35.0)), by1 - by0 - 6.0)
    if w < 8.0 or d < 8.0:
        return []
    x0 = float(rng.uniform(bx0 + 3.0, bx1 - 3.0 - w))
    y0 = float(rng.uniform(by0 + 3.0, by1 - 3.0 - d))
    return [box(x0, y0, x0 + w, y0 + d)]


def _parking(
    rng: np.random.Generator, block: tuple[float, ...]
) -> tuple[Polygon | None, list[tuple[Polygon, int]]]:
    """A paved lot (25-50 m) with rows of bays, 60 % occupied; None if the block is too small."""
    bx0, by0, bx1, by1 = block
    lw = min(float(rng.uniform(30.0, 50.0)), bx1 - bx0 - 4.0)
    lh = min(float(rng.uniform(24.0, 40.0)), by1 - by0 - 4.0)
    if lw < 20.0 or lh < 16.0:
        return None, []
    lx0 = float(rng.uniform(bx0 + 2.0, bx1 - 2.0 - lw))
    ly0 = float(rng.uniform(by0 + 2.0, by1 - 2.0 - lh))
    lot = box(lx0, ly0, lx0 + lw, ly0 + lh)
    weights = np.array([w for _, w in CAR_PALETTE])
    cars: list[tuple[Polygon, int]] = []
    y = ly0 + 1.0
    row = 0
    while y + _BAY_D <= ly0 + lh - 1.0:
        for x in np.arange(lx0 + 1.0, lx0 + lw - _BAY_W, _BAY_W):
            if rng.random() < 0.6:
                cx, cy = x + _BAY_W / 2, y + _BAY_D / 2
                car = box(cx - _CAR_W / 2, cy - _CAR_L / 2, cx + _CAR_W / 2, cy + _CAR_L / 2)
                cars.append((car, int(rng.choice(len(weights), p=weights / weights.sum()))))
        y += _BAY_D + (_AISLE if row % 2 else 0.0)
        row += 1
    return lot, cars
