"""Learning-rate schedules over a training budget, and the checks of that budget.

See :mod:`iota2_spot_s2.training.loop` for the recipe; the LR of every step is
:func:`learning_rate` of the run's :func:`progress` (no torch scheduler), so a step or time
budget ends at a low LR whatever its length, and the seed's StepLR is counted in passes over the
TRAIN pixels.
"""

from __future__ import annotations

import math
from typing import Any

from iota2_spot_s2.devices import PRECISIONS
from iota2_spot_s2.errors import InputError

SCHEDULES = ("cosine", "step", "constant")
#: Last LR of the cosine schedule, as a fraction of ``lr``.
COSINE_FLOOR = 0.02


def check_budget(config: dict[str, Any]) -> None:
    """Reject an unknown schedule or precision and budgets that cannot train (0 or negative).

    Raises:
        InputError: Naming the setting, its value and what is allowed.
    """
    if config["schedule"] not in SCHEDULES:
        raise InputError("schedule", f"must be one of {', '.join(SCHEDULES)}, "
                         f"got {config['schedule']!r}")  # fmt: skip
    for key in ("epochs", "batch_size", "crop", "rounds", "iters_per_epoch", "max_steps"):
        value = config.get(key)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise InputError(key, f"must be a positive integer, got {value!r}")
    minutes = config["max_minutes"]
    if minutes is not None and not (isinstance(minutes, int | float) and minutes > 0):
        raise InputError("max_minutes", f"must be a positive number, got {minutes!r}")
    if config.get("precision", "fp32") not in PRECISIONS:
        raise InputError("precision", f"must be one of {', '.join(PRECISIONS)}, "
                         f"got {config['precision']!r}")  # fmt: skip


def learning_rate(config: dict[str, Any], progress: float, passes: float) -> float:
    """The LR of a step at ``progress`` in [0, 1] of the budget, ``passes`` over TRAIN pixels."""
    lr, kind = float(config["lr"]), config.get("schedule", "step")
    if kind == "constant":
        return lr
    if kind == "step":
        return lr * float(config["gamma"]) ** math.floor(passes / float(config["step_size"]))
    p = min(max(progress, 0.0), 1.0)
    warm = float(config.get("warmup", 0.0))
    ramp = min(1.0, (p + 1e-12) / warm) if warm > 0 else 1.0
    return lr * ramp * (COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5 * (1 + math.cos(math.pi * p)))


def progress(
    config: dict[str, Any], meta: dict[str, Any], round_steps: int, elapsed: float
) -> float:
    """Share of the budget spent, clipped to [0, 1].

    The max of steps / ``max_steps`` and seconds / ``max_minutes`` (rounds x ``round_steps``
    steps when neither is given).
    """
    step = meta["step"]
    parts = []
    if config.get("max_steps"):
        parts.append(step / config["max_steps"])
    if config.get("max_minutes"):
        parts.append(elapsed / (60.0 * config["max_minutes"]))
    if not parts:
        parts.append(step / max(1, config["epochs"] * round_steps))
    return min(1.0, max(parts))
