"""Exposures read and checked, held until every member of an association has been.

Ingest reads (and checks) every member before it writes anything, so a
broken last member leaves the store as it was, and opens each file once
(opening is most of the cost of reading: asdf parses every slit's gwcs).
What was read waits here: in memory up to a budget, beyond it pickled into a
private temporary folder (mode 0700, in the system's temporary directory,
removed when the block ends) one cutout at a time (:class:`StagedFile`: a
worker reading a member writes each cutout as it is laid out, and the
exposure is committed from the file one cutout at a time).  A folder left
by a killed ingest (its process is gone) is removed by the next one.
"""

from __future__ import annotations

import os
import pickle
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ..allocator import release_freed_memory
from ..store.records import Cutout, LazyCutouts

if TYPE_CHECKING:
    from .reader import ExposureData

__all__ = ["StagedFile", "Staging", "load_staged", "spill"]

#: bytes of a staging file's first field (where its header starts)
_OFFSET_BYTES = 8

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


class StagedFile:
    """An exposure written to a staging file one cutout at a time, as the reader lays them out
    (a reader then holds one cutout's planes, not the exposure's): :meth:`add` each cutout, then
    :meth:`finish` with the exposure's record and images.

    The file: 8 bytes (the header's offset), the pickled cutouts, the pickled header (record,
    images, each cutout's offset and key, the frames written beforehand).  Read back by :func:`load_staged`.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "wb")  # noqa: SIM115 - closed by finish() or discard()
        self._file.write(bytes(_OFFSET_BYTES))
        self._offsets: list[int] = []
        self._keys: list[tuple[str, str, str]] = []

    def add(self, cutout: Cutout) -> None:
        self._offsets.append(self._file.tell())
        self._keys.append(cutout.key)
        pickle.dump(cutout, self._file, protocol=pickle.HIGHEST_PROTOCOL)

    def reset(self) -> None:
        """Forget the cutouts added (the reader starts the exposure again)."""
        self._file.seek(_OFFSET_BYTES)
        self._file.truncate()
        self._offsets.clear()
        self._keys.clear()

    def finish(self, data: ExposureData) -> None:
        """Add ``data``'s cutouts (those a reader did not add), then its record and images."""
        for cutout in data.cutouts:
            self.add(cutout)
        header = self._file.tell()
        pickle.dump((data.record, data.images, self._offsets, self._keys, data.written), self._file,
                    protocol=pickle.HIGHEST_PROTOCOL)
        self._file.seek(0)
        self._file.write(header.to_bytes(_OFFSET_BYTES, "little"))
        self._file.close()

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


def spill(data: ExposureData, path: Path) -> None:
    """Write ``data`` to ``path`` (a file of a staging :meth:`Staging.folder`) as :class:`StagedFile` does."""
    staged = StagedFile(path)
    try:
        staged.finish(data)
    except BaseException:
        staged.discard()  # no half-written file left
        raise


class _StagedCutouts(LazyCutouts):
    """The cutouts of a staging file, each unpickled when indexed (the file is open: its name may go)."""

    def __init__(self, file: BinaryIO, offsets: list[int], keys: list[tuple[str, str, str]]) -> None:
        super().__init__(keys)
        self._file = file
        self._offsets = offsets

    def close(self) -> None:
        self._file.close()

    def load(self, index: int) -> Cutout:
        self._file.seek(self._offsets[index])
        cutout: Cutout = pickle.load(self._file)  # written by this ingest (folder mode 0700)
        return cutout


def load_staged(path: Path) -> ExposureData:
    """The exposure of a staging file, its cutouts loaded when indexed; the file is removed (the
    cutouts read it through their open handle until they are dropped)."""
    from .reader import ExposureData

    file = open(path, "rb")  # noqa: SIM115 - kept by the returned cutouts
    try:
        file.seek(int.from_bytes(file.read(_OFFSET_BYTES), "little"))
        record, images, offsets, keys, written = pickle.load(file)
    except BaseException:
        file.close()
        raise
    finally:
        path.unlink(missing_ok=True)
    return ExposureData(record, _StagedCutouts(file, offsets, [tuple(k) for k in keys]), images, written)


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
        of this ingest stage into it too (:class:`StagedFile`, then :meth:`add_spilled`)."""
        if self._folder is None:
            remove_stale_staging()
            self._folder = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{_host()}-{os.getpid()}-"))
        return self._folder

    def add_spilled(self, path: Path) -> None:
        """An exposure a :class:`StagedFile` wrote into :meth:`folder` (in another process)."""
        self._held.append(path)

    def __len__(self) -> int:
        return len(self._held)

    def drain(self) -> Iterator[ExposureData]:
        """Every exposure added, in order, each released once yielded (a spilled one's cutouts are
        loaded one at a time as they are indexed)."""
        while self._held:
            item = self._held.pop(0)
            if not isinstance(item, Path):
                yield item
                continue
            data = load_staged(item)
            try:
                yield data
            finally:
                data.cutouts.close()  # type: ignore[attr-defined]  # a _StagedCutouts
