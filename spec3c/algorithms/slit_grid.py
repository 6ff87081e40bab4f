"""The rectified output grid of a slit source (resample_spec's NIRSpec WCS).

Follows ``ResampleSpec.build_nirspec_output_wcs`` (ALGORITHMS.md §10.2), but
from the per-pixel coordinates stored at ingest: the spatial axis is a line in
the tangent plane about an intensity-weighted fiducial, the dispersion axis a
table of wavelengths merged from every input.  Only the reference input's
gwcs is evaluated, for the fiducial and the slit-frame lookup table.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from astropy import coordinates as coord
from astropy import units as u
from astropy.modeling import models as am
from astropy.stats import sigma_clip
from astropy.utils.exceptions import AstropyUserWarning
from gwcs import WCS
from gwcs import coordinate_frames as cf

from .. import dqflags
from .._core.tangent import sky_to_tangent

#: a reference input needs more good pixels than this (as the reference)
MIN_GOOD_PIXELS = 100


@dataclass(frozen=True)
class GridInput:
    """One input cutout's arrays needed to build the grid (all ``(ny, nx)``)."""

    sci: np.ndarray
    dq: np.ndarray
    wavelength: np.ndarray  # µm, NaN off the slit
    ra: np.ndarray
    dec: np.ndarray
    slit_y: np.ndarray


@dataclass(frozen=True)
class SlitGrid:
    """Output pixel grid: rows along the slit, columns in wavelength."""

    fiducial: tuple[float, float]  # (RA, Dec) deg of the tangent point
    x_line: tuple[float, float]  # (slope, intercept): row -> tangent-plane x (deg)
    y_line: tuple[float, float]  # (slope, intercept): row -> tangent-plane y (deg)
    swap_xy: bool  # rows follow tangent y (True) or x (False)
    wavelengths: np.ndarray  # (nx,) µm at column centres
    ny: int
    slit_y: np.ndarray  # (ny,) slit-frame y of each row (reference input)
    pixel_scale_ratio: float
    spatial_scale: float  # output arcsec per row
    dispersion_axis = 1  # class constant (not a field): dispersion along x, as LrsGrid's 2 is along y

    @property
    def shape(self) -> tuple[int, int]:
        return (self.ny, len(self.wavelengths))

    def _tangent(self) -> am.Model:
        return am.Pix2Sky_TAN() | am.RotateNative2Celestial(*self.fiducial, 180.0)

    def tangent_offsets(self, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tangent-plane (x, y) in degrees about the fiducial."""
        return tangent_offsets(ra, dec, self.fiducial)

    def extended_table(self) -> tuple[np.ndarray, np.ndarray]:
        """(pixel, wavelength) lookup points with the half-pixel end extensions."""
        lam = self.wavelengths
        if len(lam) == 1:
            return np.array([-0.5, 0.0, 0.5]), np.repeat(lam, 3)
        n = len(lam)
        pix = np.concatenate([[-0.5], np.arange(n, dtype=float), [n - 0.5]])
        left = lam[0] - 0.5 * (lam[1] - lam[0])
        # The reference extrapolates the last half pixel from lam[n-2] by (n - 0.5)
        # steps (not 1.5): its table jumps far beyond lam[n-1] there.  Kept, so
        # the last column matches the reference's s2d and x1d.
        right = lam[-2] + (lam[-1] - lam[-2]) * (n - 0.5)
        return pix, np.concatenate([[left], lam, [right]])

    def pixmap(self, ra: np.ndarray, dec: np.ndarray, wavelength: np.ndarray) -> np.ndarray:
        """Output (x, y) pixel of every input pixel, ``(..., 2)`` float64; NaN off the grid."""
        pix, lam = self.extended_table()
        x = np.interp(wavelength, lam, pix, left=np.nan, right=np.nan)
        x[~np.isfinite(wavelength)] = np.nan
        xt, yt = self.tangent_offsets(ra, dec)
        slope, icpt = self.y_line if self.swap_xy else self.x_line
        y = ((yt if self.swap_xy else xt) - icpt) / slope
        return np.stack([x, y], axis=-1)

    def world(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(RA, Dec, wavelength) of every output pixel, each ``(ny, nx)``."""
        rows = np.arange(self.ny, dtype=float)
        ra, dec = self._tangent()(self.x_line[0] * rows + self.x_line[1], self.y_line[0] * rows + self.y_line[1])
        shape = self.shape
        return (
            np.broadcast_to(ra[:, None], shape).copy(),
            np.broadcast_to(dec[:, None], shape).copy(),
            np.broadcast_to(self.wavelengths[None, :], shape).copy(),
        )

    def fits_wcsinfo(self, source_location: float | None = None) -> None:
        """The NIRSpec ``_s2d`` has no FITS WCS keywords of its own: the writer derives them."""
        return None

    def to_gwcs(self):  # type: ignore[no-untyped-def]
        """The output gwcs, ``detector -> slit_frame -> world``, as the reference builds it."""
        return grid_gwcs(self)


def tangent_offsets(ra: np.ndarray, dec: np.ndarray, fiducial: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Tangent-plane (x, y) in degrees of ``(ra, dec)`` about ``fiducial``: the inverse of
    ``Pix2Sky_TAN | RotateNative2Celestial(*fiducial, 180)`` (the grid's sky transform), computed
    by the compiled gnomonic projection (equal to astropy's to ~1e-14 deg, ~50x faster than
    building and inverting the models for each input)."""
    xi, eta = sky_to_tangent(ra, dec, fiducial[0], fiducial[1], workers=1)
    return xi / -3600.0, eta / 3600.0


def good_mask(dq: np.ndarray, bad_bits: int) -> np.ndarray:
    return (dq & bad_bits) == 0


def choose_reference(inputs: Sequence[GridInput], bad_bits: int) -> int:
    """Index of the first input with enough finite, non-zero, good pixels (else 0)."""
    for k, inp in enumerate(inputs):
        good = np.isfinite(inp.sci) & (inp.sci != 0) & good_mask(inp.dq, bad_bits)
        if np.count_nonzero(good) > MIN_GOOD_PIXELS:
            return k
    return 0


def weighted_slit_centre(ref: GridInput) -> tuple[float, float]:
    """(slit y, wavelength µm) of the intensity-weighted centre of the reference."""
    data = ref.sci.astype(np.float64)
    s, lam = ref.slit_y, ref.wavelength
    with np.errstate(invalid="ignore"):
        data = data - np.nanmin(data) if np.isfinite(data).any() else data
    good = np.isfinite(s) & np.isfinite(lam) & np.isfinite(data)
    data[~good] = np.nan
    with warnings.catch_warnings():  # NaNs are expected here (as in the reference)
        warnings.simplefilter("ignore", AstropyUserWarning)
        weights = np.ma.filled(sigma_clip(data, masked=True, sigma=100.0), 0.0)
    if np.any(weights != 0.0) and good.any():
        s_mean = float(np.average(s[good], weights=weights[good]))
    else:
        s_mean = float(np.nanmean(s))
    return s_mean, float(np.nanmean(lam))


def merged_wavelengths(inputs: Sequence[GridInput], ref_index: int) -> np.ndarray:
    """Output wavelengths merged from every input (``_find_nirspec_output_sampling_wavelengths``)."""
    order = [ref_index] + [k for k in range(len(inputs)) if k != ref_index]

    def column_medians(lam2d: np.ndarray) -> list[float]:
        cols = np.any(np.isfinite(lam2d), axis=0)
        return sorted(np.nanmedian(lam2d[:, cols], axis=0).tolist())

    ref_lam = column_medians(inputs[order[0]].wavelength)
    if not ref_lam:
        raise ValueError("no finite wavelengths in the reference input")
    lam1, lam2 = ref_lam[0], ref_lam[-1]
    min_delta = np.fabs(np.ediff1d(ref_lam)).min() if len(ref_lam) > 1 else np.inf
    others = []
    for k in order[1:]:
        lam = column_medians(inputs[k].wavelength)
        if lam:
            others.append((lam, min(lam), max(lam)))
    while others:
        best = max(range(len(others)), key=lambda i: min(lam2, others[i][2]) - max(lam1, others[i][1]))
        lam, lmin, lmax = others.pop(best)
        arr = np.array(lam)
        if lmax < lam1:
            ref_lam, lam1 = lam + ref_lam, lmin
        elif lmin > lam2:
            ref_lam, lam2 = ref_lam + lam, lmax
        else:
            if lmin < lam1:
                ref_lam = arr[arr < lam1].tolist() + ref_lam
                lam1 = ref_lam[0]
            if lmax > lam2:
                ref_lam = ref_lam + arr[arr > lam2].tolist()
                lam2 = ref_lam[-1]
    out = np.array(ref_lam)
    close = np.flatnonzero(np.fabs(np.ediff1d(out)) < max(0.1 * min_delta, 1e2 * np.finfo(1.0).eps))
    return np.delete(out, close)


def _fit_line(values: np.ndarray, pixel_scale_ratio: float) -> tuple[float, float]:
    idx = np.linspace(0, len(values) * pixel_scale_ratio, len(values), endpoint=False)
    slope, intercept = np.polyfit(idx, values, 1)
    return float(slope), float(intercept)


def spatial_pixel_scale(ref: GridInput) -> float:
    """Arcsec between adjacent rows along the reference's central column."""
    col = ref.ra.shape[1] // 2
    ra, dec = np.radians(ref.ra[:, col]), np.radians(ref.dec[:, col])
    ok = np.isfinite(ra) & np.isfinite(dec)
    ra, dec = ra[ok], dec[ok]
    if len(ra) < 2:
        return float("nan")
    cosd = np.sin(dec[:-1]) * np.sin(dec[1:]) + np.cos(dec[:-1]) * np.cos(dec[1:]) * np.cos(np.diff(ra))
    return float(np.degrees(np.median(np.arccos(np.clip(cosd, -1, 1)))) * 3600.0)


@dataclass(frozen=True)
class GridOptions:
    pixel_scale_ratio: float = 1.0
    pixel_scale: float | None = None  # arcsec; overrides the ratio
    bad_bits: int = dqflags.DO_NOT_USE | dqflags.NON_SCIENCE


def build_slit_grid(inputs: Sequence[GridInput], ref_wcs, options: GridOptions = GridOptions(),  # type: ignore[no-untyped-def]
                    ref_index: int | None = None) -> SlitGrid:
    """Build the output grid of one source from its inputs.

    Parameters
    ----------
    inputs : sequence of GridInput
        Every input cutout of the source.
    ref_wcs : gwcs.WCS or callable
        The gwcs of ``inputs[ref_index]`` (or a callable ``k -> gwcs``, called
        once with the chosen reference index).
    """
    if ref_index is None:
        ref_index = choose_reference(inputs, options.bad_bits)
    wcs = ref_wcs(ref_index) if callable(ref_wcs) and not hasattr(ref_wcs, "get_transform") else ref_wcs
    ref = inputs[ref_index]
    psr = options.pixel_scale_ratio
    input_scale = spatial_pixel_scale(ref)
    if options.pixel_scale is not None and np.isfinite(input_scale):
        psr = input_scale / options.pixel_scale
    fiducial = _fiducial(ref, wcs)
    col = int(np.mean(np.asarray(wcs.bounding_box.bounding_box(order="F"))[0])) if wcs.bounding_box else ref.ra.shape[1] // 2
    xt, yt = tangent_offsets(ref.ra[:, col], ref.dec[:, col], fiducial)
    ok = np.isfinite(xt) & np.isfinite(yt)
    x_line, y_line = _fit_line(xt[ok], psr), _fit_line(yt[ok], psr)
    swap = abs(x_line[0]) < abs(y_line[0])
    wavelengths = merged_wavelengths(inputs, ref_index)
    x_line, y_line, ny = _centre_lines(inputs, fiducial, x_line, y_line, swap)
    grid = SlitGrid(fiducial, x_line, y_line, swap, wavelengths, ny, np.zeros(ny), psr,
                    input_scale / psr if np.isfinite(input_scale) else float("nan"))
    return _with_slit_table(grid, wcs)


def _fiducial(ref: GridInput, wcs) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    s_mean, lam_mean = weighted_slit_centre(ref)
    s2w = wcs.get_transform("slit_frame", "moving_target" if "moving_target" in wcs.available_frames else "world")
    lam_slit = (lam_mean * u.um).to_value(_slit_wave_unit(wcs))
    ra, dec, _ = s2w(0.0, s_mean, lam_slit)
    return float(ra), float(dec)


def _slit_wave_unit(wcs) -> u.Unit:  # type: ignore[no-untyped-def]
    frame = wcs.get_frame("slit_frame") if hasattr(wcs, "get_frame") else wcs.slit_frame
    return u.Unit(frame.unit[2])


def _centre_lines(inputs: Sequence[GridInput], fiducial: tuple[float, float], x_line: tuple[float, float],
                  y_line: tuple[float, float], swap: bool) -> tuple[tuple[float, float], tuple[float, float], int]:
    """Output height and intercepts that centre every input's footprint."""
    lo, hi = np.full(2, np.inf), np.full(2, -np.inf)
    for inp in inputs:
        ok = np.isfinite(inp.ra) & np.isfinite(inp.dec)
        if ok.any():
            t = np.array(tangent_offsets(inp.ra[ok], inp.dec[ok], fiducial))
            lo, hi = np.minimum(lo, t.min(axis=1)), np.maximum(hi, t.max(axis=1))
    diff = np.abs(hi - lo)
    slopes = np.abs([x_line[0], y_line[0]])
    signs = np.sign([x_line[0], y_line[0]])
    axis = 1 if swap else 0
    ny = int(np.ceil(diff[axis] / slopes[axis])) + 1
    offset = ny / 2 * slopes - diff / 2
    zero = np.where(signs > 0, lo, hi)
    icpt = zero - signs * offset
    return (x_line[0], float(icpt[0])), (y_line[0], float(icpt[1])), ny


def _with_slit_table(grid: SlitGrid, wcs) -> SlitGrid:  # type: ignore[no-untyped-def]
    """Slit-frame y of each output row at the central wavelength (reference input frame)."""
    ra, dec, _ = grid.world()
    col = len(grid.wavelengths) // 2
    lam = np.full(grid.ny, grid.wavelengths[col])
    w2s = wcs.get_transform("moving_target" if "moving_target" in wcs.available_frames else "world", "slit_frame")
    slit_y = np.asarray(w2s(ra[:, col], dec[:, col], lam)[1], dtype=np.float64)
    return SlitGrid(grid.fiducial, grid.x_line, grid.y_line, grid.swap_xy, grid.wavelengths, grid.ny,
                    slit_y, grid.pixel_scale_ratio, grid.spatial_scale)


# -- the s2d gwcs: detector -> slit_frame (x_slit = 0, y_slit from a table, wavelength) -> world,
#    the reference's NIRSpec resampled WCS structure, so downstream tools see the same frames

def _frames() -> tuple[cf.Frame2D, cf.CompositeFrame, cf.CompositeFrame]:
    det = cf.Frame2D(name="detector", axes_order=(0, 1))
    slit_spatial = cf.Frame2D(name="slit_spatial", axes_order=(0, 1), unit=("", ""),
                              axes_names=("x_slit", "y_slit"))
    spec = cf.SpectralFrame(name="spectral", axes_order=(2,), unit=(u.micron,), axes_names=("wavelength",))
    slit_frame = cf.CompositeFrame([slit_spatial, spec], name="slit_frame")
    sky = cf.CelestialFrame(name="sky", axes_order=(0, 1), reference_frame=coord.ICRS())
    world = cf.CompositeFrame([sky, spec], name="world")
    return det, slit_frame, world


def grid_gwcs(grid: SlitGrid) -> WCS:
    """Build the gwcs; bounding box and array shape from the grid shape."""
    pix, lam = grid.extended_table()
    wavelength = am.Tabular1D(points=pix, lookup_table=lam, bounds_error=False, fill_value=np.nan)
    to_x = am.Linear1D(slope=grid.x_line[0], intercept=grid.x_line[1])
    to_y = am.Linear1D(slope=grid.y_line[0], intercept=grid.y_line[1])
    tangent = am.Pix2Sky_TAN() | am.RotateNative2Celestial(*grid.fiducial, 180.0)
    rows = am.Mapping((1, 1, 0))
    rows.inverse = am.Mapping((2, 1)) if grid.swap_xy else am.Mapping((2, 0))
    pix2world = rows | (to_x & to_y | tangent) & wavelength

    slit_table = am.Tabular1D(points=np.arange(grid.ny, dtype=float), lookup_table=grid.slit_y,
                              bounds_error=False, fill_value=None)
    to_slit = am.Mapping((0, 1, 0))
    from_slit = am.Mapping((2, 1), n_inputs=3)
    from_slit.inverse = to_slit
    to_slit.inverse = from_slit
    zero = am.Const1D(0)
    zero.inverse = zero
    det2slit = to_slit | zero & slit_table & wavelength
    slit2world = det2slit.inverse | pix2world

    det, slit_frame, world = _frames()
    wcs = WCS([(det, det2slit), (slit_frame, slit2world), (world, None)])
    ny, nx = grid.shape
    wcs.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    wcs.array_shape = (ny, nx)
    return wcs
