"""Exposures read and checked, held until every member of an association has been.

Ingest reads (and checks) every member before it writes anything, so a
broken last member leaves the store as it was, and opens each file once
(opening is most of the cost of reading: asdf parses every slit's gwcs).
What was read waits here: in memory up to a budget, beyond it pickled into a
private temporary folder (mode 0700, in the system's temporary directory),
removed when the block ends.  A folder left by a killed ingest (its process
is gone) is removed by the next one.
"""

from __future__ import annotations

import os
import pickle
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..allocator import release_freed_memory

if TYPE_CHECKING:
    from .reader import ExposureData

__all__ = ["Staging", "spill"]

#: bytes of arrays kept in memory before exposures are spilled to disk
BUDGET = 32 * 2**20
_PREFIX = "spec3c-ingest-"


def _nbytes(data: ExposureData) -> int:
    return (sum(a.nbytes for c in data.cutouts for a in c.planes.values())
            + sum(a.nbytes for a in data.images.values()))


def _host() -> str:
    return socket.gethostname().replace("-", "_")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_staging(root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove staging folders of this host whose ingest process died; returns them."""
    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(f"{_PREFIX}*"):
        host, _, rest = folder.name[len(_PREFIX):].partition("-")
        pid = rest.partition("-")[0]
        if host == _host() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def spill(data: ExposureData, path: Path) -> None:
    """Pickle ``data`` to ``path`` (a file of a staging :meth:`Staging.folder`)."""
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)


class Staging:
    """Hold :class:`ExposureData` in order: ``add`` each, then :meth:`drain` them."""

    def __init__(self, budget: int = BUDGET) -> None:
        self.budget = budget
        self._held: list[ExposureData | Path] = []
        self._in_memory = 0
        self._folder: Path | None = None

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
        self._held.clear()

    def add(self, data: ExposureData, last: bool = False) -> None:
        """Hold ``data``: in memory within the budget, else spilled to disk.  The ``last`` exposure read
        stays in memory if none was spilled (spilling it would only load it back at once); else it is
        spilled too, and the exposures are committed from disk one at a time."""
        size = _nbytes(data)
        spilled = any(isinstance(item, Path) for item in self._held)
        if (last and not spilled) or self._in_memory + size <= self.budget:
            self._held.append(data)
            self._in_memory += size
            return
        path = self.folder() / f"{len(self._held)}.pickle"
        spill(data, path)
        self._held.append(path)
        del data
        release_freed_memory()

    def folder(self) -> Path:
        """The private folder exposures are spilled to (created on first use); worker processes
        of this ingest spill into it too (:func:`spill`, then :meth:`add_spilled`)."""
        if self._folder is None:
            remove_stale_staging()
            self._folder = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{_host()}-{os.getpid()}-"))
        return self._folder

    def add_spilled(self, path: Path) -> None:
        """An exposure :func:`spill` wrote into :meth:`folder` (in another process)."""
        self._held.append(path)

    def __len__(self) -> int:
        return len(self._held)

    def drain(self) -> Iterator[ExposureData]:
        """Every exposure added, in order, each released once yielded."""
        while self._held:
            item = self._held.pop(0)
            if isinstance(item, Path):
                with open(item, "rb") as f:
                    data: ExposureData = pickle.load(f)  # written by this process (folder mode 0700)
                item.unlink()
                yield data
            else:
                yield item
