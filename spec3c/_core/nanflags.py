"""Make NaNs and the DO_NOT_USE flag agree (``match_nans_and_flags``).

ALGORITHMS.md §1: a pixel is invalid if any science-like array is NaN there
or its DQ has DO_NOT_USE; every array is then set to NaN there and
DO_NOT_USE is OR-ed into DQ.  Drizzle weights come from DQ alone, so this
must run before any weighting.  Public tier over :mod:`spec3c._core._nanflags`.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import Spec3cWarning
from . import _nanflags
from ._validate import check_workers, is_native_contiguous, native_float_dtype

_DQ_DTYPE = np.dtype(np.uint32)


def match_nans_and_flags(
    sci: np.ndarray,
    dq: np.ndarray,
    *others: np.ndarray | None,
    do_not_use: int = 1,
    workers: int = 0,
) -> int:
    """Set NaN and DO_NOT_USE consistently across SCI, DQ and the other arrays, in place.

    Parameters
    ----------
    sci : ndarray, any shape, float32 or float64
        Science array; modified in place.
    dq : ndarray, shape of ``sci``, uint32
        Data-quality bit mask; modified in place.
    *others : ndarray or None, float32 or float64
        Further arrays (ERR, VAR_RNOISE, VAR_POISSON, VAR_FLAT, ...), each
        float32 or float64 independently; modified in place.  ``None`` entries
        are ignored.  An array whose shape differs from ``sci`` is skipped with
        a :class:`~spec3c.errors.Spec3cWarning` (as jwst does).
    do_not_use : int, optional
        DQ bit(s) marking unusable pixels; default 1 (DO_NOT_USE).
    workers : int, optional
        OpenMP threads; 0 (default) uses the OpenMP default.

    Returns
    -------
    int
        Number of invalid pixels (after the update, all of them are NaN in
        every array and carry ``do_not_use`` in ``dq``).

    Raises
    ------
    TypeError
        If an array is not a numpy array of the required dtype.
    ValueError
        If ``dq`` has another shape than ``sci``, an array is read-only,
        ``do_not_use`` is not in ``1 .. 2**32 - 1`` or ``workers < 0``.

    Notes
    -----
    All arguments are checked before anything is modified.  Writable arrays
    that are non-contiguous or of non-native byte order (FITS is
    big-endian) are accepted: the kernel works on a native contiguous copy
    that is written back afterwards, which costs one copy of that array.
    Pass native, C-contiguous arrays to avoid it.
    """
    workers = check_workers(workers)
    bit = _check_bit(do_not_use)
    _check_float(sci, "sci")
    _check_writable(dq, "dq")
    if dq.shape != sci.shape:
        raise ValueError(f"dq must have the shape of sci {sci.shape}, got {dq.shape}")
    if dq.dtype.newbyteorder("=") != _DQ_DTYPE:
        raise TypeError(f"dq must be uint32, got dtype {dq.dtype}")
    floats = [sci, *_usable_others(others, sci.shape)]
    work = [_native_view(a) for a in floats]
    work_dq = _native_view(dq)
    count = _nanflags.match_flat(
        work_dq.reshape(-1),
        [w.reshape(-1) for w in work if w.dtype == np.float32],
        [w.reshape(-1) for w in work if w.dtype == np.float64],
        bit,
        workers,
    )
    for original, copy in zip([*floats, dq], [*work, work_dq], strict=True):
        if copy is not original:
            original[...] = copy
    return int(count)


def _check_bit(do_not_use: int) -> int:
    """Return ``do_not_use`` as an int in ``1 .. 2**32 - 1``."""
    if isinstance(do_not_use, bool) or not isinstance(do_not_use, int | np.integer):
        raise TypeError(f"do_not_use must be an int, got {type(do_not_use).__name__}")
    if not 0 < int(do_not_use) < 2**32:
        raise ValueError(f"do_not_use must be a uint32 bit mask > 0, got {do_not_use}")
    return int(do_not_use)


def _check_writable(arr: np.ndarray, name: str) -> None:
    """Raise unless ``arr`` is a writable numpy array."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(arr).__name__}")
    if not arr.flags.writeable:
        raise ValueError(f"{name} is read-only; match_nans_and_flags works in place")


def _check_float(arr: np.ndarray, name: str) -> None:
    """Raise unless ``arr`` is a writable float32/float64 numpy array."""
    _check_writable(arr, name)
    native_float_dtype(arr, name)


def _usable_others(others: tuple, shape: tuple[int, ...]) -> list[np.ndarray]:
    """Check ``others``; drop ``None`` and, with a warning, wrongly shaped arrays."""
    usable = []
    for i, arr in enumerate(others):
        if arr is None:
            continue
        name = f"others[{i}]"
        if isinstance(arr, np.ndarray) and arr.shape != shape:
            warnings.warn(
                f"match_nans_and_flags: {name} has shape {arr.shape}, sci has {shape}; skipped",
                Spec3cWarning,
                stacklevel=3,
            )
            continue
        _check_float(arr, name)
        usable.append(arr)
    return usable


def _native_view(arr: np.ndarray) -> np.ndarray:
    """``arr`` itself if native and C-contiguous, else a native contiguous copy."""
    if is_native_contiguous(arr):
        return arr
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("="))
