"""resample_spec (ALGORITHMS.md §10): drizzle a source's inputs into one ``_s2d``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._core import Drizzle, DrizzleParams, VarianceCombiner, match_nans_and_flags
from ..algorithms.footprint import s2d_s_region
from ..algorithms.slit_grid import GridOptions, SlitGrid
from ..config import ResampleSpecParams
from ..errors import InputError
from ..gwcs_asdf import wcs_to_asdf
from ..modes.base import LocateSource
from ..results import COMPLETE, FAILED, Resampled2D
from .common import RESAMPLE_BAD_BITS, apcorr_keys, data_scale, input_weight
from .context import SourceInputs, StepContext, StepOutcome

VARIANCES = ("var_rnoise", "var_poisson", "var_flat")

#: slit attributes of the s2d; the reference's output model inherits them from its first
#: input (its update_slit_metadata from the last input never takes effect, see benchmarks/ORACLE_NOTES.md)
SLIT_ATTRIBUTES = ("name", "xstart", "xsize", "ystart", "ysize", "slitlet_id", "source_id", "source_name",
                   "source_alias", "stellarity", "source_type", "source_xpos", "source_ypos",
                   "dispersion_direction", "shutter_state", "source_ra", "source_dec")


def _grid_options(params: ResampleSpecParams) -> GridOptions:
    return GridOptions(pixel_scale_ratio=params.pixel_scale_ratio, pixel_scale=params.pixel_scale,
                       bad_bits=RESAMPLE_BAD_BITS)


def _variance_weight(v_rnoise: np.ndarray, inputs: SourceInputs, k: int, weight_type: str) -> np.ndarray | float:
    """Per-input output-plane weight of the variance combination (§10.1 step 6)."""
    if weight_type == "exptime":
        return inputs.exposure_time(k)
    with np.errstate(divide="ignore", invalid="ignore"):
        omega = np.where((v_rnoise > 0) & np.isfinite(v_rnoise), 1.0 / v_rnoise, 0.0)
    return omega.astype(np.float32)


def drizzle_source(inputs: SourceInputs, grid: SlitGrid, params: ResampleSpecParams) -> dict[str, np.ndarray]:
    """Drizzle data and variances of every input; returns the output planes."""
    drizzle = DrizzleParams(kernel=params.kernel, pixfrac=params.pixfrac, fillval=params.fill())
    # plane 0 the science, accumulated over the inputs; then each variance's errors, one input at a time
    driz = Drizzle(grid.shape, drizzle, planes=1 + len(VARIANCES))
    combiners = {name: VarianceCombiner(grid.shape, drizzle) for name in VARIANCES}
    for k, cutout in enumerate(inputs.cutouts):
        p = cutout.planes
        match_nans_and_flags(p["sci"], p["dq"], p["err"], p["var_poisson"], p["var_rnoise"], p["var_flat"])
        pixmap = inputs.pixmap(grid, k)
        weight = input_weight(inputs, k, params.weight_type, RESAMPLE_BAD_BITS)
        iscale = data_scale(inputs, k, grid.pixel_scale_ratio)
        planes = np.stack([p["sci"].astype(np.float32, copy=False),
                           *(VarianceCombiner.errors(p[name]) for name in VARIANCES)])
        driz.add(planes, pixmap, weight, iscale=iscale, input_id=k)
        resampled = {name: VarianceCombiner.variance_of(driz, i) for i, name in enumerate(VARIANCES, 1)}
        driz.clear(slice(1, None))
        omega = _variance_weight(resampled["var_rnoise"], inputs, k, params.weight_type)
        for name in VARIANCES:
            combiners[name].add(resampled[name], omega)
    sci, wht = driz.finalize()
    assert driz.out_con is not None  # the drizzle keeps context by default
    out: dict[str, np.ndarray] = {"sci": sci, "wht": wht, "con": driz.out_con}
    for name in VARIANCES:
        out[name] = combiners[name].finalize(scale=grid.pixel_scale_ratio)
    with np.errstate(invalid="ignore"):
        total = np.nansum(np.stack([out[n] for n in VARIANCES]), axis=0)
        all_nan = np.all(np.isnan(np.stack([out[n] for n in VARIANCES])), axis=0)
    out["err"] = np.where(all_nan, np.nan, np.sqrt(total)).astype(np.float32)
    return out


def output_meta(inputs: SourceInputs, grid: Any, params: ResampleSpecParams,
                locate_source: LocateSource | None = None) -> dict[str, Any]:
    """Slit attributes (from the first input, as the reference), units, area, exposure totals."""
    first = inputs.cutouts[0].meta
    meta: dict[str, Any] = {a: first[a] for a in SLIT_ATTRIBUTES if first.get(a) is not None}
    nominal = first.get("meta.photometry.pixelarea_steradians") or inputs.exposure_meta(0).get(
        "meta.photometry.pixelarea_steradians")
    arcsec2 = first.get("meta.photometry.pixelarea_arcsecsq") or inputs.exposure_meta(0).get(
        "meta.photometry.pixelarea_arcsecsq")
    unique = {c.exposure: k for k, c in enumerate(inputs.cutouts)}
    bunit = inputs.bunit(0)
    if not bunit:
        raise InputError(inputs.exposures[inputs.cutouts[0].exposure].filename,
                         "BUNIT (meta.bunit_data) of the SCI array is not set")
    meta.update(
        bunit_data=bunit,
        bunit_err=bunit,
        pixel_scale_ratio=grid.pixel_scale_ratio,
        pixfrac=params.pixfrac,
        kernel=params.kernel,
        weight_type=params.weight_type,
        pixelarea_steradians=nominal / grid.pixel_scale_ratio if nominal else None,
        pixelarea_arcsecsq=arcsec2 / grid.pixel_scale_ratio if arcsec2 else None,
        exposure_time=sum(float(inputs.exposure_meta(k).get("meta.exposure.exposure_time") or 0) for k in unique.values()),
        measurement_time=sum(float(inputs.exposure_meta(k).get("meta.exposure.measurement_time") or 0)
                             for k in unique.values()),
        inputs=[c.exposure for c in inputs.cutouts],
        input_slits=[c.slit for c in inputs.cutouts],
        spatial_scale=grid.spatial_scale,
        slit_y=np.nan_to_num(grid.slit_y).tolist(),
        fiducial=list(grid.fiducial),
        dispersion_direction=grid.dispersion_axis,
        **apcorr_keys(inputs.exposure_meta(0)),
    )
    if locate_source is not None:  # modes that find the source from the pointing (extract_1d centres on it)
        meta["source_location"] = locate_source(inputs, grid)
    wcsinfo = grid.fits_wcsinfo(meta.get("source_location"))
    if wcsinfo is not None:
        meta["fits_wcsinfo"] = wcsinfo
    return meta


def run(ctx: StepContext) -> StepOutcome:
    """The step: drizzle the source's inputs onto the mode's grid and save the ``s2d``."""
    outcome, ctx.s2d = resample(ctx.inputs, ctx.build_grid, ctx.config.resample_spec, ctx.mode.locate_source,
                                footprint=not ctx.mode.image_exposures)
    if ctx.s2d is not None:
        ctx.s2d.save(ctx.store, ctx.source)
    return outcome


def resample(inputs: SourceInputs, build_grid: Callable[[GridOptions], Any], params: ResampleSpecParams,
             locate_source: LocateSource | None = None, *, footprint: bool = False,
             ) -> tuple[StepOutcome, Resampled2D | None]:
    """The rectified 2-D spectrum of one source's inputs (None when the grid cannot be used).

    ``footprint``: its ``S_REGION`` is recorded (``meta["s_region"]``), from the output gwcs
    at hand (slits; the writer would deserialise that gwcs again to find it).
    """
    grid = build_grid(_grid_options(params))
    if params.output_shape:
        nx, ny = (int(v) for v in str(params.output_shape).replace(",", " ").split())
        if (ny, nx) != grid.shape:
            return StepOutcome(FAILED, f"output_shape {nx} {ny} differs from the grid {grid.shape[::-1]}; "
                                         "custom output shapes are not supported yet"), None
    planes = drizzle_source(inputs, grid, params)
    _, _, wavelength = grid.world()
    meta = output_meta(inputs, grid, params, locate_source)
    wcs = grid.to_gwcs()
    s_region = s2d_s_region(wcs, grid.shape, grid.dispersion_axis) if footprint else None
    if s_region:
        meta["s_region"] = s_region
    s2d = Resampled2D(
        sci=planes["sci"], err=planes["err"], wht=planes["wht"], con=planes["con"],
        var_poisson=planes["var_poisson"], var_rnoise=planes["var_rnoise"], var_flat=planes["var_flat"],
        wavelength=wavelength, wcs_asdf=wcs_to_asdf(wcs), meta=meta, gwcs=wcs,
    )
    return StepOutcome(COMPLETE, f"{len(inputs)} inputs -> {grid.shape[0]}x{grid.shape[1]}"), s2d
