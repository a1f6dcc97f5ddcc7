"""Current iota2: a builder class naming iota2's classification chain plus the SPOT FCN step.

In the cfg::

    builders : { builders_paths : '<iota2_spot_s2/iota2/builders folder>'
                 builders_class_name : ['I2SpotClassification'] }

:class:`I2SpotClassification` subclasses iota2's ``I2Classification``
(``iota2.sequence_builders.i2_classification``; ``i2_classification`` in 2021 releases) and
changes one thing: its ``build_steps`` appends ``SpotFCNClassification`` to the last step
container, in the group of the step before it, built as iota2 builds its steps
(``Step(cfg, resources, working_directory)``; as a ``functools.partial`` of that when the
container holds partials, as today's iota2 does to build steps lazily). Being last, its tasks
are part of the final task graph; it depends on every task registered before it
(:meth:`SpotFCNClassification._task_dependencies`).

Without current iota2 the class still exists (so iota2 can find it by name) and says, when
built, why it cannot run. This module has not been run against a current iota2 (not installable
here): its tests use a stand-in of the documented builder API.
"""

from __future__ import annotations

import functools
from typing import Any

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.iota2.imports import first_class, prefix_missing
from iota2_spot_s2.iota2.step import SpotFCNClassification

CLASSIFICATION_BUILDERS = (
    ("iota2.sequence_builders.i2_classification", "I2Classification"),
    ("iota2.sequence_builders.i2_classification", "i2_classification"),
)


def find_classification_builder() -> tuple[type | None, str]:
    """iota2's classification builder class, else None and why.

    Any missing module whose name begins the builder module's counts as iota2 not installed,
    and says so; a module without the class is passed over.
    """
    found, problems = first_class(
        CLASSIFICATION_BUILDERS, absent=prefix_missing, say_absent=True, say_no_class=False
    )
    if found is not None:
        return found, ""
    return None, "; ".join(dict.fromkeys(problems)) or "no I2Classification class"


def append_spot_step(containers: Any, cfg: str, resources: str | None, working_dir: Any) -> Any:
    """Append the SPOT step to the last container of ``containers`` (one or a list)."""
    container = containers[-1] if isinstance(containers, list | tuple) else containers
    steps = [container[i] for i in range(len(container))]
    if not steps:
        raise InputError(cfg, "iota2's builder gave no steps to follow")
    lazy = isinstance(steps[0], functools.partial)
    step = functools.partial(SpotFCNClassification, cfg, resources, working_dir)
    group = getattr(steps[-1], "step_group", "") or "classification"
    container.append(step if lazy else step(), group)
    return containers


_Builder, BUILDER_PROBLEM = find_classification_builder()


class I2SpotClassification(_Builder or object):  # type: ignore[misc]
    """iota2's ``I2Classification`` plus ``SpotFCNClassification``, last."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if _Builder is None:
            raise InputError("builders.builders_class_name", f"needs iota2 ({BUILDER_PROBLEM})")
        super().__init__(*args, **kwargs)

    def build_steps(self, cfg: str, config_ressources: str | None = None) -> Any:
        """iota2's steps, then ours (built with iota2's working directory)."""
        containers = super().build_steps(cfg, config_ressources)
        working_dir = getattr(self, "workingDirectory", getattr(self, "working_directory", None))
        return append_spot_step(containers, cfg, config_ressources, working_dir)
