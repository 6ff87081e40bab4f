"""Sigma-clipped background range of an IFU cube plane, compiled (extract_1d, ALGORITHMS.md §12.6).

The public tier of :mod:`spec3c._core._clipstats`: validates and coerces.
The result is :func:`spec3c.algorithms.ifu_extract.clipped_range`'s for
float32 values, bit for bit (numpy's float32 reductions, step for step).
"""

from __future__ import annotations

import numpy as np

from . import _clipstats

__all__ = ["clipped_range_f32"]

_FLOAT32 = np.dtype(np.float32)  # native byte order


def clipped_range_f32(values: np.ndarray, sigma: float, maxiters: int) -> tuple[np.float32, np.float32]:
    """``mean -+ sigma * std`` of float32 ``values`` (any shape) after ``maxiters`` rounds of clipping at
    ``sigma`` std about the median; non-finite values left out (NaN, NaN when none is left)."""
    if maxiters < 0:
        raise ValueError(f"maxiters must be >= 0, got {maxiters}")
    array = values if isinstance(values, np.ndarray) else np.asarray(values)
    if array.dtype != _FLOAT32:  # (not a big-endian float32 either: those are converted)
        if array.dtype.kind != "f" or array.dtype.itemsize != 4:
            raise TypeError(f"values must be float32, got {array.dtype}")
    if array.ndim != 1 or array.dtype != _FLOAT32 or not array.flags.c_contiguous:
        array = np.ascontiguousarray(array.reshape(-1), dtype=_FLOAT32)
    low, high = _clipstats.clipped_range(array, float(sigma), int(maxiters))
    return np.float32(low), np.float32(high)
