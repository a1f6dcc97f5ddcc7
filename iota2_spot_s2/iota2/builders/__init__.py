"""Put the SPOT FCN step into iota2's chain without editing iota2.

- Current iota2: a builder class found through the cfg's ``builders`` section,
  :class:`~iota2_spot_s2.iota2.builders.current.I2SpotClassification` (iota2's
  ``I2Classification`` plus our step, last)::

      builders : { builders_paths : '<this folder>'
                   builders_class_name : ['I2SpotClassification'] }

  ``<this folder>`` is :func:`builders_folder` (``python -c "from iota2_spot_s2.iota2.builders
  import builders_folder; print(builders_folder())"``).
- iota2 2020 (no builder setting): :mod:`~iota2_spot_s2.iota2.builders.iota2_2020` gives
  :func:`~iota2_spot_s2.iota2.builders.iota2_2020.spot_chain_class` (a subclass of iota2's
  ``Iota2Builder.iota2`` whose step list holds ours after iota2's classification steps) and a
  launcher, ``python -m iota2_spot_s2.iota2.builders.iota2_2020 <Iota2.py arguments>``, that
  runs iota2's own ``Iota2.py`` with that builder in place.

Only absolute imports here: iota2 may load the modules of this folder by file path.
"""

from __future__ import annotations

from pathlib import Path


def builders_folder() -> Path:
    """The folder to give iota2 as ``builders.builders_paths``."""
    return Path(__file__).resolve().parent


__all__ = ["builders_folder"]
