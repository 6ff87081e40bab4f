"""master_background for slit modes (ALGORITHMS.md §6).

Two levels, because the reference runs it on the whole association before
exp_to_source:

* :func:`build_master` (once per ``process`` run, in the parent): decide
  whether to subtract (skip logic), then make the master 1-D spectrum from
  the stored background members (or read ``user_background``);
* :func:`run` (per source, in the workers): expand the master spectrum at
  every science pixel's stored wavelength and subtract it in place.

The master spectrum a source used is saved with the source
(:data:`SOURCE_KEY`), so ``export`` reproduces that source's background
subtracted ``_cal``/``_crf`` planes and ``_masterbg1d``/``_masterbg2d``
products even if a later run changed the parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..algorithms.master_background import (
    BackgroundSpectrum,
    expand_ifu,
    ifu_point_scale,
    master_spectrum,
)
from ..config import MasterBackgroundParams
from ..errors import InputError
from ..modes.base import Mode
from ..modes.registry import is_ifu_extended, mode_for
from ..results import ASSOCIATION_SOURCE, COMPLETE, SKIPPED
from ..store import ExposureRecord, Store
from .context import SourceInputs, StepContext, StepDetails, StepOutcome

__all__ = ["ASSOCIATION_KEY", "IFU_SUBTRACTED", "SOURCE_KEY", "MasterBackground", "build_master", "frame_background",
           "load_for_source", "prepare_association", "run", "subtract", "subtract_from_frames", "subtraction_wanted"]

#: result keys: the association's master spectrum, and the copy each source used
ASSOCIATION_KEY = SOURCE_KEY = "master_background"

#: set (in memory) on an IFU exposure's cutout once this run subtracts the master background: its
#: frames are read from the store unchanged, so every reader subtracts it (:func:`subtract_from_frames`)
IFU_SUBTRACTED = "master_background_subtracted"

#: cal_step keywords that mean stage 2 already removed a background
_DONE_KEYS = ("meta.cal_step.bkg_subtract", "meta.cal_step.master_background")


@dataclass
class MasterBackground:
    """The association-level decision and, when subtracting, the master spectrum."""

    status: str
    message: str
    columns: dict[str, np.ndarray] = field(default_factory=dict)  # COMBINE1D-like, upper case
    origin: str = ""  # "background members" | user file name
    save_background: bool = False  # write the _masterbg1d/_masterbg2d products on export

    @property
    def subtract(self) -> bool:
        return self.status == COMPLETE

    def save(self, store: Store, source: str, key: str) -> None:
        store.put_result(source, key, self.columns, {"status": self.status, "message": self.message,
                                                     "origin": self.origin, "save_background": self.save_background})

    @classmethod
    def load(cls, store: Store, source: str, key: str) -> MasterBackground:
        arrays, meta = store.get_result(source, key)
        return cls(meta["status"], meta["message"], dict(arrays), meta.get("origin", ""),
                   bool(meta.get("save_background", False)))


def subtraction_wanted(records: Sequence[ExposureRecord], force: bool) -> tuple[bool, str]:
    """The reference's ``_do_sub`` over every member (science and background)."""
    if force:
        return True, "force_subtract"
    done = [r.name for r in records if any(r.meta.get(k) == COMPLETE for k in _DONE_KEYS)]
    if not done:
        return True, ""
    if len(done) == len(records):
        return False, "background already subtracted in stage 2 (set force_subtract to subtract again)"
    return False, (f"not subtracting: {len(done)} of {len(records)} inputs had a background subtracted in "
                   "stage 2 and the others not (set force_subtract to subtract anyway)")


def _background_spectra(store: Store, record: ExposureRecord) -> list[BackgroundSpectrum]:
    """Every spectrum of one background member (stored at ingest as ``spec<i>.<column>`` images)."""
    by_spec: dict[str, dict[str, np.ndarray]] = {}
    for plane, image in store.read_images(record.name).items():
        spec, _, column = plane.partition(".")
        if spec.startswith("spec") and column:
            by_spec.setdefault(spec, {})[column.upper()] = image
    if not by_spec:
        raise InputError(record.filename, "background member holds no 1-D spectrum (an _x1d file is expected)")
    meta = record.meta
    ifu_extended = is_ifu_extended(record.exp_type, meta.get("meta.target.source_type"))
    bkgdtarg = meta.get("meta.observation.bkgdtarg")
    exptime = meta.get("meta.exposure.exposure_time")
    if not exptime:
        raise InputError(record.filename, "EFFEXPTM (meta.exposure.exposure_time) is not set; the master "
                                          "background weights each background spectrum by it")
    return [
        BackgroundSpectrum(columns, float(exptime), bkgdtarg is not False, ifu_extended)
        for _, columns in sorted(by_spec.items(), key=lambda kv: int(kv[0][4:] or 0))
    ]


def read_user_background(path: str | Path) -> dict[str, np.ndarray]:
    """WAVELENGTH and SURF_BRIGHT of a 1-D spectrum file (x1d MultiSpecModel or c1d CombinedSpecModel)."""
    from stdatamodels.jwst import datamodels

    try:
        with datamodels.open(path) as model:
            table = model.spec[0].spec_table if hasattr(model, "spec") else model.spec_table
            return {"WAVELENGTH": np.array(table["WAVELENGTH"], dtype=float),
                    "SURF_BRIGHT": np.array(table["SURF_BRIGHT"], dtype=float)}
    except Exception as exc:  # stdatamodels raises many types for bad files
        raise InputError(path, f"user_background is not a readable 1-D spectrum file: {exc}") from exc


def build_master(store: Store, params: MasterBackgroundParams) -> MasterBackground | None:
    """The association's master background, or None without background members (step not run)."""
    records = store.list_exposures()
    backgrounds = [r for r in records if r.role == "background"]
    if not backgrounds:
        return None
    wanted, why = subtraction_wanted(records, params.force_subtract)
    if not wanted:
        return MasterBackground(SKIPPED, why)
    if params.user_background:
        columns = read_user_background(params.user_background)
        return MasterBackground(COMPLETE, f"user background {Path(params.user_background).name}", columns,
                                Path(params.user_background).name, params.save_background)
    spectra = [s for r in backgrounds for s in _background_spectra(store, r)]
    master = master_spectrum(spectra, params.median_kernel)
    columns = {name: np.asarray(master.column(name)) for name in ("WAVELENGTH", "FLUX", "ERROR", "SURF_BRIGHT",
                                                                  "SB_ERROR", "DQ", "WEIGHT", "N_INPUT")}
    return MasterBackground(COMPLETE, f"master background from {len(spectra)} spectra of "
                                      f"{len(backgrounds)} background members", columns, "background members",
                            params.save_background)


def save_association_master(store: Store, master: MasterBackground) -> None:
    master.save(store, ASSOCIATION_SOURCE, ASSOCIATION_KEY)


def delete_association_master(store: Store) -> None:
    store.delete_result(ASSOCIATION_SOURCE, ASSOCIATION_KEY)


def load_association_master(store: Store) -> MasterBackground | None:
    try:
        return MasterBackground.load(store, ASSOCIATION_SOURCE, ASSOCIATION_KEY)
    except KeyError:
        return None


def load_for_source(store: Store, source: str) -> MasterBackground | None:
    """The master background ``source`` was processed with (None if none)."""
    try:
        return MasterBackground.load(store, source, SOURCE_KEY)
    except KeyError:
        return None


@dataclass(frozen=True)
class BackgroundDetails(StepDetails):
    origin: str  # "background members" or the user file's name


def prepare_association(store: Store, params: MasterBackgroundParams) -> None:
    """Build the association's master background once, before the per-source runs use it."""
    master = None if params.skip else build_master(store, params)
    if master is None:
        delete_association_master(store)
    else:
        save_association_master(store, master)


def run(ctx: StepContext) -> StepOutcome:
    """The step: subtract the association's master background; the source keeps the spectrum it used."""
    master = load_association_master(ctx.store)
    outcome = subtract(ctx.inputs, master, ctx.mode)
    if outcome.status == COMPLETE and master is not None:
        master.save(ctx.store, ctx.source, SOURCE_KEY)
    return outcome


def subtract(inputs: SourceInputs, master: MasterBackground | None, mode: Mode) -> StepOutcome:
    """Subtract the master background from every cutout of a source, in place."""
    if master is None:
        return StepOutcome(SKIPPED, "no background members in the association")
    if not master.subtract:
        return StepOutcome(SKIPPED, master.message)
    if mode.cube is not None:
        return _subtract_ifu(inputs, master)
    for cutout in inputs.cutouts:
        bkg, dq = mode.background_2d(cutout, master.columns)
        cutout.planes["sci"] = (cutout.planes["sci"] - bkg).astype(np.float32)
        cutout.planes["dq"] = cutout.planes["dq"] | dq
    note = f" ({mode.background_note})" if mode.background_note else ""
    return StepOutcome(COMPLETE, f"subtracted from {len(inputs)} cutouts{note}", BackgroundDetails(master.origin))


# -- IFU: full-frame exposures, kept unchanged in the store -----------------------------------


def _subtract_ifu(inputs: SourceInputs, master: MasterBackground) -> StepOutcome:
    """Mark every exposure of an IFU source: its readers subtract the master background from SCI."""
    exposures = dict.fromkeys(c.exposure for c in inputs.cutouts)
    for cutout in inputs.cutouts:
        cutout.meta[IFU_SUBTRACTED] = True
    return StepOutcome(COMPLETE, f"subtracted from the frames of {len(exposures)} exposures",
                       BackgroundDetails(master.origin))


def frame_background(master: MasterBackground, frames: dict[str, np.ndarray],
                     exposure_meta: dict[str, Any]) -> np.ndarray:
    """The master background at every pixel of an IFU exposure (float32, the frames' shape).

    ``frames`` holds the stored ``wavelength`` plane (NaN off the slices: 0 there, as the
    reference); a NIRSpec point source is scaled by ``pathloss_uniform/pathloss_point``
    when those planes are stored (the reference skips the scaling when the cal file lacks them).
    """
    bkg = expand_ifu(frames["wavelength"], master.columns["WAVELENGTH"], master.columns["SURF_BRIGHT"])
    point = str(exposure_meta.get("meta.target.source_type") or "").upper() == "POINT"
    traits = mode_for(str(exposure_meta.get("meta.exposure.type") or "")).cube
    if point and traits is not None and traits.point_background_pathloss:
        scale = ifu_point_scale(frames)
        if scale is not None:
            bkg = (bkg * scale).astype(np.float32)
    return bkg


def subtract_from_frames(store: Store, source: str, exposure: str, frames: dict[str, np.ndarray],
                         exposure_meta: dict[str, Any], master: MasterBackground | None) -> None:
    """``frames["sci"] -= background`` in place when ``master`` subtracts (ERR/VAR/DQ unchanged, as
    the reference); reads the exposure's ``wavelength`` frame if ``frames`` lacks it."""
    if master is None or not master.subtract or "sci" not in frames:
        return
    planes = frames if "wavelength" in frames else {**frames, **store.read_images(exposure, planes=("wavelength",))}
    frames["sci"] = (frames["sci"] - frame_background(master, planes, exposure_meta)).astype(np.float32)


def master_in_run(ctx: StepContext, exposure: str) -> MasterBackground | None:
    """The master background this run subtracts from ``exposure``'s frames (None: none)."""
    cutout = next((c for c in ctx.inputs.cutouts if c.exposure == exposure), None)
    if cutout is None or not cutout.meta.get(IFU_SUBTRACTED):
        return None
    return load_for_source(ctx.store, ctx.source)


def subtract_in_run(ctx: StepContext, exposure: str, frames: dict[str, np.ndarray]) -> None:
    """Subtract from an IFU exposure's frames what this run's master_background subtracted (if any)."""
    master = master_in_run(ctx, exposure)
    if master is not None:
        subtract_from_frames(ctx.store, ctx.source, exposure, frames, ctx.inputs.exposures[exposure].meta, master)
