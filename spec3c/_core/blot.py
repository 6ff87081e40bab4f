"""Blot: resample a combined (median) image back onto an input pixel grid.

ALGORITHMS.md §7.1 step 4.  Public tier over :mod:`spec3c._core._blot`.
"""

from __future__ import annotations

import numpy as np

from . import _blot
from ._validate import check_workers

__all__ = ["blot_image"]


def blot_image(
    median: np.ndarray,
    pixmap: np.ndarray,
    fill: float = np.nan,
    *,
    workers: int = 0,
) -> np.ndarray:
    """Bilinearly interpolate ``median`` at every pixmap position.

    Parameters
    ----------
    median : ndarray (ny_o, nx_o), float
        Image to sample (used as float32, either byte order, read-only ok).
    pixmap : ndarray (ny_i, nx_i, 2), float
        For every input pixel, its (x, y) position in ``median`` pixels.
    fill : float
        Value where a position is NaN or outside the domain.
    workers : int
        OpenMP threads (0 = OpenMP default); the result does not depend on it.

    Returns
    -------
    ndarray (ny_i, nx_i) float32

    Notes
    -----
    Follows drizzle's ``tblot`` bilinear convention: a position is inside when
    ``0 <= x < nx_o`` and ``0 <= y < ny_o`` (pixel centres at integers, so
    the half pixel below 0 is outside and the half pixel beyond the last
    centre takes the edge value: interpolation only along the other axis).
    All four neighbours enter the sum, so a NaN neighbour makes the result NaN
    even where its bilinear weight is 0.  Coordinates are used in float64
    (drizzle rounds them to float32 first).
    """
    med = np.asarray(median)
    if med.ndim != 2 or med.shape[0] < 1 or med.shape[1] < 1:
        raise ValueError(f"median must be a non-empty 2-D array, got shape {med.shape}")
    if med.dtype.kind not in "fiu":
        raise TypeError(f"median must be a real-number array, got dtype {med.dtype}")
    pm = np.asarray(pixmap)
    if pm.ndim != 3 or pm.shape[2] != 2:
        raise ValueError(f"pixmap must have shape (ny_i, nx_i, 2), got {pm.shape}")
    if pm.dtype.kind not in "fiu":
        raise TypeError(f"pixmap must be a real-number array, got dtype {pm.dtype}")
    workers = check_workers(workers)
    med32 = np.ascontiguousarray(med, dtype=np.float32)
    pm64 = np.ascontiguousarray(pm, dtype=np.float64)
    out = np.empty(pm.shape[:2], dtype=np.float32)
    if out.size:
        _blot.blot(med32, pm64, out, float(fill), workers)
    return out
