"""The MRS scene: a point source and an extended nebula with continuum and emission
lines, a uniform sky, the PSF and the channel 3A spectral leak.

Units: point-source spectra are flux densities in Jy, the nebula's spectrum is
its peak surface brightness in MJy/sr (a circular Gaussian of ``sigma``
arcsec on the sky, total flux density ``SB0 * 2 pi sigma**2``), the sky a
surface brightness in MJy/sr.  Every spectrum is a :class:`~..scene.Spectrum`
(power law times one plus Gaussian lines) so line fluxes are known exactly:
``line_flux = f(c) * a * sigma * sqrt(2 pi)`` (flux density times micron).

Everything is pixel-integrated analytically: a detector pixel covers
``[alpha_lo, alpha_hi]`` along the slice, the slice width in beta and
``[lam_lo, lam_hi]`` in wavelength; its calibrated value is the flux falling
on it (PSF and line-spread function included) divided by its solid angle
``(alpha_hi - alpha_lo) * slice_width``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.modeling import models as m
from scipy.special import erf

from ...scene import Spectrum
from .instrument import ARCSEC2_TO_SR, BAND_NAMES, channel_spec, mrs_config

__all__ = [
    "Leak",
    "MrsScene",
    "MrsSource",
    "Psf",
    "Sky",
    "build_scene",
    "pixel_mean_spectrum",
    "pixel_fraction",
]

_SQRT2 = np.sqrt(2.0)
_FWHM = 2.3548200450309493


@dataclass(frozen=True)
class Psf:
    """Circular double Gaussian: core FWHM ``a + b lambda`` arcsec, plus a wing
    holding ``wing_fraction`` of the flux, ``wing_scale`` times wider."""

    fwhm_a: float
    fwhm_b: float
    wing_fraction: float
    wing_scale: float

    def fwhm(self, lam: np.ndarray | float) -> np.ndarray:
        """Core FWHM (arcsec) at ``lam`` (micron)."""
        return self.fwhm_a + self.fwhm_b * np.asarray(lam, dtype=np.float64)

    def components(self, lam: np.ndarray | float, extra_sigma: float = 0.0) -> list[tuple[float, np.ndarray]]:
        """``[(weight, sigma_arcsec)]`` of the PSF at ``lam``, each sigma convolved with a
        Gaussian of ``extra_sigma`` (an extended source's own width)."""
        core = self.fwhm(lam) / _FWHM
        wing = self.wing_scale * core
        return [
            (1.0 - self.wing_fraction, np.sqrt(core**2 + extra_sigma**2)),
            (self.wing_fraction, np.sqrt(wing**2 + extra_sigma**2)),
        ]

    def encircled(
        self, lam: np.ndarray | float, radius: np.ndarray | float, extra_var: np.ndarray | float = 0.0
    ) -> np.ndarray:
        """Fraction of the flux within ``radius`` arcsec, each component's variance
        increased by ``extra_var`` (arcsec^2: pixel and spaxel sampling); arguments broadcast."""
        r2 = np.asarray(radius, dtype=np.float64) ** 2
        total = np.zeros(np.broadcast(np.asarray(lam), r2, np.asarray(extra_var)).shape)
        for w, s in self.components(lam):
            total += w * (1.0 - np.exp(-0.5 * r2 / (s**2 + extra_var)))
        return total


@dataclass(frozen=True)
class Sky:
    """Uniform sky surface brightness (MJy/sr), interpolated in log-log."""

    wavelength: np.ndarray
    sb: np.ndarray

    def __call__(self, lam: np.ndarray | float) -> np.ndarray:
        x = np.log(np.asarray(lam, dtype=np.float64))
        return np.exp(np.interp(x, np.log(self.wavelength), np.log(self.sb)))


@dataclass(frozen=True)
class Leak:
    """Second-order light: ``frac(lambda)`` of the scene at ``lambda / 2`` adds to
    channel ``channel`` in ``band`` (3A)."""

    channel: int
    band: str
    peak: float
    centre: float
    sigma: float

    def frac(self, lam: np.ndarray | float) -> np.ndarray:
        return self.peak * np.exp(-0.5 * ((np.asarray(lam, dtype=np.float64) - self.centre) / self.sigma) ** 2)


@dataclass(frozen=True)
class MrsSource:
    """One source of the scene.

    ``kind`` is ``'point'`` (``spectrum`` in Jy) or ``'extended'`` (a Gaussian of
    ``sigma`` arcsec, ``spectrum`` its peak surface brightness in MJy/sr).
    """

    key: str
    source_id: int
    kind: str
    ra: float
    dec: float
    spectrum: Spectrum
    sigma: float = 0.0

    @property
    def source_type(self) -> str:
        return "POINT" if self.kind == "point" else "EXTENDED"

    @property
    def flux_scale(self) -> float:
        """Total flux density in MJy per unit of ``spectrum``."""
        if self.kind == "point":
            return 1.0e-6
        return 2.0 * np.pi * self.sigma**2 * ARCSEC2_TO_SR

    def line_fluxes(self) -> np.ndarray:
        """Integrated flux of each line above the continuum, in spectrum units x micron."""
        sp = self.spectrum
        if not len(sp.lines):
            return np.zeros(0)
        c, w, a = sp.lines.T
        return sp.f0 * (c / sp.lam0) ** sp.alpha * a * w * np.sqrt(2.0 * np.pi)


@dataclass(frozen=True)
class MrsScene:
    """Sources, sky, PSF and leak of one simulated observation."""

    sources: tuple[MrsSource, ...]
    sky: Sky
    psf: Psf
    leak: Leak


def pixel_mean_spectrum(sp: Spectrum, lam_lo: np.ndarray, lam_hi: np.ndarray, lsf_sigma: np.ndarray) -> np.ndarray:
    """Mean of ``sp`` convolved with a Gaussian LSF over each pixel's ``[lam_lo, lam_hi]``.

    All arrays are 1-D float64 of one length (micron); the continuum is taken at
    the pixel centre, each line is integrated exactly.
    """
    lo, hi = np.minimum(lam_lo, lam_hi), np.maximum(lam_lo, lam_hi)
    centre = 0.5 * (lo + hi)
    out = sp.f0 * (centre / sp.lam0) ** sp.alpha
    if sp.f0 == 0.0:
        return out
    width = hi - lo
    for c, w, a in sp.lines:
        s = np.sqrt(w * w + lsf_sigma**2)
        near = (hi > c - 12.0 * s) & (lo < c + 12.0 * s)
        if not near.any():
            continue
        amp = sp.f0 * (c / sp.lam0) ** sp.alpha * a * w * np.sqrt(2.0 * np.pi)
        sn = s[near] * _SQRT2
        frac = 0.5 * (erf((hi[near] - c) / sn) - erf((lo[near] - c) / sn))
        out[near] += amp * frac / width[near]
    return out


def pixel_fraction(
    alpha_lo: np.ndarray, alpha_hi: np.ndarray, beta_lo: np.ndarray, beta_hi: np.ndarray,
    centre: tuple[float, float], components: list[tuple[float, np.ndarray]],
) -> np.ndarray:
    """Fraction of a source's flux falling on each pixel (1-D arrays, arcsec).

    ``components`` are ``(weight, sigma)`` circular Gaussians centred on
    ``centre = (alpha, beta)``.
    """
    a0, b0 = centre
    out = np.zeros(alpha_lo.shape)
    for weight, sigma in components:
        s = _SQRT2 * sigma
        fa = 0.5 * (erf((alpha_hi - a0) / s) - erf((alpha_lo - a0) / s))
        fb = 0.5 * (erf((beta_hi - b0) / s) - erf((beta_lo - b0) / s))
        out += weight * np.abs(fa) * fb
    return out


def _lines(rng: np.random.Generator, cfg: dict[str, Any], slots: list[tuple[float, float, float]]) -> np.ndarray:
    """Emission lines: one per slot ``(lo, hi, R)`` (micron), width from the band's resolving power ``R``."""
    rows = []
    for lo, hi, r in slots:
        c = rng.uniform(lo, hi)
        sigma = c / r / _FWHM * rng.uniform(*cfg["width_factor"])
        rows.append((c, sigma, rng.uniform(*cfg["line_amplitude"])))
    return np.array(rows, dtype=np.float64).reshape(-1, 3)


def _slots(fractions: list[tuple[float, float]]) -> list[tuple[float, float, float]]:
    """``(lo, hi, R)`` line windows at the given band fractions, for all 12 bands."""
    out = []
    for ch_n in (1, 2, 3, 4):
        ch = channel_spec(ch_n)
        for band in BAND_NAMES:
            b = ch.bands[band]
            lo, hi = b.wavelength
            out += [(lo + f0 * (hi - lo), lo + f1 * (hi - lo), b.resolving_power) for f0, f1 in fractions]
    return out


def _offset(ra: float, dec: float, east: float, north: float) -> tuple[float, float]:
    """Sky position ``(east, north)`` arcsec from ``(ra, dec)`` (small offsets, TAN plane)."""
    r, d = (m.Pix2Sky_TAN() | m.RotateNative2Celestial(ra, dec, 180.0))(east / 3600.0, north / 3600.0)
    return float(r) % 360.0, float(d)


def build_scene(rng: np.random.Generator, target: tuple[float, float], n_sources: int) -> MrsScene:
    """Draw the scene around the commanded ``target`` (deg): the point source within
    ``source_offset_arcsec`` of it and (``n_sources == 2``) a nebula next to it."""
    cfg = mrs_config()
    sc = cfg["scene"]
    pt = sc["point"]
    ang = rng.uniform(0.0, 2.0 * np.pi)
    rad = cfg["pointing"]["source_offset_arcsec"] * np.sqrt(rng.uniform())
    ra, dec = _offset(*target, rad * np.sin(ang), rad * np.cos(ang))
    n_pt = int(pt["lines_per_band"])
    fr = [((k + 0.3) / n_pt, (k + 0.7) / n_pt) for k in range(n_pt)]  # 2 lines: 15-35 % and 65-85 %
    spec = Spectrum(rng.uniform(*pt["f0_mjy"]) * 1e-3, 10.0, float(rng.uniform(*pt["index"])),
                    _lines(rng, pt, _slots(fr)))
    sources = [MrsSource("1", 1, "point", ra, dec, spec)]
    if n_sources >= 2:
        ex = sc["extended"]
        ang = rng.uniform(0.0, 2.0 * np.pi)
        rad = rng.uniform(*ex["offset_arcsec"])
        ra_e, dec_e = _offset(ra, dec, rad * np.sin(ang), rad * np.cos(ang))
        spec_e = Spectrum(float(rng.uniform(*ex["sb0_mjy_sr"])), 10.0, float(rng.uniform(*ex["index"])),
                          _lines(rng, ex, _slots([(0.45, 0.55)])))
        sources.append(MrsSource("2", 2, "extended", ra_e, dec_e, spec_e, float(rng.uniform(*ex["sigma_arcsec"]))))
    sky_cfg = sc["sky_mjy_sr"]
    sky = Sky(np.array(sky_cfg["wavelength_um"], dtype=np.float64), np.array(sky_cfg["sb"], dtype=np.float64))
    p = cfg["psf"]
    psf = Psf(float(p["fwhm_arcsec"][0]), float(p["fwhm_arcsec"][1]), float(p["wing_fraction"]), float(p["wing_scale"]))
    lk = cfg["spectral_leak"]
    leak = Leak(int(lk["channel"]), str(lk["band"]), float(lk["peak"]), float(lk["centre_um"]), float(lk["sigma_um"]))
    return MrsScene(tuple(sources), sky, psf, leak)
