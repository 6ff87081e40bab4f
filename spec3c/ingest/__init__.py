"""``spec3c ingest``: read an association's exposures once into a store.

Every member is read and checked (:mod:`.validate`) before anything is
written, so a broken member leaves the store as it was (a new store read in
parallel commits members while others are read, and is removed if one is
broken: it did not exist).  Each exposure is
committed atomically; an exposure whose file is unchanged (same sha256) is
skipped, so a re-run after an interruption completes what is missing.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..allocator import release_freed_memory
from ..asn import Association, read_association
from ..check import store_writer
from ..config import quarter_of_ram
from ..errors import InputError, Spec3cError
from ..log import logger
from ..parallel import LocalExecutor, executor_for, shared_workers_running, worker_count
from ..results import save_association
from ..store import Store, create_store, open_store
from ..store.layout import LOCK, MANIFEST
from ..store.records import LazyCutouts
from .reader import ExposureData, exposure_name, file_mode, read_exposure, set_up_of, sha256_of
from .shared_coords import shared_in
from .staging import StagedFile, Staging

ProgressFn = Callable[[str, int, int], None]

_log = logger("ingest")


@dataclass
class IngestReport:
    """What an ingest run did."""

    store_path: Path
    ingested: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    n_cutouts: int = 0
    seconds: float = 0.0

    @property
    def nothing_to_do(self) -> bool:
        return not self.ingested and not self.replaced


@dataclass(frozen=True)
class _Planned:
    path: Path
    role: str
    name: str
    sha256: str  # "" when nothing needed it to plan: it is computed while the member is read
    action: str  # "new" | "replace" | "unchanged"


def plan_ingest(asn: Association, store: Store | None, replace: bool) -> list[_Planned]:
    """Decide per member what to do; refuse (before writing) a changed file unless ``replace``."""
    plans = []
    seen: dict[str, Path] = {}
    for member in (*asn.science, *asn.background):  # other roles (psf) are not spec3 inputs
        name = exposure_name(member.path)
        if name in seen:
            raise InputError(asn.path, f"members {seen[name]} and {member.path} share the exposure name {name!r}")
        seen[name] = member.path
        existing = store.get_exposure(name) if store is not None else None
        digest = sha256_of(member.path) if existing is not None else ""
        if existing is None:
            action = "new"
        elif existing.sha256 == digest and existing.role == member.exptype:
            action = "unchanged"
        elif replace:
            action = "replace"
        else:
            raise InputError(
                member.path,
                f"the store already holds a different exposure named {name!r} "
                f"(from {existing.filename}); pass --replace to overwrite it",
            )
        plans.append(_Planned(member.path, member.exptype, name, digest, action))
    return plans


def _existing_store(path: Path, backend: str | None) -> Store | None:
    if not (path / MANIFEST).exists():
        ours = (LOCK, (path / MANIFEST).with_suffix(".tmp").name)  # a store creation was interrupted
        if path.exists() and any(p.name not in ours for p in path.iterdir()):
            raise InputError(path, "store folder exists, is not empty and is not a spec3c store")
        return None
    store = open_store(path)
    if backend is not None and store.backend != backend:
        raise InputError(path, f"existing {store.backend} store; run without --backend {backend} or pick a new path")
    return store


def ingest(  # noqa: PLR0913 - each flag is a user option
    asn_path: str | Path,
    store_path: str | Path,
    *,
    backend: str | None = None,
    replace: bool = False,
    allow_outside: bool = False,
    progress: ProgressFn | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
) -> IngestReport:
    """Ingest every member of an association into the store at ``store_path``.

    ``backend`` (tiledb or hdf5) applies to a new store; None keeps an existing
    store's backend and creates TileDB stores.  Large members (IFU frames), and
    every member inside a shared executor's block (``spec3c run``, whose
    workers are started anyway), are read in ``workers`` processes (default:
    one per core) or on ``scheduler`` (:func:`spec3c.parallel.open_executor`).
    The store is written by this process, except that local workers reading
    into a new TileDB store write each member's full frames into it
    themselves (a dense array nothing refers to until this process commits
    the member; a failed ingest removes the new store with them).
    """
    start = time.perf_counter()
    asn = read_association(asn_path, allow_outside=allow_outside)
    report = IngestReport(Path(store_path))
    existing = _existing_store(Path(store_path), backend)
    plans = plan_ingest(asn, existing, replace)
    todo = [p for p in plans if p.action != "unchanged"]
    report.unchanged = [p.name for p in plans if p.action == "unchanged"]
    _log.info("%s: %d member(s) to read into %s, %d unchanged", asn.path, len(todo), store_path,
              len(report.unchanged))
    with Staging() as staged:
        parallel = _in_parallel(todo, workers, scheduler)
        if parallel and existing is None and todo:
            _ingest_new_store(asn, todo, Path(store_path), backend, staged, workers, scheduler, progress, report)
            report.seconds = time.perf_counter() - start
            return report
        # every member is read and checked before the store changes: a bad one leaves it as it was
        if parallel:
            _read_parallel(todo, staged, workers, scheduler, progress)
        else:
            for done, plan in enumerate(todo, start=1):
                staged.add(_read_member(plan), last=done == len(todo))
                if progress:
                    progress(plan.name, done, len(todo))
        if existing is not None:
            existing.close()
        # only now is anything written; an existing store keeps its backend
        store = create_store(store_path, existing.backend if existing else backend or "tiledb")
        try:
            with store_writer(store_path):  # (and the leftovers of a killed writer are removed first)
                _commit(store, asn, todo, staged, report)
        finally:
            store.close()
    report.seconds = time.perf_counter() - start
    return report


#: members' total bytes from which they are read in worker processes (below, starting them costs more)
PARALLEL_BYTES = 256 * 2**20
#: bytes a worker needs to read a member, per byte of its file (full frames plus coordinate planes)
READ_BYTES_PER_FILE_BYTE = 8
#: the same for a slit-mode science file, whose cutouts are staged one at a time as they are laid
#: out: the file and one slit's coordinates (a 106 MB MOS file: ~130 MiB over a worker's own)
STREAMED_READ_BYTES_PER_FILE_BYTE = 2


def _in_parallel(todo: list[_Planned], workers: int | None, scheduler: str | None) -> bool:
    if len(todo) < 2 or (scheduler is None and worker_count(workers, len(todo)) < 2):
        return False
    if shared_workers_running():  # (spec3c run) its workers, started anyway, read while this process waits
        return True
    return sum(plan.path.stat().st_size for plan in todo) >= PARALLEL_BYTES


def _read_member(plan: _Planned, sink: StagedFile | None = None) -> ExposureData:
    data = read_exposure(plan.path, plan.role, plan.sha256 or None, sink)  # None: hashed while read
    _log.debug("read %s (%s, %d cutouts, %d images)", plan.path, plan.role, len(data.cutouts),
               len(data.images or ()))
    return data


def _read_job(name: str, plan: _Planned, folder: str | None,
              frames_into: str | None = None) -> ExposureData | str | InputError:
    """One member read in a worker: spilled into the staging ``folder`` (its path returned) or, without
    a folder (a remote worker), returned.  A broken member's :class:`InputError` is returned.
    ``frames_into``: the new TileDB store its full frames are written into here (they are not staged;
    the committing process only names them)."""
    if folder is None:
        try:
            return _read_member(plan)
        except InputError as exc:
            return exc  # returned, not raised: the executor would keep only its text
    staged = StagedFile(Path(folder) / f"member-{name}.pickle")  # the cutouts go there as they are laid out
    try:
        with shared_in(Path(folder) / "coordinates"):  # shared by the workers reading this association
            data = _read_member(plan, staged)
        if frames_into is not None:
            from ..store.tiledb_store import write_frames_beforehand

            data.written, data.images = write_frames_beforehand(frames_into, data.record.name, data.images)
        staged.finish(data)
        del data
    except BaseException as exc:
        staged.discard()
        if isinstance(exc, InputError):
            return exc
        raise
    finally:
        release_freed_memory()  # the worker's next job does not stack on this one's leftovers
    return str(staged.path)


def _ingest_new_store(asn: Association, todo: list[_Planned], store_path: Path, backend: str | None,  # noqa: PLR0913
                      staged: Staging, workers: int | None, scheduler: str | None, progress: ProgressFn | None,
                      report: IngestReport) -> None:
    """Make a new store of members read in parallel, each committed as soon as it and those before it
    are read, while the others are still being read.  A broken member, or any failure, removes what
    was made: the store did not exist (its folder, if it was there, is left empty)."""
    existed = store_path.exists()
    store = create_store(store_path, backend or "tiledb")
    try:
        with store_writer(store_path):
            save_association(store, asn)
            pending = iter(todo)

            def commit_staged() -> None:
                _commit_exposures(store, pending, staged, report)

            frames_into = str(store_path) if store.takes_written_frames else None
            _read_parallel(todo, staged, workers, scheduler, progress, on_staged=commit_staged,
                           frames_into=frames_into)
            commit_staged()
            store.consolidate()
    except BaseException:
        store.close()
        _remove_new_store(store_path, existed)
        raise
    store.close()


def _remove_new_store(path: Path, existed: bool) -> None:
    if not existed:
        shutil.rmtree(path, ignore_errors=True)
        return
    for child in path.iterdir():
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _read_parallel(todo: list[_Planned], staged: Staging, workers: int | None, scheduler: str | None,  # noqa: PLR0913
                   progress: ProgressFn | None, on_staged: Callable[[], None] | None = None,
                   frames_into: str | None = None) -> None:
    """Read the members in worker processes, at most as many at once as a quarter of the RAM holds;
    staged in the association's order as they arrive (``on_staged()`` called after each, until a
    member is broken).  The first broken member (in that order) is raised once all are read.
    ``frames_into``: a new TileDB store local workers write the members' full frames into."""
    largest = max(_read_bytes(plan) for plan in todo)
    with executor_for(len(todo), workers, scheduler) as executor:
        local = isinstance(executor, LocalExecutor)
        folder = str(staged.folder()) if local and executor.slots > 1 else None
        frames_into = frames_into if folder is not None else None
        batch = max(1, min(len(todo), quarter_of_ram() // max(largest, 1)))
        batch = len(todo) if batch >= executor.slots else batch  # the memory holds every worker's member
        arrived: dict[str, tuple[bool, Any]] = {}
        n_read = n_staged = 0
        for start in range(0, len(todo), batch):
            part = todo[start:start + batch]
            ordered = _reading_order(part) if folder is not None else part  # (coordinates shared in folder)
            for name, ok, value in executor.completed(_read_job, {p.name: (p, folder, frames_into) for p in ordered}):
                arrived[name] = (ok, value)
                n_read += 1
                if progress:
                    progress(name, n_read, len(todo))
                while n_staged < len(todo) and _readable(arrived.get(todo[n_staged].name)):
                    value = arrived.pop(todo[n_staged].name)[1]
                    staged.add_spilled(Path(value)) if isinstance(value, str) else staged.add(value)
                    n_staged += 1
                    if on_staged is not None:
                        on_staged()
            _raise_first_broken(part, arrived)


def _reading_order(part: list[_Planned]) -> list[_Planned]:
    """The members in the order workers read them: the first exposure of each IFU detector set-up
    first, so that the pointing-independent coordinates it saves are there for the others
    (:mod:`spec3c.ingest.shared_coords`); the rest in the association's order."""
    science = next((plan for plan in part if plan.role == "science"), None)
    if science is None or set_up_of(science.path, science.role) is None:
        return part  # not a mode read as full frames (one header read, not one a member)
    first: list[_Planned] = []
    rest: list[_Planned] = []
    seen: set[tuple[str, ...]] = set()
    for plan in part:
        key = set_up_of(plan.path, plan.role)
        (rest if key is not None and key in seen else first).append(plan)
        if key is not None:
            seen.add(key)
    return first + rest


def _read_bytes(plan: _Planned) -> int:
    """Memory a worker needs to read ``plan``'s member (:data:`READ_BYTES_PER_FILE_BYTE`, or
    :data:`STREAMED_READ_BYTES_PER_FILE_BYTE` for a science file of a mode read as slits)."""
    mode = file_mode(plan.path) if plan.role == "science" else None
    streamed = mode is not None and mode.read_frames is None and mode.read_file is None
    return plan.path.stat().st_size * (STREAMED_READ_BYTES_PER_FILE_BYTE if streamed else READ_BYTES_PER_FILE_BYTE)


def _readable(arrived: tuple[bool, Any] | None) -> bool:
    """A member read without error (None: not read yet)."""
    return arrived is not None and arrived[0] and not isinstance(arrived[1], InputError)


def _raise_first_broken(part: list[_Planned], arrived: dict[str, tuple[bool, Any]]) -> None:
    for plan in part:
        ok, value = arrived.get(plan.name, (True, None))
        if not ok:
            raise Spec3cError(f"reading {plan.name}: {value}")
        if isinstance(value, InputError):
            raise value


def _commit(store: Store, asn: Association, todo: list[_Planned], staged: Staging, report: IngestReport) -> None:
    """Write the association and the exposures read (each atomically), then consolidate."""
    if not todo:
        return
    save_association(store, asn)
    _commit_exposures(store, iter(todo), staged, report)
    store.consolidate()


#: staged exposures held in memory are committed together up to this many bytes of planes and images:
#: one TileDB write each of cutouts, images and records for all (~30 ms a write otherwise, a small run's tenth)
BATCH_BYTES = 16 * 2**20


def _commit_exposures(store: Store, plans: Iterator[_Planned], staged: Staging, report: IngestReport) -> None:
    """Commit every exposure staged so far (``plans``: the members they are, in order, consumed); small
    ones in batches (:data:`BATCH_BYTES`), the others one at a time."""
    batch: list[tuple[_Planned, ExposureData]] = []
    size = 0
    for data in staged.drain():
        plan = next(plans)
        nbytes = _batchable_bytes(data)
        if batch and (nbytes is None or size + nbytes > BATCH_BYTES):
            _commit_batch(store, batch, report)
            batch, size = [], 0
        if nbytes is None:  # committed before the next is loaded (a spilled one is released then)
            _commit_batch(store, [(plan, data)], report)
        else:
            batch.append((plan, data))
            size += nbytes
        del data
    if batch:
        _commit_batch(store, batch, report)


def _batchable_bytes(data: ExposureData) -> int | None:
    """Bytes of ``data``'s planes and images if it can be committed with others (held in memory), else None."""
    if isinstance(data.cutouts, LazyCutouts):
        return None
    return (sum(plane.nbytes for cutout in data.cutouts for plane in cutout.planes.values())
            + sum(image.nbytes for image in (data.images or {}).values()))


def _commit_batch(store: Store, batch: list[tuple[_Planned, ExposureData]], report: IngestReport) -> None:
    store.commit_exposures([(data.record, data.cutouts, data.images) for _, data in batch],
                           written={data.record.name: data.written for _, data in batch if data.written})
    for plan, data in batch:
        (report.replaced if plan.action == "replace" else report.ingested).append(plan.name)
        report.n_cutouts += len(data.cutouts)
        _log.info("%s exposure %s (%s): %d cutouts", "replaced" if plan.action == "replace" else "ingested",
                  plan.name, plan.role, len(data.cutouts))
    batch.clear()  # the caller's list too: its exposures are freed before the next is loaded
    release_freed_memory()


__all__ = ["IngestReport", "ingest", "plan_ingest", "read_exposure"]
