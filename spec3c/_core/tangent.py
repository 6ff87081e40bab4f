"""RA/Dec to an IFU cube's tangent plane (public tier over :mod:`spec3c._core._tangent`)."""

from __future__ import annotations

import numpy as np

from . import _tangent
from ._validate import check_workers

__all__ = ["corners_to_tangent", "sky_to_tangent"]


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


def corners_to_tangent(ra: np.ndarray, dec: np.ndarray, index: np.ndarray, offsets: list[np.ndarray],  # noqa: PLR0913
                       crval1: float, crval2: float, rot_angle: float | None = None,
                       reach: np.ndarray | None = None, *, workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Tangent-plane ``(xi, eta)`` ``(n, 4)`` of the footprint corners of ``n`` pixels.

    Pixel ``k`` is at ``(ra[k], dec[k])`` (deg); its corner ``c`` is offset by
    ``offsets[2c].flat[index[k]]`` in RA and ``offsets[2c + 1].flat[index[k]]``
    in Dec (arcsec, float32 planes of a whole frame), added as
    ``ra + float64(offset) / 3600``: the bits of :func:`sky_to_tangent` of those
    corners, without making them.  ``reach`` (bool ``(n,)``): the pixels to
    project, NaN for the others (default all).
    """
    a = np.ascontiguousarray(ra, dtype=np.float64).reshape(-1)
    d = np.ascontiguousarray(dec, dtype=np.float64).reshape(-1)
    idx = np.ascontiguousarray(index, dtype=np.int64).reshape(-1)
    if not (a.shape == d.shape == idx.shape):
        raise ValueError(f"ra, dec and index must have one length, got {a.size}, {d.size} and {idx.size}")
    if len(offsets) != 8:
        raise ValueError(f"offsets must be 8 planes (RA, Dec of 4 corners), got {len(offsets)}")
    planes = tuple(np.ascontiguousarray(o).reshape(-1) for o in offsets)
    if any(o.dtype != np.float32 for o in planes) or len({o.size for o in planes}) != 1:
        raise ValueError("offsets must be float32 planes of one size")
    if idx.size and (idx.min() < 0 or idx.max() >= planes[0].size):
        raise ValueError(f"index out of the planes' {planes[0].size} pixels")
    mask = np.empty(0, np.uint8) if reach is None else np.ascontiguousarray(reach, dtype=np.bool_).view(np.uint8)
    if reach is not None and mask.size != a.size:
        raise ValueError(f"reach must have {a.size} entries, got {mask.size}")
    xi = np.empty((a.size, 4))
    eta = np.empty((a.size, 4))
    angle = 0.0 if rot_angle is None else float(rot_angle)
    _tangent.project_corners(a, d, idx, planes, mask, float(crval1), float(crval2), rot_angle is not None, angle,
                             xi, eta, check_workers(workers))
    return xi, eta
