"""Linear interpolation that extrapolates from the end segments, as the reference interpolates
its IFU extraction radii and aperture corrections (``scipy.interpolate.interp1d`` with
``fill_value="extrapolate"``).

The arithmetic keeps the tables' own dtypes (float32 reference-file arrays give
float32 slopes), so results match the reference's to the last bit.
"""

from __future__ import annotations

import numpy as np

__all__ = ["linear_extrapolated"]


def linear_extrapolated(x: np.ndarray, y: np.ndarray, x_new: np.ndarray | float) -> np.ndarray:
    """``y(x_new)`` by linear interpolation in ``x`` (any order), extrapolated beyond its ends.

    Parameters
    ----------
    x : (n,) array, n >= 2
        Abscissae (sorted here, stably).
    y : (n,) or (n, m) array
        Values at ``x`` (interpolated along the first axis).
    x_new : array or float
        Where to evaluate.

    Returns
    -------
    ndarray of shape ``np.shape(x_new) + y.shape[1:]``
    """
    xs = np.asarray(x)
    ys = np.asarray(y)
    if xs.ndim != 1 or xs.size < 2 or ys.shape[0] != xs.size:
        raise ValueError(f"need x of shape (n >= 2,) and y of shape (n, ...), got {xs.shape} and {ys.shape}")
    if not np.issubdtype(ys.dtype, np.inexact):
        ys = ys.astype(np.float64)
    order = np.argsort(xs, kind="mergesort")
    xs, ys = xs[order], ys[order]
    flat_y = ys.reshape(xs.size, -1)
    new = np.asarray(x_new)
    if not np.issubdtype(new.dtype, np.inexact):
        new = new.astype(np.float64)
    flat_new = new.ravel()
    hi = np.searchsorted(xs, flat_new).clip(1, xs.size - 1).astype(int)
    lo = hi - 1
    x_lo, x_hi = xs[lo], xs[hi]
    y_lo, y_hi = flat_y[lo], flat_y[hi]
    slope = (y_hi - y_lo) / (x_hi - x_lo)[:, None]
    out = slope * (flat_new - x_lo)[:, None] + y_lo
    return out.reshape(new.shape + ys.shape[1:])
