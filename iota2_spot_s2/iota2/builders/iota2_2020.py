"""iota2 2020: its chain with the SPOT FCN step, and a launcher for its ``Iota2.py``.

iota2 2020 has no builder setting: ``Iota2.py`` builds ``Iota2Builder.iota2(cfg, resources)``,
whose ``build_steps`` constructs every step as ``Step(cfg, resources, workingDirectory)`` into a
``StepContainer``. :func:`spot_chain_class` subclasses that builder: the same steps, plus
:class:`~iota2_spot_s2.iota2.step.SpotFCNClassification` built the same way, placed after the
last step of iota2's ``classification`` group (so after sampling: iota2's validation polygons
exist and are held out of the FCN's training; ``firstStep``/``lastStep`` keep their meaning).

The launcher ``python -m iota2_spot_s2.iota2.builders.iota2_2020 -config run.cfg
[-config_ressources res.cfg] [other Iota2.py options]`` puts iota2's folder on ``sys.path``,
replaces the attribute ``Iota2Builder.iota2`` by that subclass in memory, then runs iota2's own
``Iota2.py`` as ``__main__``: iota2's files are never edited. Everything else (cfg check, MPI
scheduling, logs) is iota2's.
"""

from __future__ import annotations

import importlib
import importlib.util
import runpy
import sys
from pathlib import Path
from typing import Any

from iota2_spot_s2.errors import InputError

#: The iota2 2020 step group the SPOT step joins (after iota2's classification steps).
IOTA2_GROUP = "classification"


def iota2_root() -> Path:
    """The folder of iota2 2020's package (``Iota2.py``, ``Iota2Builder.py``)."""
    spec = importlib.util.find_spec("iota2")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("iota2", "iota2 is not importable: activate iota2's environment")
    root = Path(next(iter(spec.submodule_search_locations)))
    if not (root / "Iota2Builder.py").is_file():
        raise InputError(root, "no Iota2Builder.py: not iota2 2020 (current iota2: builders)")
    return root


def insert_after_group(container: Any, step: Any, group: str = IOTA2_GROUP) -> Any:
    """A new iota2 ``StepContainer`` holding ``step`` after the last step of ``group``."""
    steps = [container[i] for i in range(len(container))]
    groups = [s.step_group for s in steps]
    if group not in groups:
        raise InputError(str(getattr(step, "cfg", "cfg")), f"iota2's chain has no {group!r} step")
    at = max(i for i, g in enumerate(groups) if g == group) + 1
    rebuilt = type(container)()
    for item, item_group in zip(
        [*steps[:at], step, *steps[at:]], [*groups[:at], group, *groups[at:]], strict=True
    ):
        item.previous_step = item.next_step = None
        rebuilt.append(item, item_group)
    return rebuilt


def spot_chain_class(base: type) -> type:
    """iota2 2020's builder ``base`` (``Iota2Builder.iota2``) with the SPOT FCN step added."""
    from iota2_spot_s2.iota2.step import SpotFCNClassification

    class Iota2SpotChain(base):
        """iota2 2020's chain plus ``SpotFCNClassification`` in its ``classification`` group."""

        spot_fcn_chain = True

        def build_steps(self, cfg: str, config_ressources: str | None = None) -> Any:
            container = super().build_steps(cfg, config_ressources)
            step = SpotFCNClassification(cfg, config_ressources, self.workingDirectory)
            return insert_after_group(container, step)

    return Iota2SpotChain


def install_builder() -> type:
    """Replace ``Iota2Builder.iota2`` (in memory) by :func:`spot_chain_class` of it."""
    root = str(iota2_root())
    if root not in sys.path:
        sys.path.insert(0, root)
    builder = importlib.import_module("Iota2Builder")  # as Iota2.py imports it
    chain: type = getattr(builder, "iota2")  # noqa: B009 - iota2's class, named as iota2
    if not getattr(chain, "spot_fcn_chain", False):
        chain = spot_chain_class(chain)
        setattr(builder, "iota2", chain)  # noqa: B010
    return chain


def main(argv: list[str] | None = None) -> None:
    """Run iota2 2020's ``Iota2.py`` with :func:`install_builder`'s chain."""
    install_builder()
    script = iota2_root() / "Iota2.py"
    sys.argv = [str(script), *(sys.argv[1:] if argv is None else argv)]
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
