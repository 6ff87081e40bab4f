"""Single steps on calibrated exposures: ``resample_spec``, ``outlier_detection``, ``master_background``.

The inputs (an association, or ``_cal``/``_crf`` files taken as one) are read
by the ingest readers (:func:`spec3c.ingest.reader.read_exposure`, the mode's
own reader, every check included) into a temporary in-memory store; the
step's own ``run`` then runs per source (exp_to_source as in ``process``),
``master_background`` after its association-level preparation.  What is
written follows the reference's standalone step:

* ``resample_spec``: the resampled spectra, one file ``<root>_resamplespecstep.fits``:
  a MultiSlitModel (one slit per source) for MultiSlitModel exposures, else
  the one source's SlitModel;
* ``outlier_detection``, ``master_background``: a copy of every science input
  with the step's changes (outlier DQ flags with their pixels set to NaN; the
  background subtracted), ``<input root>[_<asn_id>]_<stepclass>.fits``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..asn import Association
from ..config import PipelineConfig
from ..errors import Spec3cError
from ..modes.registry import mode_of_store
from ..results import COMPLETE, SKIPPED, STATUS, crf_key
from ..steps import STEPS, master_background
from ..steps.context import StepContext, StepOutcome, science_inputs
from ..store import Cutout, ExposureRecord, Store
from ..store.memory import MemoryStore

__all__ = ["UPDATED_PLANES", "ExposureRun", "load_store", "run_on_exposures", "run_per_source", "write_resampled",
           "write_updated_copies"]

#: datamodel attribute of each cutout plane a step may change
_PLANE_ATTRIBUTES = {"sci": "data", "dq": "dq", "err": "err", "var_poisson": "var_poisson",
                     "var_rnoise": "var_rnoise", "var_flat": "var_flat"}
#: ``meta.cal_step`` attribute of each step run alone here
_CAL_STEP = {"resample_spec": "resample", "outlier_detection": "outlier_detection",
             "master_background": "master_background"}


def load_store(asn: Association) -> MemoryStore:
    """The science and background members of ``asn`` read into a fresh in-memory store."""
    from ..ingest.reader import read_exposure
    from ..results import save_association

    store = MemoryStore()
    for member in (*asn.science, *asn.background):
        data = read_exposure(member.path, member.exptype)
        store.commit_exposure(data.record, data.cutouts, data.images)
    save_association(store, asn)
    return store


@dataclass
class ExposureRun:
    """What running one step on every source did."""

    step: str
    outcomes: dict[str, StepOutcome] = field(default_factory=dict)  # source -> outcome
    contexts: dict[str, StepContext] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def status(self) -> str:
        """COMPLETE if the step completed for some source, else the first source's status."""
        statuses = [o.status for o in self.outcomes.values()]
        return COMPLETE if COMPLETE in statuses else (statuses[0] if statuses else SKIPPED)


def run_per_source(store: Store, step: str, config: PipelineConfig) -> ExposureRun:
    """Run ``step`` (its own ``run``) on every source of ``store``; each source's status is saved."""
    mode = mode_of_store(store)
    if step not in mode.plan:
        raise Spec3cError(f"{step} is not a step of {mode.name} (its plan: {', '.join(mode.plan)})")
    if step == "master_background":
        master_background.prepare_association(store, config.master_background)
    run = ExposureRun(step)
    start = time.perf_counter()
    for source in store.sources():
        t0 = time.perf_counter()
        ctx = StepContext(store, source, mode, science_inputs(store, source), config)
        outcome = STEPS[step](ctx)
        run.outcomes[source], run.contexts[source] = outcome, ctx
        store.put_result(source, STATUS, {}, {"steps": {step: outcome.record(time.perf_counter() - t0)},
                                              "params": config.to_dict()})
    run.seconds = time.perf_counter() - start
    return run


# -- outputs ---------------------------------------------------------------------------


def _by_exposure(run: ExposureRun) -> dict[str, list[tuple[str, Cutout]]]:
    """(source, changed cutout) of every exposure, in the file's slit order."""
    out: dict[str, list[tuple[str, Cutout]]] = {}
    for source, ctx in run.contexts.items():
        for cutout in ctx.inputs.cutouts:
            out.setdefault(cutout.exposure, []).append((source, cutout))
    for cutouts in out.values():
        cutouts.sort(key=lambda sc: int(sc[1].meta.get("slit_index", 0)))
    return out


def _outlier_planes(store: Store, source: str, cutout: Cutout) -> dict[str, np.ndarray]:
    """DQ with the outlier flags, and SCI/ERR/VAR_* NaN where DO_NOT_USE (the reference's crf)."""
    from .._core import match_nans_and_flags

    names = ("sci", "err", "var_poisson", "var_rnoise", "var_flat")
    frames = cutout.planes
    if frames["sci"].size == 0:  # IFU: an empty marker cutout, the exposure is stored as full frames
        frames = store.read_images(cutout.exposure, planes=(*names, "dq"))
    try:
        dq = store.get_result(source, crf_key(cutout.exposure, cutout.slit))[0]["dq"]
    except KeyError:  # outlier detection did not run for this source (e.g. one exposure)
        dq = frames["dq"]
    planes = {name: np.array(frames[name], dtype=np.float32) for name in names}
    planes["dq"] = np.array(dq, dtype=np.uint32)
    match_nans_and_flags(planes["sci"], planes["dq"], planes["err"], planes["var_poisson"],
                         planes["var_rnoise"], planes["var_flat"])
    return planes


def _background_planes(store: Store, source: str, cutout: Cutout) -> dict[str, np.ndarray]:
    """SCI with the master background subtracted, DQ with its flags."""
    if cutout.planes["sci"].size == 0:  # IFU: the full frames, the background subtracted when read
        frames = store.read_images(cutout.exposure, planes=("sci", "dq", "wavelength"))
        record = store.get_exposure(cutout.exposure)
        master = master_background.load_for_source(store, source) \
            if cutout.meta.get(master_background.IFU_SUBTRACTED) else None
        if record is not None:
            master_background.subtract_from_frames(store, source, cutout.exposure, frames, record.meta, master)
        return {"sci": np.asarray(frames["sci"], np.float32), "dq": np.asarray(frames["dq"], np.uint32)}
    return {"sci": np.asarray(cutout.planes["sci"], np.float32), "dq": np.asarray(cutout.planes["dq"], np.uint32)}


#: (store, source, the cutout as the step left it) -> the planes of the input's copy
PlanesOf = Callable[[Store, str, Cutout], "dict[str, np.ndarray]"]


def write_updated_copies(store: Store, run: ExposureRun, planes_of: PlanesOf,
                         out_name: Callable[[ExposureRecord], str], out_dir: Path) -> list[Path]:
    """A copy of every science input with the planes ``planes_of`` gives for each of its cutouts."""
    from ..ingest.validate import open_model
    from ..products.fits_io import atomic_save
    from ..products.meta import product_stamp, stamping

    cutouts = _by_exposure(run)
    status = {"steps": {run.step: StepOutcome(run.status).record(run.seconds)},
              "params": {run.step: _params(store, run)}}
    written = []
    for record in (r for r in store.list_exposures() if r.role == "science"):
        path = out_dir / out_name(record)
        with open_model(Path(record.filename)) as model:
            parts = list(model.slits) if hasattr(model, "slits") else [model]
            for source, cutout in cutouts.get(record.name, []):
                part = parts[int(cutout.meta.get("slit_index", 0))]
                for plane, array in planes_of(store, source, cutout).items():
                    setattr(part, _PLANE_ATTRIBUTES[plane], array)
            setattr(model.meta.cal_step, _CAL_STEP[run.step], run.status)
            model.meta.filename = path.name
            with stamping(product_stamp(status)):
                written.append(atomic_save(model, path))
    return written


def _params(store: Store, run: ExposureRun) -> dict[str, Any]:
    ctx = next(iter(run.contexts.values()), None)
    if ctx is None:
        return {}
    return ctx.config.to_dict()[run.step]


def write_resampled(store: Store, run: ExposureRun, out_path: Path) -> Path:
    """The resampled spectra: one MultiSlitModel of every source for MultiSlitModel exposures,
    else the one source's SlitModel (as the reference's standalone resample_spec)."""
    from stdatamodels.jwst import datamodels as dm

    from ..naming import ProductNaming
    from ..products.fits_io import atomic_save
    from ..products.meta import product_stamp, stamping
    from ..products.writers import write_s2d
    from ..results import load_association

    done = [s for s, o in run.outcomes.items() if o.status == COMPLETE]
    if not done:
        raise Spec3cError("resample_spec produced nothing: " + "; ".join(
            f"{s}: {o.message}" for s, o in run.outcomes.items()))
    asn = load_association(store)
    naming = ProductNaming(asn["product_name"], asn["asn_id"], asn.get("exp_type"), asn.get("table_name"))
    multislit = any(r.model_type == "MultiSlitModel" for r in store.list_exposures() if r.role == "science")
    status = {"steps": {run.step: StepOutcome(run.status).record(run.seconds)},
              "params": {run.step: _params(store, run)}}
    with tempfile.TemporaryDirectory(prefix="spec3c-step-") as tmp, stamping(product_stamp(status)):
        singles = [write_s2d(store, source, naming, tmp) for source in done]
        if not multislit:
            with dm.open(singles[0]) as model:
                model.meta.filename = out_path.name
                return atomic_save(model, out_path)
        with dm.MultiSlitModel() as out:
            for index, single in enumerate(singles):
                with dm.open(single) as slit:
                    if index == 0:
                        out.update(slit, only="PRIMARY")
                    for key in _FITS_WCS_KEYS:  # their WAVE-TAB table is an extension of the single s2d only
                        slit.meta.wcsinfo.instance.pop(key, None)
                    out.slits.append(slit)
            out.meta.cal_step.resample = run.status
            out.meta.filename = out_path.name
            return atomic_save(out, out_path)


def _fits_wcs_keys() -> tuple[str, ...]:
    from ..products.wcs import s2d_fits_wcs

    return tuple(k for k in s2d_fits_wcs((2, 2), {"spatial_scale": 1.0}) if k != "dispersion_direction")


#: the FITS WCS keywords of a single s2d's SCI header (a MultiSlitModel's slits carry none, as the reference's)
_FITS_WCS_KEYS = _fits_wcs_keys()


#: step -> the planes of each input cutout its standalone output replaces
UPDATED_PLANES: dict[str, PlanesOf] = {
    "outlier_detection": _outlier_planes,
    "master_background": _background_planes,
}


def run_on_exposures(step: str, asn: Association, config: PipelineConfig,
                     out_names: Callable[[ExposureRecord | None], str], out_dir: Path) -> tuple[list[Path], ExposureRun]:
    """Run ``step`` on the exposures of ``asn`` and write its standalone products into ``out_dir``.

    ``out_names(record)`` names the copy of one input; ``out_names(None)`` the
    one product of ``resample_spec``.
    """
    store = load_store(asn)
    run = run_per_source(store, step, config)
    if step == "resample_spec":
        return [write_resampled(store, run, out_dir / out_names(None))], run
    if step not in UPDATED_PLANES:
        raise Spec3cError(f"{step} cannot run alone on exposures")
    return write_updated_copies(store, run, UPDATED_PLANES[step], out_names, out_dir), run

