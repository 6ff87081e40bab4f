"""Argument checks and coercions shared by the public kernel wrappers.

Every error names the offending argument, so a caller can act on it without
reading the kernel source.
"""

from __future__ import annotations

import operator

import numpy as np

FLOAT_KINDS = (np.dtype(np.float32), np.dtype(np.float64))


def check_workers(workers: int) -> int:
    """Return ``workers`` as an int >= 0 (0 = OpenMP default).

    Raises
    ------
    TypeError
        If ``workers`` is not an integer.
    ValueError
        If ``workers`` is negative.
    """
    try:
        value = operator.index(workers)
    except TypeError:
        raise TypeError(f"workers must be an int >= 0, got {type(workers).__name__}") from None
    if value < 0:
        raise ValueError(f"workers must be >= 0 (0 = OpenMP default), got {value}")
    return value


def native_float_dtype(arr: np.ndarray, name: str) -> np.dtype:
    """Return the native-byte-order float32/float64 dtype of ``arr``.

    Raises
    ------
    TypeError
        If ``arr`` is not float32 or float64 (in either byte order).
    """
    dtype = arr.dtype.newbyteorder("=")
    if dtype not in FLOAT_KINDS:
        raise TypeError(f"{name} must be float32 or float64, got dtype {arr.dtype}")
    return dtype


def as_native_contiguous(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Return ``arr`` as a native-byte-order, C-contiguous array of ``dtype``.

    No copy is made when ``arr`` already qualifies; read-only inputs stay
    read-only (kernels take ``const`` memoryviews).
    """
    return np.ascontiguousarray(arr, dtype=dtype)


def real_array_like(arr: object, name: str, shape: tuple[int, ...], dtype: np.dtype, like: str) -> np.ndarray:
    """``arr`` as a native contiguous array of ``dtype``, after checking that it has the ``shape`` of
    the argument named ``like`` and a real-number dtype.

    Raises
    ------
    ValueError
        If the shapes differ.
    TypeError
        If ``arr`` is not a real-number (float, integer or bool) array.
    """
    a = np.asarray(arr)
    if a.shape != shape:
        raise ValueError(f"{name} must have the shape of {like} {shape}, got {a.shape}")
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a real-number array, got dtype {a.dtype}")
    return as_native_contiguous(a, dtype)


def is_native_contiguous(arr: np.ndarray) -> bool:
    """True if ``arr`` is C-contiguous with native byte order."""
    return arr.flags.c_contiguous and arr.dtype.isnative
