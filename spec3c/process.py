"""``spec3c process``: run the mode's step plan per source, sources in parallel.

Each source is independent after ingest: a worker reads the source's cutouts
(exp_to_source), runs the mode's plan on them in memory (each step saving its
own results) and writes the source's ``status`` record last.

A source is recomputed exactly when its key (:mod:`spec3c.provenance`)
changed since its last complete run: new or changed exposures, association
data, parameters, reference files or spec3c version; or when it never
completed (new, failed or interrupted) or ``force`` asks.  A recomputation
first removes the old ``status``, then overwrites the results, removes those
the new run did not make and writes the new ``status``: a run that dies half
way leaves a source without status, which ``export`` does not export beyond
its inputs and the next ``process`` recomputes.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import __version__
from .config import PipelineConfig, resolve_config
from .errors import Spec3cError
from .log import TRACEBACK, log_step, logger
from .modes.registry import mode_of_store
from .parallel import ProgressFn, map_sources
from .provenance import (
    REASONS,
    RunProvenance,
    SourceKey,
    run_provenance,
    source_inputs,
    with_absolute_references,
)
from .reffiles import reference_header, select_references
from .results import COMPLETE, FAILED, SKIPPED, STATUS
from .steps import STEPS, master_background
from .steps.context import StepContext, StepOutcome, science_inputs
from .store import Store, open_store
from .store.records import Cutout

if TYPE_CHECKING:
    from .products.export import ExportRequest, ProcessedSource, SourceExport

_log = logger("process")

#: why a source without a usable previous key is computed
NEW, FAILED_BEFORE, NO_KEY, FORCED = "new (no complete run yet)", "failed before", "no key recorded", "forced"


@dataclass
class SourceReport:
    source: str
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None
    reasons: list[str] = field(default_factory=list)
    #: its products, when the worker that processed it exported it (``export`` of :func:`process_store`)
    exported: SourceExport | None = None


@dataclass
class ProcessReport:
    processed: list[SourceReport] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[SourceReport]:
        return [r for r in self.processed if r.error]

    def reasons(self) -> Counter[str]:
        """How many sources were recomputed for each reason (a source may have several)."""
        return Counter(reason for r in self.processed for reason in r.reasons)


#: results a source run holds before writing them to the store in one go (bytes)
_PENDING_BYTES = 64 * 2**20


class _RecordingStore:
    """The store, remembering which results a run writes (to remove the stale ones after).

    Results are written in few store writes (one TileDB fragment each, ~0.1 s apiece) instead
    of one per result: they are held, as copies, until a result is read or deleted, more than
    :data:`_PENDING_BYTES` are held, or the run ends (:meth:`flush`).

    A source's list of results is kept from one listing to the next until this run writes or
    deletes one (a source is processed by one worker at a time: nobody else changes its results).
    IFU cube building asks it for every exposure it reads: ~30 ms a listing.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self.written: set[str] = set()
        self._pending: dict[tuple[str, str], tuple[dict[str, Any], Mapping[str, Any]]] = {}
        self._pending_bytes = 0
        self._listed: dict[str, list[tuple[str, str]]] = {}

    def put_result(self, source: str, key: str, arrays: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
        self.written.add(key)
        self._listed.clear()
        size = sum(np.asarray(a).nbytes for a in arrays.values())
        if size > _PENDING_BYTES:  # a large result (an IFU cube tile) goes straight to the store
            self.flush()
            self._store.put_result(source, key, arrays, meta)
            return
        self._pending[(source, key)] = ({k: np.array(a, copy=True) for k, a in arrays.items()}, dict(meta))
        self._pending_bytes += size
        if self._pending_bytes > _PENDING_BYTES:
            self.flush()

    def put_results(self, results: Any) -> None:
        for source, key, arrays, meta in results:
            self.put_result(source, key, arrays, meta)

    def flush(self) -> None:
        """Write the held results."""
        if self._pending:
            self._store.put_results((src, key, arrays, meta) for (src, key), (arrays, meta) in self._pending.items())
        self._pending.clear()
        self._pending_bytes = 0

    def get_result(self, source: str, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
        self.flush()
        return self._store.get_result(source, key)

    def get_results(self, key: str) -> Any:
        self.flush()
        return self._store.get_results(key)

    def list_results(self, source: str | None = None) -> list[tuple[str, str]]:
        self.flush()
        if source is None:
            return self._store.list_results(source)
        if source not in self._listed:
            self._listed[source] = self._store.list_results(source)
        return list(self._listed[source])

    def delete_result(self, source: str, key: str) -> None:
        self.flush()
        self._listed.clear()
        self._store.delete_result(source, key)

    def delete_results(self, source: str) -> None:
        self.flush()
        self._listed.clear()
        self._store.delete_results(source)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


#: a source's results larger than this (bytes) are not kept for its export: it reads them back
_KEPT_RESULT_BYTES = 16 * 2**20
#: nor are its cutouts when they are larger than this (bytes) all together: a copy would double them
_KEPT_CUTOUT_BYTES = 256 * 2**20


class _KeepingStore:
    """The store, keeping what processing ``source`` reads (its cutouts, copied before the steps
    change them in place) and writes (its results, as the store would return them) for the
    export of its products that follows in the same worker (:func:`_export_kept`)."""

    def __init__(self, store: Store, source: str) -> None:
        from .products.export import ProcessedSource

        self._store = store
        self.kept: ProcessedSource = ProcessedSource(source)

    def read_cutouts(self, source: str, planes: Any = None) -> list[Cutout]:
        cutouts = self._store.read_cutouts(source, planes)
        if source != self.kept.source or planes is not None:
            return cutouts
        if sum(a.nbytes for c in cutouts for a in c.planes.values()) <= _KEPT_CUTOUT_BYTES:
            self.kept.cutouts = [Cutout(c.source, c.exposure, c.slit, copy.deepcopy(c.meta),
                                        {name: a.copy() for name, a in c.planes.items()}, c.wcs_asdf)
                                 for c in cutouts]
        return cutouts

    def put_result(self, source: str, key: str, arrays: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
        self._store.put_result(source, key, arrays, meta)
        self._keep(source, key, arrays, meta)

    def put_results(self, results: Any) -> None:
        items = list(results)
        self._store.put_results(items)
        for source, key, arrays, meta in items:
            self._keep(source, key, arrays, meta)

    def delete_result(self, source: str, key: str) -> None:
        self._store.delete_result(source, key)
        if source == self.kept.source:
            self.kept.results.pop(key, None)

    def _keep(self, source: str, key: str, arrays: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
        if source != self.kept.source:
            return
        self.kept.results.pop(key, None)
        if sum(np.asarray(a).nbytes for a in arrays.values()) <= _KEPT_RESULT_BYTES:
            as_read = self._store.result_as_read(arrays, meta)
            if as_read is not None:
                self.kept.results[key] = as_read

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _export_kept(store: Store, kept: ProcessedSource, request: ExportRequest) -> SourceExport | None:
    """The products of a source just processed, from what its processing kept (None if they could
    not be written: ``export_store`` writes them again the usual way, and reports why)."""
    from .products.export import export_processed

    try:
        return export_processed(store, kept, request)
    except Exception as exc:  # the export stage after process tries again and reports the error
        _log.debug("source %s: not exported after processing (%s: %s)", kept.source, type(exc).__name__, exc)
        return None


def run_source(store: Store, source: str, config: PipelineConfig,
               provenance: Mapping[str, Any] | None = None) -> SourceReport:
    """Run the mode's plan on one source and write its results, status last.

    ``provenance`` (``{"key": ..., "provenance": ...}``, :mod:`spec3c.provenance`) is kept in
    the status.  Results of an earlier run that this run does not make are removed.
    """
    start = time.perf_counter()
    report = SourceReport(source)
    before = {key for _, key in store.list_results(source)}
    if STATUS in before:
        store.delete_result(source, STATUS)  # from here until the new status, the source is "not complete"
    recording = _RecordingStore(store)
    inputs = science_inputs(store, source)
    grouped = StepOutcome(COMPLETE, f"{len(inputs)} cutouts")
    report.steps["exp_to_source"] = grouped.record(time.perf_counter() - start)
    grouped.log("exp_to_source", source, time.perf_counter() - start)
    ctx = StepContext(recording, source, mode_of_store(store), inputs, config)  # type: ignore[arg-type]
    for name in ctx.mode.plan:
        t0 = time.perf_counter()
        outcome = StepOutcome(SKIPPED, "skipped by parameter") if config.step(name).skip else STEPS[name](ctx)
        seconds = time.perf_counter() - t0
        report.steps[name] = outcome.record(seconds)
        outcome.log(name, source, seconds)
    for key in sorted(before - recording.written - {STATUS}):
        store.delete_result(source, key)  # results of an earlier run that this one did not make
    report.seconds = time.perf_counter() - start
    # the status goes last, in the same store write as the results still held (one TileDB fragment:
    # both or neither are seen)
    recording.put_result(source, STATUS, {}, {"steps": report.steps, "params": config.to_dict(),
                                             "spec3c_version": __version__, "seconds": report.seconds,
                                             "run": uuid.uuid4().hex, **(provenance or {})})
    recording.flush()
    return report


# -- the per-source job ----------------------------------------------------------------

def _worker(source: str, store_path: str, config_dict: dict[str, dict[str, Any]],  # noqa: PLR0913
            provenance: dict[str, Any], reasons: list[str], export: ExportRequest | None = None) -> SourceReport:
    """Process one source in a worker (a pool process, a Dask worker or this process); with
    ``export``, then write its products from what it holds."""
    config = resolve_config(overrides=config_dict)
    with open_store(store_path, mode="a") as store:
        keeping = _KeepingStore(store, source) if export is not None else None
        try:
            report = run_source(keeping or store, source, config, provenance)  # type: ignore[arg-type]
        except Exception as exc:  # a failing source must not stop the others; its error is reported
            report = _failed(source, exc)
            store.put_result(source, STATUS, {}, {"error": report.error, "params": config.to_dict(),
                                                 "steps": {"exp_to_source": {"status": FAILED}}})
        else:
            if keeping is not None and export is not None:
                report.exported = _export_kept(store, keeping.kept, export)
    report.reasons = reasons
    return report


def _failed(source: str, exc: Exception) -> SourceReport:
    """The report of a source whose processing raised ``exc`` (logged; the traceback only at DEBUG)."""
    report = SourceReport(source, error=f"{type(exc).__name__}: {exc}")
    _log.error("source %s failed: %s", source, report.error)
    _log.debug("source %s: traceback of the failure", source, exc_info=True, extra=TRACEBACK)
    return report


class _BatchStore:
    """The store as one batch job of sources sees it: their inputs read in one query, their result
    writes and deletes collected and applied in one go (:meth:`flush`)."""

    def __init__(self, store: Store, sources: Sequence[str]) -> None:
        self._store = store
        self._cutouts = store.read_cutouts_of(sources)
        self._exposures = store.list_exposures()
        wanted = set(sources)
        self._keys: dict[str, set[str]] = {s: set() for s in sources}
        for src, key in store.list_results():
            if src in wanted:
                self._keys[src].add(key)
        self._puts: dict[tuple[str, str], tuple[Mapping[str, Any], Mapping[str, Any]]] = {}
        self._deletes: set[tuple[str, str]] = set()

    def list_exposures(self) -> list[Any]:
        return list(self._exposures)

    def read_cutouts(self, source: str, planes: Any = None) -> list[Any]:
        return self._cutouts.get(source, []) if source in self._cutouts else self._store.read_cutouts(source, planes)

    def list_results(self, source: str | None = None) -> list[tuple[str, str]]:
        if source is None or source not in self._keys:
            return self._store.list_results(source)
        return sorted((source, key) for key in self._keys[source])

    def put_result(self, source: str, key: str, arrays: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
        self._puts[(source, key)] = (arrays, meta)
        self._deletes.discard((source, key))
        self._keys.setdefault(source, set()).add(key)

    def get_result(self, source: str, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
        if (source, key) in self._puts:
            arrays, meta = self._puts[(source, key)]
            return dict(arrays), dict(meta)
        if (source, key) in self._deletes:
            raise KeyError(f"no result {key!r} for source {source!r}")
        return self._store.get_result(source, key)

    def delete_result(self, source: str, key: str) -> None:
        self._puts.pop((source, key), None)
        self._deletes.add((source, key))
        self._keys.get(source, set()).discard(key)

    def put_results(self, results: Any) -> None:
        for source, key, arrays, meta in results:
            self.put_result(source, key, arrays, meta)

    def flush(self) -> None:
        """Delete what was deleted and not written again, then write every result in one go."""
        for source, key in sorted(self._deletes):
            self._store.delete_result(source, key)
        self._store.put_results((src, key, arrays, meta) for (src, key), (arrays, meta) in self._puts.items())
        self._puts.clear()
        self._deletes.clear()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _batch_worker(label: str, store_path: str, config_dict: dict[str, dict[str, Any]],
                  items: list[tuple[str, dict[str, Any], list[str]]]) -> list[SourceReport]:
    """Process a batch of sources (``items``: source, provenance, reasons) in a worker, one store
    read and one store write for all of them."""
    config = resolve_config(overrides=config_dict)
    reports = []
    with open_store(store_path, mode="a") as store:
        batch = _BatchStore(store, [source for source, _, _ in items])
        for source, provenance, reasons in items:
            try:
                report = run_source(batch, source, config, provenance)  # type: ignore[arg-type]
            except Exception as exc:  # a failing source must not stop the others; its error is reported
                report = _failed(source, exc)
                batch.put_result(source, STATUS, {}, {"error": report.error, "params": config.to_dict(),
                                                     "steps": {"exp_to_source": {"status": FAILED}}})
            report.reasons = reasons
            reports.append(report)
        batch.flush()
    return reports


def _map_batches(todo: Sequence[SourcePlan], size: int, store_path: Path, config: PipelineConfig,
                 **executor: Any) -> tuple[dict[str, SourceReport], dict[str, str]]:
    """Run the sources in jobs of ``size``: (reports, errors of sources whose job could not run)."""
    chunks = [todo[i:i + size] for i in range(0, len(todo), size)]
    jobs = {f"sources {c[0].source}..{c[-1].source}": (str(store_path), config.to_dict(),
                                                       [(p.source, p.provenance, list(p.reasons)) for p in c])
            for c in chunks}
    outcome = map_sources(_batch_worker, jobs, **executor)
    reports = {r.source: r for batch in outcome.results.values() for r in batch}
    errors = {p.source: error for label, error in outcome.errors.items()
              for p in chunks[list(jobs).index(label)]}
    return reports, errors


# -- what to recompute ----------------------------------------------------------------

@dataclass(frozen=True)
class SourcePlan:
    """What ``process`` will do with one source: its key, provenance and why it is recomputed
    (empty: it is complete with this very key)."""

    source: str
    key: SourceKey
    provenance: dict[str, Any]
    reasons: tuple[str, ...]


def _reasons(previous: Mapping[str, Any] | None, key: SourceKey, force: bool) -> tuple[str, ...]:
    if force:
        return (FORCED,)
    if previous is None:
        return (NEW,)
    if "error" in previous:
        return (FAILED_BEFORE,)
    old = SourceKey.from_record(previous.get("key"))
    if old is None:
        return (NO_KEY,)
    return tuple(REASONS[part] for part in key.changes(old))


def plan_sources(store: Store, config: PipelineConfig, sources: Sequence[str] | None = None,
                 force: bool = False, selection: Mapping[str, Any] | None = None) -> list[SourcePlan]:
    """Key, provenance and reasons of every chosen source (default: all), in store order.

    Call after the association-level steps saved their data for ``config``
    (:func:`spec3c.steps.master_background.prepare_association`).  ``selection``: how the
    reference files of ``config`` were chosen (:meth:`spec3c.reffiles.ReferenceSelection.record`).
    """
    known = store.sources()
    chosen = list(known) if not sources else list(dict.fromkeys(sources))
    unknown = [s for s in chosen if s not in set(known)]
    if unknown:
        raise Spec3cError(f"unknown source(s) {', '.join(unknown)} in {store.path}; `spec3c ls --sources` lists them")
    infos, exposures = store.list_cutouts(), store.list_exposures()
    shared: RunProvenance = run_provenance(store, config, mode_of_store(store), infos, exposures, selection)
    inputs = source_inputs(infos, exposures)
    has_status = any(key == STATUS for _, key in store.list_results())
    previous = {src: meta for (src, key), (_, meta) in store.get_results(STATUS).items() if key == STATUS} \
        if has_status else {}  # every source's last status in one read
    plans = []
    for source in chosen:
        files = inputs.get(source, [])
        key = shared.key(files)
        reasons = _reasons(previous.get(source), key, force)
        plans.append(SourcePlan(source, key, {"key": key.record(), "provenance": shared.record(files)}, reasons))
    return plans


def process_store(  # noqa: PLR0913 - each is a CLI option
    store_path: str | Path,
    *,
    sources: Sequence[str] | None = None,
    config: PipelineConfig | None = None,
    workers: int | None = None,
    force: bool = False,
    progress: ProgressFn | None = None,
    scheduler: str | None = None,
    export: ExportRequest | None = None,
) -> ProcessReport:
    """Process the chosen (default: all) sources of a store whose key changed.

    The reference files are chosen first, once for the association: the overrides in
    ``config``, else CRDS's choice when a CRDS cache is configured (:mod:`spec3c.reffiles`).

    ``scheduler``: None runs the sources in ``workers`` local processes;
    ``"local[:N]"`` on a Dask LocalCluster, ``"tcp://HOST:PORT"`` on a running
    Dask cluster (the store must be on a path every worker sees).

    ``export`` (``spec3c run``): each worker then writes the products of the source it processed,
    from the cutouts and results it holds, without reading them back (``SourceReport.exported``;
    :func:`spec3c.products.export.export_store` records them).  Only for modes of cutouts, one
    source a job: a full-frame (IFU) source's data are too large to hold twice.
    """
    start = time.perf_counter()
    store_path = Path(store_path).resolve()
    with open_store(store_path, mode="a") as store:
        mode = mode_of_store(store)  # a clear error for an unsupported or mixed association, before any work
        # the reference files: overrides, else CRDS's choice for the association (once, here)
        selection = select_references(config or resolve_config(), (*mode.plan, *mode.inline_steps),
                                      reference_header(store.list_exposures()), mode.reference_types)
        config = with_absolute_references(selection.config)
        spectra = mode.process_spectra(store, config, sources, workers) if mode.process_spectra is not None else None
        if spectra is not None:  # the inputs are extracted spectra (WFSS spec2 x1d): the mode's own pass
            for source, result in spectra.items():
                for step, record in result["steps"].items():
                    log_step(step, source, record)
            store.consolidate()
            return ProcessReport([SourceReport(s, r["steps"], r["seconds"]) for s, r in spectra.items()],
                                 seconds=time.perf_counter() - start)
        master_background.prepare_association(store, config.master_background)
        plans = plan_sources(store, config, sources, force, selection.record())
    todo = [p for p in plans if p.reasons]
    report = ProcessReport(already_done=[p.source for p in plans if not p.reasons])
    _log.info("%s: %d source(s) to process (%s mode, steps %s), %d already complete", store_path, len(todo),
              mode.name, ", ".join(mode.plan), len(report.already_done))
    for plan in todo:
        _log.debug("source %s: computed because %s", plan.source, "; ".join(plan.reasons))
    executor: dict[str, Any] = {"workers": workers, "scheduler": scheduler, "progress": progress}
    if mode.batch_size > 1:
        results, errors = _map_batches(todo, mode.batch_size, store_path, config, **executor)
    else:
        with_export = (export,) if export is not None and mode.read_frames is None else ()
        jobs = {p.source: (str(store_path), config.to_dict(), p.provenance, list(p.reasons), *with_export)
                for p in todo}
        outcome = map_sources(_worker, jobs, **executor)
        results, errors = outcome.results, outcome.errors
    for plan in todo:
        if plan.source in results:
            report.processed.append(results[plan.source])
        else:  # the job itself could not run (e.g. its worker died every time it was tried)
            report.processed.append(SourceReport(plan.source, error=errors[plan.source],
                                                 reasons=list(plan.reasons)))
    if todo:
        with open_store(store_path, mode="a") as store:
            for source, error in errors.items():
                store.put_result(source, STATUS, {}, {"error": error, "params": config.to_dict(),
                                                     "steps": {"exp_to_source": {"status": FAILED}}})
            store.consolidate()
    report.seconds = time.perf_counter() - start
    return report
