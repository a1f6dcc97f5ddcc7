"""The reference polygons as a GeoPackage (one feature per landscape object)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import shapely
from pyogrio.raw import write as write_raw

from iota2_spot_s2.io import atomic_output
from iota2_spot_s2.simulation.classes import CLASS_BY_CODE
from iota2_spot_s2.simulation.layout import SceneObject

LAYER = "reference"


def write_reference(
    path: Path, objects: list[SceneObject], crs: str, metadata: dict[str, str]
) -> Path:
    """Write ``objects`` to the GeoPackage layer ``reference``.

    Fields: ``code`` (int), ``name``, ``object_id``, ``simulated`` (always true); ``metadata``
    plus ``SIMULATED=yes`` go to the layer metadata.
    """
    geometry = np.array([shapely.to_wkb(o.geometry) for o in objects], dtype=object)
    fields = ["code", "name", "object_id", "simulated"]
    values = [
        np.array([o.code for o in objects], dtype=np.int32),
        np.array([CLASS_BY_CODE[o.code].name for o in objects], dtype=object),
        np.array([o.object_id for o in objects], dtype=np.int32),
        np.ones(len(objects), dtype=bool),
    ]
    with atomic_output(path) as tmp:
        write_raw(
            tmp,
            geometry,
            values,
            fields,
            layer=LAYER,
            driver="GPKG",
            geometry_type="Polygon",
            crs=crs,
            layer_metadata={"SIMULATED": "yes", **metadata},
        )
    return path
