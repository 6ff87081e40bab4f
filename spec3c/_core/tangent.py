"""RA/Dec to an IFU cube's tangent plane (public tier over :mod:`spec3c._core._tangent`)."""

from __future__ import annotations

import numpy as np

from . import _tangent
from ._validate import check_workers

__all__ = ["sky_to_tangent"]


def sky_to_tangent(ra: np.ndarray, dec: np.ndarray, crval1: float, crval2: float,
                   rot_angle: float | None = None, *, workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Tangent-plane ``(xi, eta)`` in arcsec of positions ``(ra, dec)`` (deg), any shape.

    jwst 3.0.0's ``cube_build`` projection: gnomonic about ``(crval1, crval2)``,
    xi increasing to the East-left, rotated by ``rot_angle`` (deg) when given.

    Parameters
    ----------
    ra, dec : ndarray, float
        Positions of one shape (any float dtype or byte order).
    crval1, crval2 : float
        Tangent point (deg).
    rot_angle : float, optional
        Rotation of the cube's axes (deg).
    workers : int
        OpenMP threads (0 = OpenMP default).

    Returns
    -------
    xi, eta : ndarray float64 of the input shape
    """
    shape = np.shape(ra)  # ascontiguousarray makes 0-d inputs 1-d
    a = np.ascontiguousarray(ra, dtype=np.float64)
    d = np.ascontiguousarray(dec, dtype=np.float64)
    if a.shape != d.shape:
        raise ValueError(f"ra and dec must have one shape, got {np.shape(ra)} and {np.shape(dec)}")
    xi = np.empty(a.shape)
    eta = np.empty(a.shape)
    angle = 0.0 if rot_angle is None else float(rot_angle)
    _tangent.project(a.reshape(-1), d.reshape(-1), float(crval1), float(crval2), rot_angle is not None, angle,
                     xi.reshape(-1), eta.reshape(-1), check_workers(workers))
    return xi.reshape(shape), eta.reshape(shape)
