"""What a step sees of one source: :class:`StepContext`, and what it reports: :class:`StepOutcome`.

Every step is ``run(ctx: StepContext) -> StepOutcome``: it reads the source's
inputs (and association-level data) from the context, updates the inputs in
place where the reference does, and saves its own results to the store.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..algorithms.slit_grid import GridOptions
from ..config import PipelineConfig
from ..log import log_step
from ..results import COMPLETE, Resampled2D, Spectrum1D
from ..source_inputs import SourceInputs
from ..store import Store

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
