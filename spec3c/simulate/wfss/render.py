"""Render WFSS exposures and cut them into grism cutouts as calwebb_spec2 does.

Per exposure:

1. a full-frame count-rate image (e-/s): every source's order traces plus
   a uniform sky, with Poisson, read and flat-field noise, bad pixels, and the
   sky subtracted (stage 2's background step);
2. per source and order, the cutout extract_2d would make: the trace's
   extent from ``wavelength_range_um`` at the corners of the source's box
   (point sources: ``point_half_height`` rows either side of the trace
   centre), cut at the detector edges, dropped when nothing is left;
3. photom per cutout with its own wavelength map: ``MJy/sr = (e-/s) /
   (rate_per_MJy(lambda) x efficiency x PIXAR_SR)``, so summing a column of
   a point source and multiplying by ``PIXAR_SR x 1e6`` gives its flux density
   in Jy at that column's wavelength (what extract_1d computes).

Trace geometry: the wavelength of a pixel is the grism model's forward
transform (the WAVELENGTH array a cal file carries); the trace centre across
the dispersion at that wavelength is the backward transform, the curve the
cutout is centred on.  The source's light in one column is its flux density at
the column's wavelength (no smearing along the dispersion; the spectra have
no structure narrower than ~8 pixels).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import erf

from spec3c import dqflags

from ..scene import rate_per_mjy
from .layout import FieldSource, WfssExposure, WfssLayout

__all__ = ["Cutout2D", "RenderedExposure", "render_exposure", "throughput"]

_SQRT2 = np.sqrt(2.0)


@dataclass
class Cutout2D:
    """One grism cutout (a slit of the cal file); planes ``(ny, nx)`` float32 / uint32."""

    source: FieldSource
    order: int
    xmin: int
    ymin: int
    centre: tuple[float, float]  # direct-image (x0, y0)
    sci: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    var_flat: np.ndarray
    wavelength: np.ndarray
    trace_offset: float  # trace centre across the dispersion at mid band, in cutout pixels
    contamination: float  # other sources' light / own light in the cutout (noiseless)
    snr: float  # median per-column box-extraction S/N of the source in this cutout

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.sci.shape[0]), int(self.sci.shape[1]))


@dataclass
class RenderedExposure:
    exposure: WfssExposure
    cutouts: list[Cutout2D] = field(default_factory=list)


def throughput(layout: WfssLayout, lam: np.ndarray, order: int) -> np.ndarray:
    """Total throughput: the filter's smooth top hat times the order's efficiency (floor 1 % of peak)."""
    f = layout.filter_cfg
    lo, hi = f["band_um"]
    w = float(f["edge_um"])
    top = 0.5 * (erf((lam - lo) / w) - erf((lam - hi) / w))
    eff = float(layout.grism_cfg["orders"][str(order)]["efficiency"])
    return float(f["throughput_peak"]) * eff * np.maximum(top, 0.01)


def _rate_per_mjy(layout: WfssLayout, lam: np.ndarray, dlam: np.ndarray, order: int) -> np.ndarray:
    """e-/s in one dispersion element from 1 MJy, with the order's throughput."""
    base = rate_per_mjy(lam, dlam, (0.0, 1.0e9), 1.0, layout.cfg["telescope_area_cm2"])  # flat throughput 1
    return base * throughput(layout, lam, order)


@dataclass(frozen=True)
class _Trace:
    """Along-dispersion pixels of a trace with their wavelength, width and centre across."""

    along: np.ndarray  # integer pixel coordinates along the dispersion (full frame)
    lam: np.ndarray
    dlam: np.ndarray
    centre: np.ndarray  # across-dispersion centre at each along pixel


def _trace(exp: WfssExposure, x0: float, y0: float, order: int, along_range: tuple[int, int],
           rows: bool) -> _Trace:
    """The trace of a source at direct-image (x0, y0) over ``along_range`` (inclusive pixel limits)."""
    along = np.arange(along_range[0], along_range[1] + 1, dtype=np.float64)
    x, y = (along, np.full_like(along, y0)) if rows else (np.full_like(along, x0), along)
    sol = exp.wcs.trace
    lam = sol.wavelength(x, y, x0, y0, order)
    bx, by = sol.position(x0, y0, lam, order)
    dlam = np.abs(np.gradient(lam)) if lam.size > 1 else np.full_like(lam, 1e-3)
    return _Trace(along, lam, dlam, by if rows else bx)


def _profile(across: np.ndarray, centre: np.ndarray, sigma: float) -> np.ndarray:
    """Pixel-integrated Gaussian; ``across`` (n_across, 1), ``centre`` (n_along,) -> (n_across, n_along)."""
    s = _SQRT2 * sigma
    return 0.5 * (erf((across + 0.5 - centre) / s) - erf((across - 0.5 - centre) / s))


@dataclass(frozen=True)
class _Box:
    """A cutout's extent on the detector, inclusive 0-based limits, and the trace centre at mid band."""

    xmin: int
    xmax: int
    ymin: int
    ymax: int


def _to_index(v: float) -> int:
    return int(np.floor(v + 0.5))


def _bounding_box(layout: WfssLayout, exp: WfssExposure, src: FieldSource, x0: float, y0: float,
                  order: int) -> _Box | None:
    """extract_2d's box of one order: trace ends at the box corners; None if off the detector."""
    lmin, lmax = layout.filter_cfg["wavelength_range_um"]
    h = src.half_box
    cx = np.array([x0 - h, x0 + h, x0 - h, x0 + h])
    cy = np.array([y0 - h, y0 - h, y0 + h, y0 + h])
    sol = exp.wcs.trace
    xs, ys = [], []
    for lam in (lmin, lmax):
        bx, by = sol.position(cx, cy, np.full(4, lam), order)
        xs.append(bx)
        ys.append(by)
    x, y = np.concatenate(xs), np.concatenate(ys)
    xmin, xmax, ymin, ymax = float(np.nanmin(x)), float(np.nanmax(x)), float(np.nanmin(y)), float(np.nanmax(y))
    if src.source_type == "POINT":
        half = float(layout.cfg["point_half_height"])
        cx_mid, cy_mid = sol.position(x0, y0, 0.5 * (lmin + lmax), order)
        if layout.dispersion_axis == 2:
            xmin, xmax = float(cx_mid) - half, float(cx_mid) + half
        else:
            ymin, ymax = float(cy_mid) - half, float(cy_mid) + half
    box = [_to_index(v) for v in (xmin, xmax, ymin, ymax)]
    ny, nx = exp.geom.shape
    disp, xdisp = ((box[0], box[1]), (box[2], box[3])) if layout.dispersion_axis == 1 else \
        ((box[2], box[3]), (box[0], box[1]))
    dsize, xsize = (nx, ny) if layout.dispersion_axis == 1 else (ny, nx)
    on = (disp[1] > 0) and (dsize - 1 - disp[0] > 0) and (xdisp[1] >= 0) and (xsize - 1 - xdisp[0] >= 0)
    if not on:
        return None
    xmin_i, xmax_i = max(0, min(box[0], nx)), max(0, min(box[1], nx))
    ymin_i, ymax_i = max(0, min(box[2], ny)), max(0, min(box[3], ny))
    if xmax_i - xmin_i <= 0 or ymax_i - ymin_i <= 0:
        return None
    return _Box(xmin_i, min(xmax_i, nx - 1), ymin_i, min(ymax_i, ny - 1))


def _source_patch(layout: WfssLayout, exp: WfssExposure, src: FieldSource, x0: float, y0: float, order: int,
                  box: _Box) -> tuple[np.ndarray, _Trace]:
    """Noiseless e-/s of one source and order over ``box`` (extended 3 sigma around the trace)."""
    rows = layout.dispersion_axis == 1
    along_range = (box.xmin, box.xmax) if rows else (box.ymin, box.ymax)
    tr = _trace(exp, x0, y0, order, along_range, rows)
    column_rate = 1.0e-6 * src.spectrum(tr.lam) * _rate_per_mjy(layout, tr.lam, tr.dlam, order)
    across = np.arange(box.ymin, box.ymax + 1) if rows else np.arange(box.xmin, box.xmax + 1)
    patch = _profile(across[:, None].astype(float), tr.centre, src.sigma_px) * column_rate[None, :]
    return (patch if rows else patch.T), tr


def _render_box(layout: WfssLayout, exp: WfssExposure, src: FieldSource, x0: float, y0: float,
                order: int, box: _Box, pad: float) -> tuple[_Box, np.ndarray]:
    """The source's light over its box widened by ``pad`` sigma across the dispersion (for the full frame)."""
    ny, nx = exp.geom.shape
    extra = int(np.ceil(pad * src.sigma_px)) + 3
    if layout.dispersion_axis == 1:
        wide = _Box(box.xmin, box.xmax, max(0, box.ymin - extra), min(ny - 1, box.ymax + extra))
    else:
        wide = _Box(max(0, box.xmin - extra), min(nx - 1, box.xmax + extra), box.ymin, box.ymax)
    patch, _ = _source_patch(layout, exp, src, x0, y0, order, wide)
    return wide, patch


def _photom(layout: WfssLayout, lam: np.ndarray, order: int) -> np.ndarray:
    """MJy/sr per e-/s at each pixel of a cutout (its own wavelength map)."""
    axis = 1 if layout.dispersion_axis == 1 else 0
    dlam = np.abs(np.gradient(lam, axis=axis)) if lam.shape[axis] > 1 else np.full_like(lam, 1e-3)
    return 1.0 / (_rate_per_mjy(layout, lam, dlam, order) * layout.pixel_area_sr)


def _snr(own: np.ndarray, var: np.ndarray, axis: int) -> float:
    """Median over dispersion elements of the box-extraction S/N of the own light."""
    signal = np.nansum(own, axis=axis)
    noise = np.sqrt(np.nansum(var, axis=axis))
    ok = (signal > 0) & (noise > 0)
    return float(np.median(signal[ok] / noise[ok])) if ok.any() else 0.0


def render_exposure(layout: WfssLayout, exp: WfssExposure, rng: np.random.Generator) -> RenderedExposure:
    """Render one exposure and cut it into the cutouts of every source order on the detector."""
    cfg = layout.cfg
    ny, nx = exp.geom.shape
    t = float(cfg["exposure_time_s"])
    model = np.zeros((ny, nx))
    placed = []
    mine = [src for src in layout.sources if src.module == exp.module]
    xs, ys = exp.wcs.det2sky.inverse(np.array([s.ra for s in mine]), np.array([s.dec for s in mine]))
    for src, x0, y0 in zip(mine, np.atleast_1d(xs).tolist(), np.atleast_1d(ys).tolist(), strict=True):
        for order in layout.orders:
            box = _bounding_box(layout, exp, src, x0, y0, order)
            if box is None:
                continue
            wide, patch = _render_box(layout, exp, src, x0, y0, order, box, 6.0)
            model[wide.ymin:wide.ymax + 1, wide.xmin:wide.xmax + 1] += patch
            placed.append((src, order, x0, y0, box))
    sky = float(cfg["sky_e_per_s"])
    rate = model + sky
    var_p = rate / t
    var_r = np.full_like(rate, (float(cfg["read_noise_e"]) / t) ** 2)
    var_f = (float(cfg["flat_fraction"]) * rate) ** 2
    sci = model + rng.standard_normal(rate.shape) * np.sqrt(var_p + var_r + var_f)
    dq = np.zeros((ny, nx), dtype=np.uint32)
    n_hot, n_dead = int(cfg["hot_pixels"]), int(cfg["dead_pixels"])
    bad = rng.choice(ny * nx, size=n_hot + n_dead, replace=False)
    dq.reshape(-1)[bad[:n_hot]] = dqflags.DO_NOT_USE | dqflags.HOT
    dq.reshape(-1)[bad[n_hot:]] = dqflags.DO_NOT_USE | dqflags.DEAD
    out = RenderedExposure(exp)
    for src, order, x0, y0, box in sorted(placed, key=lambda p: (p[0].abmag, p[0].source_id, p[1])):
        out.cutouts.append(_cutout(layout, exp, (src, order, x0, y0, box), (sci, var_p, var_r, var_f, dq, model)))
    return out


def _cutout(layout: WfssLayout, exp: WfssExposure, placed: tuple[Any, ...], frames: tuple[Any, ...]) -> Cutout2D:
    """Cut one source order out of the frames and calibrate it with its own wavelength map."""
    src, order, x0, y0, box = placed
    sci, var_p, var_r, var_f, dq, model = frames
    sl = (slice(box.ymin, box.ymax + 1), slice(box.xmin, box.xmax + 1))
    y, x = np.mgrid[sl]
    lam = exp.wcs.trace.wavelength(x.astype(float), y.astype(float), x0, y0, order)
    conv = _photom(layout, lam, order)
    cut_dq = dq[sl].copy()
    bad = (cut_dq & dqflags.DO_NOT_USE) != 0
    planes = [np.where(bad, np.nan, a).astype(np.float32) for a in
              (sci[sl] * conv, var_p[sl] * conv**2, var_r[sl] * conv**2, var_f[sl] * conv**2)]
    own, tr = _source_patch(layout, exp, src, x0, y0, order, box)
    axis = 0 if layout.dispersion_axis == 1 else 1
    total = float(np.sum(model[sl]))
    mine = float(np.sum(own))
    mid = 0.5 * sum(layout.filter_cfg["wavelength_range_um"])
    centre = float(np.interp(mid, tr.lam, tr.centre)) if tr.lam[0] < tr.lam[-1] else \
        float(np.interp(mid, tr.lam[::-1], tr.centre[::-1]))
    offset = centre - (box.ymin if layout.dispersion_axis == 1 else box.xmin)
    return Cutout2D(
        source=src, order=order, xmin=box.xmin, ymin=box.ymin, centre=(x0, y0),
        sci=planes[0], err=np.sqrt(planes[1] + planes[2] + planes[3]), dq=cut_dq,
        var_poisson=planes[1], var_rnoise=planes[2], var_flat=planes[3], wavelength=lam.astype(np.float32),
        trace_offset=offset, contamination=(total - mine) / mine if mine > 0 else np.inf,
        snr=_snr(own, var_p[sl] + var_r[sl] + var_f[sl], axis),
    )
