"""Spectral resolution kernels of the ATOCA model (SPECKERNEL, jwst ``WebbKernel``).

The SPECKERNEL file tabulates, for a set of central wavelengths, the kernel
against oversampled detector pixels.  :class:`ResolutionKernel` turns it into a
function of (wavelength, central wavelength) through the order's trace
wavelengths; :func:`convolution_matrix` projects any kernel on a wavelength
grid as a sparse matrix (trapezoid integration, rows normalised to 1).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.polynomial import Polynomial
from scipy.interpolate import RectBivariateSpline
from scipy.sparse import csr_array

__all__ = ["ResolutionKernel", "convolution_matrix"]


class ResolutionKernel:
    """Kernel value at ``wave`` for a kernel centred on ``wave_c``.

    Parameters
    ----------
    wave_kernels, kernels : ndarray, (n_sub, n_kernels)
        SPECKERNEL ``wavelengths`` and ``kernels`` (row 0 of ``wave_kernels``
        holds each kernel's central wavelength).
    wave_trace : ndarray, (nx,)
        The order's central wavelength per detector column (0 = none).
    n_pix : int
        Pixels spanned by the kernel, ``2 * halfwidth + 1``.
    """

    def __init__(self, wave_kernels: np.ndarray, kernels: np.ndarray,
                 wave_trace: np.ndarray, n_pix: int) -> None:
        self.n_pix = n_pix
        trace = np.asarray(wave_trace, dtype=np.float64)
        valid = trace != 0
        if np.diff(trace[valid]).mean() < 0:
            trace, valid = trace[::-1], valid[::-1]
        self.pixels = np.linspace(-(n_pix // 2), n_pix // 2, wave_kernels.shape[0])
        centres = np.asarray(wave_kernels[0, :], dtype=np.float64)
        on_trace = trace[valid & (trace > 0)]
        i_min = int(np.searchsorted(centres, on_trace.min()))
        i_max = int(np.searchsorted(centres, on_trace.max())) - 1
        bbox = [None, None, centres[max(i_min - 1, 0)], centres[min(i_max + 1, len(centres) - 1)]]
        self.kernels = np.array(kernels[:, i_min:i_max + 1], dtype=np.float64)
        self.min_value = float(np.min(self.kernels[self.kernels > 0]))
        self.wave_center, self.poly = self._pixel_solutions(centres[i_min:i_max + 1], trace, valid)
        self._spline = RectBivariateSpline(self.pixels, self.wave_center, self.kernels, bbox=bbox)

    def _pixel_solutions(self, centres: np.ndarray, trace: np.ndarray,
                         valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest trace wavelength and a local linear wavelength(pixel) fit per kernel."""
        offsets = np.arange(-(self.n_pix // 2), self.n_pix // 2 + 1)
        distance = np.where(valid, 0.0, np.inf)
        wave_center = np.empty_like(centres)
        poly = np.empty((centres.size, 2))
        for index, centre in enumerate(centres):
            column = int(np.argmin(np.abs(trace - centre) + distance))
            wave_center[index] = trace[column]
            cols = column + offsets
            use = (cols >= 0) & (cols < trace.size)
            use[use] &= valid[cols[use]]
            fit = Polynomial.fit(offsets[use], trace[cols[use]], 1).convert()
            poly[index] = fit.coef[::-1]
        return wave_center, poly

    def __call__(self, wave: np.ndarray, wave_c: np.ndarray) -> np.ndarray:
        centres, poly = self.wave_center, self.poly
        i = np.clip(np.searchsorted(centres, wave_c) - 1, 0, len(centres) - 2)
        step = centres[i + 1] - centres[i]
        a_c = (centres[i + 1] - wave_c) / step
        b_c = (wave_c - centres[i]) / step
        slope = a_c * poly[i, 0] + b_c * poly[i + 1, 0]
        pix = (wave - (a_c * poly[i, 1] + b_c * poly[i + 1, 1])) / slope
        values = np.zeros(np.shape(pix))
        inside = ~(np.abs(pix) > self.n_pix // 2)  # the kernel is 0 beyond its pixels: not evaluated there
        wave_c = np.broadcast_to(wave_c, values.shape)
        values[inside] = np.clip(self._spline(pix[inside], wave_c[inside], grid=False), self.min_value, None)
        return values


#: kernel offsets evaluated per call while widening a kernel (each value is computed alone: the
#: batch size changes the calls, not the values)
_OFFSET_BATCH = 32


def _wings(fct: Callable, grid: np.ndarray, offsets: np.ndarray, i_a: int, i_b: int) -> np.ndarray:
    """Kernel at grid[c + offset] for each offset and centre grid[c], c in [i_a, i_b); 0 off the grid.
    Shape (offsets, centres)."""
    centres = np.arange(i_a, i_b)
    nodes = centres[None, :] + offsets[:, None]
    inside = (nodes >= 0) & (nodes < grid.size)
    out = np.zeros(nodes.shape)
    if inside.any():
        out[inside] = fct(grid[nodes[inside]], grid[np.broadcast_to(centres, nodes.shape)[inside]])
    return out


def _compact_kernel(fct: Callable, grid: np.ndarray, i_a: int, i_b: int,
                    thresh: float) -> np.ndarray:
    """Kernel rows at offsets -h..h, widened until both wings fall below ``thresh``
    (the offsets are evaluated :data:`_OFFSET_BATCH` at a time)."""
    centre = fct(grid, grid)[i_a:i_b]
    lefts: list[np.ndarray] = []
    rights: list[np.ndarray] = []
    half = 0
    while True:
        offsets = np.arange(half + 1, half + 1 + _OFFSET_BATCH)
        left = _wings(fct, grid, -offsets, i_a, i_b)
        right = _wings(fct, grid, offsets, i_a, i_b)
        below = (left < thresh).all(axis=1) & (right < thresh).all(axis=1)
        keep = int(np.argmax(below)) if below.any() else offsets.size  # offsets before the first below
        left, right = left[:keep], right[:keep]
        left[left < thresh] = 0.0
        right[right < thresh] = 0.0
        lefts.append(left)
        rights.append(right)
        if keep < offsets.size:
            break
        half += offsets.size
    left_rows = np.concatenate(lefts)[::-1]  # the farthest offset first
    return np.vstack([left_rows, centre[None, :], np.concatenate(rights)])


def _trapezoid_weights(grid: np.ndarray, n_rows: int, i_a: int, i_b: int) -> np.ndarray:
    """Trapezoid weight of each kernel node, halves cut at both ends of the kernel."""
    half, n = n_rows // 2, i_b - i_a
    # half-interval r of centre c is padded[i_a + c + r] (intervals off the grid 0): a sliding window
    padded = np.zeros(half + grid.size - 1 + n_rows + n)
    padded[half:half + grid.size - 1] = 0.5 * np.diff(grid)
    interval = sliding_window_view(padded, n)[i_a:i_a + n_rows - 1]
    weights = np.zeros((n_rows, n))
    weights[:-1] += interval
    weights[1:] += interval
    return weights


def convolution_matrix(kernel: Callable | None, grid: np.ndarray, i_bounds: tuple[int, int],
                       thresh: float = 1e-5) -> csr_array:
    """Sparse convolution matrix, shape (i_b - i_a, grid.size).

    ``kernel(wave, wave_c)`` gives the kernel centred on ``wave_c``; None is the
    identity restricted to ``grid[i_a:i_b]``.
    """
    i_a, i_b = i_bounds
    if kernel is None:
        compact = np.ones((1, i_b - i_a))
    else:
        compact = _compact_kernel(kernel, grid, i_a, i_b, thresh)
        compact = compact * _trapezoid_weights(grid, compact.shape[0], i_a, i_b)
    compact = compact / np.nansum(compact, axis=0)
    half = compact.shape[0] // 2
    # CSR built directly, row by row (one per centre), each row's columns ascending: the arrays
    # scipy makes from these entries as (data, (row, col)) triplets
    compact_t = compact.T
    cols = (np.arange(i_b - i_a) + i_a)[:, None] + (np.arange(compact.shape[0]) - half)[None, :]
    keep = (cols >= 0) & (cols < grid.size)
    indptr = np.concatenate([[0], np.cumsum(keep.sum(axis=1))])
    matrix = csr_array((compact_t[keep], cols[keep], indptr), shape=(i_b - i_a, grid.size))
    matrix.has_canonical_format = True  # columns ascending in each row, no duplicates
    return matrix
