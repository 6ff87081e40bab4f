"""pixel_replace (ALGORITHMS.md §9): estimate bad pixels of every input cutout in place.

The reference runs the step per model of the source container; for slit
cutouts that is one 2-D image per (exposure, slit).  ``trace_model`` needs the
adaptive trace model, which is not implemented yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..algorithms.pixel_replace import replace_fit_profile, replace_mingrad
from ..config import PixelReplaceParams
from ..errors import Spec3cError
from ..results import COMPLETE
from .context import SourceInputs, StepContext, StepDetails, StepOutcome

ALGORITHMS = ("mingrad", "fit_profile")


def _dispersion_axis(inputs: SourceInputs, k: int) -> int:
    """``dispersion_direction`` of input ``k`` (slit meta, else exposure wcsinfo, else 1)."""
    value = inputs.cutouts[k].meta.get("dispersion_direction")
    if value is None:
        value = inputs.exposure_meta(k).get("meta.wcsinfo.dispersion_direction")
    return int(value) if value is not None else 1


@dataclass(frozen=True)
class ReplaceDetails(StepDetails):
    n_replaced: dict[str, int]  # "<exposure>/<slit>" -> pixels replaced


def run(ctx: StepContext) -> StepOutcome:
    """The step: replace bad pixels of every input of the source, in place."""
    return replace(ctx.inputs, ctx.config.pixel_replace)


def replace(inputs: SourceInputs, params: PixelReplaceParams) -> StepOutcome:
    """Replace bad pixels of every cutout in place; the count per input in :class:`ReplaceDetails`."""
    algorithm = params.algorithm
    if algorithm == "trace_model":
        raise Spec3cError("pixel_replace algorithm 'trace_model' is not supported yet")
    if algorithm not in ALGORITHMS:
        raise Spec3cError(f"pixel_replace: unknown algorithm {algorithm!r} "
                          f"(expected one of {', '.join(ALGORITHMS)})")
    counts: dict[str, int] = {}
    for k, cutout in enumerate(inputs.cutouts):
        p = cutout.planes
        arrays = (p["sci"], p["err"], p.get("var_poisson"), p.get("var_rnoise"), p.get("var_flat"), p["dq"])
        if algorithm == "mingrad":
            n = replace_mingrad(*arrays)
        else:
            n = replace_fit_profile(*arrays, n_adjacent_cols=params.n_adjacent_cols,
                                    dispersion_axis=_dispersion_axis(inputs, k))
        counts[f"{cutout.exposure}/{cutout.slit}"] = n
    total = sum(counts.values())
    return StepOutcome(COMPLETE, f"{total} pixels replaced ({algorithm}) in {len(inputs)} inputs",
                       ReplaceDetails(counts))
