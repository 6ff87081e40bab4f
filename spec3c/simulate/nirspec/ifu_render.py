"""Render one NIRSpec IFU exposure on one detector: scene, sky, noise, bad pixels, cosmic rays.

Every pixel on a slice sees the sky through its WCS footprint: the full
slice width across (``width_arcsec``), one row along the slice
(``arcsec_per_row``) and, in wavelength, the interval between its left and
right column edges.  Its calibrated value (MJy/sr, as calwebb_spec2 leaves
NIRSpec IFU data for point and extended sources alike) is the mean surface
brightness over that footprint::

    SB = sky + sum_sources F_nu(lambda) * P(footprint) / Omega_pix

with ``F_nu`` the source's total flux density (Jy, averaged over the
pixel's wavelength interval), ``P`` the fraction of the source (a circular
Gaussian: PSF, widened by the source's own size) falling in the footprint
and ``Omega_pix`` the footprint's solid angle.  Summing ``SB * Omega_pix``
over all pixels of one wavelength therefore gives the source flux times the
fraction of it inside the field, which is what cube_build and extract_1d
must recover.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import erf

from spec3c import dqflags

from ..noise import cosmic_rays, variances
from ..scene import mode_rate_per_mjy
from .ifu_layout import IfuLayout, IfuSource, psf_sigma_arcsec
from .ifu_wcs import DetectorGeometry, SliceGeometry, sky_to_ideal, slice_coordinates

__all__ = [
    "DetectorPixels",
    "IfuExposure",
    "detector_pixels",
    "render_exposure",
    "source_image",
    "DetectorDefects",
    "static_defects",
    "variances_of_sky",
]

_SQRT2 = np.sqrt(2.0)
_GAUSS3 = (np.array([-np.sqrt(0.6), 0.0, np.sqrt(0.6)]), np.array([5.0, 8.0, 5.0]) / 18.0)


@dataclass(frozen=True)
class DetectorPixels:
    """The on-slice pixels of one detector (exposure-independent), flattened.

    ``iy, ix`` int64 pixel indices; ``slice_index`` int16; ``across`` and
    ``along`` the ideal-frame (arcsec) centre of the footprint; ``lam``,
    ``lam_lo``, ``lam_hi`` micron at the pixel centre and its column edges.
    """

    shape: tuple[int, int]
    iy: np.ndarray
    ix: np.ndarray
    slice_index: np.ndarray
    across: np.ndarray
    along: np.ndarray
    lam: np.ndarray
    lam_lo: np.ndarray
    lam_hi: np.ndarray
    half_width: float
    half_length: float


def _slice_pixels(g: SliceGeometry, regions: np.ndarray) -> tuple[np.ndarray, ...]:
    iy, ix = np.nonzero(regions == g.index + 1)
    x, y = ix.astype(np.float64), iy.astype(np.float64)
    v, lam = slice_coordinates(g, x, y)
    _, lam_a = slice_coordinates(g, x - 0.5, y)
    _, lam_b = slice_coordinates(g, x + 0.5, y)
    return iy, ix, v * g.arcsec_per_row, lam, lam_a, lam_b  # wavelength increases with x


def detector_pixels(det: DetectorGeometry, regions: np.ndarray, width_arcsec: float) -> DetectorPixels:
    """Footprints of every pixel labelled in ``regions``; edge pixels lose a wavelength edge, not the pixel."""
    parts = []
    for g in det.slices:
        iy, ix, along, lam, lo, hi = _slice_pixels(g, regions)
        lo = np.where(np.isfinite(lo), lo, lam - (hi - lam))  # a band-edge pixel: mirror the other edge
        hi = np.where(np.isfinite(hi), hi, lam + (lam - lo))
        parts.append((iy, ix, np.full(iy.size, g.index, np.int16), np.full(iy.size, g.across_arcsec), along, lam, lo, hi))
    iy, ix, index, across, along, lam, lo, hi = (np.concatenate(c) for c in zip(*parts, strict=True))
    g0 = det.slices[0]
    return DetectorPixels(det.shape, iy, ix, index, across, along, lam, lo, hi,
                          half_width=0.5 * width_arcsec, half_length=0.5 * g0.arcsec_per_row)


def _box_fraction(centre: np.ndarray, half: float, pos: float | np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Fraction of a 1-D Gaussian (mean ``pos``) inside ``[centre - half, centre + half]``."""
    s = _SQRT2 * sigma
    return 0.5 * (erf((centre + half - pos) / s) - erf((centre - half - pos) / s))


def _mean_spectrum(src: IfuSource, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Mean of the source spectrum over ``[lo, hi]`` (3-point Gauss-Legendre), Jy."""
    mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    nodes, weights = _GAUSS3
    return sum(w * src.spectrum(mid + t * half) for t, w in zip(nodes, weights, strict=True))


def source_image(px: DetectorPixels, src: IfuSource, position: tuple[float, float]) -> np.ndarray:
    """Mean flux density per footprint (Jy) of one source at ideal ``position`` (across, along arcsec).

    Returns
    -------
    (n_pixels,) float64
        ``F_nu * P(footprint)``; divide by the footprint solid angle for MJy/sr x 1e6.
    """
    sigma = np.sqrt(psf_sigma_arcsec(px.lam) ** 2 + src.sigma_arcsec**2)
    frac = _box_fraction(px.across, px.half_width, position[0], sigma)
    frac *= _box_fraction(px.along, px.half_length, position[1], sigma)
    return _mean_spectrum(src, px.lam_lo, px.lam_hi) * frac


@dataclass(frozen=True)
class DetectorDefects:
    """What is wrong with one detector, the same in every exposure.

    ``dq`` (ny, nx) uint32: ``DO_NOT_USE | NON_SCIENCE`` off the slices, hot
    and dead pixels ``DO_NOT_USE | HOT/DEAD``.  ``warm`` (n, 2) int64 ``(y, x)``
    pixels not in the mask whose value is raised by ``warm_excess`` (n,) MJy/sr.
    """

    dq: np.ndarray
    warm: np.ndarray
    warm_excess: np.ndarray


def static_defects(rng: np.random.Generator, layout: IfuLayout, px: DetectorPixels, regions: np.ndarray) -> DetectorDefects:
    """Draw the detector's flagged hot/dead pixels and its unflagged warm pixels."""
    det_cfg = layout.cfg["detector"]
    on = regions > 0
    dq = np.where(on, 0, dqflags.DO_NOT_USE | dqflags.NON_SCIENCE).astype(np.uint32)
    mpix = px.lam.size / 1.0e6
    n_hot = int(rng.poisson(det_cfg["hot_pixels_per_megapixel"] * mpix))
    n_dead = int(rng.poisson(det_cfg["dead_pixels_per_megapixel"] * mpix))
    n_warm = int(rng.poisson(det_cfg["warm_pixels_per_megapixel"] * mpix))
    pick = rng.choice(px.lam.size, size=min(n_hot + n_dead + n_warm, px.lam.size), replace=False)
    flat = dq.reshape(-1)
    flat_idx = px.iy[pick] * px.shape[1] + px.ix[pick]
    flat[flat_idx[:n_hot]] = dqflags.DO_NOT_USE | dqflags.HOT
    flat[flat_idx[n_hot : n_hot + n_dead]] = dqflags.DO_NOT_USE | dqflags.DEAD
    warm = pick[n_hot + n_dead :]
    sky_sigma = np.sqrt(variances_of_sky(layout, px.lam[warm], px.lam_hi[warm] - px.lam_lo[warm]))
    lo, hi = det_cfg["warm_pixel_sigmas"]
    excess = rng.uniform(float(lo), float(hi), warm.size) * sky_sigma
    return DetectorDefects(dq, np.column_stack([px.iy[warm], px.ix[warm]]).astype(np.int64), excess)


@dataclass
class IfuExposure:
    """One rendered cal image: float planes ``(ny, nx)`` float32 (NaN where DO_NOT_USE), DQ uint32.

    ``positions`` maps source key -> ideal-frame (across, along) arcsec in this
    exposure; ``cosmic_rays`` is ``(n, 2)`` int64 ``(y, x)``; ``snr_median`` the
    target's median per-column S/N (optimal weights).
    """

    sci: np.ndarray
    dq: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    var_flat: np.ndarray
    positions: dict[str, tuple[float, float]]
    cosmic_rays: np.ndarray
    snr_median: float


def _omega_sr(px_width_arcsec: float, px_length_arcsec: float) -> float:
    return px_width_arcsec * px_length_arcsec * (np.pi / 180.0 / 3600.0) ** 2


def _noise_model(layout: IfuLayout, sb: np.ndarray, lam: np.ndarray, dlam: np.ndarray,
                 omega_sr: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poisson, read-noise and flat variances (MJy/sr)**2 of pixels of surface brightness ``sb``."""
    cfg, det = layout.cfg, layout.cfg["detector"]
    conv = 1.0 / (mode_rate_per_mjy(cfg, det, lam, dlam) * omega_sr)  # MJy/sr per e-/s
    return variances(sb, conv, float(cfg["exposure_time_s"]), det["read_noise_e"], det["flat_fraction"])


def variances_of_sky(layout: IfuLayout, lam: np.ndarray, dlam: float | np.ndarray) -> np.ndarray:
    """Total variance of one nominal pixel seeing only the sky, at wavelengths ``lam`` (micron)."""
    sl = layout.cfg["slices"]
    omega = _omega_sr(sl["width_arcsec"], sl["length_arcsec"] / sl["rows_per_slice"])
    lam = np.asarray(lam, dtype=np.float64)
    sky = np.full(lam.shape, layout.sky_mjy_sr)
    vp, vr, vf = _noise_model(layout, sky, lam, np.broadcast_to(dlam, lam.shape), omega)
    return vp + vr + vf


def _source_positions(layout: IfuLayout, k: int) -> dict[str, tuple[float, float]]:
    out = {}
    for src in layout.sources:
        ra, dec = layout.moved(src.ra, src.dec, k)
        x, y = sky_to_ideal(layout.optics, layout.pointings[k], np.array([ra]), np.array([dec]))
        out[src.key] = (float(x[0]), float(y[0]))
    return out


def _snr(px: DetectorPixels, signal: np.ndarray, var: np.ndarray) -> float:
    """Median over columns of ``sqrt(sum s^2 / var)`` of the target's pixels."""
    with np.errstate(invalid="ignore", divide="ignore"):
        per_pixel = np.where(var > 0, signal**2 / var, 0.0)
    per_col = np.sqrt(np.bincount(px.ix, weights=per_pixel, minlength=px.shape[1]))
    used = np.bincount(px.ix, weights=signal > 0, minlength=px.shape[1]) > 0
    return float(np.median(per_col[used])) if used.any() else 0.0


def render_exposure(layout: IfuLayout, px: DetectorPixels, defects: DetectorDefects, k: int,
                    rng: np.random.Generator) -> IfuExposure:
    """Render exposure ``k`` on the detector whose pixels are ``px`` and whose defects are ``defects``."""
    det = layout.cfg["detector"]
    omega_sr = _omega_sr(2.0 * px.half_width, 2.0 * px.half_length)
    positions = _source_positions(layout, k)
    target = np.zeros(px.lam.size)
    model = np.full(px.lam.size, layout.sky_mjy_sr)
    for src in layout.sources:
        sb = source_image(px, src, positions[src.key]) * 1.0e-6 / omega_sr  # Jy -> MJy/sr
        model += sb
        if src is layout.target:
            target = sb
    vp, vr, vf = _noise_model(layout, model, px.lam, px.lam_hi - px.lam_lo, omega_sr)
    noisy = model + rng.standard_normal(model.size) * np.sqrt(vp + vr + vf)
    shape = px.shape
    bad = (defects.dq & dqflags.DO_NOT_USE) != 0
    planes = []
    for values in (noisy, vp, vr, vf):
        img = np.full(shape, np.nan, dtype=np.float32)
        img[px.iy, px.ix] = values
        img[bad] = np.nan
        planes.append(img)
    planes[0][defects.warm[:, 0], defects.warm[:, 1]] += defects.warm_excess.astype(np.float32)
    err = np.sqrt(planes[1] + planes[2] + planes[3])
    mean_crs = det["cosmic_rays_per_megapixel"] * px.lam.size / 1.0e6
    crs = cosmic_rays(rng, planes[0], err, ~bad, mean_crs)
    return IfuExposure(
        sci=planes[0],
        dq=defects.dq.copy(),
        var_poisson=planes[1],
        var_rnoise=planes[2],
        var_flat=planes[3],
        positions=positions,
        cosmic_rays=crs,
        snr_median=_snr(px, target, vp + vr + vf),
    )
