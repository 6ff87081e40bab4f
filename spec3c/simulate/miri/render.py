"""Render MIRI LRS exposures: source + sky model, noise, nod subtraction, DQ, CRs.

Calibrated units are MJy/sr (as calwebb_spec2's photom leaves LRS data), so
a point source of flux density ``F`` Jy puts ``1e-6 F P(x) / PIXAR_SR`` in a
row, with ``P`` the pixel-integrated cross-dispersion profile normalised to
1 over the illuminated pixels of the row: summing a row times
``PIXAR_SR * 1e6`` gives ``F`` back exactly (extract_1d's conversion).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
from gwcs import WCS
from scipy.special import erf

from spec3c import dqflags

from ..noise import bad_pixels, cosmic_rays, snr_median, variances
from ..scene import mode_rate_per_mjy
from .layout import LrsLayout, exposure_geometry, miri_config
from .wcs import LrsGeometry, build_lrs_wcs, row_wavelength, trace_offset

__all__ = ["LrsExposure", "LrsGrid", "lrs_grid", "psf_sigma", "render_lrs", "source_model"]

_SQRT2 = np.sqrt(2.0)


@dataclass(frozen=True)
class LrsGrid:
    """Pointing-independent per-pixel quantities (``(ny, nx)`` float64 unless noted)."""

    lam: np.ndarray  # micron per row, NaN outside the spectral rows, (ny, 1)
    alpha0: np.ndarray  # arcsec along the slit at pointing offset 0
    inside: np.ndarray  # bool: illuminated pixels with a wavelength
    conv: np.ndarray  # MJy/sr per e-/s


@dataclass
class LrsExposure:
    """Planes (float32, NaN where DO_NOT_USE) and metadata of one exposure."""

    wcs: WCS
    geom: LrsGeometry
    alpha: float
    sci: np.ndarray
    dq: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    var_flat: np.ndarray
    cosmic_rays: np.ndarray


def lrs_grid(layout: LrsLayout) -> LrsGrid:
    """Wavelength, slit coordinate, illumination and photometric conversion."""
    g = layout.geom
    ny, nx = g.shape
    rows = np.arange(ny, dtype=np.float64)[:, None]
    spectral = (rows >= g.y0) & (rows < g.y0 + g.n_rows)
    lam = np.where(spectral, row_wavelength(g, rows), np.nan)
    alpha0 = g.pscale * (np.arange(nx)[None, :] - g.xref - trace_offset(g, rows))
    (x_lo, x_hi), _ = g.bounding_box
    cols = np.arange(nx)[None, :]
    inside = spectral & (cols > x_lo) & (cols < x_hi) & (np.abs(alpha0) <= g.half_length)
    dlam = np.abs(np.gradient(row_wavelength(g, rows), axis=0))
    cfg, det = layout.cfg, miri_config()["detector"]
    rate = mode_rate_per_mjy(cfg, det, lam, dlam)
    conv = np.broadcast_to(1.0 / (rate * layout.pixel_area_sr), (ny, nx))
    return LrsGrid(lam, alpha0, inside, conv)


def psf_sigma(layout: LrsLayout, lam: np.ndarray) -> np.ndarray:
    """Cross-dispersion Gaussian sigma (pixels), growing linearly over the band."""
    lo, hi = layout.cfg["wavelength_range_um"]
    s0, s1 = layout.cfg["psf_sigma_slope"]
    return layout.psf_sigma * (s0 + (s1 - s0) * (lam - lo) / (hi - lo))


def source_model(layout: LrsLayout, grid: LrsGrid, alpha: float) -> np.ndarray:
    """Noiseless source surface brightness (MJy/sr) with the source at ``alpha`` arcsec."""
    lam = np.where(np.isfinite(grid.lam), grid.lam, layout.source.spectrum.lam0)
    s = _SQRT2 * psf_sigma(layout, lam)
    d = (grid.alpha0 - alpha) / layout.geom.pscale  # pixels from the trace centre
    prof = np.where(grid.inside, 0.5 * (erf((d + 0.5) / s) - erf((d - 0.5) / s)), 0.0)
    norm = prof.sum(axis=1, keepdims=True)
    prof /= np.where(norm > 0, norm, 1.0)
    flux_jy = layout.source.spectrum(lam)
    return 1.0e-6 * flux_jy * prof / layout.pixel_area_sr


def _noisy(
    layout: LrsLayout, grid: LrsGrid, model: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, list[np.ndarray]]:
    det = miri_config()["detector"]
    t = float(layout.cfg["exposure_time_s"])
    var3 = list(variances(model, grid.conv, t, det["read_noise_e"], det["flat_fraction"]))
    return model + rng.standard_normal(model.shape) * np.sqrt(sum(var3)), var3


def _static_dq(rng: np.random.Generator, grid: LrsGrid) -> np.ndarray:
    det = miri_config()["detector"]
    dq = bad_pixels(rng, grid.inside, det["hot_pixels"], det["dead_pixels"])
    dq[~grid.inside] = dqflags.DO_NOT_USE | dqflags.NON_SCIENCE
    return dq


def render_lrs(
    layout: LrsLayout,
    n_exposures: int,
    nod_subtracted: bool,
    rng: np.random.Generator,
    with_source: bool = True,
    with_cosmic_rays: bool = True,
) -> tuple[list[LrsExposure], float]:
    """Simulate ``n_exposures`` exposures of ``layout``.

    Parameters
    ----------
    layout : LrsLayout
        Mode layout.
    n_exposures : int
        Number of exposures; nod/dither positions are cycled.
    nod_subtracted : bool
        Subtract the mean of the exposures at the other nod positions.
    rng : numpy.random.Generator
        Random stream.
    with_source : bool
        False for blank-sky (background-target) exposures.
    with_cosmic_rays : bool
        Add unflagged cosmic rays (recorded per exposure).

    Returns
    -------
    exposures : list of LrsExposure
    snr : float
        Median per-row optimal S/N of the source in one raw exposure.
    """
    grid = lrs_grid(layout)
    geoms = [exposure_geometry(layout, k) for k in range(n_exposures)]
    wcs0 = build_lrs_wcs(geoms[0][0])
    d2ab = wcs0.get_transform("detector", "alpha_beta")
    wcss = [wcs0] + [build_lrs_wcs(gm, d2ab) for gm, _ in geoms[1:]]
    sky = np.where(grid.inside, layout.sky_mjy_sr, 0.0)  # flat in wavelength
    srcs = [source_model(layout, grid, a) if with_source else 0.0 * sky for _, a in geoms]
    raw = [_noisy(layout, grid, sky + s, rng) for s in srcs]
    dq = _static_dq(rng, grid)
    bad = (dq & dqflags.DO_NOT_USE) != 0
    n_pos = len(layout.offsets)
    out = []
    for k, (gm, alpha) in enumerate(geoms):
        sci, vs = raw[k][0], list(raw[k][1])
        others = [j for j in range(n_exposures) if j % n_pos != k % n_pos]
        if nod_subtracted and others:
            sci = sci - sum(raw[j][0] for j in others) / len(others)
            vs = [v + sum(raw[j][1][i] for j in others) / len(others) ** 2 for i, v in enumerate(vs)]
        planes = [np.where(bad, np.nan, a).astype(np.float32) for a in (sci, *vs)]
        err = np.sqrt(planes[1] + planes[2] + planes[3])
        n_cr = miri_config()["detector"]["cosmic_rays_per_exposure"] if with_cosmic_rays else 0.0
        crs = cosmic_rays(rng, planes[0], err, ~bad, n_cr)
        out.append(LrsExposure(wcss[k], gm, alpha, planes[0], dq.copy(), planes[1], planes[2], planes[3], crs))
    snr = snr_median(srcs[0], cast(np.ndarray, sum(raw[0][1])), grid.inside, axis=1) if with_source else 0.0
    return out, snr
