"""A seeded simulated landscape seen by SPOT 6/7 (1.5 m) and Sentinel-2 (10 m time series).

Everything written is marked simulated (``scene.json``, GeoTIFF tag ``SIMULATED=yes``, a
``simulated`` field and layer metadata in the GeoPackage). The classes are built so that some
need SPOT's spatial detail, some need Sentinel-2's phenology and some are easy for both: see
:mod:`iota2_spot_s2.simulation.classes`.

Public API:

- :func:`generate_scene` writes a scene folder and returns its :class:`SceneInfo`;
- :func:`load_scene` reads it back from ``scene.json``;
- :data:`CLASSES` is the class table (:class:`ClassInfo`).
"""

from iota2_spot_s2.simulation.classes import CLASSES, ClassInfo
from iota2_spot_s2.simulation.manifest import SceneInfo, load_scene
from iota2_spot_s2.simulation.scene import generate_scene

__all__ = ["CLASSES", "ClassInfo", "SceneInfo", "generate_scene", "load_scene"]
