"""The brightest point source of an image by the DAOFIND method (Stetson 1987), as jwst 3.0.0's IFU
extract_1d finds it with ``photutils.detection.DAOStarFinder(fwhm=3.0, threshold=...)`` for
``ifu_autocen`` (ALGORITHMS.md §12.6).

1. The image is convolved (zero outside) with the DAOFIND kernel: a Gaussian of the FWHM
   on the pixels within 1.5 sigma (at least 2 pixels) of the centre, less its mean over
   those pixels, divided by ``sum(g^2) - sum(g)^2 / n``; the threshold is scaled by
   ``1 / sqrt(sum(g^2) - sum(g)^2 / n)``.
2. Peaks: pixels of the convolved image above the threshold that are the maximum within
   ``2.5 FWHM`` (a circular footprint, zero outside the image).
3. Each peak's ``(kernel-size)`` cutouts (zero outside the image) give its sharpness,
   its roundness from the symmetry of the convolved cutout, and 1-D Gaussian fits to the
   triangle-weighted marginal sums along x and y: the centroid shift and heights
   (roundness2).  Peaks with non-finite values, sharpness outside [0.2, 1] or a roundness
   outside [-1, 1] are dropped.
4. The brightest (largest sum over the cutout) is the source.

Everything is numpy/scipy on one small image (the cube's median over wavelength).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["DaoKernel", "Star", "brightest_star"]

_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


@dataclass(frozen=True)
class DaoKernel:
    """The DAOFIND kernel of a round Gaussian (``sigma_radius`` 1.5).

    ``gaussian`` is the Gaussian on the whole grid (1 at the centre), ``mask`` the pixels
    used (int), ``data`` the zero-sum normalised kernel and ``rel_err`` the threshold scale.
    """

    sigma: float
    gaussian: np.ndarray
    mask: np.ndarray
    data: np.ndarray
    rel_err: float

    @classmethod
    def make(cls, fwhm: float, sigma_radius: float = 1.5) -> DaoKernel:
        sigma = fwhm * _FWHM_TO_SIGMA
        a = 1.0 / (2.0 * sigma**2)  # round: the ellipse's a = c, b = 0
        f = sigma_radius**2 / 2.0
        half = int(max(2, math.sqrt(a * f / (a * a))))
        n = 2 * half + 1
        yy, xx = np.mgrid[0:n, 0:n]
        r2 = a * (xx - half) ** 2 + a * (yy - half) ** 2
        mask = np.where((r2 <= f) | (np.sqrt((xx - half) ** 2 + (yy - half) ** 2) <= 2.0), 1, 0).astype(int)
        gaussian = np.exp(-r2)
        g = gaussian * mask
        npix = mask.sum()
        denom = (g**2).sum() - g.sum() ** 2 / npix
        data = ((g - g.sum() / npix) / denom) * mask
        return cls(sigma, gaussian, mask, data, float(1.0 / np.sqrt(denom)))


@dataclass(frozen=True)
class Star:
    """A detected source: centroid (0-based pixels), the sum over its cutout, sharpness, roundness."""

    x: float
    y: float
    flux: float
    sharpness: float
    roundness1: float
    roundness2: float


def _cutouts(image: np.ndarray, x: np.ndarray, y: np.ndarray, size: int) -> np.ndarray:
    """``(n, size, size)`` cutouts centred on integer positions, zero outside the image."""
    half = size // 2
    offsets = np.arange(size) - half
    yi = y[:, None, None] + offsets[None, :, None]
    xi = x[:, None, None] + offsets[None, None, :]
    inside = (yi >= 0) & (yi < image.shape[0]) & (xi >= 0) & (xi < image.shape[1])
    values = image[np.clip(yi, 0, image.shape[0] - 1), np.clip(xi, 0, image.shape[1] - 1)]
    return np.where(inside, values, 0.0)


def _peaks(convolved: np.ndarray, threshold: float, separation: float) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the pixels above ``threshold`` that are the maximum within ``separation`` (row-major order)."""
    if np.all(convolved == convolved.flat[0]):
        return np.zeros(0, int), np.zeros(0, int)
    idx = np.arange(-separation, separation + 1)
    xx, yy = np.meshgrid(idx, idx)
    footprint = (xx**2 + yy**2) <= separation**2
    from scipy import ndimage  # only ifu_autocen finds stars: not an import of every spec3c start

    local_max = ndimage.maximum_filter(convolved, footprint=footprint, mode="constant", cval=0.0)
    good = (convolved == local_max) & (convolved > threshold)
    y, x = good.nonzero()
    return x, y


def _marginal_fit(data: np.ndarray, kernel: DaoKernel, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Shift and height of 1-D Gaussians fitted to the triangle-weighted marginal sums of the
    cutouts ``(n, k, k)`` along y (``axis`` 0) or x (1)."""
    k = data.shape[1]
    centre = (k - 1) // 2
    ramp = centre - np.abs(np.arange(k) - centre) + 1
    xwt, ywt = np.meshgrid(ramp, ramp)
    if axis == 0:
        wt, wts, offsets = np.transpose(ywt)[0], xwt, np.arange(k) - centre
    else:
        wt, wts, offsets = xwt[0], ywt, centre - np.arange(k)
    dx = centre - np.arange(k)
    kern_1d = np.sum(kernel.gaussian * wts, axis=1 - axis)
    wt_sum = np.sum(wt)
    kern_sum = np.sum(kern_1d * wt)
    kern2_sum = np.sum(kern_1d**2 * wt)
    dkern = kern_1d * dx
    dkern_sum = np.sum(dkern * wt)
    dkern2_sum = np.sum(dkern**2 * wt)
    kern_dkern_sum = np.sum(kern_1d * dkern * wt)
    data_1d = np.sum(data * wts, axis=2 - axis)
    data_sum = np.sum(data_1d * wt, axis=1)
    data_kern_sum = np.sum(data_1d * kern_1d * wt, axis=1)
    data_dkern_sum = np.sum(data_1d * dkern * wt, axis=1)
    data_dx_sum = np.sum(data_1d * offsets * wt, axis=1)
    numer = data_kern_sum - (data_sum * kern_sum) / wt_sum
    denom = kern2_sum - (kern_sum**2 / wt_sum)
    rejected = (numer <= 0.0) | (denom <= 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        height = numer / denom
        shift = (kern_dkern_sum - (data_dkern_sum - dkern_sum * data_sum)) / (height * dkern2_sum / kernel.sigma**2)
        moment = data_dx_sum / data_sum
    half = k / 2.0
    far = np.abs(shift) > half
    empty = data_sum == 0.0
    shift[far & empty] = 0.0
    shift[far & ~empty] = moment[far & ~empty]
    shift[np.abs(shift) > half] = 0.0
    height[rejected] = np.nan
    shift[rejected] = np.nan
    return shift, height


def _roundness1(conv: np.ndarray) -> np.ndarray:
    c = (conv.shape[1] - 1) // 2
    conv = conv.copy()
    conv[:, c, c] = 0.0
    q1 = conv[:, 0:c + 1, c + 1:].sum(axis=(1, 2))
    q2 = conv[:, 0:c, 0:c + 1].sum(axis=(1, 2))
    q3 = conv[:, c:, 0:c].sum(axis=(1, 2))
    q4 = conv[:, c + 1:, c:].sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return 2.0 * (-q1 + q2 - q3 + q4) / np.abs(conv).sum(axis=(1, 2))


def brightest_star(image: np.ndarray, threshold: float, fwhm: float = 3.0) -> Star | None:
    """The brightest DAOFIND source of ``image`` (background-subtracted, no NaN), or None.

    ``threshold`` is in image units (scaled by the kernel's ``rel_err`` as DAOFIND does);
    peaks must be ``2.5 fwhm`` apart.
    """
    from scipy import ndimage

    kernel = DaoKernel.make(fwhm)
    convolved = ndimage.convolve(image, kernel.data, mode="constant", cval=0.0)
    threshold_eff = float(threshold) * kernel.rel_err  # float64, as the reference scales it
    x, y = _peaks(convolved, threshold_eff, 2.5 * fwhm)
    if x.size == 0:
        return None
    size = kernel.data.shape[0]
    c = (size - 1) // 2
    data, conv = _cutouts(image, x, y, size), _cutouts(convolved, x, y, size)
    peak, conv_peak = data[:, c, c], conv[:, c, c]
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpness = (peak - (np.sum(data * kernel.mask, axis=(1, 2)) - peak) / (kernel.mask.sum() - 1)) / conv_peak
    round1 = _roundness1(conv)
    dx, hx = _marginal_fit(data, kernel, 1)
    dy, hy = _marginal_fit(data, kernel, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        round2 = 2.0 * (hx - hy) / (hx + hy)
    flux = np.sum(data, axis=(1, 2))
    xc, yc = x + dx, y + dy
    values = [xc, yc, hx, hy, sharpness, round1, round2, peak]
    if threshold_eff != 0:  # the reference checks the fluxes only with a threshold
        values.append(flux)
    keep = np.logical_and.reduce([np.isfinite(v) for v in values])
    keep &= (sharpness >= 0.2) & (sharpness <= 1.0)
    keep &= (round1 >= -1.0) & (round1 <= 1.0) & (round2 >= -1.0) & (round2 <= 1.0)
    if not keep.any():
        return None
    best = np.flatnonzero(keep)[int(np.argmax(flux[keep]))]
    return Star(float(xc[best]), float(yc[best]), float(flux[best]), float(sharpness[best]), float(round1[best]),
                float(round2[best]))
