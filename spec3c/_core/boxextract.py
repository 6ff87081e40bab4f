"""Box extraction of a 2-D spectrum (ALGORITHMS.md §12.2-12.3).

Public tier over :mod:`spec3c._core._boxextract`; the aperture profiles it
takes are built by :mod:`spec3c.algorithms.aperture`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from . import _boxextract
from ._validate import check_workers
from .params import BKG_FITS, BackgroundFit

__all__ = ["BoxExtraction", "box_extract"]

_VARIANCES = ("var_poisson", "var_rnoise", "var_flat")


class BoxExtraction(NamedTuple):
    """Per-column box extraction results, each ``(nx,)`` float64.

    ``flux`` = Σ p·(S − B) (NaN where ``npixels`` is 0 within 1e-8),
    ``npixels`` = Σ p, ``var_*`` = Σ p²·var_* + ``bkg_var_*``,
    ``background`` = Σ p·B (0 when not finite or no background),
    ``bkg_var_*`` = variance of the subtracted background sum.
    """

    flux: np.ndarray
    npixels: np.ndarray
    var_poisson: np.ndarray
    var_rnoise: np.ndarray
    var_flat: np.ndarray
    background: np.ndarray
    bkg_var_poisson: np.ndarray
    bkg_var_rnoise: np.ndarray
    bkg_var_flat: np.ndarray


def _as_f64_2d(arr: object, name: str, shape: tuple[int, ...] | None) -> np.ndarray:
    a = np.asarray(arr)
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a real-number array, got dtype {a.dtype}")
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (ny, nx), got shape {a.shape}")
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name} must have the shape of sci {shape}, got {a.shape}")
    return np.ascontiguousarray(a, dtype=np.float64)


def box_extract(
    sci: np.ndarray,
    variances: Sequence[np.ndarray],
    profile: np.ndarray,
    *,
    bkg_profile: np.ndarray | None = None,
    bkg_fit: BackgroundFit | None = None,
    workers: int = 0,
) -> BoxExtraction:
    """Box-extract a spectrum column by column (jwst ``extract1d``, box mode).

    Parameters
    ----------
    sci : ndarray (ny, nx), float
        Data, dispersion along x (transpose vertical spectra first).  Any
        float dtype / byte order; computed in float64.
    variances : (var_poisson, var_rnoise, var_flat), each ndarray (ny, nx), float
        The three variance planes, in this order.
    profile : ndarray (ny, nx), float
        Source aperture weights in [0, 1] (see :func:`spec3c.algorithms.aperture.box_profile`).  Pixels
        whose ``sci - background`` is not finite get weight 0.
    bkg_profile : ndarray (ny, nx), optional
        Nonzero where background pixels are.
    bkg_fit : BackgroundFit, optional
        How the background is fitted.  The background is subtracted only
        when both ``bkg_profile`` and ``bkg_fit`` are given (jwst: no
        subtraction when ``bkg_fit`` is None).
    workers : int
        OpenMP threads over columns (0 = OpenMP default); the result does
        not depend on it.

    Returns
    -------
    BoxExtraction
    """
    s = _as_f64_2d(sci, "sci", None)
    shape = s.shape
    vp, vr, vf = _check_variances(variances, shape)
    prof = _as_f64_2d(profile, "profile", shape)
    fit = _check_fit(bkg_fit)
    workers = check_workers(workers)
    mode = BKG_FITS[fit.bkg_fit] if bkg_profile is not None and bkg_fit is not None else 0
    bkg = (_as_f64_2d(bkg_profile, "bkg_profile", shape) if mode
           else np.zeros((1, 1), dtype=np.float64))
    out = np.zeros((9, shape[1]), dtype=np.float64)
    if s.size:
        _boxextract.box_extract(s, vp, vr, vf, prof, bkg, mode, fit.bkg_order, out, workers)
    return BoxExtraction(*(row.copy() for row in out))


def _check_variances(variances: Sequence[np.ndarray], shape: tuple[int, int]) -> list[np.ndarray]:
    """``(var_poisson, var_rnoise, var_flat)`` as float64 arrays of ``shape``."""
    if isinstance(variances, np.ndarray) or len(variances) != len(_VARIANCES):
        raise ValueError("variances must be a sequence (var_poisson, var_rnoise, var_flat) of 2-D arrays")
    return [_as_f64_2d(v, name, shape) for name, v in zip(_VARIANCES, variances, strict=True)]


def _check_fit(bkg_fit: BackgroundFit | None) -> BackgroundFit:
    """``bkg_fit`` checked; None gives the unused default."""
    if bkg_fit is None:
        return BackgroundFit()
    if not isinstance(bkg_fit, BackgroundFit):
        raise TypeError(f"bkg_fit must be a BackgroundFit, got {type(bkg_fit).__name__}")
    return bkg_fit
