"""``spec3c process``: run the mode's step plan per source, sources in parallel.

Each source is independent after ingest: a worker reads the source's cutouts
(exp_to_source), runs the mode's plan on them in memory (each step saving its
own results) and writes the source's ``status`` record last, so an
interrupted run leaves no status and the next run redoes exactly the
unfinished sources.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .config import PipelineConfig, resolve_config
from .errors import Spec3cError
from .modes.registry import mode_of_store
from .parallel import ProgressFn, map_sources, worker_count
from .results import COMPLETE, FAILED, SKIPPED, STATUS
from .steps import STEPS, master_background
from .steps.context import StepContext, StepOutcome, science_inputs
from .store import Store, open_store


@dataclass
class SourceReport:
    source: str
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None


@dataclass
class ProcessReport:
    processed: list[SourceReport] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[SourceReport]:
        return [r for r in self.processed if r.error]


def run_source(store: Store, source: str, config: PipelineConfig) -> SourceReport:
    """Run the mode's plan on one source and write its results (status last)."""
    start = time.perf_counter()
    report = SourceReport(source)
    inputs = science_inputs(store, source)
    report.steps["exp_to_source"] = StepOutcome(COMPLETE, f"{len(inputs)} cutouts").record(
        time.perf_counter() - start)
    ctx = StepContext(store, source, mode_of_store(store), inputs, config)
    for name in ctx.mode.plan:
        t0 = time.perf_counter()
        outcome = StepOutcome(SKIPPED, "skipped by parameter") if config.step(name).skip else STEPS[name](ctx)
        report.steps[name] = outcome.record(time.perf_counter() - t0)
    report.seconds = time.perf_counter() - start
    store.put_result(source, STATUS, {}, {"steps": report.steps, "params": config.to_dict(),
                                         "spec3c_version": __version__, "seconds": report.seconds})
    return report


# -- the worker pool ---------------------------------------------------------

def _limit_threads(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def _worker(source: str, store_path: str, config_dict: dict[str, dict[str, Any]], threads: int) -> SourceReport:
    """Process one source in a pool worker (``threads``: OpenMP threads of this worker, 0 = leave)."""
    if threads:
        _limit_threads(threads)
    config = resolve_config(overrides=config_dict)
    with open_store(store_path, mode="a") as store:
        try:
            return run_source(store, source, config)
        except Exception as exc:  # a failing source must not stop the others; its error is reported
            report = SourceReport(source, error=f"{type(exc).__name__}: {exc}")
            store.put_result(source, STATUS, {}, {"error": report.error, "params": config.to_dict(),
                                                 "steps": {"exp_to_source": {"status": FAILED}}})
            return report


def pending_sources(store: Store, sources: Sequence[str] | None, force: bool) -> tuple[list[str], list[str]]:
    """(sources to run, sources already complete)."""
    known = store.sources()
    chosen = list(known) if not sources else list(sources)
    unknown = [s for s in chosen if s not in known]
    if unknown:
        raise Spec3cError(f"unknown source(s) {', '.join(unknown)} in {store.path}; `spec3c ls --sources` lists them")
    if force:
        return chosen, []
    done = {src for src, key in store.list_results() if key == STATUS and "error" not in store.get_result(src, key)[1]}
    return [s for s in chosen if s not in done], [s for s in chosen if s in done]


def process_store(
    store_path: str | Path,
    *,
    sources: Sequence[str] | None = None,
    config: PipelineConfig | None = None,
    workers: int | None = None,
    force: bool = False,
    progress: ProgressFn | None = None,
) -> ProcessReport:
    """Process the chosen (default: all unfinished) sources of a store."""
    start = time.perf_counter()
    config = config or resolve_config()
    with open_store(store_path, mode="a") as store:
        mode_of_store(store)  # a clear error for an unsupported or mixed association, before any work
        todo, done = pending_sources(store, sources, force)
        if force:
            for source in todo:
                store.delete_results(source)
        if todo:
            master_background.prepare_association(store, config.master_background)
    report = ProcessReport(already_done=done)
    n_workers = worker_count(workers, len(todo))
    threads = 0 if n_workers == 1 else max(1, (os.cpu_count() or 1) // n_workers)
    reports = map_sources(_worker, todo, (str(store_path), config.to_dict(), threads),
                          workers=workers, progress=progress)
    report.processed = [reports[s] for s in todo]
    if todo:
        with open_store(store_path, mode="a") as store:
            store.consolidate()
    report.seconds = time.perf_counter() - start
    return report
