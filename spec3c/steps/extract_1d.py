"""extract_1d, box extraction of a slit ``_s2d`` (ALGORITHMS.md §12.1–12.3, 12.7)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import dqflags
from .._core import BackgroundFit, box_extract, match_nans_and_flags
from ..algorithms.apcorr import ApcorrSpec, aperture_correction, apply_correction, read_apcorr
from ..algorithms.aperture import (
    Aperture,
    aperture_center,
    box_profile,
    read_extract1d,
    resolve_aperture,
)
from ..config import Extract1dParams
from ..errors import Spec3cError, Spec3cWarning
from ..modes.base import Extraction
from ..results import COMPLETE, SKIPPED, Resampled2D, Spectrum1D, x1d_exposure_key
from . import extract_1d_ifu
from .common import apcorr_keys
from .context import SourceInputs, StepContext, StepOutcome

#: smaller spectra are extracted on one thread (waking an OpenMP team costs more than the sums)
_THREADED_PIXELS = 1 << 16

#: header attributes copied from the s2d to the spectrum
SPEC_ATTRIBUTES = ("name", "slitlet_id", "source_id", "source_name", "source_alias", "source_type",
                   "stellarity", "source_xpos", "source_ypos", "source_ra", "source_dec", "shutter_state")


def aperture_id(traits: Extraction, exp_type: str, s2d_name: str | None) -> str:
    """The aperture ``id`` the reference looks up: the slit name for fixed slits, else the EXP_TYPE."""
    if traits.aperture_by_slit and s2d_name:
        return s2d_name
    return exp_type


def source_row(s2d: Resampled2D, located: bool = False) -> tuple[int, float, float | None]:
    """(middle column, middle wavelength, row of the planned source position or None).

    ``located``: resample_spec recorded the source's row (``source_location``,
    e.g. from the dithered pointing).  Otherwise the slit-frame y of the
    source (SRCYPOS) mapped through the s2d's slit-frame lookup table, as
    ``location_from_wcs`` does.
    """
    ny, nx = s2d.sci.shape
    middle = int(np.round((nx - 1) / 2.0))
    lam = s2d.wavelength[:, middle]
    middle_wl = float(np.nanmean(lam)) if np.isfinite(lam).any() else float("nan")
    if located:
        return middle, middle_wl, s2d.meta.get("source_location")
    ypos = s2d.meta.get("source_ypos")
    table = np.asarray(s2d.meta.get("slit_y", []), dtype=float)
    if ypos is None or table.size < 2 or not np.all(np.isfinite(table)):
        return middle, middle_wl, None
    order = np.argsort(table)
    rows = np.arange(table.size, dtype=float)[order]
    sorted_table = table[order]
    # the reference's lookup extrapolates linearly beyond the table
    location = float(np.interp(ypos, sorted_table, rows)) if sorted_table[0] <= ypos <= sorted_table[-1] else \
        float(rows[0] + (ypos - sorted_table[0]) * (rows[-1] - rows[0]) / (sorted_table[-1] - sorted_table[0]))
    if not (-0.5 <= location <= ny - 0.5):
        return middle, middle_wl, None
    return middle, middle_wl, location


def place_aperture(ap: Aperture, s2d: Resampled2D, located: bool = False) -> tuple[Aperture, np.ndarray | None]:
    """Shift the aperture to the source position if asked; returns it and the trace."""
    trace = None
    if ap.use_source_posn:
        middle, _, location = source_row(s2d, located)
        if location is not None:
            nominal, _, _ = box_profile(s2d.sci.shape, ap, s2d.wavelength)
            nominal_row, _ = aperture_center(nominal, middle_pix=middle)
            ap = ap.shifted(location - nominal_row)
            trace = np.full(s2d.sci.shape[1], location)
    if ap.position_offset:
        ap = ap.shifted(ap.position_offset)
        trace = None if trace is None else trace + ap.position_offset
    return ap, trace


def _units(s2d: Resampled2D, photom_done: bool) -> tuple[str, str, str, str, bool]:
    """(flux unit, flux var unit, SB unit, SB var unit, input is MJy point source)."""
    if not photom_done:
        return "DN/s", "DN^2 / s^2", "DN/s", "DN^2 / s^2", False
    point_mjy = str(s2d.meta.get("source_type", "")).upper() == "POINT" and \
        str(s2d.meta.get("bunit_data", "")).replace(" ", "") == "MJy"
    return "Jy", "Jy^2", "MJy/sr", "MJy^2 / sr^2", point_mjy


def _pixel_area(meta: dict[str, Any], photom_done: bool) -> float:
    """Pixel solid angle (sr) of the flux conversion; without one, 1 and a warning, as the reference."""
    area = meta.get("pixelarea_steradians")
    if area:
        return float(area)
    if photom_done:
        warnings.warn(f"{meta.get('name')}: the pixel area (PIXAR_SR) is not set, so the flux will not be "
                      "correct (the reference uses 1 sr as well)", Spec3cWarning, stacklevel=3)
    return 1.0


def to_columns(res: Any, wavelength: np.ndarray, pixar_sr: float, photom_done: bool,
               point_mjy: bool) -> dict[str, np.ndarray]:
    """Convert per-column sums into the EXTRACT1D columns (§12.3 units)."""
    n = np.where(res.npixels > 0.0, res.npixels, 1.0)
    fvar = {k: getattr(res, f"var_{k}").copy() for k in ("poisson", "rnoise", "flat")}
    bvar = {k: getattr(res, f"bkg_var_{k}") / n**2 for k in ("poisson", "rnoise", "flat")}
    sb = res.flux / n
    sbvar = {k: v / n**2 for k, v in fvar.items()}
    background = res.background / n
    flux = res.flux.copy()
    if photom_done and point_mjy:
        flux *= 1e6
        fvar = {k: v * 1e12 for k, v in fvar.items()}
        sb = np.zeros_like(sb)
        sbvar = {k: np.zeros_like(v) for k, v in sbvar.items()}
        background = background / pixar_sr
        bvar = {k: v / pixar_sr**2 for k, v in bvar.items()}
    elif photom_done:
        flux *= pixar_sr * 1e6
        fvar = {k: v * pixar_sr**2 * 1e12 for k, v in fvar.items()}
    cols = {
        "WAVELENGTH": wavelength, "FLUX": flux, "FLUX_ERROR": np.sqrt(sum(fvar.values())),
        "FLUX_VAR_POISSON": fvar["poisson"], "FLUX_VAR_RNOISE": fvar["rnoise"], "FLUX_VAR_FLAT": fvar["flat"],
        "SURF_BRIGHT": sb, "SB_ERROR": np.sqrt(sum(sbvar.values())),
        "SB_VAR_POISSON": sbvar["poisson"], "SB_VAR_RNOISE": sbvar["rnoise"], "SB_VAR_FLAT": sbvar["flat"],
        "DQ": np.where(np.isnan(flux), dqflags.DO_NOT_USE, 0).astype(np.uint32),
        "BACKGROUND": background, "BKGD_ERROR": np.sqrt(sum(bvar.values())),
        "BKGD_VAR_POISSON": bvar["poisson"], "BKGD_VAR_RNOISE": bvar["rnoise"], "BKGD_VAR_FLAT": bvar["flat"],
        "NPIXELS": res.npixels,
    }
    valid = np.isfinite(wavelength)
    return {k: np.asarray(v)[valid] for k, v in cols.items()}


def extract(s2d: Resampled2D, ap: Aperture, exp_type: str, photom_done: bool,
            located: bool = False) -> Spectrum1D:
    """Box-extract one resampled spectrum with a resolved aperture (``located``: see :func:`source_row`)."""
    if ap.smoothing_length:
        raise Spec3cError("extract_1d: background smoothing (smoothing_length > 0) is not implemented yet")
    ap, trace = place_aperture(ap, s2d, located)
    shape = s2d.sci.shape
    profile, lower, upper = box_profile(shape, ap, s2d.wavelength, trace)
    profile[~np.isfinite(s2d.wavelength)] = 0.0
    bkg = None
    if ap.subtract_background and ap.bkg_coeff is not None:
        bkg, _, _ = box_profile(shape, ap, s2d.wavelength, background=True)
    fit = None if bkg is None or ap.bkg_fit is None else BackgroundFit(ap.bkg_fit, ap.bkg_order)
    res = box_extract(s2d.sci, (s2d.var_poisson, s2d.var_rnoise, s2d.var_flat), profile,
                      bkg_profile=bkg, bkg_fit=fit, workers=1 if s2d.sci.size < _THREADED_PIXELS else 0)
    masked = np.ma.masked_array(s2d.wavelength, mask=np.isnan(s2d.wavelength) | (profile <= 0))
    weights = np.ma.masked_array(profile, mask=masked.mask)
    wavelength = np.ma.asarray(np.ma.average(masked, weights=weights, axis=0)).filled(np.nan)
    flux_unit, fvar_unit, sb_unit, sbvar_unit, point_mjy = _units(s2d, photom_done)
    columns = to_columns(res, wavelength, _pixel_area(s2d.meta, photom_done), photom_done, point_mjy)
    cols_hit = np.flatnonzero(profile.sum(axis=0) > 0)
    centre_row, centre_col = aperture_center(profile)
    meta = {a: s2d.meta[a] for a in SPEC_ATTRIBUTES if s2d.meta.get(a) is not None}
    meta.update(
        extraction_xstart=int(cols_hit[0]) + 1 if cols_hit.size else None,
        extraction_xstop=int(cols_hit[-1]) + 1 if cols_hit.size else None,
        extraction_ystart=float(lower) + 1, extraction_ystop=float(upper) + 1,
        extraction_row=centre_row, extraction_col=centre_col,
        spectral_order=int(s2d.meta.get("spectral_order") or 1), dispersion_direction=1, exp_type=exp_type,
        flux_unit=flux_unit, flux_var_unit=fvar_unit, sb_unit=sb_unit, sb_var_unit=sbvar_unit,
        aperture=ap.__dict__, source_location=None if trace is None else float(trace[0]),
    )
    return Spectrum1D(columns, meta)


def aperture_correct(spectrum: Spectrum1D, s2d: Resampled2D, spec: ApcorrSpec, path: str) -> None:
    """Multiply a point source's fluxes by the APCORR table's c(wavelength, NPIXELS); in place."""
    table = read_apcorr(path, spec, filter=s2d.meta.get("filter"), grating=s2d.meta.get("grating"),
                        slit=s2d.meta.get("name"), subarray=s2d.meta.get("subarray"), pupil=s2d.meta.get("pupil"))
    cols = spectrum.columns
    correction = aperture_correction(table, cols["WAVELENGTH"], cols["NPIXELS"],
                                     pixel_scale=s2d.meta.get("spatial_scale"))
    apply_correction(cols, correction)
    spectrum.meta["apcorr"] = str(path)


_SWAPPED_KEYS = {"xstart": "ystart", "xstop": "ystop", "ystart": "xstart", "ystop": "xstop"}


def transposed(s2d: Resampled2D) -> Resampled2D:
    """A dispersion-along-y spectrum seen with dispersion along x (as the reference transposes)."""
    arrays = {name: np.ascontiguousarray(getattr(s2d, name).T)
              for name in ("sci", "err", "wht", "var_poisson", "var_rnoise", "var_flat", "wavelength")}
    return Resampled2D(**arrays, con=s2d.con, wcs_asdf=s2d.wcs_asdf, meta=s2d.meta, gwcs=s2d.gwcs)


def transposed_reference(ref: dict[str, Any] | None) -> dict[str, Any] | None:
    """EXTRACT1D apertures with x and y limits swapped (for a transposed spectrum)."""
    if ref is None:
        return None
    apertures = [{_SWAPPED_KEYS.get(k, k): v for k, v in ap.items()} for ap in ref["apertures"]]
    return {**ref, "apertures": apertures}


def image_spectrum(sci: np.ndarray, var: dict[str, np.ndarray], wavelength: np.ndarray, meta: dict[str, Any],
                   wcs_asdf: bytes) -> Resampled2D:
    """An unresampled 2-D spectrum (MIRI LRS slitless cal) in the form extraction takes."""
    shape = sci.shape
    return Resampled2D(sci=sci, err=np.sqrt(sum(var.values())), wht=np.ones(shape, np.float32),
                       con=np.zeros((1, *shape), np.int32), var_poisson=var["var_poisson"],
                       var_rnoise=var["var_rnoise"], var_flat=var["var_flat"], wavelength=wavelength,
                       wcs_asdf=wcs_asdf, meta=meta)


@dataclass(frozen=True)
class Spectrum:
    """What extraction needs besides the pixels: the mode's rules and the data's EXP_TYPE and calibration."""

    traits: Extraction
    exp_type: str
    photom_done: bool
    located: bool = False  # resample_spec recorded the source row


#: the spectrum meta's (RA, Dec) of the aperture centre (:func:`extraction_position`), when extraction had the gwcs
APERTURE_RADEC = "aperture_radec"


def extraction_position(meta: Mapping[str, Any], wcs: Any) -> list[float] | None:
    """[RA, Dec] at the centre of the extraction aperture of a spectrum with ``meta`` (the
    reference's SLIT_RA/SLIT_DEC), ``wcs`` the 2-D spectrum's gwcs; None where it is not on the sky."""
    row, col = meta.get("extraction_row"), meta.get("extraction_col")
    if row is None or col is None or wcs is None:
        return None
    x, y = (float(row), float(col)) if meta.get("dispersion_direction") == 2 else (float(col), float(row))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        world = wcs(x, y)
    ra, dec = float(world[0]), float(world[1])
    return [ra, dec] if np.isfinite(ra) and np.isfinite(dec) else None


def extract_spectrum(s2d: Resampled2D, what: Spectrum, params: Extract1dParams,
                     ) -> tuple[StepOutcome, Spectrum1D | None]:
    """Extract one 2-D spectrum (resampled, or an unresampled exposure) with the step's parameters."""
    if params.extraction_type not in ("box", None, "none"):
        return StepOutcome(SKIPPED, f"extraction_type {params.extraction_type!r} needs a PSF reference; "
                                    "only box extraction is available", warn=True), None
    # a whole-cutout mode (WFSS) reads no EXTRACT1D file: the reference gives it the whole cutout
    reference = None if what.traits.whole_cutout else params.override_extract1d
    ref = read_extract1d(reference) if reference else None
    along_y = s2d.meta.get("dispersion_direction") == 2
    if along_y:
        s2d, ref = transposed(s2d), transposed_reference(ref)
    overrides = {k: getattr(params, k) for k in ("subtract_background", "use_source_posn", "position_offset",
                                                 "bkg_fit", "bkg_order", "smoothing_length")}
    point = str(s2d.meta.get("source_type", "")).upper() == "POINT"
    if ref is not None and not point and overrides["use_source_posn"] is None:
        overrides["use_source_posn"] = False  # the reference only re-centres point sources
    name = aperture_id(what.traits, what.exp_type, s2d.meta.get("name"))
    ap = resolve_aperture(ref, s2d.sci.shape, name, what.traits.center_on_source, overrides)
    if ap is None:
        return StepOutcome(SKIPPED, f"no aperture for {name!r} in {params.override_extract1d}", warn=True), None
    spectrum = extract(s2d, ap, what.exp_type, what.photom_done, what.located)
    spectrum.meta["aperture_file"] = reference
    if along_y:
        spectrum.meta["dispersion_direction"] = 2
    if s2d.gwcs is not None:  # found now, with the gwcs at hand: the x1d's writer need not deserialise it
        spectrum.meta[APERTURE_RADEC] = extraction_position(spectrum.meta, s2d.gwcs)
    notes = _aperture_correction(spectrum, s2d, what, params) if point else ()
    meta = spectrum.meta
    message = (f"{len(spectrum.columns['WAVELENGTH'])} columns, cross-dispersion aperture "
               f"{meta['extraction_ystart']:.2f}-{meta['extraction_ystop']:.2f}")
    if meta.get("apcorr"):
        message += ", aperture-corrected"
    return StepOutcome(COMPLETE, message, notes=notes), spectrum


#: the note of a point source's spectrum that ``apply_apcorr`` asked to correct, without an APCORR file
APCORR_MISSING = ("apply_apcorr is true but there is no APCORR reference file (override_apcorr is not set): "
                  "the point-source fluxes are not aperture-corrected")


def _aperture_correction(spectrum: Spectrum1D, s2d: Resampled2D, what: Spectrum,
                         params: Extract1dParams) -> tuple[str, ...]:
    """Aperture-correct a point source's spectrum if asked; the note to record when it cannot be done."""
    if not params.apply_apcorr:
        return ()
    if not params.override_apcorr:
        return (APCORR_MISSING,)
    if what.traits.apcorr is None:
        raise Spec3cError(f"extract_1d: no aperture correction is defined for EXP_TYPE {what.exp_type}; "
                          "set apply_apcorr=false")
    aperture_correct(spectrum, s2d, what.traits.apcorr, params.override_apcorr)
    return ()


def run(ctx: StepContext) -> StepOutcome:
    """The step: extract the source's ``s2d``, or every exposure when the mode is not resampled,
    or every IFU cube (:mod:`.extract_1d_ifu`)."""
    if ctx.mode.extraction.ifu is not None:
        return extract_1d_ifu.run(ctx)
    if not ctx.mode.resampled:
        return _extract_exposures(ctx)
    if ctx.s2d is None:
        return StepOutcome(SKIPPED, "no resampled spectrum")
    what = Spectrum(ctx.mode.extraction, ctx.inputs.exp_type(), ctx.photom_done(),
                    located=ctx.mode.locate_source is not None)
    outcome, spectrum = extract_spectrum(ctx.s2d, what, ctx.config.extract_1d)
    if spectrum is not None:
        spectrum.save(ctx.store, ctx.source)
    return outcome


def _extract_exposures(ctx: StepContext) -> StepOutcome:
    """Every (outlier-flagged) exposure extracted without resampling; the spectra go to combine_1d."""
    messages = []
    notes: dict[str, None] = {}  # each note once, in order
    per_slit = ctx.mode.extraction.several_per_exposure
    for k, cutout in enumerate(ctx.inputs.cutouts):
        what = Spectrum(ctx.mode.extraction, ctx.inputs.exp_type(k), ctx.photom_done())
        outcome, spectrum = extract_cutout(ctx.inputs, k, what, ctx.config.extract_1d)
        if spectrum is None:
            return outcome
        key = x1d_exposure_key(cutout.exposure)
        spectrum.save(ctx.store, ctx.source, f"{key}/{cutout.slit}" if per_slit else key)
        ctx.spectra.append(spectrum)
        messages.append(outcome.message)
        notes.update(dict.fromkeys(outcome.notes))
    return StepOutcome(COMPLETE, f"{len(ctx.spectra)} exposures: " + "; ".join(messages), notes=tuple(notes))


def extract_cutout(inputs: SourceInputs, k: int, what: Spectrum, params: Extract1dParams,
                   ) -> tuple[StepOutcome, Spectrum1D | None]:
    """Extract input ``k`` as it is (no resampling); its flagged pixels become NaN first, in place.

    The spectrum's meta records the ``exposure`` and ``slit`` it comes from.
    """
    cutout = inputs.cutouts[k]
    p = cutout.planes  # flagged pixels (outliers included) become NaN, as the reference's extract_1d
    match_nans_and_flags(p["sci"], p["dq"], p["err"], p["var_poisson"], p["var_rnoise"], p["var_flat"],
                         workers=1 if p["sci"].size < _THREADED_PIXELS else 0)
    image = image_spectrum(p["sci"], {v: p[v] for v in ("var_poisson", "var_rnoise", "var_flat")},
                           p["wavelength"], _image_meta(inputs, k), cutout.wcs_asdf)
    outcome, spectrum = extract_spectrum(image, what, params)
    if spectrum is not None:
        spectrum.meta.update(exposure=cutout.exposure, slit=cutout.slit)
    return outcome, spectrum


def _image_meta(inputs: SourceInputs, k: int) -> dict[str, Any]:
    """What extraction reads from an unresampled image's (or grism cutout's) metadata."""
    cutout, meta = inputs.cutouts[k], inputs.exposure_meta(k)
    c = cutout.meta
    attributes = {a: c[a] for a in SPEC_ATTRIBUTES if c.get(a) is not None}
    return {**attributes, "name": c.get("name", cutout.slit), "bunit_data": inputs.bunit(k),
            "pixelarea_steradians": c.get("meta.photometry.pixelarea_steradians")
            or meta.get("meta.photometry.pixelarea_steradians"),
            "dispersion_direction": c.get("dispersion_direction", c.get("meta.wcsinfo.dispersion_direction")),
            "spectral_order": c.get("meta.wcsinfo.spectral_order"),
            **apcorr_keys(meta)}
