"""The simulated nomenclature: codes, names, colours and which sensor separates each class.

The classes are designed in three groups (``needs``):

- ``"spot"``: separable only by spatial detail at 1.5 m. Buildings, roads and parking lots share
  one impervious material spectrum and differ by shape (compact roofs casting shadows, long thin
  strips, wide lots with parked cars); hedges share the tree spectrum and phenology of the
  forest and differ by being 3-6 m wide lines. At 10 m they mix with their neighbours.
- ``"s2"``: separable only by phenology. Winter cereal, maize and meadow have the same green
  cover on the SPOT date (the curves are anchored there) but different Sentinel-2 NDVI curves.
- ``"either"``: forest and water, easy for both sensors.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClassInfo:
    """One class of the simulated nomenclature.

    Attributes:
        code: iota2 class code (> 0; 0 is no-data in label rasters).
        name: Short name, as written in ``nomenclature.txt``.
        color: RGB colour, as written in ``colorFile.txt``.
        needs: Which sensor is needed to separate the class: ``"spot"``, ``"s2"`` or ``"either"``.
        description: One line for humans.
    """

    code: int
    name: str
    color: tuple[int, int, int]
    needs: str
    description: str


BUILDING, ROAD, PARKING, HEDGE, FOREST, CEREAL, MAIZE, MEADOW, WATER = range(1, 10)

CLASSES: tuple[ClassInfo, ...] = (
    ClassInfo(
        BUILDING,
        "building",
        (220, 40, 40),
        "spot",
        "compact roofs 8-25 m (gabled, casting shadows); same material as roads",
    ),
    ClassInfo(
        ROAD,
        "road",
        (110, 110, 110),
        "spot",
        "paved strips 5-8 m wide (main roads and village streets)",
    ),
    ClassInfo(
        PARKING,
        "parking",
        (250, 170, 50),
        "spot",
        "paved lots 25-50 m with rows of parked cars; same material as roads",
    ),
    ClassInfo(
        HEDGE,
        "hedge",
        (90, 160, 60),
        "spot",
        "tree rows 3-6 m wide along parcel edges; same trees as the forest",
    ),
    ClassInfo(FOREST, "forest", (20, 90, 30), "either", "deciduous woodland blobs"),
    ClassInfo(
        CEREAL, "winter_cereal", (240, 220, 90), "s2", "green March-June, harvested early July"
    ),
    ClassInfo(MAIZE, "maize", (250, 120, 20), "s2", "sown in May, green July-September"),
    ClassInfo(
        MEADOW,
        "meadow",
        (160, 230, 100),
        "s2",
        "permanent grassland, green most of the year, mown in June and August",
    ),
    ClassInfo(WATER, "water", (40, 110, 230), "either", "ponds and small lakes"),
)

CLASS_BY_CODE: dict[int, ClassInfo] = {c.code: c for c in CLASSES}

#: Object heights (m) used to cast shadows in the SPOT image, as (min, max) per class.
HEIGHTS_M: dict[int, tuple[float, float]] = {
    BUILDING: (5.0, 11.0),
    HEDGE: (5.0, 9.0),
    FOREST: (13.0, 20.0),
}

TREE_CODES = (HEDGE, FOREST)
CROP_CODES = (CEREAL, MAIZE, MEADOW)
IMPERVIOUS_CODES = (BUILDING, ROAD, PARKING)
