"""Render one slit in every exposure: model, noise, nod subtraction, DQ, CRs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
from gwcs import WCS

from spec3c import dqflags

from ..noise import bad_pixels, cosmic_rays, snr_median, variances
from ..scene import extended_profile, mode_rate_per_mjy, point_profile
from .layout import Layout, SlitLayout, exposure_geometry, instrument_config, source_position
from .wcs import build_slit_wcs, raw_dispersion, trace_rows

__all__ = ["SlitExposure", "RenderedSlit", "render_slit"]


@dataclass
class SlitExposure:
    """Arrays and per-exposure metadata of one slit in one exposure.

    Float planes are float32 ``(ny, nx)``, NaN where DQ has DO_NOT_USE.
    """

    wcs: WCS
    source_ypos: float
    centre_radec: tuple[float, float]
    sci: np.ndarray
    dq: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    var_flat: np.ndarray
    cosmic_rays: np.ndarray


@dataclass
class RenderedSlit:
    """All exposures of one slit plus the exposure-independent planes."""

    layout: SlitLayout
    wavelength: np.ndarray  # float32 (ny, nx), NaN outside the bounding box
    pathloss_point: np.ndarray
    pathloss_uniform: np.ndarray
    photom_point: np.ndarray  # MJy per e-/s
    photom_uniform: np.ndarray  # MJy/sr per e-/s
    exposures: list[SlitExposure]
    snr_median: float


@dataclass(frozen=True)
class _Grid:
    rows: np.ndarray  # (ny, 1)
    lam: np.ndarray  # (ny, nx) micron, NaN outside bbox
    yslit: np.ndarray  # (ny, nx)
    inside: np.ndarray  # (ny, nx) bool: illuminated slit pixels with a wavelength
    conv_point: np.ndarray  # MJy per e-/s
    centre: np.ndarray  # (nx,) trace centre row


def _grid(layout: Layout, slit: SlitLayout, wcs: WCS) -> _Grid:
    geom = slit.geom
    ny, nx = geom.shape
    y, x = np.mgrid[0:ny, 0:nx].astype(np.float64)
    _, yslit, lam_m = wcs.get_transform("detector", "slit_frame")(x, y, with_bounding_box=True)
    lam = lam_m * 1.0e6  # identical to the Scale(1e6) of slit_frame -> world
    inside = np.isfinite(lam) & (np.abs(yslit) <= slit.half_height)
    x0 = x + geom.tilt * (yslit * geom.pix_per_slit)
    dlam = raw_dispersion(geom).deriv()(x0) * 1.0e6
    cfg, det = layout.cfg, instrument_config()["detector"]
    k = mode_rate_per_mjy(cfg, det, lam, dlam)
    centre = trace_rows(geom, np.arange(nx))
    return _Grid(y[:, :1], lam, yslit, inside, 1.0 / k, centre)


def sky_image(layout: Layout, slit: SlitLayout, g: _Grid, pathloss: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The calibrated uniform sky, 0 outside the slit.

    EXTENDED slits hold the sky surface brightness (MJy/sr).  POINT slits are
    calibrated as a point source (MJy per pixel, point-source path loss), so a
    uniform sky reads ``sky · pixel area · pathloss_uniform / pathloss_point``
    (the factor the reference's master_background applies to its 2-D
    background for fixed-slit point sources; flat and photom ratios are 1 here).
    """
    if slit.source.source_type != "POINT":
        return np.where(g.inside, layout.sky_mjy_sr, 0.0)
    pp, pu = pathloss
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(g.inside, layout.sky_mjy_sr * layout.pixel_area_sr * pu / pp, 0.0)


def _model(slit: SlitLayout, g: _Grid, ypos: float, sky: np.ndarray) -> np.ndarray:
    """Noiseless calibrated image (source + sky), 0 outside the slit."""
    src = slit.source
    point = src.source_type == "POINT"
    img = sky.copy()
    if src.kind != "science":
        return img
    flux = src.spectrum(np.where(g.inside, g.lam, src.spectrum.lam0))
    ctr = g.centre + ypos * slit.geom.pix_per_slit
    if point:
        prof = np.where(g.inside, point_profile(g.rows, ctr, src.width_px), 0.0)
        norm = prof.sum(axis=0, keepdims=True)
        prof = prof / np.where(norm > 0, norm, 1.0)
        img += 1.0e-6 * flux * prof  # Jy -> MJy
    else:
        img += np.where(g.inside, flux * extended_profile(g.rows, ctr, src.width_px), 0.0)
    return img


def _pathloss(
    g: _Grid, slit: SlitLayout, band: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = band
    tl = (g.lam - 0.5 * (lo + hi)) / (0.5 * (hi - lo))
    ys = g.yslit / max(slit.half_height, 1e-6)
    pp = 0.92 - 0.12 * tl**2 - 0.08 * np.clip(ys, -1, 1) ** 2
    pu = 0.86 - 0.08 * tl**2
    return pp.astype(np.float32), pu.astype(np.float32)


def render_slit(
    layout: Layout,
    slit: SlitLayout,
    n_exposures: int,
    nod_subtracted: bool,
    rng: np.random.Generator,
) -> RenderedSlit:
    """Simulate ``slit`` in all exposures.

    Parameters
    ----------
    layout : Layout
        Mode layout (configuration, pointing, sky).
    slit : SlitLayout
        The slit to render.
    n_exposures : int
        Number of exposures; nod positions are cycled.
    nod_subtracted : bool
        Subtract the mean of the exposures at other nod positions.
    rng : numpy.random.Generator
        Stream dedicated to this slit (keeps results independent of slit order).

    Returns
    -------
    RenderedSlit
    """
    cfg, det = layout.cfg, instrument_config()["detector"]
    pa = layout.pointing[2]
    geoms = [
        exposure_geometry(slit, pa, k, source_position(layout, slit.source, k))
        for k in range(n_exposures)
    ]
    wcs0 = build_slit_wcs(geoms[0][0])
    d2s = wcs0.get_transform("detector", "slit_frame")
    wcss = [wcs0] + [build_slit_wcs(gm, d2s) for gm, _ in geoms[1:]]
    g = _grid(layout, slit, wcss[0])
    point = slit.source.source_type == "POINT"
    conv = g.conv_point if point else g.conv_point / layout.pixel_area_sr
    t = float(cfg["exposure_time_s"])
    pp, pu = _pathloss(g, slit, tuple(cfg["wavelength_range_um"]))
    sky = sky_image(layout, slit, g, (pp, pu))
    models = [_model(slit, g, ypos, sky) for _, ypos in geoms]
    var3 = [variances(mdl, conv, t, det["read_noise_e"], det["flat_fraction"]) for mdl in models]
    noisy = [
        mdl + rng.standard_normal(mdl.shape) * np.sqrt(sum(v))
        for mdl, v in zip(models, var3, strict=True)
    ]
    dq_static = bad_pixels(rng, g.inside, det["hot_pixels_per_slit"], det["dark_pixels_per_slit"])
    dq_static[~g.inside] = dqflags.DO_NOT_USE | dqflags.NON_SCIENCE
    bad = (dq_static & dqflags.DO_NOT_USE) != 0
    n_nod = len(slit.nod_offsets)
    out = []
    for k, (gm, ypos) in enumerate(geoms):
        sci, vs = noisy[k], list(var3[k])
        others = [j for j in range(n_exposures) if j % n_nod != k % n_nod]
        if nod_subtracted and others:
            sci = sci - sum(noisy[j] for j in others) / len(others)
            for i in range(3):
                vs[i] = vs[i] + sum(var3[j][i] for j in others) / len(others) ** 2
        planes = [np.where(bad, np.nan, a).astype(np.float32) for a in (sci, *vs)]
        err = np.sqrt(planes[1] + planes[2] + planes[3])
        crs = cosmic_rays(rng, planes[0], err, ~bad, det["cosmic_rays_per_slit"])
        out.append(
            SlitExposure(
                wcss[k],
                ypos,
                gm.centre_radec,
                planes[0],
                dq_static.copy(),
                planes[1],
                planes[2],
                planes[3],
                crs,
            )
        )
    snr = snr_median(models[0] - sky, cast(np.ndarray, sum(var3[0])), g.inside) if slit.source.kind == "science" else 0.0
    lam32 = g.lam.astype(np.float32)
    nan = ~np.isfinite(lam32)
    return RenderedSlit(
        layout=slit,
        wavelength=lam32,
        pathloss_point=np.where(nan, np.nan, pp).astype(np.float32),
        pathloss_uniform=np.where(nan, np.nan, pu).astype(np.float32),
        photom_point=g.conv_point.astype(np.float32),
        photom_uniform=(g.conv_point / layout.pixel_area_sr).astype(np.float32),
        exposures=out,
        snr_median=snr,
    )
