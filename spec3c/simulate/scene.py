"""Source spectra, cross-dispersion profiles, throughput and sky.

Units: point-source spectra are flux densities in Jy; extended-source spectra
surface brightnesses in MJy/sr; the sky is a constant surface brightness in
MJy/sr per exposure. Calibrated pixel values follow stage-2 conventions:
``MJy`` per pixel for POINT slits, ``MJy/sr`` for EXTENDED slits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import erf

__all__ = [
    "Source",
    "Spectrum",
    "random_spectrum",
    "point_profile",
    "extended_profile",
    "rate_per_mjy",
]

_H_CGS = 6.62607015e-27  # erg s
_C_UM = 2.99792458e14  # micron / s
_SQRT2 = np.sqrt(2.0)


@dataclass(frozen=True)
class Spectrum:
    """Power-law continuum plus Gaussian lines.

    ``f(lam) = f0 (lam/lam0)**alpha * (1 + sum_i a_i exp(-0.5 ((lam - c_i)/w_i)**2))``;
    negative ``a_i`` (> -1) are absorption lines. ``f0 = 0`` gives an empty
    (sky-only) slit.

    Parameters
    ----------
    f0 : float
        Continuum at ``lam0`` (Jy for POINT, MJy/sr for EXTENDED).
    lam0 : float
        Reference wavelength in micron.
    alpha : float
        Power-law index.
    lines : (n, 3) float64 array
        Rows ``(centre_um, sigma_um, relative_amplitude)``.
    """

    f0: float
    lam0: float
    alpha: float
    lines: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))

    def __call__(self, lam_um: np.ndarray) -> np.ndarray:
        """Evaluate at wavelengths ``lam_um`` (any shape; NaN stays NaN)."""
        lam = np.asarray(lam_um, dtype=np.float64)
        if self.f0 == 0.0:
            return np.zeros_like(lam)
        shape = np.ones_like(lam)
        for c, w, a in self.lines:
            shape += a * np.exp(-0.5 * ((lam - c) / w) ** 2)
        return self.f0 * (lam / self.lam0) ** self.alpha * shape


@dataclass(frozen=True)
class Source:
    """One entry of the scene (science source, background or virtual slit).

    Parameters
    ----------
    key : str
        Source key as jwst's exp_to_source forms it (source_name for MOS,
        str(source_id) for FS).
    source_id, source_name, source_alias : int, str, str
        Slit identification written to the cal files.
    source_type : {'POINT', 'EXTENDED'}
        Calibration type; sets the slit BUNIT.
    kind : {'science', 'background', 'virtual'}
        Background and virtual slits have an empty spectrum.
    ra, dec : float
        Fixed sky position (deg) of the source (or empty-sky point).
    xpos, dy : float
        Position across the slit (slit units) and intra-shutter offset added
        to every nod offset along the slit (slit units).
    width_px : float
        Gaussian sigma (rows) of the cross-dispersion profile.
    stellarity : float
        Written to STLARITY.
    spectrum : Spectrum
        True spectrum.
    """

    key: str
    source_id: int
    source_name: str
    source_alias: str
    source_type: str
    kind: str
    ra: float
    dec: float
    xpos: float
    dy: float
    width_px: float
    stellarity: float
    spectrum: Spectrum


def random_spectrum(
    rng: np.random.Generator,
    band_um: tuple[float, float],
    level_range: tuple[float, float],
    resolving_power: float,
    min_sigma_um: float,
) -> Spectrum:
    """Draw a smooth continuum with 2-4 resolved emission/absorption lines.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random stream.
    band_um : (2,) float
        Wavelength band (micron); lines are placed inside its central 80 %.
    level_range : (2,) float
        Continuum level range, drawn log-uniformly.
    resolving_power : float
        Lines are at least as broad as the instrumental resolution.
    min_sigma_um : float
        Lower limit on the line sigma (about 1.5 detector pixels).
    """
    lo, hi = band_um
    f0 = float(np.exp(rng.uniform(np.log(level_range[0]), np.log(level_range[1]))))
    lam0 = 0.5 * (lo + hi)
    alpha = float(rng.uniform(-2.0, 1.0))
    n_lines = int(rng.integers(2, 5))
    centres = rng.uniform(lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo), n_lines)
    sig = np.maximum(
        centres / resolving_power / 2.355 * rng.uniform(1.0, 2.5, n_lines), min_sigma_um
    )
    amps = np.where(
        rng.random(n_lines) < 0.7, rng.uniform(0.3, 3.0, n_lines), -rng.uniform(0.2, 0.7, n_lines)
    )
    return Spectrum(f0, lam0, alpha, np.column_stack([centres, sig, amps]))


def point_profile(rows: np.ndarray, centre: np.ndarray, sigma: float) -> np.ndarray:
    """Pixel-integrated Gaussian profile.

    Parameters
    ----------
    rows : (ny, 1) or (ny, nx) float64
        Row indices.
    centre : (nx,) or (ny, nx) float64
        Trace centre row per column.
    sigma : float
        Gaussian sigma in rows.

    Returns
    -------
    (ny, nx) float64
        Fraction of the flux falling in each pixel (sums to ~1 over rows).
    """
    s = _SQRT2 * sigma
    return 0.5 * (erf((rows + 0.5 - centre) / s) - erf((rows - 0.5 - centre) / s))


def extended_profile(rows: np.ndarray, centre: np.ndarray, sigma: float) -> np.ndarray:
    """Broad surface-brightness profile, 1 at the centre (``(ny, nx)`` float64)."""
    return np.exp(-0.5 * ((rows - centre) / sigma) ** 2)


def throughput(lam_um: np.ndarray, band_um: tuple[float, float], peak: float) -> np.ndarray:
    """Smooth total system throughput over the band (0.05 .. peak)."""
    lo, hi = band_um
    t = (np.asarray(lam_um) - 0.5 * (lo + hi)) / (0.5 * (hi - lo))
    return np.clip(peak * (1.0 - 0.6 * t * t), 0.05, None)


def rate_per_mjy(
    lam_um: np.ndarray,
    dlam_um: np.ndarray,
    band_um: tuple[float, float],
    peak: float,
    area_cm2: float,
) -> np.ndarray:
    """Electrons per second per pixel produced by 1 MJy of flux density.

    ``rate = F_nu A T(lam) dnu / (h nu)`` with ``dnu = c dlam / lam**2`` the
    pixel's frequency width.

    Parameters
    ----------
    lam_um, dlam_um : float64 arrays (same shape)
        Pixel wavelength and wavelength width (micron).
    band_um : (2,) float
        Band edges for the throughput curve.
    peak : float
        Peak throughput.
    area_cm2 : float
        Telescope collecting area.
    """
    nu = _C_UM / lam_um
    dnu = _C_UM * np.abs(dlam_um) / lam_um**2
    fnu_cgs = 1.0e6 * 1.0e-23  # 1 MJy in erg/s/cm^2/Hz
    return fnu_cgs * area_cm2 * throughput(lam_um, band_um, peak) * dnu / (_H_CGS * nu)


def mode_rate_per_mjy(cfg: dict, detector: dict, lam_um: np.ndarray, dlam_um: np.ndarray) -> np.ndarray:
    """:func:`rate_per_mjy` with a mode's band and throughput and the detector's collecting area
    (NaN wavelengths give NaN quietly)."""
    with np.errstate(invalid="ignore"):
        return rate_per_mjy(lam_um, dlam_um, tuple(cfg["wavelength_range_um"]), cfg["throughput_peak"],
                            detector["telescope_area_cm2"])
