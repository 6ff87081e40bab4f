"""Outlier flagging against a blotted median (ALGORITHMS.md §7.1 steps 5-6).

Public tier over :mod:`spec3c._core._outlier`, reproducing stcal's
``flag_resampled_crs`` and ``flag_crs``.
"""

from __future__ import annotations

import numpy as np

from . import _outlier
from ._validate import check_workers
from .params import OutlierThresholds

__all__ = ["flag_direct", "flag_resampled_crs", "min_neighbour_difference"]


def _coerce_same(arrays: dict[str, object]) -> list[np.ndarray]:
    """Native C-contiguous 2-D arrays of one shape and one float dtype.

    The dtype is float64 if any input is float64, else float32.
    """
    arrs = {name: np.asarray(a) for name, a in arrays.items()}
    shape = None
    for name, a in arrs.items():
        if a.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be a real-number array, got dtype {a.dtype}")
        if a.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got shape {a.shape}")
        if shape is None:
            shape = a.shape
        elif a.shape != shape:
            first = next(iter(arrs))
            raise ValueError(f"{name} must have the shape of {first} {shape}, got {a.shape}")
    wide = any(a.dtype.itemsize > 4 or a.dtype.kind in "iu" for a in arrs.values())
    dtype = np.float64 if wide else np.float32
    return [np.ascontiguousarray(a, dtype=dtype) for a in arrs.values()]


def flag_resampled_crs(
    sci: np.ndarray,
    blot: np.ndarray,
    blot_err: np.ndarray,
    thresholds: OutlierThresholds,
    *,
    backg: float = 0.0,
    workers: int = 0,
) -> np.ndarray:
    """Cosmic-ray mask from the blotted median (stcal ``flag_resampled_crs``).

    Parameters
    ----------
    sci, blot, blot_err : ndarray (ny, nx), float
        Input science, blotted median and blotted median error.  Computed in
        float32 when all three are float32, else in float64.
    thresholds : OutlierThresholds
        ``snr1, snr2, scale1, scale2``: thresholds before / after the 3x3
        dilation.
    backg : float
        Background level of this input, subtracted from the difference.
    workers : int
        OpenMP threads (0 = OpenMP default); the result does not depend on it.

    Returns
    -------
    ndarray (ny, nx) bool
        ``dilate3x3(diff > scale1*deriv + snr1*sigma) & (diff > scale2*deriv +
        snr2*sigma)`` with ``diff = |sci - blot - backg|``, ``sigma =
        blot_err`` (NaN -> 0) and ``deriv`` the largest absolute difference
        between ``blot`` and its in-bounds edge neighbours (NaN where ``blot``
        is NaN, so those pixels are never flagged; NaN neighbours ignored).
        The dilation treats pixels beyond the edge as absent (scipy
        ``mode='nearest'`` is equivalent for a binary dilation).
    """
    s, b, e = _coerce_same({"sci": sci, "blot": blot, "blot_err": blot_err})
    th = _check_thresholds(thresholds)
    workers = check_workers(workers)
    out = np.zeros(s.shape, dtype=np.uint8)
    if s.size:
        m1 = np.empty(s.shape, dtype=np.uint8)
        m2 = np.empty(s.shape, dtype=np.uint8)
        _outlier.flag_resampled(s, b, e, th.snr1, th.snr2, th.scale1, th.scale2,
                                float(backg), m1, m2, out, workers)
    return out.view(bool)


def _check_thresholds(thresholds: OutlierThresholds) -> OutlierThresholds:
    if not isinstance(thresholds, OutlierThresholds):
        raise TypeError(f"thresholds must be an OutlierThresholds, got {type(thresholds).__name__}")
    return thresholds


def flag_direct(
    sci: np.ndarray,
    median: np.ndarray,
    median_err: np.ndarray,
    snr1: float,
    *,
    workers: int = 0,
) -> np.ndarray:
    """Mask ``|sci - median| > snr1 * median_err`` (NaN error -> 0; stcal ``flag_crs``).

    For the ``resample_data=False`` path.  Inputs ``(ny, nx)`` float, computed
    in float32 when all are float32, else float64.  Returns bool ``(ny, nx)``.
    """
    s, m, e = _coerce_same({"sci": sci, "median": median, "median_err": median_err})
    workers = check_workers(workers)
    out = np.zeros(s.shape, dtype=np.uint8)
    if s.size:
        _outlier.flag_direct(s, m, e, float(snr1), out, workers)
    return out.view(bool)


def min_neighbour_difference(sci: np.ndarray, bad: np.ndarray, axis: int, running: np.ndarray | None = None,
                             *, workers: int = 0) -> np.ndarray:
    """The smaller absolute difference of each pixel of ``sci`` ``(ny, nx)`` to its two neighbours
    along ``axis`` (0 or 1; a missing neighbour of an edge pixel counts as 0), pixels ``bad`` taken as
    NaN, in float64 (:func:`spec3c.algorithms.ifu_outlier.neighbour_difference`, the same values).
    With ``running`` (float64, C order, the frame's shape): ``numpy.fmin`` of it and that, in place."""
    frame = np.asarray(sci)
    if frame.ndim != 2:
        raise ValueError(f"sci must be 2-D, got shape {frame.shape}")
    if axis not in (0, 1):
        raise ValueError(f"axis must be 0 or 1, got {axis}")
    if frame.dtype not in (np.float32, np.float64):
        frame = frame.astype(np.float64)
    frame = np.ascontiguousarray(frame, dtype=frame.dtype.newbyteorder("="))
    mask = np.ascontiguousarray(bad, dtype=bool)
    if mask.shape != frame.shape:
        raise ValueError(f"bad must have the shape of sci {frame.shape}, got {mask.shape}")
    first = running is None
    if running is None:
        running = np.empty(frame.shape, dtype=np.float64)
    elif running.shape != frame.shape or running.dtype != np.float64 or not running.flags.c_contiguous:
        raise ValueError(f"running must be a C-contiguous float64 array of shape {frame.shape}")
    if frame.size:  # the kernel runs along rows: along columns, it is given the transposed views
        flags = mask.view(np.uint8)
        if axis == 0:
            frame, flags, along = frame.T, flags.T, running.T
        else:
            along = running
        _outlier.min_neighbour_difference(frame, flags, along, first, check_workers(workers))
    return running
