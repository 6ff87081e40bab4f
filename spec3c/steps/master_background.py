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

import numpy as np

from ..algorithms.master_background import BackgroundSpectrum, master_spectrum
from ..config import MasterBackgroundParams
from ..errors import InputError
from ..modes.base import Mode
from ..modes.registry import is_ifu_extended
from ..results import ASSOCIATION_SOURCE, COMPLETE, SKIPPED
from ..store import ExposureRecord, Store
from .context import SourceInputs, StepContext, StepDetails, StepOutcome

__all__ = ["ASSOCIATION_KEY", "SOURCE_KEY", "MasterBackground", "build_master", "load_for_source",
           "prepare_association", "run", "subtract", "subtraction_wanted"]

#: result keys: the association's master spectrum, and the copy each source used
ASSOCIATION_KEY = SOURCE_KEY = "master_background"

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
    for cutout in inputs.cutouts:
        bkg, dq = mode.background_2d(cutout, master.columns)
        cutout.planes["sci"] = (cutout.planes["sci"] - bkg).astype(np.float32)
        cutout.planes["dq"] = cutout.planes["dq"] | dq
    note = f" ({mode.background_note})" if mode.background_note else ""
    return StepOutcome(COMPLETE, f"subtracted from {len(inputs)} cutouts{note}", BackgroundDetails(master.origin))
