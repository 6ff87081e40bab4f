"""Choice of the Tikhonov factor (``soss_tikfac`` not given), as the reference searches it.

Ten factors spanning ``log_range`` decades around a first guess are solved;
the best is the smallest factor where d(chi2)/d(log10 factor) exceeds 1e-3,
chi2 being the mean Cauchy loss ``log(1 + r^2)`` of the normalised residuals
(a modified-Akima spline of chi2 against log10 factor, sampled at 10000
points).  Three refinements add two factors around the best one each.  The
factors of one round are independent solves: ``parallel_map`` may run them in
threads (SuperLU releases the GIL); when it does, ``B'B`` is summed in OpenMP
threads too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

import numpy as np
from scipy.interpolate import Akima1DInterpolator, UnivariateSpline

from ..._core.normaleq import gram
from .atoca_engine import ColumnOrdering, Engine, openmp_threads, solve_normal

log = logging.getLogger("spec3c.step.extract_1d")

__all__ = ["NormalSystem", "best_factor", "guess_factor", "search_factor"]

#: threshold on d(chi2_cauchy)/d(log10 factor) (the reference's default)
D_CHI2_THRESHOLD = 1e-3

#: ``map``-like: applies a function to every item, results in order (e.g. a thread pool's ``map``)
Mapper = Callable[[Callable[[float], tuple[float, np.ndarray]], Iterable[float]],
                  Iterator[tuple[float, np.ndarray]]]


class NormalSystem:
    """Normal equations of one image (``b_mat``, ``normal`` = B'B, ``t_sq`` = D'D, ``rhs``), solved for
    several factors."""

    def __init__(self, engine: Engine, data: np.ndarray, error: np.ndarray, parallel_map: Mapper = map) -> None:
        self.b_mat = engine.design(error)
        self.pixels = engine.pixels(data, error)
        self.normal = gram(self.b_mat, workers=openmp_threads(parallel_map))  # B'B as scipy sums it
        self.t_sq = engine.tikho_sq
        self.rhs = self.b_mat.T @ self.pixels
        self._ordering = ColumnOrdering()  # every factor's matrix has one pattern: one COLAMD

    def test(self, factor: float) -> tuple[float, np.ndarray]:
        """Mean Cauchy loss of the residuals and the solution for ``factor``."""
        solution = solve_normal(self.normal + factor**2 * self.t_sq, self.rhs, self._ordering)
        filled = np.where(np.isfinite(solution), solution, 0.0)
        resid = self.b_mat @ filled - self.pixels
        with np.errstate(invalid="ignore"):
            chi2 = float(np.nanmean(np.log1p(resid**2)))
        return chi2, solution


def guess_factor(engine: Engine, estimate: Callable[[np.ndarray], np.ndarray]) -> float:
    """sqrt(n_pixels / ||D f_est||^2): the regularisation weighted like the data."""
    n_pixels = int((~engine.mask).sum())
    reg = engine.tikho_mat @ estimate(engine.wave_grid)
    factor = float(np.sqrt(n_pixels / np.nansum(np.asarray(reg) ** 2)))
    log.info("ATOCA: first guess of the Tikhonov factor %.4e", factor)
    return factor


def best_factor(factors: np.ndarray, chi2: np.ndarray) -> float:
    """First factor where the chi2 slope in log10(factor) passes the threshold."""
    ok = np.isfinite(chi2)
    order = np.argsort(factors[ok])
    logx = np.log10(factors[ok][order])
    y = chi2[ok][order]
    degree = min(3, int(ok.sum()) - 1)
    if degree >= 3:
        spline = Akima1DInterpolator(logx, y, method="makima")
    else:
        spline = UnivariateSpline(logx, y, k=degree, s=0)
    fine = np.linspace(logx[0], logx[-1], 10000)
    slope = spline.derivative()(fine)
    above = slope > D_CHI2_THRESHOLD
    if not above.any():
        log.warning("ATOCA: dchi2/dlog(factor) never reached the threshold; largest factor used")
        return float(10 ** logx[-1])
    return float(10 ** fine[above].min())


def _new_factors(factors: np.ndarray, best: float) -> np.ndarray:
    """Two factors around the tested factor nearest ``best`` (extending past the ends)."""
    f = np.sort(factors)
    j = int(np.argmin(np.abs(np.log(f) - np.log(best))))
    if j == 0:
        return np.array([f[0] ** 2 / f[1], np.sqrt(f[0] * f[1])])
    if j == len(f) - 1:
        return np.array([np.sqrt(f[-1] * f[-2]), f[-1] ** 2 / f[-2]])
    return np.array([np.sqrt(f[j] * f[j - 1]), np.sqrt(f[j] * f[j + 1])])


def search_factor(engine: Engine, data: np.ndarray, error: np.ndarray, guess: float,
                  log_range: tuple[float, float], n_refine: int = 3,
                  system: NormalSystem | None = None, parallel_map: Mapper = map) -> float:
    """The reference's d_chi2 search of the Tikhonov factor on one image (``system``: its normal
    equations, if already built; ``parallel_map`` solves the factors of a round)."""
    if system is None:
        system = NormalSystem(engine, data, error, parallel_map)

    def chi2_of(values: np.ndarray) -> np.ndarray:
        return np.array([chi2 for chi2, _ in parallel_map(system.test, values)])

    factors = np.logspace(np.log10(guess) + log_range[0], np.log10(guess) + log_range[1], 10)
    chi2 = chi2_of(factors)
    best = best_factor(factors, chi2)
    log.info("ATOCA: coarse grid best Tikhonov factor %.4e", best)
    for _ in range(n_refine):
        extra = _new_factors(factors, best)
        factors = np.concatenate([factors, extra])
        chi2 = np.concatenate([chi2, chi2_of(extra)])
        best = best_factor(factors, chi2)
    log.info("ATOCA: best Tikhonov factor %.4e", best)
    return best
