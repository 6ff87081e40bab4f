"""assign_mtwcs (ALGORITHMS.md §5): align moving-target exposures on the target.

Only for TARGTYPE = moving.  Every science exposure's sky coordinates are
moved by ``(mt_avra - mt_ra, mt_avdec - mt_dec)`` so that the target lands at
one sky position in all exposures.  Because spec3c evaluates the WCS once at
ingest, the step does two things per cutout: it shifts the stored ``ra``/``dec``
planes (what outlier detection, resampling and extraction use) and it replaces
the cutout's gwcs by one with the ``moving_target`` frame (what the resampled
grid's fiducial and slit table are built from, as in the reference).

Where ``MT_RA``/``MT_DEC`` are read (as the reference for MultiSlitModels):
the slit's own ``meta.wcsinfo.mt_ra``/``mt_dec`` (kept in ``Cutout.meta``),
else the exposure's ``meta.wcsinfo``.  The mean is over science exposures, one
value per exposure; :func:`association_positions` gives the association-wide
values the reference uses (slit 0 of each exposure).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..algorithms.moving_target import (
    add_moving_target_frame,
    frame_offset,
    mean_position,
    ra_difference,
    shift_coordinates,
)
from ..errors import Spec3cWarning
from ..gwcs_asdf import wcs_to_asdf
from ..results import COMPLETE, SKIPPED
from ..store import CutoutInfo, ExposureRecord
from .context import SourceInputs, StepContext, StepDetails, StepOutcome

MT_RA, MT_DEC = "meta.wcsinfo.mt_ra", "meta.wcsinfo.mt_dec"
MT_AVRA, MT_AVDEC = "meta.wcsinfo.mt_avra", "meta.wcsinfo.mt_avdec"
TARGET_TYPE = "meta.target.type"

#: (MT_RA, MT_DEC) of one exposure or cutout, degrees; None where the keyword is missing
Position = tuple[float | None, float | None]


def is_moving_target(meta: Mapping[str, Any]) -> bool:
    """TARGTYPE of one exposure's flat metadata is ``moving`` (any case)."""
    value = meta.get(TARGET_TYPE)
    return isinstance(value, str) and value.strip().lower() == "moving"


def is_applicable(exposure_metas: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the step runs: the first exposure of the association is a moving target.

    The reference (``Spec3Pipeline.process``) looks at the first input model only.
    """
    return bool(exposure_metas) and is_moving_target(exposure_metas[0])


def _value(meta: Mapping[str, Any], key: str) -> float | None:
    value = meta.get(key)
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def cutout_position(cutout_meta: Mapping[str, Any], exposure_meta: Mapping[str, Any]) -> Position:
    """(MT_RA, MT_DEC) of a cutout: the slit's wcsinfo, else its exposure's."""
    ra, dec = _value(cutout_meta, MT_RA), _value(cutout_meta, MT_DEC)
    if ra is None or dec is None:
        ra, dec = _value(exposure_meta, MT_RA), _value(exposure_meta, MT_DEC)
    return ra, dec


def association_positions(
    cutouts: Iterable[CutoutInfo], exposures: Mapping[str, ExposureRecord]
) -> list[Position]:
    """One (MT_RA, MT_DEC) per science exposure, as the reference averages them.

    Parameters
    ----------
    cutouts : iterable of CutoutInfo
        Every cutout of the store (``store.list_cutouts()``; no arrays are read).
    exposures : mapping of exposure name to ExposureRecord
        The exposures to average over (background members are ignored).

    Returns
    -------
    list of (float or None, float or None)
        In exposure-name order: slit 0's values (the reference reads
        ``slits[0].meta.wcsinfo``); ``(None, None)`` for an exposure where any
        slit lacks them (the reference then skips the step).
    """
    by_exposure: dict[str, list[CutoutInfo]] = {}
    for info in cutouts:
        by_exposure.setdefault(info.exposure, []).append(info)
    positions: list[Position] = []
    for name in sorted(exposures):
        record = exposures[name]
        if record.role != "science":
            continue
        infos = sorted(by_exposure.get(name, []), key=lambda i: int(i.meta.get("slit_index", 0)))
        found = [cutout_position(i.meta, record.meta) for i in infos] or [cutout_position({}, record.meta)]
        complete = all(ra is not None and dec is not None for ra, dec in found)
        positions.append(found[0] if complete else (None, None))
    return positions


def _missing_outcome(what: str) -> StepOutcome:
    message = (f"MT_RA/MT_DEC missing in {what}; assign_mtwcs skipped, "
               "exposures of the moving target will be misaligned")
    warnings.warn(message, Spec3cWarning, stacklevel=3)
    return StepOutcome(SKIPPED, message)


@dataclass(frozen=True)
class AlignmentDetails(StepDetails):
    """The mean moving-target position every input was aligned on (degrees)."""

    mt_avra: float
    mt_avdec: float


def run(ctx: StepContext) -> StepOutcome:
    """The step: skipped unless the association is a moving target; else :func:`align` on the
    association-wide mean position."""
    exposures = ctx.inputs.exposures
    if not is_applicable([exposures[n].meta for n in sorted(exposures)]):
        return StepOutcome(SKIPPED, "not a moving target (TARGTYPE is not MOVING)")
    return align(ctx.inputs, association_positions(ctx.store.list_cutouts(), exposures))


def align(inputs: SourceInputs, positions: Sequence[Position] | None = None) -> StepOutcome:
    """Align every cutout of a source on the mean moving-target position, in place.

    Parameters
    ----------
    inputs : SourceInputs
        The source's science cutouts; their ``ra``/``dec`` planes, ``wcs_asdf``
        and ``meta`` (``meta.wcsinfo.mt_avra``/``mt_avdec``) are updated.
    positions : sequence of (MT_RA, MT_DEC), optional
        One per science exposure of the whole association
        (:func:`association_positions`), so every source gets the same mean.
        Default: one per exposure of ``inputs`` (its first cutout's values).

    Returns
    -------
    StepOutcome
        SKIPPED, with a :class:`~spec3c.errors.Spec3cWarning`, when a value is
        missing; COMPLETE with :class:`AlignmentDetails` otherwise.
    """
    own = [cutout_position(c.meta, inputs.exposure_meta(k)) for k, c in enumerate(inputs.cutouts)]
    lacking = [f"{c.exposure}/{c.slit}" for c, (ra, dec) in zip(inputs.cutouts, own, strict=True)
               if ra is None or dec is None]
    if lacking:
        return _missing_outcome(", ".join(lacking))
    if positions is None:
        first: dict[str, Position] = {}
        for c, pos in zip(inputs.cutouts, own, strict=True):
            first.setdefault(c.exposure, pos)
        positions = list(first.values())
    mean = mean_position([p[0] for p in positions], [p[1] for p in positions])
    if mean is None:
        return _missing_outcome("the association's science exposures")
    avra, avdec = mean
    for k, (mt_ra, mt_dec) in enumerate(own):
        _align(inputs, k, float(mt_ra), float(mt_dec), mean)  # type: ignore[arg-type]
    return StepOutcome(COMPLETE, f"{len(inputs)} inputs aligned on the mean target position "
                                 f"RA={avra:.7f} Dec={avdec:.7f} deg",
                       AlignmentDetails(avra, avdec))


def _align(inputs: SourceInputs, k: int, mt_ra: float, mt_dec: float, mean: tuple[float, float]) -> None:
    """Shift cutout ``k``'s sky planes and give it the ``moving_target`` gwcs."""
    cutout = inputs.cutouts[k]
    wcs = inputs.wcs(k)
    ra, dec = cutout.planes["ra"], cutout.planes["dec"]
    done_ra, done_dec = frame_offset(wcs)  # planes already in an older moving_target frame
    if done_ra or done_dec:
        ra, dec = np.mod(ra - done_ra, 360.0), dec - done_dec
    cutout.planes["ra"], cutout.planes["dec"] = shift_coordinates(ra, dec, mt_ra, mt_dec, *mean)
    new_wcs = add_moving_target_frame(wcs, mt_ra, mt_dec, *mean)
    cutout.wcs_asdf = wcs_to_asdf(new_wcs)
    inputs._wcs[k] = new_wcs
    cutout.meta[MT_AVRA], cutout.meta[MT_AVDEC] = mean


def applied_shift(cutout_meta: Mapping[str, Any], exposure_meta: Mapping[str, Any]) -> tuple[float, float] | None:
    """``(dRA, dDec)`` degrees this run's :func:`align` moved a cutout's sky coordinates by, None
    when it did not (IFU frames stay unchanged in the store: their readers apply this shift)."""
    avra, avdec = _value(cutout_meta, MT_AVRA), _value(cutout_meta, MT_AVDEC)
    mt_ra, mt_dec = cutout_position(cutout_meta, exposure_meta)
    if avra is None or avdec is None or mt_ra is None or mt_dec is None:
        return None
    return ra_difference(avra, mt_ra), avdec - mt_dec


def mean_of_run(inputs: SourceInputs) -> tuple[float, float] | None:
    """``(mt_avra, mt_avdec)`` the inputs were aligned on in this run (None: not aligned)."""
    for cutout in inputs.cutouts:
        avra, avdec = _value(cutout.meta, MT_AVRA), _value(cutout.meta, MT_AVDEC)
        if avra is not None and avdec is not None:
            return avra, avdec
    return None
