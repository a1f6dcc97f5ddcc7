"""One error type for bad user input, rendered by the CLI as a single line.

Every reader raises :class:`InputError` with the offending path and a short problem statement;
``fuse-classify`` prints ``error: <path>: <problem>`` and exits with status 2, no traceback.
"""

from __future__ import annotations

from os import PathLike


class InputError(Exception):
    """A user-supplied file or folder cannot be used.

    Args:
        path: The file or folder at fault.
        problem: What is wrong with it, in a few words.

    """

    def __init__(self, path: str | PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
