"""Exceptions and warnings raised by spec3c.

Every error that concerns a file names the file and the problem, so a user
can act on it without reading a traceback.
"""

from __future__ import annotations

from pathlib import Path


class Spec3cError(Exception):
    """Base class of every error spec3c raises on purpose."""


class InputError(Spec3cError):
    """An input file (association, exposure, parameter file) is unusable."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # pickles (to and from worker processes) as itself
        return (type(self), (self.path, self.problem))


class StoreError(Spec3cError):
    """The store is missing, of another schema version, or inconsistent."""


class Spec3cWarning(UserWarning):
    """A science caveat: the result is produced but may need attention."""
