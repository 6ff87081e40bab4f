"""Weighted, NaN-aware median over a stack of images (outlier detection).

ALGORITHMS.md §7.1 step 3: the N resampled group images of one source are
stacked and reduced to one median image.  This is the public tier: it
validates and coerces, then hands native contiguous arrays to
:mod:`spec3c._core._median`.
"""

from __future__ import annotations

import math

import numpy as np

from . import _median
from ._validate import as_native_contiguous, check_workers, native_float_dtype, real_array_like


def stack_median(
    stack: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    workers: int = 0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Weighted median along the first axis, ignoring invalid entries.

    Parameters
    ----------
    stack : ndarray, shape (n, ...), float32 or float64
        ``n`` images of any common trailing shape, e.g. (n, ny, nx).  Either
        byte order; read-only and non-contiguous arrays are accepted (copied
        only when they are not native and C-contiguous).
    weights : ndarray, shape of ``stack``, optional
        Non-negative weights, converted to the dtype of ``stack``.  ``None``
        gives every entry weight 1, and the result then equals
        ``numpy.nanmedian(stack, axis=0)``.
    workers : int, optional
        OpenMP threads; 0 (default) uses the OpenMP default
        (``OMP_NUM_THREADS`` or all cores).  The result does not depend on it.
    out : ndarray, shape ``stack.shape[1:]``, optional
        Writable, C-contiguous, native array of the output dtype to fill.

    Returns
    -------
    ndarray, shape ``stack.shape[1:]``, dtype of ``stack`` (native order)
        Per pixel, entries whose value is not finite (NaN or ±inf) or whose
        weight is not finite or ``<= 0`` are ignored.  The remaining values
        are sorted; the result is the first value whose cumulative weight
        reaches half the total weight, or the mean of it and the next value
        when the cumulative weight equals exactly half.  Pixels with no valid
        entry are NaN.  Computed in float64 and rounded once to the output
        dtype.

    Raises
    ------
    TypeError
        If ``stack``, ``weights`` or ``out`` has a non-float dtype, or
        ``workers`` is not an int.
    ValueError
        If ``stack`` has fewer than 2 dimensions, ``weights`` or ``out`` has
        the wrong shape, ``out`` is not writable/contiguous/native, or
        ``workers < 0``.
    """
    stack = np.asarray(stack)
    dtype = native_float_dtype(stack, "stack")
    if stack.ndim < 2:
        raise ValueError(f"stack must have shape (n, ...) with ndim >= 2, got {stack.shape}")
    workers = check_workers(workers)
    flat_shape = (stack.shape[0], math.prod(stack.shape[1:]))
    flat = as_native_contiguous(stack, dtype).reshape(flat_shape)
    result = _check_out(out, stack.shape[1:], dtype)
    if weights is None:
        _median.median_unweighted(flat, result.reshape(-1), workers)
    else:
        flat_weights = _coerce_weights(weights, stack.shape, dtype).reshape(flat_shape)
        _median.median_weighted(flat, flat_weights, result.reshape(-1), workers)
    return result


def _coerce_weights(weights: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Return ``weights`` as a native contiguous array of ``dtype`` and ``shape``."""
    return real_array_like(weights, "weights", shape, dtype, "stack")


def _check_out(out: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Return ``out`` after checking it, or a new empty output array."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"out must have shape {shape} (stack.shape[1:]), got {out.shape}")
    if out.dtype != dtype:
        raise TypeError(f"out must have native dtype {dtype} to match stack, got {out.dtype}")
    if not (out.flags.writeable and out.flags.c_contiguous):
        raise ValueError("out must be a writable, C-contiguous array")
    return out
