"""What a step sees of one source: :class:`StepContext`, and what it reports: :class:`StepOutcome`.

Every step is ``run(ctx: StepContext) -> StepOutcome``: it reads the source's
inputs (and association-level data) from the context, updates the inputs in
place where the reference does, and saves its own results to the store.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..algorithms.slit_grid import GridInput, GridOptions
from ..config import PipelineConfig
from ..errors import InputError
from ..gwcs_asdf import wcs_from_asdf
from ..log import log_step
from ..results import COMPLETE, Resampled2D, Spectrum1D
from ..store import Cutout, ExposureRecord, Store

if TYPE_CHECKING:
    from ..modes.base import Mode


@dataclass(frozen=True)
class StepDetails:
    """Typed details of a step's outcome; recorded flat beside its status."""

    def record(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StepOutcome:
    """Status of one step for one source (S_<STEP> keyword values).

    Attributes
    ----------
    status : str
        COMPLETE, SKIPPED or FAILED.
    message : str
        What was done (or why not), in a few words.
    details : StepDetails or None
    notes : tuple of str
        Caveats of the result, e.g. a correction asked for that could not be
        applied: logged as warnings, kept in the status and recorded in every
        product of the source (PROVENANCE rows of kind ``note``).
    warn : bool
        A skip the user should hear of (the step could not run as asked),
        logged as a warning; routine skips are logged as information.
    """

    status: str = COMPLETE
    message: str = ""
    details: StepDetails | None = None
    notes: tuple[str, ...] = ()
    warn: bool = False

    def record(self, seconds: float) -> dict[str, Any]:
        """What the source's ``status`` result keeps of this step."""
        extra = self.details.record() if self.details is not None else {}
        notes = {"notes": list(self.notes)} if self.notes else {}
        return {"status": self.status, "message": self.message, "seconds": round(seconds, 4), **extra, **notes}

    def log(self, step: str, source: str, seconds: float) -> None:
        """One log line for this outcome (logger ``spec3c.step.<step>``), a warning per note, details at DEBUG."""
        log_step(step, source, self.record(seconds), warn=self.warn)




@dataclass
class SourceInputs:
    """One source's science cutouts (planes are updated in place by the steps)."""

    source: str
    cutouts: list[Cutout]
    exposures: dict[str, ExposureRecord]
    _wcs: dict[int, Any] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.cutouts)

    def wcs(self, k: int):  # type: ignore[no-untyped-def]
        """gwcs of input ``k`` (deserialised once, only when needed)."""
        if k not in self._wcs:
            self._wcs[k] = wcs_from_asdf(self.cutouts[k].wcs_asdf)
        return self._wcs[k]

    def exposure_meta(self, k: int) -> dict[str, Any]:
        return self.exposures[self.cutouts[k].exposure].meta

    def group_ids(self) -> list[str]:
        """Exposure group of each input (``meta.group_id``, else the exposure name)."""
        return [str(self.exposure_meta(k).get("meta.group_id") or c.exposure) for k, c in enumerate(self.cutouts)]

    def grid_inputs(self) -> list[GridInput]:
        return [
            GridInput(c.planes["sci"], c.planes["dq"], c.planes["wavelength"], c.planes["ra"],
                      c.planes["dec"], c.planes["slit_y"])
            for c in self.cutouts
        ]

    def exp_type(self, k: int = 0) -> str:
        return self.exposures[self.cutouts[k].exposure].exp_type

    def pixmap(self, grid: Any, k: int) -> np.ndarray:
        """Output-grid coordinates ``(ny, nx, 2)`` of input ``k``'s pixels."""
        p = self.cutouts[k].planes
        return grid.pixmap(p["ra"], p["dec"], p["wavelength"])

    def exposure_time(self, k: int) -> float:
        """Drizzle's exptime weight of input ``k``: TMEASURE, else EFFEXPTM (an error if neither is set)."""
        meta = self.exposure_meta(k)
        for key in ("meta.exposure.measurement_time", "meta.exposure.exposure_time"):
            if meta.get(key):
                return float(meta[key])
        record = self.exposures[self.cutouts[k].exposure]
        raise InputError(record.filename, "neither TMEASURE (meta.exposure.measurement_time) nor EFFEXPTM "
                                          "(meta.exposure.exposure_time) is set; the exptime weight needs one")

    def bunit(self, k: int) -> str:
        c = self.cutouts[k]
        return str(c.meta.get("meta.bunit_data") or self.exposure_meta(k).get("meta.bunit_data") or "")


@dataclass
class StepContext:
    """One source being processed: its mode, inputs, parameters and the results so far.

    Attributes
    ----------
    store : Store
        Open for writing; steps save their results under ``source``.
    source : str
        The source key.
    mode : Mode
        The association's mode.
    inputs : SourceInputs
        The source's science cutouts, changed in place by the steps.
    config : PipelineConfig
    s2d : Resampled2D or None
        Set by resample_spec.
    spectra : list of Spectrum1D
        Per-exposure spectra (modes that are not resampled), for combine_1d.
    """

    store: Store
    source: str
    mode: Mode
    inputs: SourceInputs
    config: PipelineConfig
    s2d: Resampled2D | None = None
    spectra: list[Spectrum1D] = field(default_factory=list)

    def build_grid(self, options: GridOptions) -> Any:
        """The mode's output grid of this source."""
        return self.mode.build_grid(self.inputs, options)

    def photom_done(self) -> bool:
        """Stage 2 ran photom (the inputs are calibrated)."""
        return self.inputs.exposure_meta(0).get("meta.cal_step.photom") == COMPLETE


def science_inputs(store: Store, source: str) -> SourceInputs:
    """A source's science cutouts and their exposures, read from the store (exp_to_source)."""
    from ..errors import Spec3cError

    exposures = {r.name: r for r in store.list_exposures() if r.role == "science"}
    cutouts = [c for c in store.read_cutouts(source) if c.exposure in exposures]
    if not cutouts:
        raise Spec3cError(f"source {source!r} has no science cutouts")
    return SourceInputs(source, cutouts, exposures)
