"""Variances, Gaussian noise, bad pixels and cosmic rays for calibrated slits.

All arrays are in calibrated units (MJy or MJy/sr); ``conv`` converts
electrons per second into those units, so Poisson variance is
``conv * signal / t`` (the DN-domain count variance carried through photom).
"""

from __future__ import annotations

import numpy as np

from spec3c import dqflags

__all__ = ["variances", "bad_pixels", "cosmic_rays"]


def variances(
    signal: np.ndarray, conv: np.ndarray, exptime: float, read_noise_e: float, flat_fraction: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poisson, read-noise and flat-field variances of a noiseless image.

    Parameters
    ----------
    signal : (ny, nx) float64
        Expected calibrated signal (source + sky), >= 0 where valid.
    conv : (ny, nx) float64
        Calibrated units per electron/s.
    exptime : float
        Effective exposure time in seconds.
    read_noise_e : float
        Effective (ramp-fitted) read noise in electrons per pixel.
    flat_fraction : float
        Relative flat-field uncertainty.

    Returns
    -------
    var_poisson, var_rnoise, var_flat : (ny, nx) float64
    """
    sig = np.clip(signal, 0.0, None)
    vp = conv * sig / exptime
    vr = (conv * (read_noise_e / exptime)) ** 2
    vf = (flat_fraction * sig) ** 2
    return vp, vr, vf


def bad_pixels(rng: np.random.Generator, usable: np.ndarray, n_hot: int, n_dead: int) -> np.ndarray:
    """DQ array (uint32) with a few HOT and DEAD DO_NOT_USE pixels among ``usable``."""
    dq = np.zeros(usable.shape, dtype=np.uint32)
    idx = np.flatnonzero(usable)
    n = min(n_hot + n_dead, idx.size)
    pick = rng.choice(idx, size=n, replace=False)
    flat = dq.reshape(-1)
    flat[pick[:n_hot]] = dqflags.DO_NOT_USE | dqflags.HOT
    flat[pick[n_hot:]] = dqflags.DO_NOT_USE | dqflags.DEAD
    return dq


_NEIGHBOURS = np.array([(0, 1), (0, -1), (1, 0), (-1, 0)])


def cosmic_rays(
    rng: np.random.Generator, sci: np.ndarray, err: np.ndarray, good: np.ndarray, mean_count: float
) -> np.ndarray:
    """Add unflagged cosmic-ray hits (1-3 pixels each) to ``sci`` in place.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random stream.
    sci : (ny, nx) float32
        Science array, modified in place.
    err : (ny, nx) float32
        Error array; hits leave each pixel 15-500 times its error above zero.
    good : (ny, nx) bool
        Pixels that may be hit (valid, not flagged).
    mean_count : float
        Mean number of hits (Poisson).

    Returns
    -------
    (n, 2) int64
        ``(y, x)`` cutout coordinates of every affected pixel.
    """
    ny, nx = sci.shape
    idx = np.flatnonzero(good)
    n = min(int(rng.poisson(mean_count)), idx.size)
    hits: list[tuple[int, int]] = []
    for p in rng.choice(idx, size=n, replace=False):
        y, x = divmod(int(p), nx)
        amp = rng.uniform(50.0, 500.0)
        pixels = [(y, x, 1.0)]
        for dy, dx in _NEIGHBOURS[rng.permutation(4)[: int(rng.integers(0, 3))]]:
            yy, xx = y + int(dy), x + int(dx)
            if 0 <= yy < ny and 0 <= xx < nx and good[yy, xx]:
                pixels.append((yy, xx, rng.uniform(0.3, 0.7)))
        for yy, xx, frac in pixels:
            if (yy, xx) in hits:
                continue
            # large and positive even on a negative (nod-subtracted) trace
            val = float(sci[yy, xx])
            sci[yy, xx] = np.float32(val + amp * frac * float(err[yy, xx]) + max(0.0, -val))
            hits.append((yy, xx))
    return np.array(hits, dtype=np.int64).reshape(-1, 2)


def snr_median(signal: np.ndarray, var: np.ndarray, inside: np.ndarray, axis: int = 0) -> float:
    """Median over dispersion elements of the optimal-extraction S/N ``sqrt(sum s^2/var)``.

    ``axis`` is the cross-dispersion axis summed over (0 for NIRSpec rows, 1 for MIRI LRS columns).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        per_element = np.sqrt(np.nansum(np.where(inside, signal**2 / var, 0.0), axis=axis))
    used = inside.any(axis=axis)
    return float(np.median(per_element[used])) if used.any() else 0.0
