"""One module per calwebb_spec3 step, each with ``run(ctx: StepContext) -> StepOutcome``.

A step reads one source's inputs from the :class:`~.context.StepContext`,
changes them in place where the reference does, and saves its own results to
the store.  :data:`STEPS` names every step a mode's plan may list; the plan
itself belongs to the mode (``spec3c.modes``).
"""

from __future__ import annotations

from collections.abc import Callable

from . import (
    assign_mtwcs,
    combine_1d,
    cube_build,
    extract_1d,
    master_background,
    outlier_detection,
    pixel_replace,
    resample_spec,
    spectral_leak,
)
from .context import StepContext, StepOutcome

Step = Callable[[StepContext], StepOutcome]

#: step name -> run function (exp_to_source is the grouping by source done at ingest)
STEPS: dict[str, Step] = {
    "assign_mtwcs": assign_mtwcs.run,
    "master_background": master_background.run,
    "outlier_detection": outlier_detection.run,
    "pixel_replace": pixel_replace.run,
    "resample_spec": resample_spec.run,
    "cube_build": cube_build.run,
    "extract_1d": extract_1d.run,
    "combine_1d": combine_1d.run,
    "spectral_leak": spectral_leak.run,
}
