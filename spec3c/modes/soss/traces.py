"""Where each SOSS order falls on the detector at the data's pupil-wheel position.

The reference's PASTASOSS chain (``jwst/extract_1d/soss_extract/pastasoss.py``,
``soss_extract.DetectorModelOrder.trace``):

1. the order's reference points (SUBSTRIP256 rows; SUBSTRIP96 rows are 10
   less) are rotated about the order's pivot by ``pwcpos - pwcpos_cmd``
   degrees and interpolated (extrapolated linearly) back onto their columns;
   points above row 255 are dropped;
2. the wavelength at each column is the file's 2-D polynomial of the min-max
   scaled column and pupil-wheel offset;
3. column and row are re-sampled on the file's wavelength grid (linear,
   extrapolated at both ends with the end slopes);
4. cubic splines of row and wavelength against column give the trace at
   every column ``0 .. cutoff-1``.

The wavelength map of an order (no tilt: the same on every row) and the
SPECPROFILE profile cut to the subarray are built here too, for ATOCA.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline

from ...errors import Spec3cError
from .reffiles import SossReferences

__all__ = ["OrderTrace", "order_traces", "polynomial_2d", "profiles", "spectraces", "wavemaps"]

#: rows SUBSTRIP96 starts above SUBSTRIP256 in the reference's trace model
SUBSTRIP96_SHIFT = 10.0
#: the reference drops rotated points above this row
_TOP_ROW = 255.0


@dataclass(frozen=True)
class OrderTrace:
    """The trace of one order: column ``x`` (0 .. cutoff-1), centre row ``y``, ``wavelength`` (um)."""

    order: int
    x: np.ndarray
    y: np.ndarray
    wavelength: np.ndarray


def polynomial_2d(coefficients: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``sum c_k x^i y^j`` with coefficients by total degree, then by the power of y:
    C00, C10, C01, C20, C11, C02, C30, ... (the PASTASOSS order)."""
    out = np.zeros(np.broadcast(x, y).shape)
    k = 0
    degree = 0
    while k < len(coefficients):
        for j in range(degree + 1):
            if k < len(coefficients):
                out = out + coefficients[k] * x ** (degree - j) * y**j
            k += 1
        degree += 1
    return out


def _check_pwcpos(refs: SossReferences, pwcpos: float) -> None:
    bounds = refs.pwcpos_bounds
    if bounds is None or not bounds[0] <= pwcpos <= bounds[1]:
        raise Spec3cError(f"pupil-wheel position PWCPOS={pwcpos} is outside the bounds {bounds} of the "
                          f"PASTASOSS file {refs.paths[0]}")


def _rotated_trace(refs: SossReferences, order: int, pwcpos: float, subarray: str) -> tuple[np.ndarray, np.ndarray]:
    o = refs.order(order)
    x, y = o.trace[:, 0].copy(), o.trace[:, 1].copy()
    if subarray == "SUBSTRIP96":
        y -= SUBSTRIP96_SHIFT
    angle = math.radians(pwcpos - refs.pwcpos_cmd)
    c, s = math.cos(angle), math.sin(angle)
    dx, dy = x - o.pivot[0], y - o.pivot[1]
    xr, yr = o.pivot[0] + c * dx - s * dy, o.pivot[1] + s * dx + c * dy
    slope_lo = (yr[1] - yr[0]) / (xr[1] - xr[0])
    slope_hi = (yr[-1] - yr[-2]) / (xr[-1] - xr[-2])
    y_new = np.interp(x, xr, yr)
    y_new = np.where(x < xr[0], yr[0] + (x - xr[0]) * slope_lo, y_new)
    y_new = np.where(x > xr[-1], yr[-1] + (x - xr[-1]) * slope_hi, y_new)
    keep = y_new <= _TOP_ROW
    return x[keep], y_new[keep]


def _wavelengths(refs: SossReferences, order: int, x: np.ndarray, pwcpos: float) -> np.ndarray:
    o = refs.order(order)
    (x0, off0), (x1, off1) = o.scale_extents[0], o.scale_extents[1]
    xs = (x - x0) / (x1 - x0)
    offset = np.full_like(x, ((pwcpos - refs.pwcpos_cmd) - off0) / (off1 - off0))
    return polynomial_2d(o.wave_coefficients, xs, offset)


def _on_grid(grid: np.ndarray, wavelength: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values(wavelength)`` on ``grid``: linear, extrapolated with the end slopes."""
    order = np.argsort(wavelength)
    w, q = wavelength[order], values[order]
    lo, hi = grid < w[0], grid > w[-1]
    out = np.interp(grid, w, q)
    out[lo] = q[0] + (grid[lo] - w[0]) * (q[1] - q[0]) / (w[1] - w[0])
    out[hi] = q[-1] + (grid[hi] - w[-1]) * (q[-1] - q[-2]) / (w[-1] - w[-2])
    return out


def spectraces(refs: SossReferences, pwcpos: float, subarray: str,
               orders: list[int]) -> dict[int, np.ndarray]:
    """Each order's ``(3, nwl)`` column, row and wavelength on the PASTASOSS wavelength grid."""
    _check_pwcpos(refs, pwcpos)
    grid = np.linspace(*refs.wave_grid)
    out = {}
    for order in orders:
        x, y = _rotated_trace(refs, order, pwcpos, subarray)
        wl = _wavelengths(refs, order, x, pwcpos)
        out[order] = np.array([_on_grid(grid, wl, x), _on_grid(grid, wl, y), grid])
    return out


def order_traces(refs: SossReferences, pwcpos: float, subarray: str, orders: list[int]) -> dict[int, OrderTrace]:
    """The trace of each order at every column it covers (see the module docstring)."""
    out = {}
    for order, (xt, yt, wt) in spectraces(refs, pwcpos, subarray, orders).items():
        if xt[0] > xt[1]:
            xt, yt, wt = xt[::-1], yt[::-1], wt[::-1]
        x = np.arange(refs.order(order).cutoff)
        out[order] = OrderTrace(order, x, CubicSpline(xt, yt)(x), CubicSpline(xt, wt)(x))
    return out


def _wavemap_row(grid: np.ndarray, x_trace: np.ndarray, n_columns: int, iterations: int = 5,
                 tolerance: float = 1e-2) -> np.ndarray:
    """Wavelength at each column (no tilt), solved as the reference iterates it."""
    x = np.arange(n_columns, dtype=np.float64)
    xs, ws = x_trace[::-1], grid[::-1]
    shift = np.zeros(n_columns)
    for _ in range(iterations):
        lam = np.interp(x - shift, xs, ws)
        error = np.interp(lam, grid, x_trace) - x
        shift = shift + error
        if np.all(np.abs(error) < tolerance):
            break
    return np.interp(x - shift, xs, ws, left=np.nan, right=np.nan)


def wavemaps(refs: SossReferences, pwcpos: float, subarray: str, orders: list[int],
             shape: tuple[int, int]) -> dict[int, np.ndarray]:
    """Each order's wavelength map on the subarray (NaN beyond the trace's wavelength range)."""
    grid = np.linspace(*refs.wave_grid)
    traces = spectraces(refs, pwcpos, subarray, orders)
    return {order: np.repeat(_wavemap_row(grid, traces[order][0], refs.soss_dims[0])[None, : shape[1]],
                             shape[0], axis=0) for order in orders}


def profiles(refs: SossReferences, orders: list[int], shape: tuple[int, int]) -> dict[int, np.ndarray]:
    """Each order's SPECPROFILE profile, its padding cut off symmetrically to ``shape``."""
    out = {}
    for order in orders:
        prof = refs.profiles[refs.order_index(order)]
        pad0, pad1 = (prof.shape[0] - shape[0]) // 2, (prof.shape[1] - shape[1]) // 2
        if pad0 < 0 or pad1 < 0:
            raise Spec3cError(f"SPECPROFILE {refs.paths[1]}: order {order}'s profile {prof.shape} is smaller "
                              f"than the data {shape}")
        out[order] = prof[pad0 : pad0 + shape[0], pad1 : pad1 + shape[1]]
    return out
