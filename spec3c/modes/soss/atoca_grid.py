"""Wavelength grids of the ATOCA model (jwst ``atoca_utils`` behaviour).

Pixel edges from a wavelength map, grid oversampling, the adaptive grid that
refines each interval until a Romberg estimate of the integral of the flux
estimate reaches ``rtol`` (``soss_rtol``, ``soss_max_grid_size``), the
throughput interpolator and the first-derivative Tikhonov operator.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
from scipy.interpolate import make_interp_spline
from scipy.sparse import csr_array, diags_array

log = logging.getLogger("spec3c.step.extract_1d")

__all__ = ["pixel_edges", "oversample", "profile_weighted_grid", "adaptive_combined_grid",
           "Throughput", "first_derivative"]

#: smallest spacing the adaptive grid may reach, microns (jwst ``min_dlambda``)
MIN_DLAMBDA = 1e-5


def _row_edges(wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower/upper edges (in index order) of each valid pixel of one row, 0 elsewhere."""
    lower = np.zeros_like(wave)
    upper = np.zeros_like(wave)
    valid = np.isfinite(wave) & (wave >= 0)
    values = wave[valid]
    if values.size < 2:
        return lower, upper
    half = np.diff(values) / 2
    lower[valid] = values - np.concatenate([half[:1], half])
    upper[valid] = values + np.concatenate([half, half[-1:]])
    return lower, upper


def pixel_edges(wavemap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Wavelength at the long and short edge of every pixel along rows.

    Parameters
    ----------
    wavemap : ndarray, (ny, nx)
        Central wavelength per pixel; NaN, negative or 0 = no wavelength.

    Returns
    -------
    wave_plus, wave_minus : ndarray, (ny, nx)
        Long- and short-wavelength edges (0 where invalid); consecutive valid
        pixels of a row share an edge, the end pixels repeat their neighbour step.
    """
    wavemap = np.atleast_2d(np.asarray(wavemap, dtype=np.float64))
    first = np.zeros_like(wavemap)
    second = np.zeros_like(wavemap)
    for row in range(wavemap.shape[0]):
        first[row], second[row] = _row_edges(wavemap[row])
    invalid = wavemap == 0
    if np.all((second >= first) | invalid):
        return second, first
    if np.all((second <= first) | invalid):
        return first, second
    raise ValueError("ATOCA: some pixels of the wavelength map do not follow the dispersion axis")


def oversample(grid: np.ndarray, n_os: int | np.ndarray) -> np.ndarray:
    """Subdivide each interval of ``grid`` into ``n_os`` (scalar or per interval) equal parts."""
    grid = np.asarray(grid, dtype=np.float64)
    steps = np.broadcast_to(np.asarray(n_os, dtype=int), (grid.size - 1,))
    positions = np.concatenate([[0.0], np.cumsum(np.repeat(1.0 / steps, steps))])
    return np.unique(np.interp(positions, np.arange(grid.size), grid))


def profile_weighted_grid(wavemap: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """Per column, the profile-weighted mean wavelength, sorted (jwst ``grid_from_map``).

    As the reference does, ``profile`` is modified in place: negative values and
    values where the wavelength is <= 0 become 0, and columns that sum to 0
    become 1 everywhere.
    """
    profile[profile < 0] = 0
    with np.errstate(invalid="ignore"):
        profile[wavemap <= 0] = 0
    empty = np.sum(profile, axis=0) == 0
    profile[:, empty] = 1
    centre = np.sum(wavemap * profile, axis=0) / np.sum(profile, axis=0)
    centre[empty] = np.nan
    return np.sort(centre[np.isfinite(centre)])


def _romberg_errors(grid: np.ndarray, fct: Callable) -> tuple[np.ndarray, np.ndarray]:
    """Absolute and relative error of the trapezoid integral of each interval."""
    left, right = grid[:-1], grid[1:]
    width = right - left
    ends = 0.5 * (fct(left) + fct(right))
    coarse = width * ends
    fine = width * (ends + fct(0.5 * (left + right))) / 2
    romberg = (4.0 * fine - coarse) / 3.0
    err = np.abs(romberg - coarse)
    rel = np.full_like(err, np.inf)
    nonzero = romberg != 0
    rel[nonzero] = np.abs(err[nonzero] / romberg[nonzero])
    return err, rel


def _thin(grid: np.ndarray) -> np.ndarray:
    """Drop nodes closer than MIN_DLAMBDA to the previous kept node."""
    kept = [grid[0]]
    for value in grid[1:]:
        if value - kept[-1] > MIN_DLAMBDA:
            kept.append(value)
    return np.asarray(kept)


def _adapt(grid: np.ndarray, fct: Callable, max_size: int, max_iter: int,
           rtol: float, atol: float = 1e-6) -> tuple[np.ndarray, bool]:
    """Halve the intervals whose integral misses the tolerance, largest errors first."""
    if grid.size > max_size:
        raise ValueError("ATOCA: soss_max_grid_size is smaller than the native wavelength grid")
    size_reached = False
    converged = False
    for _ in range(max_iter):
        err, rel = _romberg_errors(grid, fct)
        ok = (rel < rtol) | (err < atol)
        converged = bool(ok.all())
        if size_reached or converged:
            break
        split = np.where(ok, 1, 2)
        if split.sum() > max_size:
            size_reached = True
            split = np.ones_like(split)
            split[np.argsort(rel)[-(max_size - grid.size):]] = 2
        grid = _thin(oversample(grid, split))
    return grid, converged


def _trim(grids: Sequence[np.ndarray], wave_range: Sequence[float]) -> list[np.ndarray]:
    """Cut grids to the range and to what higher-priority grids do not cover."""
    trimmed: list[np.ndarray] = []
    for grid in grids:
        i_min = max(int(np.searchsorted(grid, wave_range[0], side="right")) - 1, 0)
        i_max = min(int(np.searchsorted(grid, wave_range[1], side="left")), len(grid) - 1)
        grid = grid[i_min:i_max + 1]
        if trimmed:
            covered = np.concatenate(trimmed)
            below = grid < covered.min()
            above = grid > covered.max()
            if below.any():
                grid = grid[:min(int(np.max(np.nonzero(below))) + 1, len(grid) - 1) + 1]
            if above.any():
                grid = grid[max(int(np.min(np.nonzero(above))) - 1, 0):]
            if not below.any() and not above.any():
                grid = np.array([])
        trimmed.append(grid)
    return trimmed


def adaptive_combined_grid(grids: Sequence[np.ndarray], estimates: Sequence[Callable],
                           wave_range: Sequence[float], rtol: float, max_size: int,
                           max_iter: int = 30) -> np.ndarray:
    """One grid from several, in decreasing priority, each refined to ``rtol``.

    Each grid may grow to what ``max_size`` leaves after the grids already
    combined and the native sizes of the grids still to come.
    """
    parts = _trim(grids, wave_range)
    sizes = [len(g) for g in parts]
    combined = np.array([])
    for index, grid in enumerate(parts):
        budget = max(max_size - combined.size - sum(sizes[index + 1:]), sizes[index])
        grid, converged = _adapt(grid, estimates[index], budget, max_iter, rtol)
        sizes[index] = grid.size
        if not converged:
            log.warning("ATOCA: wavelength grid %d did not reach soss_rtol=%g (%d points)",
                        index, rtol, grid.size)
        combined = np.concatenate([combined, grid])
    return np.unique(combined)


class Throughput:
    """Clamped cubic spline of a throughput curve, zero at both ends, clipped outside.

    As the reference, the wavelengths are sorted but the throughput is taken in
    its given order (PASTASOSS tables are ascending).
    """

    def __init__(self, wavelength: np.ndarray, throughput: np.ndarray) -> None:
        wave = np.sort(np.asarray(wavelength, dtype=np.float64))
        values = np.array(throughput, dtype=np.float64)
        values[0] = values[-1] = 0.0
        self.wave_min, self.wave_max = wave[0], wave[-1]
        self._spline = make_interp_spline(wave, values, k=3, bc_type=("clamped", "clamped"))

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        return np.asarray(self._spline(np.clip(wave, self.wave_min, self.wave_max)))


def first_derivative(grid: np.ndarray) -> csr_array:
    """Sparse operator D with ``D @ f = diff(f) / diff(grid)``."""
    n = len(grid)
    diff = diags_array([-1.0, 1.0], offsets=[0, 1], shape=(n - 1, n))
    return csr_array(diags_array(1.0 / np.diff(grid)) @ diff)
