"""``process`` of a NIRISS SOSS association: extract_1d per integration, photom, combine_1d.

The reference (``Spec3Pipeline.process``) runs, for SOSS, pixel_replace
(skipped by default), extract_1d of the association's *first* exposure
(its SOSS extraction takes one model), photom (SKIPPED without a PHOTOM
file) and combine_1d of every integration's spectra, weighted by the
exposure time.  Here the exposure's integration planes are read from the
store, extracted (:mod:`.extract`) and combined; the spectra, the combined
spectra and a status record are stored under the source :data:`.stored.SOSS_SOURCE`
for the product writers (:mod:`spec3c.products.soss`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ... import __version__
from ...allocator import reuse_freed_memory
from ...errors import InputError, Spec3cError
from ...parallel import worker_count
from ...results import COMPLETE, SKIPPED, STATUS, CombinedResult, Spectrum1D
from .extract import SossExtraction, extract_soss, skip_reason
from .photom import FLUX_UNIT, calibrate, read_soss_photom, response
from .reader import PLANES, plane_name
from .reffiles import read_soss_references
from .stored import SOSS_SOURCE, X1D_KEY

if TYPE_CHECKING:
    from ...config import PipelineConfig
    from ...store import ExposureRecord, Store

__all__ = ["process_soss"]

log = logging.getLogger("spec3c.step.extract_1d")

_REFERENCE_PARAMS = ("override_pastasoss", "override_specprofile", "override_speckernel")


def _science(store: Store) -> list[ExposureRecord]:
    records = [r for r in store.list_exposures() if r.role == "science"]
    if not records:
        raise Spec3cError(f"{store.path}: no science exposure")
    return records


def _cube(store: Store, record: ExposureRecord) -> dict[str, np.ndarray]:
    """The exposure's (nints, ny, nx) SCI/ERR/DQ cubes (from a store of before the stacked layout:
    its per-integration planes stacked, each released once copied)."""
    images = store.read_images(record.name)
    if all(p in images for p in PLANES):
        return {p: images[p] for p in PLANES}
    n = sum(1 for name in images if name.startswith("sci."))
    cube = {}
    for p in PLANES:
        first = images[plane_name(p, 0)]
        cube[p] = np.empty((n, *first.shape), dtype=first.dtype)
        for i in range(n):
            cube[p][i] = images.pop(plane_name(p, i))
    return cube


def _references(config: PipelineConfig) -> Any:
    params = config.extract_1d
    paths = [getattr(params, name) for name in _REFERENCE_PARAMS]
    missing = [f"--steps.extract_1d.{name}" for name, p in zip(_REFERENCE_PARAMS, paths, strict=True) if not p]
    if missing:
        raise Spec3cError(f"NIRISS SOSS extraction needs its reference files: give {', '.join(missing)} "
                          "(or a CRDS cache, CRDS_PATH)")
    return read_soss_references(*paths)


def _step(status: str, message: str, seconds: float = 0.0) -> dict[str, Any]:
    return {"status": status, "message": message, "seconds": seconds}


def _spectra(result: SossExtraction, record: ExposureRecord) -> list[Spectrum1D]:
    """One spectrum per order and integration (the combine_1d inputs)."""
    out = []
    for order in result.orders:
        for i in range(result.flux[order].shape[0]):
            columns = {"WAVELENGTH": result.wavelength[order], "FLUX": result.flux[order][i],
                       "FLUX_ERROR": result.flux_error[order][i], "NPIXELS": result.npixels[order][i]}
            unit = FLUX_UNIT if order in result.conversion else "DN/s"
            out.append(Spectrum1D(columns, {"spectral_order": order, "exposure": record.name, "integration": i,
                                            "flux_unit": unit, "sb_unit": None}))
    return out


def _photom(result: SossExtraction, record: ExposureRecord, config: PipelineConfig) -> dict[str, Any]:
    """Calibrate the spectra in place when a PHOTOM file is given (:mod:`.photom`)."""
    params = config.photom
    if params.skip:
        return _step(SKIPPED, "skipped by parameter")
    if not params.override_photom:
        return _step(SKIPPED, "no PHOTOM reference file: the spectra stay in DN/s")
    t0 = time.perf_counter()
    rows = read_soss_photom(params.override_photom, str(record.meta.get("meta.instrument.filter") or ""),
                            str(record.meta.get("meta.instrument.pupil") or ""), result.orders,
                            params.apply_time_correction)
    columns = {o: {"FLUX": result.flux[o], "FLUX_ERROR": result.flux_error[o], "BACKGROUND": result.background[o]}
               for o in result.orders}
    done = calibrate(rows, result.wavelength, columns)
    result.conversion = {o: response(row, result.wavelength[o]) for o, row in rows.items()
                         if o in done and row is not None}
    return _step(COMPLETE, f"orders {done} calibrated to {FLUX_UNIT}", time.perf_counter() - t0)


def _save_x1d(store: Store, result: SossExtraction, record: ExposureRecord, params: dict[str, Any]) -> None:
    arrays = {f"{o}.{name}": value[o] for o in result.orders for name, value in
              (("WAVELENGTH", result.wavelength), ("FLUX", result.flux), ("FLUX_ERROR", result.flux_error),
               ("NPIXELS", result.npixels), ("BACKGROUND", result.background))}
    arrays.update({f"{o}.CONVERSION": conv for o, conv in result.conversion.items()})
    meta = {"orders": result.orders, "exposure": record.name, "decontaminated": result.decontaminated,
            "calibrated": sorted(result.conversion),
            "tikfac": result.tikfac, "width": params["soss_width"], "n_os": params["soss_n_os"],
            "threshold": params["soss_threshold"], "bad_pix": params["soss_bad_pix"]}
    store.put_result(SOSS_SOURCE, X1D_KEY, arrays, meta)


def process_soss(store: Store, config: PipelineConfig, sources: Sequence[str] | None = None,
                 workers: int | None = None) -> dict[str, dict[str, Any]]:
    """Process the association's SOSS exposure; returns ``{SOSS_SOURCE: status record}`` (also stored).

    Its integrations are extracted in ``workers`` threads (default: one per core), with this
    process's freed image-sized blocks kept for reuse (:mod:`spec3c.allocator`).
    """
    if sources and set(sources) != {SOSS_SOURCE}:
        raise Spec3cError(f"a SOSS association has one source, {SOSS_SOURCE!r}; not {', '.join(sources)}")
    t0 = time.perf_counter()
    reuse_freed_memory()
    records = _science(store)
    record = records[0]
    if len(records) > 1:
        log.warning("SOSS: %d science exposures; only the first, %s, is extracted (as the reference does)",
                    len(records), record.name)
    steps: dict[str, dict[str, Any]] = {
        "pixel_replace": _step(SKIPPED, "skipped by parameter" if config.pixel_replace.skip else
                               "not implemented for NIRISS SOSS: the bad pixels are filled in time by extract_1d")}
    store.delete_result(SOSS_SOURCE, X1D_KEY)
    store.delete_result(SOSS_SOURCE, "c1d")
    reason = skip_reason(record.meta.get("meta.instrument.filter"), record.meta.get("meta.subarray.name"))
    params = config.extract_1d
    if params.skip or reason:
        steps["extract_1d"] = _step(SKIPPED, "skipped by parameter" if params.skip else str(reason))
        steps["combine_1d"] = _step(SKIPPED, "no extracted spectra")
    else:
        t1 = time.perf_counter()
        cube = _cube(store, record)
        result = extract_soss(cube, _references(config),
                              float(record.meta["meta.instrument.pupil_position"]),
                              str(record.meta["meta.subarray.name"]), params,
                              threads=worker_count(workers, os.cpu_count() or 1), overwrite_input=True)
        n = cube["sci"].shape[0]
        steps["extract_1d"] = _step(COMPLETE, f"{n} integration(s), orders {result.orders}, box width "
                                              f"{params.soss_width:g}" + (", ATOCA decontamination"
                                                                         if result.decontaminated else ""),
                                    time.perf_counter() - t1)
        steps["photom"] = _photom(result, record, config)
        _save_x1d(store, result, record, params.soss_params())
        steps["combine_1d"] = _combine(store, result, record, config)
    status = {"steps": steps, "params": config.to_dict(), "spec3c_version": __version__,
              "seconds": time.perf_counter() - t0}
    store.put_result(SOSS_SOURCE, STATUS, {}, status)
    return {SOSS_SOURCE: status}


def _combine(store: Store, result: SossExtraction, record: ExposureRecord, config: PipelineConfig) -> dict[str, Any]:
    """combine_1d of every integration's spectra, each weighted by the exposure's time (as the reference)."""
    from ...steps.combine_1d import combine_spectra, weight_kind  # noqa: PLC0415 - steps import the registry

    params = config.combine_1d
    if params.skip:
        return _step(SKIPPED, "skipped by parameter")
    t0 = time.perf_counter()
    spectra = _spectra(result, record)
    kind, _ = weight_kind(params.exptime_key)
    weight = 1.0 if kind == "unit_weight" else record.meta.get(f"meta.exposure.{kind}")
    if weight is None:
        raise InputError(record.filename, f"meta.exposure.{kind} is not set; combine_1d weights by it "
                                          "(or set --steps.combine_1d.exptime_key=unit_weight)")
    outcome, combined, spec_meta = combine_spectra(spectra, [float(weight)] * len(spectra), params)
    if combined is not None:
        CombinedResult(combined, spec_meta).save(store, SOSS_SOURCE)
    return dict(outcome.record(time.perf_counter() - t0))
