"""``spec3c process``: run the stage-3 slit plan per source, sources in parallel.

Each source is independent after ingest: a worker reads the source's cutouts,
runs exp_to_source → outlier_detection → pixel_replace → resample_spec →
extract_1d on them in memory, and writes every result back to the store.  The
source's ``status`` record is written last, so an interrupted run leaves no
status and the next run redoes exactly the unfinished sources.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .config import PipelineConfig, resolve_config
from .errors import Spec3cError
from .parallel import ProgressFn, map_sources, worker_count
from .results import COMPLETE, FAILED, SKIPPED, STATUS, crf_key
from .store import Store, open_store

#: the calwebb_spec3 slit plan implemented so far, in order
SLIT_PLAN = ("exp_to_source", "outlier_detection", "pixel_replace", "resample_spec", "extract_1d")
SLIT_EXP_TYPES = ("NRS_FIXEDSLIT", "NRS_MSASPEC")


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


def _science_inputs(store: Store, source: str):  # type: ignore[no-untyped-def]
    from .steps.common import SourceInputs

    exposures = {r.name: r for r in store.list_exposures() if r.role == "science"}
    cutouts = [c for c in store.read_cutouts(source) if c.exposure in exposures]
    if not cutouts:
        raise Spec3cError(f"source {source!r} has no science cutouts")
    return SourceInputs(source, cutouts, exposures)


def _timed(report: SourceReport, step: str, func: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    result = func()
    outcome = result[0] if isinstance(result, tuple) else result
    report.steps[step] = {"status": outcome.status, "message": outcome.message,
                          "seconds": round(time.perf_counter() - start, 4), **outcome.details}
    return result


def run_source(store: Store, source: str, config: PipelineConfig) -> SourceReport:
    """Run the slit plan on one source and write its results (status last)."""
    from .steps import extract_1d, outlier_detection, resample_spec
    from .steps.common import StepOutcome

    start = time.perf_counter()
    report = SourceReport(source)
    inputs = _science_inputs(store, source)
    exp_type = inputs.exposures[inputs.cutouts[0].exposure].exp_type
    report.steps["exp_to_source"] = {"status": COMPLETE, "message": f"{len(inputs)} cutouts", "seconds": 0.0}
    steps = config.steps

    def skipped(step: str) -> StepOutcome:
        return StepOutcome(SKIPPED, "skipped by parameter")

    if steps["outlier_detection"].skip:
        _timed(report, "outlier_detection", lambda: skipped("outlier_detection"))
    else:
        _timed(report, "outlier_detection", lambda: outlier_detection.run(inputs, steps["outlier_detection"]))
    if report.steps["outlier_detection"]["status"] == COMPLETE:
        for c in inputs.cutouts:
            store.put_result(source, crf_key(c.exposure, c.slit), {"dq": c.planes["dq"]},
                             {"n_flagged": report.steps["outlier_detection"]["n_flagged"].get(f"{c.exposure}/{c.slit}", 0)})
    if steps["pixel_replace"].skip:
        _timed(report, "pixel_replace", lambda: skipped("pixel_replace"))
    else:
        from .steps import pixel_replace

        _timed(report, "pixel_replace", lambda: pixel_replace.run(inputs, steps["pixel_replace"]))
    s2d = None
    if steps["resample_spec"].skip:
        _timed(report, "resample_spec", lambda: skipped("resample_spec"))
    else:
        _, s2d = _timed(report, "resample_spec", lambda: resample_spec.run(inputs, steps["resample_spec"]))
        if s2d is not None:
            s2d.save(store, source)
    if s2d is None or steps["extract_1d"].skip:
        _timed(report, "extract_1d", lambda: StepOutcome(SKIPPED, "skipped by parameter" if s2d is not None
                                                          else "no resampled spectrum"))
    else:
        photom = inputs.exposure_meta(0).get("meta.cal_step.photom") == COMPLETE
        _, spectrum = _timed(report, "extract_1d",
                             lambda: extract_1d.run(s2d, exp_type, photom, steps["extract_1d"]))
        if spectrum is not None:
            spectrum.save(store, source)
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


def check_mode(store: Store) -> None:
    types = {r.exp_type for r in store.list_exposures() if r.role == "science"}
    unsupported = types - set(SLIT_EXP_TYPES)
    if unsupported:
        raise Spec3cError(f"{store.path}: EXP_TYPE {', '.join(sorted(unsupported))} is not supported by "
                          f"`spec3c process` yet (slit modes: {', '.join(SLIT_EXP_TYPES)})")


def process_store(  # noqa: PLR0913 - each is a CLI option
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
        check_mode(store)
        todo, done = pending_sources(store, sources, force)
        if force:
            for source in todo:
                store.delete_results(source)
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
