"""Render one MRS exposure: the noiseless scene on the detector, then noise, bad
pixels and unflagged cosmic rays.

Calibrated units are MJy/sr (as calwebb_spec2 leaves MRS data).  Pixels
between slices are ``DO_NOT_USE | NON_SCIENCE`` and NaN in every plane, as
are the dead and hot pixels (``DO_NOT_USE | DEAD`` / ``| HOT``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gwcs import WCS

from spec3c import dqflags

from ...noise import bad_pixels, cosmic_rays, snr_median, variances
from ...scene import rate_per_mjy
from .instrument import (
    ARCSEC2_TO_SR,
    ChannelSpec,
    DetectorMaps,
    DetectorSpec,
    channel_spec,
    detector_maps,
    mrs_config,
)
from .scene import MrsScene, MrsSource, pixel_fraction, pixel_mean_spectrum
from .wcs import Pointing, channel_affine, v2v3_to_sky

__all__ = ["MrsExposure", "SceneModel", "channel_sky", "render_exposure", "scene_model", "source_alpha_beta"]


@dataclass
class MrsExposure:
    """Planes (``(ny, nx)``; float32 NaN where DO_NOT_USE, DQ uint32) and geometry of one exposure.

    ``alpha_beta[channel][source_key]`` is the source's ``(alpha, beta)``
    (arcsec) in that channel; ``cosmic_rays`` the ``(y, x)`` pixels hit;
    ``snr`` the median per-row optimal S/N of the point source in the first
    channel of the detector.
    """

    detector: DetectorSpec
    band: str
    pointing: Pointing
    wcs: WCS
    sci: np.ndarray
    dq: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    var_flat: np.ndarray
    cosmic_rays: np.ndarray
    alpha_beta: dict[int, dict[str, tuple[float, float]]]
    snr: float


def source_alpha_beta(ch: ChannelSpec, p: Pointing, ra: float, dec: float) -> tuple[float, float]:
    """``(alpha, beta)`` arcsec of the sky position ``(ra, dec)`` in channel ``ch`` at pointing ``p``."""
    v2, v3 = v2v3_to_sky(p).inverse(ra, dec)
    alpha, beta = channel_affine(ch, p).inverse(v2, v3)
    return float(alpha), float(beta)


def _source_sb(
    src: MrsSource, scene: MrsScene, ch: ChannelSpec, px: dict[str, np.ndarray], centre: tuple[float, float],
    lsf: np.ndarray, lam_scale: float = 1.0,
) -> np.ndarray:
    """Surface brightness (MJy/sr) of ``src`` on the pixels ``px`` of channel ``ch``.

    ``lam_scale`` 0.5 renders the second-order (leak) light: the scene at half the pixel
    wavelengths, with the PSF of that wavelength.
    """
    lam_lo, lam_hi = px["lam_lo"] * lam_scale, px["lam_hi"] * lam_scale
    flux = pixel_mean_spectrum(src.spectrum, lam_lo, lam_hi, lsf) * src.flux_scale
    comps = scene.psf.components(px["lam"] * lam_scale, extra_sigma=src.sigma)
    half = 0.5 * ch.slice_width
    frac = pixel_fraction(px["alpha_lo"], px["alpha_hi"], px["beta"] - half, px["beta"] + half, centre, comps)
    return flux * frac / px["omega"]


def _sky_with_leak(scene: MrsScene, ch: ChannelSpec, band: str, lam: np.ndarray) -> np.ndarray:
    """The sky (MJy/sr) a channel's pixels see: plus its second-order light in channel 3A."""
    sky = scene.sky(lam)
    if scene.leak.channel == ch.number and scene.leak.band == band:
        sky = sky + scene.leak.frac(lam) * scene.sky(0.5 * lam)
    return sky


def channel_sky(det: DetectorSpec, band: str, scene: MrsScene, ch: ChannelSpec) -> tuple[np.ndarray, ...]:
    """``(y, x, lam, sky, conv)`` of the pixels of channel ``ch`` of ``det``: the noiseless sky
    (with the leak) in MJy/sr and the MJy/sr per electron/s (blank-sky background exposures)."""
    maps = detector_maps(det.name, band)
    sel = np.nonzero(maps.channel == ch.number)
    px = _pixels(maps, sel, ch)
    return sel[0], sel[1], px["lam"], _sky_with_leak(scene, ch, band, px["lam"]), _conversion(ch, band, px)


def _channel_model(
    scene: MrsScene, ch: ChannelSpec, band: str, px: dict[str, np.ndarray], p: Pointing,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, tuple[float, float]]]:
    """Noiseless sky + sources (and leak) on one channel's pixels; also the point source and the
    sky (with its leak) alone."""
    b = ch.bands[band]
    lsf = b.lsf_sigma(px["lam"])
    sky = _sky_with_leak(scene, ch, band, px["lam"])
    point = np.zeros_like(sky)
    positions = {}
    leak = scene.leak.channel == ch.number and scene.leak.band == band
    frac = scene.leak.frac(px["lam"]) if leak else np.zeros(0)
    lsf2 = channel_spec(1).bands["MEDIUM"].lsf_sigma(0.5 * px["lam"])  # second order: channel 1B's resolution
    total = sky.copy()
    for src in scene.sources:
        centre = source_alpha_beta(ch, p, src.ra, src.dec)
        positions[src.key] = centre
        sb = _source_sb(src, scene, ch, px, centre, lsf)
        total += sb
        if src.kind == "point":
            point += sb
        if leak:
            total += frac * _source_sb(src, scene, ch, px, centre, lsf2, lam_scale=0.5)
    return total, point, sky, positions


def _pixels(maps: DetectorMaps, sel: tuple[np.ndarray, ...], ch: ChannelSpec) -> dict[str, np.ndarray]:
    px = {k: getattr(maps, k)[sel] for k in ("alpha", "alpha_lo", "alpha_hi", "beta", "lam", "lam_lo", "lam_hi")}
    px["omega"] = np.abs(px["alpha_hi"] - px["alpha_lo"]) * ch.slice_width * ARCSEC2_TO_SR
    return px


def _conversion(ch: ChannelSpec, band: str, px: dict[str, np.ndarray]) -> np.ndarray:
    """MJy/sr per electron/s of each pixel."""
    det = mrs_config()["detector"]
    dlam = np.abs(px["lam_hi"] - px["lam_lo"])
    rate = rate_per_mjy(px["lam"], dlam, ch.bands[band].wavelength, ch.throughput_peak, det["telescope_area_cm2"])
    return 1.0 / (rate * px["omega"])


@dataclass(frozen=True)
class SceneModel:
    """Noiseless calibrated model of one exposure (``(ny, nx)`` float64, 0 between slices).

    ``total`` is sky + sources (+ leak); ``point`` the point source alone; ``sky`` the
    sky alone (with its leak); ``conv`` the MJy/sr per electron/s of each pixel;
    ``alpha_beta`` as in :class:`MrsExposure`.
    """

    total: np.ndarray
    point: np.ndarray
    sky: np.ndarray
    conv: np.ndarray
    alpha_beta: dict[int, dict[str, tuple[float, float]]]


def scene_model(det: DetectorSpec, band: str, p: Pointing, scene: MrsScene) -> SceneModel:
    """The noiseless model of ``scene`` on ``det`` in ``band`` at pointing ``p``."""
    maps = detector_maps(det.name, band)
    shape = maps.label.shape
    total, point, sky, conv = np.zeros(shape), np.zeros(shape), np.zeros(shape), np.ones(shape)
    positions: dict[int, dict[str, tuple[float, float]]] = {}
    for ch in det.channels:
        sel = np.nonzero(maps.channel == ch.number)
        px = _pixels(maps, sel, ch)
        total[sel], point[sel], sky[sel], positions[ch.number] = _channel_model(scene, ch, band, px, p)
        conv[sel] = _conversion(ch, band, px)
    return SceneModel(total, point, sky, conv, positions)


def render_exposure(
    det: DetectorSpec, band: str, p: Pointing, wcs: WCS, scene: MrsScene, rng: np.random.Generator,
    exptime: float, sky_subtracted: bool = False,
) -> MrsExposure:
    """Simulate one exposure of ``det`` in ``band`` at pointing ``p`` (``wcs`` is written with it).

    ``sky_subtracted``: remove the sky as calwebb_spec2's background subtraction with
    ``background_exposures`` dedicated background exposures does; its noise (and theirs) stays.
    """
    cfg = mrs_config()["detector"]
    maps = detector_maps(det.name, band)
    model = scene_model(det, band, p, scene)
    valid = maps.valid
    vp, vr, vf = variances(model.total, model.conv, exptime, cfg["read_noise_e"], cfg["flat_fraction"])
    first = maps.channel == det.channels[0].number
    snr = snr_median(np.where(first, model.point, 0.0), np.where(first, vp + vr + vf, 1.0), first, axis=1)
    sci = model.total + rng.standard_normal(valid.shape) * np.sqrt(vp + vr + vf)
    if sky_subtracted:
        n_bkg = float(mrs_config()["exposure"]["background_exposures"])
        bp, br, _ = variances(model.sky, model.conv, exptime, cfg["read_noise_e"], 0.0)
        bp, br = bp / n_bkg, br / n_bkg  # the mean of n_bkg background exposures
        sci = sci - model.sky + rng.standard_normal(valid.shape) * np.sqrt(bp + br)
        vp, vr = vp + bp, vr + br
    dq = bad_pixels(rng, valid, int(cfg["hot_pixels"]), int(cfg["dead_pixels"]))
    dq[~valid] = dqflags.DO_NOT_USE | dqflags.NON_SCIENCE
    bad = (dq & dqflags.DO_NOT_USE) != 0
    planes = [np.where(bad, np.nan, a).astype(np.float32) for a in (sci, vp, vr, vf)]
    err = np.sqrt(planes[1] + planes[2] + planes[3])
    crs = cosmic_rays(rng, planes[0], err, ~bad, float(cfg["cosmic_rays_per_exposure"]))
    return MrsExposure(det, band, p, wcs, planes[0], dq, planes[1], planes[2], planes[3], crs, model.alpha_beta, snr)
