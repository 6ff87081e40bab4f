"""extract_1d of IFU cubes: one spectrum per ``_s3d`` cube (ALGORITHMS.md §12.6; jwst 3.0.0
``extract_1d/ifu.py``).

For every cube cube_build stored (``s3d/<name>``, :class:`~spec3c.results.IfuCube`)
the source type (SRCTYPE of the cube, or ``ifu_set_srctype`` where the mode
allows it) chooses the extraction: a point source in a circle and annulus whose
radii the EXTRACT1D IFU file gives against wavelength, centred on ``center_xy``,
else (``ifu_autocen``) on the brightest DAOFIND source of the cube's median
image, else on the spaxel nearest to TARG_RA/TARG_DEC (else the cube's centre);
an extended source over the whole plane.  The cube is read tile by tile, so
memory is bounded by a tile, and the spectrum is saved as ``x1d/<name>``
(:func:`~spec3c.results.x1d_cube_key`), aperture-corrected when an APCORR file
is given.  The arithmetic is :mod:`spec3c.algorithms.ifu_extract`'s.

:func:`extract_cube` works on a :class:`CubeSource`, a cube from the store or from
an ``_s3d`` file (``spec3c step extract_1d``, :mod:`spec3c.single_step.spectra`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..algorithms.apcorr import ApcorrTable, apply_correction, radial_correction, read_apcorr
from ..algorithms.cube_wcs import CubeWcs, plane_wavelengths
from ..algorithms.ifu_extract import (
    CubeExtraction,
    IfuApertureFile,
    PointAperture,
    clipped_stats,
    nearest_spaxel,
    point_aperture,
    read_ifu_apertures,
    spectrum_columns,
)
from ..algorithms.star_finder import brightest_star
from ..config import Extract1dParams
from ..errors import Spec3cWarning
from ..modes.ifu.extraction import IfuExtraction
from ..results import COMPLETE, SKIPPED, IfuCube, Spectrum1D, x1d_cube_key
from .context import StepContext, StepDetails, StepOutcome

__all__ = ["APCORR_MISSING", "RFCORR_MISSING", "CubeReferences", "CubeSource", "CubeSpectrum", "extract_cube",
           "references", "run", "stored_cube"]

#: the note of a point source's cube spectrum that ``apply_apcorr`` asked to correct, without an APCORR file
APCORR_MISSING = ("apply_apcorr is true but no APCORR file was given (override_apcorr): "
                  "the point-source spectra of the cubes are not aperture-corrected")
#: the note of a MIRI band cube's spectrum when ``ifu_rfcorr`` asks for the residual fringe correction
RFCORR_MISSING = ("ifu_rfcorr: the 1-D residual fringe correction is not in spec3c yet; RF_FLUX, RF_SURF_BRIGHT "
                  "and RF_BACKGROUND are NaN (the reference's values with ifu_rfcorr=false)")
#: cubes of at most this many bytes of planes are read by a thread while the cube before is extracted
READ_AHEAD_BYTES = 256 << 20
#: auto-centring leaves out the planes at longer wavelengths, where the MRS throughput is very low
AUTOCEN_MAX_WAVELENGTH = 26.0

#: (first plane, SCI, ERR, WMAP) slabs of a cube, ``(n, ny, nx)`` float32 each, in wavelength order
Slabs = Callable[[], Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]]


@dataclass(frozen=True)
class CubeSource:
    """A cube as extraction reads it.

    Attributes
    ----------
    name : str
        The cube's product base name (messages, the spectrum's ``cube``).
    shape : (nz, ny, nx)
    wcsinfo : mapping
        The cube's FITS WCS keywords (``meta.wcsinfo`` names).
    wavelength : (nz,) float64
        The plane wavelengths the cube's WCS gives (micron).
    pixar_sr : float or None
        PIXAR_SR of a spaxel.
    meta : mapping
        Flat ``meta.*`` metadata of the cube (SRCTYPE, TARG_RA/TARG_DEC, DISPAXIS, DETECTOR,
        PA_APER, BAND, EXP_TYPE are read).
    single_band : bool
        One channel and one sub-band (MIRI: the cubes the reference fits residual fringes on).
    slabs : Slabs
        Its planes, a slab at a time.
    """

    name: str
    shape: tuple[int, int, int]
    wcsinfo: Mapping[str, Any]
    wavelength: np.ndarray
    pixar_sr: float | None
    meta: Mapping[str, Any]
    single_band: bool
    slabs: Slabs


def stored_cube(ctx: StepContext, cube: IfuCube) -> CubeSource:
    """A cube cube_build stored, with the metadata of its reference input."""
    record = ctx.inputs.exposures[cube.meta["reference_input"]]

    def slabs() -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        for tile in cube.tiles:
            p0 = tile[0]
            planes = (cube.iter_plane(ctx.store, ctx.source, tile, plane) for plane in ("sci", "err", "wmap"))
            for sci, err, wmap in zip(*planes, strict=True):
                yield p0, sci, err, wmap
                p0 += sci.shape[0]

    info = cube.meta["wcsinfo"]
    nz = cube.shape[0]
    wavelength = plane_wavelengths(info, nz, None if cube.meta.get("linear", True) else cube.wavelength)
    channel = str(cube.meta.get("channel") or "")
    band = str(record.meta.get("meta.instrument.band") or "").lower()
    single = len(cube.meta.get("bands", [])) == 1 and len(channel) == 1 and band in ("short", "medium", "long")
    meta = {**record.meta, "meta.exposure.type": record.exp_type}
    if cube.meta.get("moving_target"):  # the s3d's TARG_RA/TARG_DEC: the mean ephemeris position
        meta["meta.target.ra"], meta["meta.target.dec"] = (float(v) for v in cube.meta["moving_target"])
    return CubeSource(cube.name, cube.shape, info, wavelength, (cube.meta.get("photometry") or {}).get(
        "pixelarea_steradians"), meta, single, slabs)


@dataclass(frozen=True)
class Extract1dIfuDetails(StepDetails):
    spectra: dict[str, int] = field(default_factory=dict)  # cube name -> number of wavelengths


@dataclass(frozen=True)
class CubeSpectrum:
    """What :func:`extract_cube` made of one cube: the spectrum (None: not extracted), a few words
    on how, and the caveats to record."""

    spectrum: Spectrum1D | None
    message: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CubeReferences:
    """The reference files of IFU extraction: EXTRACT1D IFU radii and the radial APCORR table."""

    apertures: IfuApertureFile | None
    apcorr: ApcorrTable | None


def references(params: Extract1dParams, rules: IfuExtraction) -> CubeReferences:
    """Read the files the parameters name (APCORR only when ``apply_apcorr``)."""
    apertures = read_ifu_apertures(params.override_extract1d) if params.override_extract1d else None
    apcorr = read_apcorr(params.override_apcorr, rules.apcorr) \
        if params.apply_apcorr and params.override_apcorr else None
    return CubeReferences(apertures, apcorr)


def _source_type(meta: Mapping[str, Any], params: Extract1dParams, allow_override: bool) -> tuple[str, tuple[str, ...]]:
    """POINT or EXTENDED, and a note when the cube's SRCTYPE was neither."""
    if allow_override and params.ifu_set_srctype is not None:
        return params.ifu_set_srctype, ()
    value = meta.get("meta.target.source_type")
    kind = str(value).upper() if value is not None else None
    if kind in ("POINT", "EXTENDED"):
        return kind, ()
    return "EXTENDED", (f"SRCTYPE is {value!r}: extracted as an EXTENDED source, as the reference does",)


def _autocentre(cube: CubeSource) -> tuple[float, float] | None:
    """The brightest DAOFIND source (FWHM 3 spaxels, threshold 3 sigma) of the cube's median over
    its planes below 26 micron, as the reference's ``ifu_autocen``; None if there is none.  (The
    median needs every plane of a spaxel: this reads the cube's SCI whole.)"""
    use = np.flatnonzero(cube.wavelength < AUTOCEN_MAX_WAVELENGTH)
    if use.size == 0:
        return None
    sci = np.concatenate([np.asarray(s, np.float32) for _, s, _, _ in cube.slabs()])
    collapse = np.ma.median(np.ma.masked_invalid(sci[use]), axis=0)
    if np.ma.getmaskarray(collapse).all():
        return None
    _, median, rms = clipped_stats(np.ma.compressed(collapse))
    star = brightest_star(np.asarray(np.ma.getdata(collapse - median)), 3 * rms)
    return None if star is None else (star.x, star.y)


@dataclass(frozen=True)
class _Centre:
    """Where the aperture goes (0-based spaxel), the sky position the radii's scale is measured
    at when TARG_RA/TARG_DEC placed it (else None: the cube's reference point), and how."""

    xy: tuple[float, float]
    located: tuple[float, float] | None
    how: str
    notes: tuple[str, ...] = ()


def _centre(cube: CubeSource, wcs: CubeWcs, params: Extract1dParams, point: bool) -> _Centre:
    _, ny, nx = cube.shape
    user = params.center()
    if user is not None:
        return _Centre(user, None, "center_xy")
    if not point:
        return _Centre((nx / 2.0 - 0.5, ny / 2.0 - 0.5), None, "whole plane")
    notes: tuple[str, ...] = ()
    if params.ifu_autocen:
        found = _autocentre(cube)
        if found is not None:
            return _Centre(found, None, "ifu_autocen")
        notes = (f"{cube.name}: ifu_autocen found no source; the aperture is centred on TARG_RA/TARG_DEC",)
    ra, dec = cube.meta.get("meta.target.ra"), cube.meta.get("meta.target.dec")
    spaxel = nearest_spaxel(wcs, (ny, nx), ra, dec)
    if spaxel is None:
        return _Centre((float(nx) / 2.0, float(ny) / 2.0), None, "cube centre (TARG_RA/TARG_DEC not in the cube)",
                       notes)
    return _Centre((spaxel[0], spaxel[1]), (float(ra), float(dec)), "TARG_RA/TARG_DEC", notes)  # type: ignore[arg-type]


def _pixel_area(cube: CubeSource) -> float:
    if cube.pixar_sr:
        return float(cube.pixar_sr)
    warnings.warn(f"cube {cube.name}: the pixel area (PIXAR_SR) is not set, so the flux will not be correct "
                  "(the reference uses 1 sr as well)", Spec3cWarning, stacklevel=3)
    return 1.0


def extract_cube(cube: CubeSource, refs: CubeReferences, params: Extract1dParams, rules: IfuExtraction) -> CubeSpectrum:
    """Extract one cube (see the module docstring)."""
    kind, notes = _source_type(cube.meta, params, rules.source_type_parameter)
    point = kind == "POINT"
    if point and refs.apertures is None:
        return CubeSpectrum(None, f"{cube.name}: a point source needs an EXTRACT1D IFU file "
                                  "(--steps.extract_1d.override_extract1d=FILE), as in the reference")
    info = cube.wcsinfo
    wcs = CubeWcs.from_wcsinfo(info, cube.meta.get("meta.wcsinfo.dispersion_direction"))
    nz, ny, nx = cube.shape
    where = _centre(cube, wcs, params, point)
    notes += where.notes
    aperture: PointAperture | None = None
    if point:
        assert refs.apertures is not None
        at = where.located if where.located is not None else (float(info["crval1"]), float(info["crval2"]))
        rscale = params.ifu_rscale if rules.radius_scale_parameter else None
        aperture = point_aperture(refs.apertures, cube.wavelength, where.xy, wcs.spatial_scale(*at) * 3600.0,
                                  params.subtract_background, rscale)
    extraction = CubeExtraction(nz, (ny, nx), float(params.bkg_sigma_clip), aperture)
    for p0, sci, err, wmap in cube.slabs():
        extraction.add(p0, np.asarray(sci, np.float32), np.asarray(err, np.float32), np.asarray(wmap, np.float32))
    columns = spectrum_columns(extraction.sums, cube.wavelength, _pixel_area(cube), float(params.ifu_covar_scale),
                               rules.residual_fringe_columns)
    ra, dec = wcs.pixel_to_world(nx / 2.0, ny / 2.0)
    meta: dict[str, Any] = {
        "cube": cube.name, "name": cube.meta.get("meta.exposure.type"), "source_type": kind,
        "extraction_x": where.xy[0], "extraction_y": where.xy[1], "slit_ra": float(ra), "slit_dec": float(dec),
        "detector": cube.meta.get("meta.instrument.detector"),
        "position_angle": cube.meta.get("meta.aperture.position_angle"),
        "flux_unit": "Jy", "aperture_file": refs.apertures.path if refs.apertures is not None else None,
        "centre_from": where.how,
    }
    if aperture is not None:
        meta["subtract_background"] = aperture.subtract_background
        if refs.apcorr is not None:
            correction = radial_correction(refs.apcorr, columns["WAVELENGTH"], aperture.radius[: columns["FLUX"].size],
                                           pixel_scale=wcs.spatial_scale(float(ra), float(dec)) * 3600.0)
            apply_correction(columns, correction)
            meta["apcorr"] = refs.apcorr.path
        elif params.apply_apcorr:
            notes += (APCORR_MISSING,)
    if rules.residual_fringe_columns and params.ifu_rfcorr and cube.single_band:
        notes += (RFCORR_MISSING,)
    message = f"{cube.name}: {kind.lower()} source, {columns['FLUX'].size} planes, centre {where.how}"
    return CubeSpectrum(Spectrum1D(columns, meta), message, notes)


def _in_memory(cube: CubeSource) -> CubeSource:
    """The cube with its slabs read now (the store's reads release the GIL)."""
    slabs = list(cube.slabs())
    return replace(cube, slabs=lambda: iter(slabs))


def _read_ahead(ctx: StepContext, names: list[str]) -> Iterator[CubeSource]:
    """The stored cubes in order.  While one is extracted, a thread reads the next one's planes,
    if they are at most :data:`READ_AHEAD_BYTES` (larger cubes are read a slab at a time, as the
    extraction goes: memory stays bounded by a slab)."""
    cubes = [stored_cube(ctx, IfuCube.load(ctx.store, ctx.source, name)) for name in names]

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="spec3c-x1d-read") as reader:

        def read(cube: CubeSource) -> Future[CubeSource] | None:
            small = 3 * 4 * int(np.prod(cube.shape)) <= READ_AHEAD_BYTES  # SCI, ERR, WMAP, float32
            return reader.submit(_in_memory, cube) if small else None

        following = read(cubes[0]) if cubes else None
        for k, cube in enumerate(cubes):
            current = following.result() if following is not None else cube
            following = read(cubes[k + 1]) if k + 1 < len(cubes) else None
            yield current


def run(ctx: StepContext) -> StepOutcome:
    """The step: a spectrum from every cube of the source, saved as ``x1d/<cube>``."""
    rules = ctx.mode.extraction.ifu
    if rules is None:
        return StepOutcome(SKIPPED, f"{ctx.mode.name} has no IFU cubes")
    names = IfuCube.names(ctx.store, ctx.source)
    if not names:
        return StepOutcome(SKIPPED, "no cube to extract (cube_build made none)", warn=True)
    params = ctx.config.extract_1d
    refs = references(params, rules)
    details = Extract1dIfuDetails()
    messages: list[str] = []
    notes: dict[str, None] = {}
    for cube in _read_ahead(ctx, names):
        name = cube.name
        done = extract_cube(cube, refs, params, rules)
        messages.append(done.message)
        notes.update(dict.fromkeys(done.notes))
        if done.spectrum is not None:
            done.spectrum.save(ctx.store, ctx.source, x1d_cube_key(name))
            details.spectra[name] = int(done.spectrum.columns["WAVELENGTH"].size)
    if not details.spectra:
        return StepOutcome(SKIPPED, "; ".join(messages), details, tuple(notes), warn=True)
    return StepOutcome(COMPLETE, "; ".join(messages), details, tuple(notes))
