"""iota2_spot_s2: land-cover maps from SPOT 6/7 and Sentinel-2 with fully convolutional networks.

The package is laid out by role (see ``docs/DESIGN.md``):

- :mod:`iota2_spot_s2.sensors` reads SPOT 6/7 images, Theia Sentinel-2 L2A products and iota2
  ``sensor_data`` trees, and aligns rasters onto a :class:`~iota2_spot_s2.grid.Grid`.
- :mod:`iota2_spot_s2.reference` turns reference vectors into labels and spatially disjoint splits.
- :mod:`iota2_spot_s2.simulation` writes the seeded simulated landscape of ``fuse-classify demo``.
- :mod:`iota2_spot_s2.models`, :mod:`~iota2_spot_s2.training`, :mod:`~iota2_spot_s2.inference` and
  :mod:`~iota2_spot_s2.evaluation` train, map and score the segmentation networks.
"""

__version__ = "0.1.0"
