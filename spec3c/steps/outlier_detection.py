"""outlier_detection, spec mode (ALGORITHMS.md §7.1).

Each exposure group is drizzled onto the source's common grid, low-weight
pixels are masked, the NaN-aware median (and median error) is blotted back to
every input, and pixels far from it are flagged DO_NOT_USE | OUTLIER.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.stats import sigma_clip

from .. import dqflags
from .._core import (
    Drizzle,
    DrizzleParams,
    OutlierThresholds,
    blot_image,
    flag_direct,
    flag_resampled_crs,
    match_nans_and_flags,
    stack_median,
)
from ..algorithms.slit_grid import GridOptions, SlitGrid
from ..config import OutlierDetectionParams
from ..results import COMPLETE, SKIPPED, crf_key
from . import outlier_detection_ifu
from .common import (
    background_level,
    data_scale,
    input_weight,
    parse_bad_bits,
)
from .context import SourceInputs, StepContext, StepDetails, StepOutcome

FLAG = np.uint32(dqflags.DO_NOT_USE | dqflags.OUTLIER)


def low_weight_threshold(wht: np.ndarray, maskpt: float) -> float:
    """``maskpt`` x the 3-sigma-clipped mean of the positive finite weights."""
    good = wht[(wht > 0) & np.isfinite(wht)]
    if good.size == 0:
        return np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clipped = sigma_clip(good, sigma=3.0, maxiters=5)
    return float(maskpt * np.ma.mean(clipped))


def resample_group(inputs: SourceInputs, members: list[int], grid: SlitGrid, pixmaps: dict[int, np.ndarray],
                   params: OutlierDetectionParams, bad_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Drizzle one exposure group's data and error ("driz_err"); mask low weight."""
    drizzle = DrizzleParams(kernel=params.kernel, pixfrac=params.pixfrac, fillval=params.fill())
    driz = Drizzle(grid.shape, drizzle, context=False, planes=2)  # the data and its error
    for k in members:
        planes = inputs.cutouts[k].planes
        weight = input_weight(inputs, k, params.weight_type, bad_bits)
        iscale = data_scale(inputs, k, grid.pixel_scale_ratio)
        driz.add(np.stack([planes["sci"], planes["err"]]).astype(np.float32, copy=False), pixmaps[k], weight,
                 iscale=iscale)
    image, wht = driz.finalize(0)
    error = driz.finalize(1)[0] * np.float32(np.sqrt(grid.pixel_scale_ratio))
    low = wht < low_weight_threshold(wht, params.maskpt)
    image[low] = np.nan
    error[low] = np.nan
    return image, error


def flag_input(inputs: SourceInputs, k: int, median: np.ndarray, median_err: np.ndarray,
               pixmap: np.ndarray, params: OutlierDetectionParams) -> int:
    """Flag input ``k`` against the blotted median; returns the number of new outliers."""
    planes = inputs.cutouts[k].planes
    thresholds = OutlierThresholds(*params.thresholds())
    blot = blot_image(median, pixmap)
    blot_err = blot_image(median_err, pixmap)
    mask = flag_resampled_crs(planes["sci"], blot, blot_err, thresholds,
                              backg=background_level(inputs, k, params.backg))
    return _apply_flags(planes, mask)


def _apply_flags(planes: dict[str, np.ndarray], mask: np.ndarray) -> int:
    new = mask & ((planes["dq"] & FLAG) != FLAG)
    planes["dq"][mask] |= FLAG
    match_nans_and_flags(planes["sci"], planes["dq"], planes["err"], planes["var_poisson"],
                         planes["var_rnoise"], planes["var_flat"])
    return int(np.count_nonzero(new))


def _median_on_input_grid(inputs: SourceInputs, params: OutlierDetectionParams, bad_bits: int) -> dict[int, int]:
    """``resample_data=False``: all inputs share one pixel grid; flag |sci - median| > snr1 err."""
    shapes = {c.shape for c in inputs.cutouts}
    if len(shapes) != 1:
        raise ValueError("resample_data=False needs inputs of one shape")
    sci = np.stack([c.planes["sci"] for c in inputs.cutouts])
    err = np.stack([c.planes["err"] for c in inputs.cutouts])
    weights = np.stack([input_weight(inputs, k, params.weight_type, bad_bits) for k in range(len(inputs))])
    for w in weights:
        w[w < low_weight_threshold(w, params.maskpt)] = 0.0
    median, median_err = stack_median(sci, weights), stack_median(err, weights)
    snr1 = params.thresholds()[0]
    return {k: _apply_flags(c.planes, flag_direct(c.planes["sci"], median, median_err, snr1))
            for k, c in enumerate(inputs.cutouts)}


@dataclass(frozen=True)
class OutlierDetails(StepDetails):
    n_flagged: dict[str, int]  # "<exposure>/<slit>" -> newly flagged pixels


def run(ctx: StepContext) -> StepOutcome:
    """The step: flag every input of the source, and save each input's crf DQ.

    IFU modes (full detector frames) take the reference's ``ifu`` mode instead
    (:mod:`.outlier_detection_ifu`)."""
    if ctx.mode.cube is not None:
        return outlier_detection_ifu.run(ctx)
    outcome = detect(ctx.inputs, ctx.config.outlier_detection, ctx.build_grid)
    if isinstance(outcome.details, OutlierDetails):
        for c in ctx.inputs.cutouts:
            n = outcome.details.n_flagged.get(f"{c.exposure}/{c.slit}", 0)
            ctx.store.put_result(ctx.source, crf_key(c.exposure, c.slit), {"dq": c.planes["dq"]}, {"n_flagged": n})
    return outcome


def detect(inputs: SourceInputs, params: OutlierDetectionParams,
           build_grid: Callable[[GridOptions], Any]) -> StepOutcome:
    """Flag outliers in place in every input's DQ (and NaN its data there).

    ``build_grid(options)`` gives the source's output grid, on which each
    exposure group is drizzled for the median.
    """
    groups: dict[str, list[int]] = {}
    for k, gid in enumerate(inputs.group_ids()):
        groups.setdefault(gid, []).append(k)
    if len(groups) < 2:
        return StepOutcome(SKIPPED, f"{len(groups)} exposure(s): outlier detection needs at least 2", warn=True)
    bad_bits = parse_bad_bits(params.good_bits)
    for c in inputs.cutouts:
        p = c.planes
        match_nans_and_flags(p["sci"], p["dq"], p["err"], p["var_poisson"], p["var_rnoise"], p["var_flat"])
    if not params.resample_data:
        flagged = _median_on_input_grid(inputs, params, bad_bits)
    else:
        grid = build_grid(GridOptions(bad_bits=bad_bits))
        pixmaps = {k: inputs.pixmap(grid, k) for k in range(len(inputs))}
        images = [resample_group(inputs, members, grid, pixmaps, params, bad_bits) for members in groups.values()]
        median = stack_median(np.stack([im for im, _ in images]))
        median_err = stack_median(np.stack([er for _, er in images]))
        del images
        flagged = {k: flag_input(inputs, k, median, median_err, pixmaps[k], params) for k in range(len(inputs))}
    counts = {f"{inputs.cutouts[k].exposure}/{inputs.cutouts[k].slit}": n for k, n in flagged.items()}
    return StepOutcome(COMPLETE, f"{sum(flagged.values())} pixels flagged in {len(inputs)} inputs",
                       OutlierDetails(counts))
