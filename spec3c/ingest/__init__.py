"""``spec3c ingest``: read an association's exposures once into a store.

Every member is read and checked (:mod:`.validate`) before anything is
written, so a broken member leaves the store as it was.  Each exposure is
committed atomically; an exposure whose file is unchanged (same sha256) is
skipped, so a re-run after an interruption completes what is missing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..asn import Association, read_association
from ..check import store_writer
from ..errors import InputError
from ..log import logger
from ..results import save_association
from ..store import Store, create_store, open_store
from ..store.layout import LOCK, MANIFEST
from .reader import exposure_name, read_exposure, sha256_of
from .staging import Staging

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
    sha256: str
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
        digest = sha256_of(member.path)
        existing = store.get_exposure(name) if store is not None else None
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
) -> IngestReport:
    """Ingest every member of an association into the store at ``store_path``.

    ``backend`` (tiledb or hdf5) applies to a new store; None keeps an existing
    store's backend and creates TileDB stores.
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
        # every member is read and checked before the store changes: a bad one leaves it as it was
        for done, plan in enumerate(todo, start=1):
            data = read_exposure(plan.path, plan.role, plan.sha256)
            _log.debug("read %s (%s, %d cutouts, %d images)", plan.path, plan.role, len(data.cutouts),
                       len(data.images or ()))
            staged.add(data)
            del data
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


def _commit(store: Store, asn: Association, todo: list[_Planned], staged: Staging, report: IngestReport) -> None:
    """Write the association and the exposures read (each atomically), then consolidate."""
    if not todo:
        return
    save_association(store, asn)
    for plan, data in zip(todo, staged.drain(), strict=True):
        store.commit_exposure(data.record, data.cutouts, data.images)
        (report.replaced if plan.action == "replace" else report.ingested).append(plan.name)
        report.n_cutouts += len(data.cutouts)
        _log.info("%s exposure %s (%s): %d cutouts", "replaced" if plan.action == "replace" else "ingested",
                  plan.name, plan.role, len(data.cutouts))
    store.consolidate()


__all__ = ["IngestReport", "ingest", "plan_ingest", "read_exposure"]
