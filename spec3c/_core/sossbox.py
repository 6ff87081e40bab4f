"""NIRISS SOSS box sums of one integration, every order in one pass (ALGORITHMS.md §12, SOSS).

Public tier over :mod:`spec3c._core._sossbox`.  The sums are those of
:func:`spec3c.modes.soss.box.extract_integration` without ``soss_bad_pix="model"``:
a pixel is masked where ``scimask`` is set, its error is not > 0, or its
data or error is not finite; with ATOCA ``models``, the other orders' finite
models are subtracted before an order is summed.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from . import _sossbox
from ._validate import as_native_contiguous, check_workers, native_float_dtype, real_array_like

__all__ = ["soss_box_sums"]

_F64 = np.dtype(np.float64)


def _image(arr: np.ndarray, name: str, shape: tuple[int, ...]) -> np.ndarray:
    return real_array_like(arr, name, shape, _F64, "data")


def soss_box_sums(
    data: np.ndarray,
    err: np.ndarray,
    scimask: np.ndarray,
    weights: Mapping[int, np.ndarray],
    cutoffs: Mapping[int, int],
    models: Mapping[int, np.ndarray] | None = None,
    *,
    workers: int = 1,
) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Each order's ``(flux, flux_error, npixels)`` over columns ``0 .. cutoffs[order]-1``.

    Parameters
    ----------
    data : ndarray, (ny, nx), float32 or float64
        The integration (infilled).
    err : ndarray, (ny, nx)
        Its errors (float64; other real dtypes are converted).
    scimask : ndarray of bool, (ny, nx)
        Pixels bad in every integration.
    weights : mapping of order to ndarray (ny, nx)
        The box apertures, in the order the spectra are wanted.
    cutoffs : mapping of order to int
        Columns extracted per order (at most nx).
    models : mapping of order to ndarray (ny, nx), optional
        ATOCA model images; an order's sums see ``data`` minus the sum, in
        this mapping's order, of every other order's finite model.
    workers : int
        OpenMP threads over columns (1: the calling thread, as when
        integrations are already shared among threads; 0: OpenMP's default).

    Returns
    -------
    dict of order to (flux, flux_error, npixels), each float64 ``(cutoff,)``
        ``flux = sum w d``, ``flux_error = sqrt(sum w e^2)``, ``npixels = sum w``
        over unmasked pixels; flux and error are NaN where ``npixels`` is 0.
    """
    workers = check_workers(workers)
    data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"data must be 2-D (ny, nx), got shape {data.shape}")
    data = as_native_contiguous(data, native_float_dtype(data, "data"))
    shape = data.shape
    err = _image(err, "err", shape)
    mask = real_array_like(scimask, "scimask", shape, np.dtype(bool), "data").view(np.uint8)
    orders = list(weights)
    limits = np.array([int(cutoffs[o]) for o in orders], dtype=np.intp)
    if limits.size and (limits.min() < 0 or limits.max() > shape[1]):
        raise ValueError(f"cutoffs must be within 0 .. {shape[1]}, got {dict(cutoffs)}")
    planes = [_image(weights[o], f"weights[{o}]", shape) for o in orders]
    models = models or {}
    modelled = list(models)
    model_planes = [_image(models[o], f"models[{o}]", shape) for o in modelled]
    out = np.empty((len(orders), 3, shape[1]))
    _sossbox.box_sums(data, err, mask, planes, np.array(orders, dtype=np.intp), limits, model_planes,
                      np.array(modelled, dtype=np.intp), out, workers)
    return {o: (out[k, 0, :n], out[k, 1, :n], out[k, 2, :n]) for k, (o, n) in enumerate(zip(orders, limits, strict=True))}
