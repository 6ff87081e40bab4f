"""1-D extraction of an IFU cube (ALGORITHMS.md §12.6; jwst 3.0.0 ``extract_1d/ifu.py``).

A point source is summed plane by plane in a circle whose radius (and
background annulus) the EXTRACT1D IFU reference file gives against wavelength;
an extended source over the whole plane.  Everything the reference computes
with ``photutils.aperture_photometry`` is reproduced with the aperture weights
of :func:`spec3c._core.aperture.circle_weights` and the same sums:

* the covered area ``A`` of an aperture is the sum of ``min(WMAP, 1)`` under its
  weights, spaxels with ``WMAP == 0`` masked (``A == 0``: DQ DO_NOT_USE and the
  geometric area instead);
* the flux ``F`` and variance (``ERR**2``, the cube has no VAR_* planes) are the
  weighted sums over the unmasked spaxels;
* the annulus background ``B``: sigma-clipped statistics (``bkg_sigma_clip``, 5
  iterations) of every covered spaxel of the plane give the range
  ``mean +- k sigma``; spaxels outside it are left out of the annulus sum, and
  ``F -= B A_ap / A_ann``, the variance ``+= V_ann (A_ap / A_ann)**2``;
* an extended source reports the clipped sum over the plane as BACKGROUND
  (not subtracted);
* once a plane's radii make no valid annulus (``inner <= 0``, ``outer <= 0`` or
  ``inner >= outer``), background subtraction stays off for the following
  planes, as in the reference.

:func:`spectrum_columns` turns the per-plane sums into the EXTRACT1D columns
(surface brightness ``F / A``, flux ``F * PIXAR_SR * 1e6`` Jy, the error
scaled by ``ifu_covar_scale``).  No datamodels here: the step
(:mod:`spec3c.steps.extract_1d_ifu`) reads the cube and writes the result.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import dqflags
from .._core.aperture import METHODS, ApertureWeights, circle_weights
from .._core.clipstats import clipped_range_f32
from ..errors import InputError
from .cube_wcs import CubeWcs
from .interp import linear_extrapolated

__all__ = [
    "CubeExtraction",
    "IfuApertureFile",
    "PlaneSums",
    "PointAperture",
    "clipped_range",
    "clipped_stats",
    "nearest_spaxel",
    "point_aperture",
    "read_ifu_apertures",
    "spectrum_columns",
]

#: sigma-clipping iterations of the background statistics (astropy's ``sigma_clipped_stats`` default)
CLIP_ITERATIONS = 5


@dataclass(frozen=True)
class IfuApertureFile:
    """An EXTRACT1D IFU reference file (``Extract1dIFUModel``): radii in arcsec against wavelength.

    The arrays keep the file's dtype (the reference interpolates them as they are).
    """

    path: str
    wavelength: np.ndarray
    radius: np.ndarray
    inner_bkg: np.ndarray
    outer_bkg: np.ndarray
    subtract_background: bool
    method: str
    subpixels: int


def read_ifu_apertures(path: str | Path) -> IfuApertureFile:
    """Read an EXTRACT1D IFU (ASDF) reference file; an :class:`InputError` naming the file if it is not one."""
    from stdatamodels.jwst import datamodels as dm

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with dm.Extract1dIFUModel(str(path)) as model:
                data = model.data
                wl, radius, inner, outer = (np.array(getattr(data, name)).reshape(-1)
                                            for name in ("wavelength", "radius", "inner_bkg", "outer_bkg"))
                subtract, method, subpixels = model.meta.subtract_background, model.meta.method, model.meta.subpixels
    except Exception as exc:  # noqa: BLE001 - asdf/stdatamodels raise many kinds for a wrong file
        raise InputError(path, f"not an EXTRACT1D IFU reference file (Extract1dIFUModel, ASDF): {exc}") from exc
    if len({wl.size, radius.size, inner.size, outer.size}) != 1 or wl.size < 2:
        raise InputError(path, "wavelength, radius, inner_bkg and outer_bkg must be vectors of one length >= 2")
    if method not in METHODS:
        raise InputError(path, f"method {method!r} is not one of {', '.join(METHODS)}")
    return IfuApertureFile(str(path), wl, radius, inner, outer, subtract_background=bool(subtract),
                           method=str(method), subpixels=int(subpixels if subpixels is not None else 5))


@dataclass(frozen=True)
class PointAperture:
    """A point source's apertures: centre (0-based spaxel), and per plane the radius and annulus
    radii in spaxels; ``subtract_background`` as resolved (file or parameter)."""

    x: float
    y: float
    radius: np.ndarray
    inner: np.ndarray
    outer: np.ndarray
    subtract_background: bool
    method: str = "exact"
    subpixels: int = 5


def point_aperture(ref: IfuApertureFile, wavelength: np.ndarray, centre: tuple[float, float], scale_arcsec: float,
                   subtract_background: bool | None = None, rscale: float | None = None) -> PointAperture:
    """The per-plane apertures of a point source from the reference file's radii (arcsec).

    ``rscale`` (MIRI MRS ``ifu_rscale``) multiplies the radius by ``rscale / 2``;
    ``subtract_background`` None keeps the file's choice.
    """
    radius = ref.radius if rscale is None else ref.radius * rscale / 2.0
    lam = np.asarray(wavelength, dtype=np.float64)
    r, inner, outer = (linear_extrapolated(ref.wavelength, values, lam) / scale_arcsec
                       for values in (radius, ref.inner_bkg, ref.outer_bkg))
    subtract = ref.subtract_background if subtract_background is None else bool(subtract_background)
    return PointAperture(float(centre[0]), float(centre[1]), r, inner, outer, subtract_background=subtract,
                         method=ref.method, subpixels=ref.subpixels)


def clipped_stats(values: np.ndarray, sigma: float = 3.0, maxiters: int = CLIP_ITERATIONS) -> tuple[Any, Any, Any]:
    """(mean, median, std) of ``values`` after iterative clipping at ``sigma`` std about the median
    (astropy ``sigma_clipped_stats(values, sigma, maxiters)``, ``std`` with ddof 0), in the
    values' own dtype as the reference computes them.  Non-finite values are left out first,
    so numpy's plain reductions give what astropy's NaN-aware ones give (NaN: no values).

    The values kept are always those of the sorted finite values between two indices (each
    pass keeps ``[median - k std, median + k std]`` of the previous ones), so the medians are
    read from one sorted copy; means and stds reduce the kept values in their own order, the
    same sums as numpy on the unsorted values."""
    kept = values[np.isfinite(values)]
    if kept.size == 0:
        return (float("nan"),) * 3
    ordered = np.sort(kept)
    first, stop = 0, ordered.size  # kept == ordered[first:stop], as a set
    for _ in range(maxiters):
        centre, spread = _sorted_median(ordered[first:stop]), np.std(kept)
        low, high = centre - spread * sigma, centre + spread * sigma
        inside = (kept >= low) & (kept <= high)
        changed = kept.size - int(np.count_nonzero(inside))
        if changed == 0:
            break
        kept = kept[inside]
        first = max(first, int(np.searchsorted(ordered, low, side="left")))
        stop = min(stop, int(np.searchsorted(ordered, high, side="right")))
    if kept.size == 0:
        return (float("nan"),) * 3
    return np.mean(kept), _sorted_median(ordered[first:stop]), np.std(kept)


def _sorted_median(ordered: np.ndarray) -> Any:
    """``np.median`` of sorted values (the middle one, or the mean of the middle two, in their dtype)."""
    mid = ordered.size // 2
    return np.mean(ordered[mid - 1:mid + 1]) if ordered.size % 2 == 0 else np.mean(ordered[mid:mid + 1])


def clipped_range(values: np.ndarray, sigma: float, maxiters: int = CLIP_ITERATIONS) -> tuple[float, float]:
    """``mean -+ sigma * std`` of the clipped ``values`` (:func:`clipped_stats`): the background
    spaxels the reference keeps.  Cube planes (float32) are clipped by a compiled kernel with the
    same float32 arithmetic (:func:`spec3c._core.clipstats.clipped_range_f32`, the same bits)."""
    if np.asarray(values).dtype == np.float32:
        return clipped_range_f32(values, sigma, maxiters)  # type: ignore[return-value]
    mean, _, std = clipped_stats(values, sigma, maxiters)
    return mean - sigma * std, mean + sigma * std


def _masked_sum(image: np.ndarray, ap: ApertureWeights | None, mask: np.ndarray) -> float:
    """Weighted sum of ``image`` under the aperture over unmasked pixels (NaN: no overlap)."""
    if ap is None:
        return float("nan")
    weights = ap.weights
    good = (weights > 0) & ~ap.window(mask)
    return float((ap.window(image) * weights)[good].sum())


@dataclass
class PlaneSums:
    """Per-plane sums of an extraction, (nz,) each: the (background-subtracted) flux sum and its
    variance, the background sum and variance, the covered areas of the aperture and of the
    background region, and the DQ (DO_NOT_USE where the aperture covers no data)."""

    flux: np.ndarray
    var: np.ndarray
    background: np.ndarray
    bkg_var: np.ndarray
    npixels: np.ndarray
    npixels_bkg: np.ndarray
    dq: np.ndarray

    @classmethod
    def empty(cls, nz: int) -> PlaneSums:
        z = np.zeros(nz)
        return cls(z.copy(), z.copy(), z.copy(), z.copy(), np.ones(nz), np.ones(nz), np.zeros(nz, np.uint32))


@dataclass
class CubeExtraction:
    """Accumulator of one cube's extraction: planes are added in wavelength order (a tile at a time),
    the sums read at the end.

    ``point`` None: an extended source (the whole plane, background reported, not subtracted).
    """

    nz: int
    shape: tuple[int, int]
    sigma_clip: float
    point: PointAperture | None = None
    sums: PlaneSums = field(init=False)
    _background_on: bool = field(init=False)

    def __post_init__(self) -> None:
        self.sums = PlaneSums.empty(self.nz)
        self._background_on = self.point is not None and self.point.subtract_background

    def add(self, p0: int, sci: np.ndarray, err: np.ndarray, wmap: np.ndarray) -> None:
        """Planes ``p0 .. p0 + len(sci)`` of the cube: SCI, ERR (float32) and WMAP ``(n, ny, nx)``."""
        for k in range(sci.shape[0]):
            cover = np.where(wmap[k] > 1, np.float32(1), wmap[k])
            with np.errstate(over="ignore"):
                var = err[k] * err[k]  # float32, as the reference squares ERR
            if self.point is None:
                self._extended(p0 + k, sci[k], var, cover)
            else:
                self._point(p0 + k, sci[k], var, cover)

    def _point(self, k: int, sci: np.ndarray, var: np.ndarray, cover: np.ndarray) -> None:
        p, s = self.point, self.sums
        assert p is not None
        radius, inner, outer = float(p.radius[k]), float(p.inner[k]), float(p.outer[k])
        if inner <= 0.0 or outer <= 0.0 or inner >= outer:
            self._background_on = False
        masked = cover == 0
        ap = circle_weights(self.shape, p.x, p.y, radius, method=p.method, subpixels=p.subpixels)
        area = _masked_sum(cover, ap, masked)
        if area == 0:
            s.dq[k] = dqflags.DO_NOT_USE
            area = ap.area if ap is not None else area
        annulus, subtract, norm = None, self._background_on, 1.0
        if self._background_on:
            annulus = circle_weights(self.shape, p.x, p.y, outer, inner=inner, method=p.method, subpixels=p.subpixels)
            ring = _masked_sum(cover, annulus, masked)
            if ring == 0 and annulus is not None:
                ring = annulus.area
            if ring > 0.0:
                norm = area / ring
            else:
                subtract = False
            s.npixels_bkg[k] = ring
        else:
            s.npixels_bkg[k] = 0.0
        s.npixels[k] = area
        flux, fvar = _masked_sum(sci, ap, masked), _masked_sum(var, ap, masked)
        if subtract:
            stats = sci[cover == 1]
            clip = masked
            if stats.size:
                low, high = clipped_range(stats, self.sigma_clip)
                with np.errstate(invalid="ignore"):
                    clip = (sci < low) | (sci > high) | masked
            s.background[k] = _masked_sum(sci, annulus, clip)
            flux = flux - s.background[k] * norm
            s.bkg_var[k] = _masked_sum(var, annulus, masked)
            fvar += s.bkg_var[k] * norm * norm
        s.flux[k], s.var[k] = flux, fvar

    def _extended(self, k: int, sci: np.ndarray, var: np.ndarray, cover: np.ndarray) -> None:
        s = self.sums
        good = cover != 0
        area = float(cover.astype(np.float64)[good].sum())
        if area == 0:
            s.dq[k] = dqflags.DO_NOT_USE
            area = float(self.shape[0] * self.shape[1])
        s.npixels[k] = area
        s.npixels_bkg[k] = 0.0
        s.flux[k] = float(sci.astype(np.float64)[good].sum())
        s.var[k] = float(var.astype(np.float64)[good].sum())
        stats = sci[cover == 1]
        if stats.size:
            low, high = clipped_range(stats, self.sigma_clip)
            with np.errstate(invalid="ignore"):
                kept = good & ~((sci < low) | (sci > high))
            s.background[k] = float(sci.astype(np.float64)[kept].sum())
            s.npixels_bkg[k] = float(cover.astype(np.float64)[kept].sum())
            s.bkg_var[k] = float(var.astype(np.float64)[kept].sum())


def spectrum_columns(sums: PlaneSums, wavelength: np.ndarray, pixar_sr: float, covar_scale: float = 1.0,
                     residual_fringe_columns: bool = False) -> dict[str, np.ndarray]:
    """The EXTRACT1D columns of an IFU extraction (MJy/sr cube -> Jy, MJy/sr).

    The cube has no VAR_* planes: the variance of ERR goes into the error columns and the
    VAR columns are 0, as the reference writes them.  ``covar_scale`` multiplies every error
    (``ifu_covar_scale``).  Planes of NaN wavelength at either end are dropped and interior
    ones flagged DO_NOT_USE.  ``residual_fringe_columns``: add RF_FLUX, RF_SURF_BRIGHT and
    RF_BACKGROUND (MIRI MRS), NaN (no residual fringe fit).
    """
    lam = np.asarray(wavelength, dtype=np.float64)
    dq = sums.dq.copy()
    bad = np.isnan(lam)
    keep = slice(None)
    if bad.all():
        dq |= np.uint32(dqflags.DO_NOT_USE)
        keep = slice(0)
    elif bad.any():
        dq[bad] |= np.uint32(dqflags.DO_NOT_USE)
        finite = np.flatnonzero(~bad)
        keep = slice(int(finite[0]), int(finite[-1]) + 1)
    n = np.where(sums.npixels > 0.0, sums.npixels, 1.0)[keep]
    nb = np.where(sums.npixels_bkg > 0.0, sums.npixels_bkg, 1.0)[keep]
    flux_sum, var, bsum, bvar = sums.flux[keep], sums.var[keep], sums.background[keep], sums.bkg_var[keep]
    surf_bright = flux_sum / n
    sb_var = var / n / n
    background = bsum / nb
    bkg_var = bvar / nb / nb
    flux = flux_sum * pixar_sr * 1.0e6
    flux_var = var * (pixar_sr**2 * 1.0e12)
    zeros = np.zeros(flux.size)
    error, sb_error, bkg_error = np.sqrt(flux_var + zeros + zeros), np.sqrt(sb_var + zeros + zeros), \
        np.sqrt(bkg_var + zeros + zeros)
    if covar_scale != 1.0:
        error, sb_error, bkg_error = error * covar_scale, sb_error * covar_scale, bkg_error * covar_scale
    cols = {
        "WAVELENGTH": lam[keep], "FLUX": flux, "FLUX_ERROR": error,
        "FLUX_VAR_POISSON": zeros, "FLUX_VAR_RNOISE": zeros, "FLUX_VAR_FLAT": zeros,
        "SURF_BRIGHT": surf_bright, "SB_ERROR": sb_error,
        "SB_VAR_POISSON": zeros, "SB_VAR_RNOISE": zeros, "SB_VAR_FLAT": zeros,
        "DQ": dq[keep], "BACKGROUND": background, "BKGD_ERROR": bkg_error,
        "BKGD_VAR_POISSON": zeros, "BKGD_VAR_RNOISE": zeros, "BKGD_VAR_FLAT": zeros,
        "NPIXELS": sums.npixels[keep].copy(),
    }
    if residual_fringe_columns:
        cols.update({name: np.full(flux.size, np.nan) for name in ("RF_FLUX", "RF_SURF_BRIGHT", "RF_BACKGROUND")})
    return {k: np.array(v, copy=True) for k, v in cols.items()}


def nearest_spaxel(wcs: CubeWcs, shape: tuple[int, int], ra: float | None, dec: float | None) -> tuple[int, int] | None:
    """``(x, y)`` of the spaxel whose centre is nearest to ``(ra, dec)`` (the reference's
    ``locn_from_wcs``); None when the position is unknown or the spaxel is on the cube's edge."""
    if ra is None or dec is None or not (np.isfinite(ra) and np.isfinite(dec)):
        return None
    ny, nx = shape
    yy, xx = np.indices((ny, nx))
    sra, sdec = wcs.pixel_to_world(xx, yy)
    cart = _unit_vectors(sra, sdec)
    target = _unit_vectors(np.asarray(ra, dtype=np.float64), np.asarray(dec, dtype=np.float64))
    dist2 = ((cart - target) ** 2).sum(axis=-1)
    j, i = divmod(int(np.argmin(dist2.ravel())), nx)
    if i <= 0 or j <= 0 or i >= nx - 1 or j >= ny - 1:
        return None
    return i, j


def _unit_vectors(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    d, a = np.radians(dec), np.radians(ra)
    return np.stack([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)], axis=-1)
