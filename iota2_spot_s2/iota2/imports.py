"""One class of iota2's, looked up in whichever of its module paths the installed iota2 has.

iota2 moved its modules between releases (``iota2.Steps.IOTA2Step`` in 2020,
``iota2.steps.iota2_step`` today), so the adapter tries ``(module, name)`` candidates in turn
and keeps, for its error messages, why each one failed. Whether a module counts as "not
installed", and whether that or a module without the class is worth saying, is the caller's
rule: :func:`first_class` takes it as arguments.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable

#: Whether a ``ModuleNotFoundError`` met importing a module means that module is not installed.
AbsentRule = Callable[[str, ModuleNotFoundError], bool]


def package_missing(module: str, exc: ModuleNotFoundError) -> bool:
    """True when ``exc`` names ``module`` or a package above it (``iota2``, ``iota2.steps``)."""
    return bool(exc.name) and (module == exc.name or module.startswith(f"{exc.name}."))


def prefix_missing(module: str, exc: ModuleNotFoundError) -> bool:
    """True when ``module``'s dotted name starts with the missing module's name."""
    return bool(exc.name) and module.startswith(exc.name)


def first_class(
    candidates: Iterable[tuple[str, str]],
    *,
    absent: AbsentRule,
    say_absent: bool,
    say_no_class: bool,
) -> tuple[type | None, list[str]]:
    """The first ``name`` of a ``module`` that imports and is a class, else why none was.

    Args:
        candidates: ``(module, name)`` pairs, tried in order.
        absent: The rule saying a module is not installed (:func:`package_missing`,
            :func:`prefix_missing`); any other import failure is always a problem.
        say_absent: Report a module that is not installed (``"<module> is not installed"``)
            rather than pass it over in silence.
        say_no_class: Report a module that imports without the class
            (``"<module>: no class <name>"``) rather than pass it over in silence.

    Returns:
        ``(class, [])`` for the first candidate found; else ``(None, problems)``, one line per
        failed candidate, in order (empty when every candidate was passed over in silence).

    """
    problems: list[str] = []
    for module, name in candidates:
        try:
            found = getattr(importlib.import_module(module), name, None)
        except ModuleNotFoundError as exc:
            if not absent(module, exc):
                problems.append(f"{module}: {type(exc).__name__}: {exc}")
            elif say_absent:
                problems.append(f"{module} is not installed")
            continue
        except Exception as exc:  # noqa: BLE001 - any failure inside iota2 is reported
            problems.append(f"{module}: {type(exc).__name__}: {exc}")
            continue
        if isinstance(found, type):
            return found, []
        if say_no_class:
            problems.append(f"{module}: no class {name}")
    return None, problems
