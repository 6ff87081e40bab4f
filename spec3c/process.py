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

SLIT_EXP_TYPES = ("NRS_FIXEDSLIT", "NRS_MSASPEC", "MIR_LRS-FIXEDSLIT")
#: never resampled: extract_1d per exposure, then combine_1d (ALGORITHMS.md §0)
SLITLESS_EXP_TYPES = ("MIR_LRS-SLITLESS",)
SUPPORTED_EXP_TYPES = SLIT_EXP_TYPES + SLITLESS_EXP_TYPES


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


@dataclass
class _SourceRun:
    """What the steps of one source share while it is processed."""

    store: Store
    source: str
    inputs: Any  # steps.common.SourceInputs
    config: PipelineConfig
    s2d: Any = None  # results.Resampled2D once resampled
    spectra: list[Any] = field(default_factory=list)  # per-exposure Spectrum1D (slitless)


def _assign_mtwcs(run: _SourceRun) -> Any:
    """Moving targets: shift every input to the mean MT_RA/MT_DEC of the association (§5)."""
    from .steps import assign_mtwcs
    from .steps.common import StepOutcome

    exposures = run.inputs.exposures
    if not assign_mtwcs.is_applicable([exposures[n].meta for n in sorted(exposures)]):
        return StepOutcome(SKIPPED, "not a moving target (TARGTYPE is not MOVING)")
    positions = assign_mtwcs.association_positions(run.store.list_cutouts(), exposures)
    return assign_mtwcs.run(run.inputs, positions)


def _master_background(run: _SourceRun) -> Any:
    """Subtract the association's master background (built once by :func:`process_store`)."""
    from .steps import master_background

    master = master_background.load_association_master(run.store)
    outcome = master_background.run(run.inputs, master)
    if outcome.status == COMPLETE and master is not None:
        master.save(run.store, run.source, master_background.SOURCE_KEY)
    return outcome


def _outlier_detection(run: _SourceRun) -> Any:
    from .steps import outlier_detection

    outcome = outlier_detection.run(run.inputs, run.config["outlier_detection"])
    if outcome.status == COMPLETE:
        for c in run.inputs.cutouts:
            n = outcome.details["n_flagged"].get(f"{c.exposure}/{c.slit}", 0)
            run.store.put_result(run.source, crf_key(c.exposure, c.slit), {"dq": c.planes["dq"]}, {"n_flagged": n})
    return outcome


def _pixel_replace(run: _SourceRun) -> Any:
    from .steps import pixel_replace

    return pixel_replace.run(run.inputs, run.config["pixel_replace"])


def _resample_spec(run: _SourceRun) -> Any:
    from .steps import resample_spec

    outcome, run.s2d = resample_spec.run(run.inputs, run.config["resample_spec"])
    if run.s2d is not None:
        run.s2d.save(run.store, run.source)
    return outcome


def _extract_1d(run: _SourceRun) -> Any:
    from .steps import extract_1d
    from .steps.common import StepOutcome

    if run.s2d is None:
        return StepOutcome(SKIPPED, "no resampled spectrum")
    exp_type = run.inputs.exposures[run.inputs.cutouts[0].exposure].exp_type
    photom = run.inputs.exposure_meta(0).get("meta.cal_step.photom") == COMPLETE
    outcome, spectrum = extract_1d.run(run.s2d, exp_type, photom, run.config["extract_1d"])
    if spectrum is not None:
        spectrum.save(run.store, run.source)
    return outcome


def _extract_exposures(run: _SourceRun) -> Any:
    """Slitless: extract every (outlier-flagged) exposure without resampling."""
    from ._core import match_nans_and_flags
    from .results import x1d_exposure_key
    from .steps import extract_1d
    from .steps.common import StepOutcome

    photom = run.inputs.exposure_meta(0).get("meta.cal_step.photom") == COMPLETE
    messages = []
    for k, cutout in enumerate(run.inputs.cutouts):
        p = cutout.planes  # flagged pixels (outliers included) become NaN, as the reference's extract_1d
        match_nans_and_flags(p["sci"], p["dq"], p["err"], p["var_poisson"], p["var_rnoise"], p["var_flat"])
        image = extract_1d.image_spectrum(
            p["sci"], {v: p[v] for v in ("var_poisson", "var_rnoise", "var_flat")},
            p["wavelength"], _image_meta(run.inputs, k), cutout.wcs_asdf)
        outcome, spectrum = extract_1d.run(image, run.inputs.exp_type(k), photom, run.config["extract_1d"])
        if spectrum is None:
            return outcome
        spectrum.meta["exposure"] = cutout.exposure
        spectrum.save(run.store, run.source, x1d_exposure_key(cutout.exposure))
        run.spectra.append(spectrum)
        messages.append(outcome.message)
    return StepOutcome(COMPLETE, f"{len(run.spectra)} exposures: " + ", ".join(messages))


def _image_meta(inputs: Any, k: int) -> dict[str, Any]:
    """What extraction reads from an unresampled image's metadata."""
    cutout, meta = inputs.cutouts[k], inputs.exposure_meta(k)
    return {"name": cutout.slit, "source_id": cutout.meta.get("source_id"),
            "source_type": cutout.meta.get("source_type"), "bunit_data": inputs.bunit(k),
            "pixelarea_steradians": meta.get("meta.photometry.pixelarea_steradians"),
            "dispersion_direction": cutout.meta.get("dispersion_direction", 2),
            "source_location": None, "filter": meta.get("meta.instrument.filter")}


def _combine_1d(run: _SourceRun) -> Any:
    from .results import CombinedResult
    from .steps import combine_1d
    from .steps.common import StepOutcome

    if not run.spectra:
        return StepOutcome(SKIPPED, "no extracted spectra")
    kind, _ = combine_1d.weight_kind(run.config["combine_1d"].exptime_key)
    meta_key = f"meta.exposure.{kind}"
    times = [float(run.inputs.exposures[s.meta["exposure"]].meta.get(meta_key) or 1.0) for s in run.spectra]
    outcome, combined = combine_1d.run(run.spectra, times, run.config["combine_1d"])
    if combined is not None:
        CombinedResult(combined, outcome.details.get("spec_meta", {})).save(run.store, run.source)
    return outcome


#: the calwebb_spec3 slit plan after exp_to_source, in the reference's order
STEP_RUNNERS: tuple[tuple[str, Callable[[_SourceRun], Any]], ...] = (
    ("assign_mtwcs", _assign_mtwcs),
    ("master_background", _master_background),
    ("outlier_detection", _outlier_detection),
    ("pixel_replace", _pixel_replace),
    ("resample_spec", _resample_spec),
    ("extract_1d", _extract_1d),
)

#: the slitless (MIRI LRS slitless) plan: no resampling, per-exposure extraction, combine_1d
SLITLESS_STEP_RUNNERS: tuple[tuple[str, Callable[[_SourceRun], Any]], ...] = (
    ("assign_mtwcs", _assign_mtwcs),
    ("master_background", _master_background),
    ("outlier_detection", _outlier_detection),
    ("pixel_replace", _pixel_replace),
    ("extract_1d", _extract_exposures),
    ("combine_1d", _combine_1d),
)


def step_plan(exp_type: str) -> tuple[tuple[str, Callable[[_SourceRun], Any]], ...]:
    return SLITLESS_STEP_RUNNERS if exp_type in SLITLESS_EXP_TYPES else STEP_RUNNERS


def run_source(store: Store, source: str, config: PipelineConfig) -> SourceReport:
    """Run the slit plan on one source and write its results (status last)."""
    from .steps.common import StepOutcome

    start = time.perf_counter()
    report = SourceReport(source)
    run = _SourceRun(store, source, _science_inputs(store, source), config)
    report.steps["exp_to_source"] = {"status": COMPLETE, "message": f"{len(run.inputs)} cutouts", "seconds": 0.0}
    for name, runner in step_plan(run.inputs.exp_type()):
        t0 = time.perf_counter()
        outcome = StepOutcome(SKIPPED, "skipped by parameter") if config[name].skip else runner(run)
        report.steps[name] = {"status": outcome.status, "message": outcome.message,
                              "seconds": round(time.perf_counter() - t0, 4), **outcome.details}
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


def _prepare_master_background(store: Store, config: PipelineConfig) -> None:
    """Build the association's master background once, before the per-source workers use it."""
    from .steps import master_background

    params = config["master_background"]
    master = None if params.skip else master_background.build_master(store, params)
    if master is None:
        master_background.delete_association_master(store)
    else:
        master_background.save_association_master(store, master)


def check_mode(store: Store) -> None:
    types = {r.exp_type for r in store.list_exposures() if r.role == "science"}
    unsupported = types - set(SUPPORTED_EXP_TYPES)
    if unsupported:
        raise Spec3cError(f"{store.path}: EXP_TYPE {', '.join(sorted(unsupported))} is not supported by "
                          f"`spec3c process` yet (supported: {', '.join(SUPPORTED_EXP_TYPES)})")
    if len(types) > 1:
        raise Spec3cError(f"{store.path}: the association mixes EXP_TYPEs {', '.join(sorted(types))}")


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
        if todo:
            _prepare_master_background(store, config)
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
