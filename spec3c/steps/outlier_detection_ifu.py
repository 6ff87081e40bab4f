"""outlier_detection, ifu mode (ALGORITHMS.md §7.2): MIRI MRS and NIRSpec IFU frames.

The exposures are grouped by detector (the reference's grouping: every band
and dither of one detector together).  Per detector the minimum neighbour
difference across the slices is accumulated exposure by exposure from the
stored frames, normalised and cut at ``threshold_percent``
(:mod:`spec3c.algorithms.ifu_outlier`); the pixels found are flagged
DO_NOT_USE | OUTLIER in every exposure of the detector.  Each exposure's
flagged DQ is saved as ``crf/<exposure>/<slit>``: cube_build's frame reader
(:func:`spec3c.steps.cube_inputs.read_frames`) applies it (and NaNs SCI/ERR
there), and ``export`` writes it as the exposure's ``_crf`` file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import dqflags
from ..algorithms.ifu_outlier import IfuOutlierOptions, MinimumDifference, outlier_mask
from ..errors import Spec3cError
from ..heap import long_lived_objects_frozen
from ..results import COMPLETE, SKIPPED, crf_key
from .context import StepContext, StepDetails, StepOutcome
from .master_background import subtract_in_run

FLAG = np.uint32(dqflags.DO_NOT_USE | dqflags.OUTLIER)


@dataclass(frozen=True)
class IfuOutlierDetails(StepDetails):
    n_flagged: dict[str, int]  # "<exposure>/<slit>" -> newly flagged pixels
    cut: dict[str, float]  # detector -> threshold on the normalised difference


def options_of(ctx: StepContext) -> IfuOutlierOptions:
    params = ctx.config.outlier_detection
    try:
        kernel = IfuOutlierOptions.parse_kernel(params.kernel_size)
    except ValueError as exc:
        raise Spec3cError(f"outlier_detection: {exc}") from exc
    return IfuOutlierOptions(kernel, float(params.threshold_percent), bool(params.ifu_second_check))


def detector_groups(ctx: StepContext) -> dict[str, list[str]]:
    """Exposure names by detector (lower case), in input order."""
    groups: dict[str, list[str]] = {}
    for exposure in dict.fromkeys(c.exposure for c in ctx.inputs.cutouts):
        meta = ctx.inputs.exposures[exposure].meta
        detector = str(meta.get("meta.instrument.detector") or "").lower()
        groups.setdefault(detector, []).append(exposure)
    return groups


def _slit_of(ctx: StepContext, exposure: str) -> str:
    return next(c.slit for c in ctx.inputs.cutouts if c.exposure == exposure)


def _flag_detector(ctx: StepContext, exposures: list[str], axis: int, options: IfuOutlierOptions,
                   counts: dict[str, int]) -> float:
    """Flag one detector's outliers in its exposures, save each one's crf DQ and its count in
    ``counts``; returns the detector's cut."""
    minimum = MinimumDifference(axis)
    for exposure in exposures:
        frames = ctx.store.read_images(exposure, planes=("sci", "dq"))
        subtract_in_run(ctx, exposure, frames)  # the reference flags the background-subtracted data
        minimum.add(frames["sci"], (frames["dq"] & dqflags.DO_NOT_USE) != 0)
    found = outlier_mask(minimum.finalize(), options)
    for exposure in exposures:
        dq = np.array(ctx.store.read_images(exposure, planes=("dq",))["dq"], dtype=np.uint32)
        slit = _slit_of(ctx, exposure)
        new = int(np.count_nonzero(found.mask & ((dq & FLAG) != FLAG)))
        dq[found.mask] |= FLAG
        counts[f"{exposure}/{slit}"] = new
        ctx.store.put_result(ctx.source, crf_key(exposure, slit), {"dq": dq}, {"n_flagged": new})
    return found.cut


def run(ctx: StepContext) -> StepOutcome:
    """Flag each detector's outliers in all its exposures; save every exposure's crf DQ."""
    if ctx.mode.cube is None:
        raise Spec3cError(f"mode {ctx.mode.name} has no IFU traits: the ifu outlier detection does not apply")
    groups = detector_groups(ctx)
    n_exposures = sum(len(v) for v in groups.values())
    if n_exposures < 2:
        return StepOutcome(SKIPPED, f"{n_exposures} exposure(s): outlier detection needs at least 2", warn=True)
    options = options_of(ctx)
    axis = ctx.mode.cube.across_slice_axis
    counts: dict[str, int] = {}
    cuts: dict[str, float] = {}
    with long_lived_objects_frozen():  # a full collection follows each frame read
        for detector, exposures in groups.items():
            cuts[detector] = _flag_detector(ctx, exposures, axis, options, counts)
    total = sum(counts.values())
    return StepOutcome(COMPLETE, f"{total} pixels flagged in {n_exposures} exposures of {len(groups)} detector(s)",
                       IfuOutlierDetails(counts, cuts))
