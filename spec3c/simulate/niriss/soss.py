"""The NIRISS SOSS instrument model of the simulator: traces, wavelengths, profile, truth.

One analytic model serves three purposes, so that they agree exactly:

* the simulated ``_calints`` scenes are rendered from it (:func:`render_orders`);
* the PASTASOSS, SPECPROFILE and SPECKERNEL reference files are written from
  it (:mod:`.soss_reffiles`), in the formats jwst 3.0.0 reads;
* tests read the truth from it (:func:`trace_model`, :func:`order_flux`).

Geometry (DMS orientation, SUBSTRIP256 rows): at the commanded pupil-wheel
position :data:`PWCPOS_CMD` each order's trace centre is a polynomial
``y_ref(x)``; another position rotates the trace about the order's pivot by
``pwcpos - PWCPOS_CMD`` degrees, as the PASTASOSS model does (rotate the
reference points, interpolate back onto the columns).  Wavelength is a
2-D polynomial of the column and the pupil-wheel offset (the PASTASOSS
``wavecal_models``).  SUBSTRIP96 rows are SUBSTRIP256 rows minus 10 (as jwst
places them).  Order 1 spans every column; order 2 ends at column
:attr:`SossOrder.cutoff` and approaches order 1 at small x (the red end of
order 1), where the two traces contaminate each other's 40-pixel boxes.
The cross-dispersion profile is a flat-topped super-Gaussian of FWHM
:data:`PROFILE_FWHM` pixels, the same at every column, with no tilt.

Fluxes are DN/s per column (the units of a spec2 ``_calints``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ORDERS",
    "PROFILE_FWHM",
    "PWCPOS_BOUNDS",
    "PWCPOS_CMD",
    "SUBARRAYS",
    "SossOrder",
    "TraceModel",
    "order_flux",
    "order_profile",
    "render_orders",
    "source_spectrum",
    "throughput",
    "trace_model",
    "wavelength_at",
]

#: commanded pupil-wheel position (degrees) and the range the PASTASOSS model accepts
PWCPOS_CMD = 245.76
PWCPOS_BOUNDS = (245.51, 246.01)
#: subarray -> (rows, first detector row (1-based SUBSTRT2), row offset subtracted from SUBSTRIP256 rows)
SUBARRAYS = {"SUBSTRIP256": (256, 1793, 0), "SUBSTRIP96": (96, 1803, 10)}
N_COLUMNS = 2048
#: full width at half maximum of the cross-dispersion profile (pixels)
PROFILE_FWHM = 22.0
_SUPER = 4  # super-Gaussian exponent: flat top, steep wings (the real profile is ~25 px wide)
#: pupil-wheel offsets (degrees) the wavelength polynomial is scaled over
OFFSET_EXTENT = (-0.25, 0.25)


@dataclass(frozen=True)
class SossOrder:
    """One spectral order's geometry at the commanded pupil-wheel position.

    ``y_coeffs``: ``y_ref(x) = sum c_k ((x - 1024) / 1024)^k`` (SUBSTRIP256 rows);
    ``wave_coeffs``: ``lambda = sum a_k xs^k + b * os`` with ``xs = x / 2047`` and
    ``os`` the scaled pupil-wheel offset (microns); ``cutoff``: columns ``< cutoff``
    hold the order; ``throughput``: (peak, centre um, width um) of a Gaussian.
    """

    order: int
    y_coeffs: tuple[float, ...]
    wave_coeffs: tuple[float, ...]
    wave_offset_coeff: float
    cutoff: int
    pivot: tuple[float, float]
    throughput: tuple[float, float, float]


ORDERS: dict[int, SossOrder] = {
    1: SossOrder(1, (60.5, 12.0, 10.0), (2.83, -1.822, -0.126, 0.0), 0.004, 2048, (1400.0, 62.0),
                 (0.55, 1.6, 1.1)),
    2: SossOrder(2, (150.0, 74.2, 9.2), (1.42, -0.931, -0.063, 0.0), 0.002, 1783, (1250.0, 150.0),
                 (0.30, 0.90, 0.35)),
    3: SossOrder(3, (200.0, 70.0), (0.95, -0.614, 0.0, 0.0), 0.0013, 1150, (900.0, 200.0),
                 (0.03, 0.75, 0.20)),
}


@dataclass(frozen=True)
class TraceModel:
    """The trace of one order on one subarray at one pupil-wheel position.

    ``x``: columns ``0 .. cutoff-1``; ``y``: trace centre row (subarray rows,
    may fall off the array); ``wavelength``: microns at the trace centre.
    """

    order: int
    x: np.ndarray
    y: np.ndarray
    wavelength: np.ndarray


def reference_trace_y(o: SossOrder, x: np.ndarray) -> np.ndarray:
    """The order's trace row at columns ``x`` at the commanded position (SUBSTRIP256 rows)."""
    u = (np.asarray(x, float) - 1024.0) / 1024.0
    return np.polynomial.polynomial.polyval(u, o.y_coeffs)


def scaled_offset(pwcpos: float) -> float:
    """Pupil-wheel offset from the commanded position, min-max scaled as the PASTASOSS model scales it."""
    lo, hi = OFFSET_EXTENT
    return ((pwcpos - PWCPOS_CMD) - lo) / (hi - lo)


def wavelength_at(order: int, x: np.ndarray, pwcpos: float = PWCPOS_CMD) -> np.ndarray:
    """Wavelength (um) of ``order`` at columns ``x`` for the pupil-wheel position ``pwcpos``."""
    o = ORDERS[order]
    xs = np.asarray(x, float) / (N_COLUMNS - 1)
    lam = np.polynomial.polynomial.polyval(xs, o.wave_coeffs)
    return np.asarray(lam + o.wave_offset_coeff * scaled_offset(pwcpos))


def trace_model(order: int, pwcpos: float = PWCPOS_CMD, subarray: str = "SUBSTRIP256") -> TraceModel:
    """Trace centre and wavelength of ``order`` at every column it covers (the truth geometry)."""
    if order not in ORDERS:
        raise ValueError(f"SOSS order must be one of {sorted(ORDERS)}, got {order!r}")
    if subarray not in SUBARRAYS:
        raise ValueError(f"subarray must be one of {sorted(SUBARRAYS)}, got {subarray!r}")
    o = ORDERS[order]
    x_ref = np.arange(o.cutoff, dtype=float)
    y_ref = reference_trace_y(o, x_ref) - SUBARRAYS[subarray][2]
    angle = math.radians(pwcpos - PWCPOS_CMD)
    px, py = o.pivot  # jwst shifts the SUBSTRIP96 trace, not the pivot
    c, s = math.cos(angle), math.sin(angle)
    xr = px + c * (x_ref - px) - s * (y_ref - py)
    yr = py + s * (x_ref - px) + c * (y_ref - py)
    y = np.interp(x_ref, xr, yr)  # xr increases: the rotation is a fraction of a degree
    return TraceModel(order, x_ref.astype(int), y, wavelength_at(order, x_ref, pwcpos))


def throughput(order: int, wavelength: np.ndarray) -> np.ndarray:
    """Spectral throughput of ``order`` (a smooth curve; zero far from its peak)."""
    peak, centre, width = ORDERS[order].throughput
    return peak * np.exp(-(((np.asarray(wavelength) - centre) / width) ** 2))


#: absorption lines of the simulated star: (centre um, depth, sigma um)
_LINES = ((0.6563, 0.3, 0.003), (0.7665, 0.25, 0.004), (0.95, 0.2, 0.006), (1.083, 0.3, 0.004),
          (1.282, 0.25, 0.004), (1.51, 0.15, 0.008), (1.95, 0.2, 0.01), (2.166, 0.25, 0.006),
          (2.3, 0.2, 0.012), (2.6, 0.15, 0.02))


def source_spectrum(wavelength: np.ndarray) -> np.ndarray:
    """The star's photon spectrum (arbitrary units): a smooth continuum with resolved absorption lines."""
    lam = np.asarray(wavelength, float)
    s = (lam / 1.5) ** -2.0
    for centre, depth, sigma in _LINES:
        s = s * (1.0 - depth * np.exp(-0.5 * ((lam - centre) / sigma) ** 2))
    return s


#: DN/s per column of order 1 where throughput x spectrum x dispersion is 1
FLUX_SCALE = 1.6e5


def order_flux(order: int, pwcpos: float = PWCPOS_CMD, subarray: str = "SUBSTRIP256") -> np.ndarray:
    """True flux (DN/s per column, whole profile) of ``order`` at columns ``0 .. cutoff-1``."""
    t = trace_model(order, pwcpos, subarray)
    dispersion = np.abs(np.gradient(t.wavelength)) / 1e-3  # um per column, in nm
    return FLUX_SCALE * source_spectrum(t.wavelength) * throughput(order, t.wavelength) * dispersion


def _profile_shape(d: np.ndarray) -> np.ndarray:
    half = PROFILE_FWHM / 2
    return np.exp(-math.log(2.0) * np.abs(d / half) ** _SUPER)


def order_profile(order: int, pwcpos: float = PWCPOS_CMD, subarray: str = "SUBSTRIP256",
                  rows: np.ndarray | None = None) -> np.ndarray:
    """Fraction of each column's flux of ``order`` falling in each pixel: ``(len(rows), 2048)``.

    Integrated over 5 sub-rows per pixel; each column sums to 1 over all rows
    (on and off the array); columns the order does not reach are zero.
    ``rows`` defaults to the subarray's rows.
    """
    t = trace_model(order, pwcpos, subarray)
    if rows is None:
        rows = np.arange(SUBARRAYS[subarray][0])
    sub = (np.arange(5) - 2) / 5.0
    out = np.zeros((len(rows), N_COLUMNS))
    d = (np.asarray(rows, float)[:, None, None] + sub[None, :, None]) - t.y[None, None, :]
    out[:, : len(t.x)] = _profile_shape(d).mean(axis=1)
    norm_d = np.arange(-60, 61, dtype=float)[:, None] + sub[None, :]
    total = _profile_shape(norm_d).mean(axis=1).sum()  # the same at every column: the profile does not vary
    return out / total


def render_orders(pwcpos: float, subarray: str, orders: tuple[int, ...] = (1, 2, 3)) -> dict[int, np.ndarray]:
    """Noiseless image (DN/s, subarray shape) of each order of the star."""
    return {o: order_profile(o, pwcpos, subarray) * np.pad(order_flux(o, pwcpos, subarray),
                                                          (0, N_COLUMNS - ORDERS[o].cutoff))[None, :]
            for o in orders}
