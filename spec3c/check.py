"""``spec3c check``: is a store whole, and did an interrupted writer leave anything behind?

A store is consistent when

* every committed exposure is complete: its cutouts (science) or spectra
  (background) are all there and every plane, coordinate and gwcs reads back;
* every result reads back, and every source whose ``status`` says a step
  completed holds that step's result;
* nothing of an interrupted write is left on disk: no uncommitted TileDB
  fragment, no consolidated fragment awaiting its vacuum, no temporary file,
  no cutout cells of an exposure whose record was never committed.

Leftovers are invisible to readers (the backends commit atomically), but they
take space and an unwitting user could mistake them for data.  Writers hold a
shared lock on the store (:func:`store_writer`) for as long as they write;
the first writer to find no other writer alive removes the leftovers of the
ones that died, and ``spec3c check --repair`` does the same on demand.  While
a writer holds the lock its files in flight are not leftovers, so ``check``
then reports them without judging them.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from .errors import StoreError
from .results import ASSOCIATION_SOURCE, STATUS
from .store import Store, open_store
from .store.layout import LOCK, MANIFEST, detect_backend

__all__ = ["CheckReport", "Leftover", "Problem", "check_store", "find_leftovers", "remove_leftovers",
           "store_writer"]

#: result key (or key prefix before "/") a completed step leaves for its source
_RESULT_OF_STEP = {"outlier_detection": "crf", "resample_spec": "s2d", "extract_1d": "x1d", "combine_1d": "c1d"}
#: the TileDB arrays of a store (spec3c.store.tiledb_store)
_TILEDB_ARRAYS = ("exposures", "cutouts", "images", "results")


@dataclass(frozen=True)
class Problem:
    """Something wrong with committed content (``where``: exposure, source/result or file)."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class Leftover:
    """What an interrupted write left: a file or folder, or orphan cutout cells of an exposure."""

    path: Path
    reason: str
    exposure: str | None = None  # orphan cells: the exposure they belong to

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class CheckReport:
    """What :func:`check_store` found."""

    store: Path
    backend: str = ""
    exposures: int = 0
    cutouts: int = 0
    image_planes: int = 0
    results: int = 0
    sources_complete: int = 0
    sources_failed: int = 0
    sources_unfinished: int = 0
    problems: list[Problem] = field(default_factory=list)
    leftovers: list[Leftover] = field(default_factory=list)
    removed: list[Leftover] = field(default_factory=list)
    #: another process holds the writer lock: leftovers may be its writes in flight
    writer_active: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems and (not self.leftovers or self.writer_active)

    def summary(self) -> str:
        """A few lines for the command line."""
        lines = [
            f"store {self.store} ({self.backend}): {self.exposures} exposures complete "
            f"({self.cutouts} cutouts, {self.image_planes} image planes), {self.results} results readable",
            f"sources: {self.sources_complete} complete, {self.sources_failed} failed, "
            f"{self.sources_unfinished} not processed or unfinished",
        ]
        lines += [f"removed {item}" for item in self.removed]
        lines += [f"PROBLEM {p}" for p in self.problems]
        if self.leftovers and self.writer_active:
            lines.append(f"a writer is active: {len(self.leftovers)} files in flight not judged")
        else:
            lines += [f"LEFTOVER {item}" for item in self.leftovers]
            if self.leftovers:
                lines.append("leftovers of an interrupted write: `spec3c check --repair` removes them "
                             "(so does the next ingest or process)")
        lines.append("ok" if self.ok else "NOT OK")
        return "\n".join(lines)


# -- the writer lock ---------------------------------------------------------

def _lock_path(store_path: Path) -> Path:
    return store_path / LOCK


@contextmanager
def store_writer(store_path: str | os.PathLike[str], *, clean: bool = True) -> Iterator[list[Leftover]]:
    """Hold the store's writer lock (shared with other writers) for the block.

    With ``clean``, when no other writer holds the lock, the leftovers of
    writers that died are removed first; the block receives what was removed.
    The lock is an ``flock`` on ``STORE/.spec3c-lock``, released by the kernel
    however the process ends.  A store that does not exist yet is not locked.
    """
    path = Path(store_path)
    if not (path / MANIFEST).is_file():
        yield []
        return
    fd = os.open(_lock_path(path), os.O_RDWR | os.O_CREAT, 0o644)
    removed: list[Leftover] = []
    try:
        if clean and _try_exclusive(fd):
            try:
                removed = remove_leftovers(path, locked=True)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield removed
    finally:
        os.close(fd)  # releases the lock


def _try_exclusive(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def writer_active(store_path: str | os.PathLike[str]) -> bool:
    """Whether another process holds the store's writer lock now."""
    lock = _lock_path(Path(store_path))
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDONLY)
    try:
        if _try_exclusive(fd):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        return True
    finally:
        os.close(fd)


# -- leftovers -----------------------------------------------------------------

def _tiledb_leftovers(store_path: Path) -> list[Leftover]:
    found = []
    for name in _TILEDB_ARRAYS:
        array = store_path / name
        fragments, commits = array / "__fragments", array / "__commits"
        committed = {p.name[: -len(".wrt")] for p in commits.glob("*.wrt")} if commits.is_dir() else set()
        if fragments.is_dir():
            found += [Leftover(frag, "uncommitted TileDB fragment (an interrupted write)")
                      for frag in sorted(fragments.iterdir()) if frag.name not in committed]
        if commits.is_dir():
            found += [Leftover(vac, "consolidated fragments not vacuumed yet (an interrupted consolidation)")
                      for vac in sorted(commits.glob("*.vac"))]
    return found


def _temporary_files(store_path: Path) -> list[Leftover]:
    """Temporary files of the atomic writes (``.<name>.<pid>.tmp``, the manifest's ``.tmp``)."""
    found = [Leftover(p, "temporary file of an interrupted write")
             for p in sorted(store_path.rglob(".*.tmp")) if p.is_file()]
    manifest_tmp = (store_path / MANIFEST).with_suffix(".tmp")
    if manifest_tmp.exists():
        found.append(Leftover(manifest_tmp, "temporary store manifest (an interrupted store creation)"))
    return found


def _orphan_cells(store: Store) -> list[Leftover]:
    """Cutout and image cells of exposures whose record was never committed (TileDB)."""
    if store.backend != "tiledb":
        return []  # HDF5 writes an exposure as one file, renamed into place
    import tiledb

    assert store.path is not None
    committed = {r.name for r in store.list_exposures()}
    orphans: dict[str, Path] = {}
    for array in ("cutouts", "images"):
        with tiledb.open(str(store.path / array), "r", ctx=store.ctx) as arr:  # type: ignore[attr-defined]
            names = arr.query(attrs=[]).multi_index[tuple(slice(None) for _ in range(arr.schema.ndim))]["exposure"]
        for name in {n.decode() if isinstance(n, bytes) else str(n) for n in names} - committed:
            orphans.setdefault(name, store.path / array)
    return [Leftover(path, f"cells of exposure {name!r}, never committed (an interrupted ingest)", name)
            for name, path in sorted(orphans.items())]


def find_leftovers(store_path: str | os.PathLike[str]) -> list[Leftover]:
    """Everything interrupted writes left in the store at ``store_path``."""
    path = Path(store_path)
    found = _temporary_files(path)
    if detect_backend(path) == "tiledb":
        found += _tiledb_leftovers(path)
    with open_store(path) as store:
        found += _orphan_cells(store)
    return found


def _vacuum(array: Path) -> None:
    import tiledb

    from .store.tiledb_store import new_context

    for mode in ("fragments", "fragment_meta", "commits"):
        config = tiledb.Config({"sm.vacuum.mode": mode})
        tiledb.vacuum(str(array), config=config, ctx=new_context(config))


def remove_leftovers(store_path: str | os.PathLike[str], *, locked: bool = False) -> list[Leftover]:
    """Remove the leftovers of interrupted writes; returns what was removed.

    Only safe when no other process writes the store: without ``locked``
    (the caller holds the writer lock exclusively) the lock is taken here, and
    a :class:`StoreError` is raised if another writer holds it.
    """
    path = Path(store_path)
    if not locked:
        fd = os.open(_lock_path(path), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _try_exclusive(fd):
                raise StoreError(f"{path}: another spec3c process is writing this store; "
                                 "repair it when that process has finished")
            return remove_leftovers(path, locked=True)
        finally:
            os.close(fd)
    found = find_leftovers(path)
    cells = [item for item in found if item.exposure is not None]
    if cells:
        with open_store(path, mode="a") as store:
            for item in cells:
                store.delete_exposure(item.exposure)  # type: ignore[arg-type]
        time.sleep(0.005)  # a delete hides cells written in the same millisecond (TileDB)
    vacuum = sorted({item.path.parent.parent for item in found if item.path.suffix == ".vac"})
    for item in found:
        if item.exposure is None and item.path.suffix != ".vac":
            _remove(item.path)
    for array in vacuum:
        _vacuum(array)
    return found


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# -- committed content ------------------------------------------------------------

def _check_exposures(store: Store, report: CheckReport) -> None:
    records = store.list_exposures()
    report.exposures = len(records)
    infos = store.list_cutouts()
    by_exposure: dict[str, list[Any]] = {}
    for info in infos:
        by_exposure.setdefault(info.exposure, []).append(info)
    for record in records:
        if record.role == "science":
            _check_science(record.name, by_exposure.get(record.name, []), report)
        else:
            report.image_planes += _guarded(report, record.name, partial(_check_images, store, record.name))
    for source in store.sources():
        report.cutouts += _guarded(report, f"source {source}", partial(_check_cutouts, store, source))


def _check_science(name: str, infos: list[Any], report: CheckReport) -> None:
    if not infos:
        report.problems.append(Problem(name, "committed science exposure without cutouts"))
        return
    indices = sorted(int(i.meta.get("slit_index", 0)) for i in infos)
    if indices != list(range(len(indices))):
        report.problems.append(Problem(name, f"slits missing: slit indices {indices}"))


def _guarded(report: CheckReport, where: str, func: Callable[[], int]) -> int:
    """``func()``, a problem instead of an exception."""
    try:
        return func()
    except Exception as exc:  # noqa: BLE001 - any failure to read back is what check reports
        report.problems.append(Problem(where, f"cannot be read back: {type(exc).__name__}: {exc}"))
        return 0


def _check_images(store: Store, exposure: str) -> int:
    images = store.read_images(exposure)
    if not images:
        raise StoreError("committed background exposure without spectra")
    return len(images)


def _check_cutouts(store: Store, source: str) -> int:
    cutouts = store.read_cutouts(source)
    for c in cutouts:
        c.validate()
        if not c.wcs_asdf:
            raise StoreError(f"cutout {c.key} has no gwcs")
    return len(cutouts)


def _check_results(store: Store, report: CheckReport) -> None:
    pairs = store.list_results()
    keys: dict[str, set[str]] = {}
    for source, key in pairs:
        if _guarded(report, f"result {source}/{key}", partial(_read_result, store, source, key)):
            report.results += 1
            keys.setdefault(source, set()).add(key)
    for source in store.sources():
        held = keys.get(source, set())
        if STATUS not in held:
            report.sources_unfinished += 1
            continue
        status = store.get_result(source, STATUS)[1]
        if "error" in status:
            report.sources_failed += 1
            continue
        report.sources_complete += 1
        for step, record in status.get("steps", {}).items():
            wanted = _RESULT_OF_STEP.get(step)
            if wanted and record.get("status") == "COMPLETE" and not any(
                    k == wanted or k.startswith(f"{wanted}/") for k in held):
                report.problems.append(Problem(f"source {source}", f"{step} is COMPLETE but its {wanted!r} "
                                                                   "result is missing"))
    if report.exposures and ASSOCIATION_SOURCE not in keys:
        report.problems.append(Problem("association", "no association recorded (re-run `spec3c ingest`)"))


def _read_result(store: Store, source: str, key: str) -> int:
    store.get_result(source, key)
    return 1


def check_store(store_path: str | os.PathLike[str], *, repair: bool = False) -> CheckReport:
    """Check the store at ``store_path`` (see the module docstring); ``repair`` removes leftovers first.

    Raises
    ------
    StoreError
        The folder is not a readable spec3c store, or (``repair``) another
        process is writing it.
    """
    path = Path(store_path)
    report = CheckReport(path, backend=detect_backend(path))
    if repair:
        report.removed = remove_leftovers(path)
    report.writer_active = writer_active(path)
    with open_store(path) as store:
        report.leftovers = find_leftovers(path)
        _check_exposures(store, report)
        _check_results(store, report)
    return report
