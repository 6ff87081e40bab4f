"""Linear 1-D lookup tables of a gwcs evaluated without importing scipy.interpolate.

astropy's ``Tabular`` models evaluate through ``scipy.interpolate.interpn``,
and the first evaluation imports scipy.interpolate with scipy.optimize,
scipy.linalg, scipy.fft and scipy.special: ~0.15 s of a MIRI LRS run's 1.4 s,
for a table lookup (LRS wavelengths are ``Tabular1D``).  After
:func:`evaluate_tables_without_scipy`, a one-input ``method="linear"`` table is
evaluated here with the same arithmetic as scipy's ``RegularGridInterpolator``
(interval search, normalised distance, the two weighted terms added to 0 in
the same order), so the values are bit-identical (tests/test_import_hooks.py
compares them with interpn); any other table goes to astropy as before.
Set up by the ``spec3c`` command and its workers when astropy.modeling.tabular
is imported (:mod:`spec3c.import_hooks`), not on import of spec3c.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["evaluate_linear_table", "evaluate_tables_without_scipy"]


def evaluate_linear_table(points: np.ndarray, table: np.ndarray, x: np.ndarray,
                          bounds_error: bool, fill_value: Any) -> np.ndarray:
    """``interpn((points,), table, x[:, None], method="linear", ...)`` for a 1-D table of reals."""
    grid = np.asarray(points, dtype=float)
    values = np.asarray(table)
    if not np.issubdtype(values.dtype, np.inexact):
        values = values.astype(float)
    if grid.size > 1 and grid[0] > grid[-1]:  # a descending grid: scipy flips both
        grid, values = grid[::-1], values[::-1]
    x = np.asarray(x, dtype=float)
    if bounds_error and not np.all((grid[0] <= x) & (x <= grid[-1])):
        raise ValueError("One of the requested xi is out of bounds in dimension 0")
    if grid.size == 1:  # scipy's index -1 and weights (1, 0): both terms read the only value
        lower = upper = np.zeros(x.shape, dtype=np.intp)
        distance = np.zeros_like(x)
    else:
        lower = np.clip(np.searchsorted(grid, x, side="right") - 1, 0, grid.size - 2)
        upper = lower + 1
        distance = (x - grid[lower]) / (grid[upper] - grid[lower])
    result = np.array([0.0]) + values[lower] * (np.array([1.0]) * (1 - distance))
    result = result + values[upper] * (np.array([1.0]) * distance)
    if not bounds_error and fill_value is not None:
        result[(x < grid[0]) | (x > grid[-1])] = fill_value
    result[np.isnan(x)] = np.nan
    return result


def _scipy_free(original: Any) -> Any:
    """``Tabular.evaluate`` that takes the one-input linear tables of reals itself."""

    def evaluate(self: Any, *inputs: Any) -> Any:
        table = self.lookup_table
        if (self.n_inputs != 1 or self.method != "linear" or len(self.points) != 1
                or hasattr(table, "unit") or hasattr(self.points[0], "unit")
                or np.asarray(table).ndim != 1 or np.iscomplexobj(table) or hasattr(inputs[0], "unit")):
            return original(self, *inputs)
        x = np.asarray(inputs[0])
        result = evaluate_linear_table(self.points[0], table, x.ravel(), self.bounds_error, self.fill_value)
        return result.reshape(x.shape)

    evaluate.scipy_free = True  # type: ignore[attr-defined]
    return evaluate


def evaluate_tables_without_scipy() -> None:
    """From now on astropy's one-input linear ``Tabular`` models are evaluated by
    :func:`evaluate_linear_table` in this process."""
    from astropy.modeling.tabular import _Tabular

    if not getattr(_Tabular.evaluate, "scipy_free", False):
        _Tabular.evaluate = _scipy_free(_Tabular.evaluate)
