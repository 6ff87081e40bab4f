"""Box extraction of a 2-D spectrum (ALGORITHMS.md §12.2-12.3).

Public tier over :mod:`spec3c._core._boxextract`; the aperture profiles it
takes are built by :mod:`spec3c.algorithms.aperture`.
"""

from __future__ import annotations

import operator
from typing import Literal, NamedTuple

import numpy as np

from . import _boxextract
from ._validate import check_workers

__all__ = ["BoxExtraction", "box_extract"]

_MODES = {None: 0, "poly": 1, "median": 2}
MAX_BKG_ORDER = 15


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


def box_extract(  # noqa: PLR0913 -- the jwst extract1d inputs, keyword-only options
    sci: np.ndarray,
    var_poisson: np.ndarray,
    var_rnoise: np.ndarray,
    var_flat: np.ndarray,
    profile: np.ndarray,
    *,
    bkg_profile: np.ndarray | None = None,
    bkg_fit: Literal["poly", "median"] | None = "poly",
    bkg_order: int = 0,
    workers: int = 0,
) -> BoxExtraction:
    """Box-extract a spectrum column by column (jwst ``extract1d``, box mode).

    Parameters
    ----------
    sci, var_poisson, var_rnoise, var_flat : ndarray (ny, nx), float
        Data and variances, dispersion along x (transpose vertical spectra
        first).  Any float dtype / byte order; computed in float64.
    profile : ndarray (ny, nx), float
        Source aperture weights in [0, 1] (see :func:`spec3c.algorithms.aperture.box_profile`).  Pixels
        whose ``sci - background`` is not finite get weight 0.
    bkg_profile : ndarray (ny, nx), optional
        Nonzero where background pixels are; None = no background.
    bkg_fit : {"poly", "median", None}
        ``poly``: per column, unweighted least-squares polynomial of
        ``bkg_order`` in y mapped to [-1, 1] (``linspace(-1, 1, ny)``) over
        background pixels with finite SCI and finite total variance; fits
        with 2-norm condition >= 1e10 give background 0.  Its variance is
        propagated exactly: the aperture background sum is Σ_y c_y S_y over
        background pixels and its variance Σ_y c_y² var_y, with the
        aperture weights taken from the *unmasked* ``profile`` (as jwst).
        ``median``: per-column median of background pixels with non-NaN
        SCI; variance ``1.2² · (Σ profile)² · Σ var·(1/N)²`` over the N
        background pixels with finite SCI and variance.  None: no
        background.
    bkg_order : int
        Polynomial order, 0..15 (``poly`` only).
    workers : int
        OpenMP threads over columns (0 = OpenMP default); the result does
        not depend on it.

    Returns
    -------
    BoxExtraction
    """
    s = _as_f64_2d(sci, "sci", None)
    shape = s.shape
    vp = _as_f64_2d(var_poisson, "var_poisson", shape)
    vr = _as_f64_2d(var_rnoise, "var_rnoise", shape)
    vf = _as_f64_2d(var_flat, "var_flat", shape)
    prof = _as_f64_2d(profile, "profile", shape)
    if bkg_fit not in _MODES:
        raise ValueError(f"bkg_fit must be 'poly', 'median' or None, got {bkg_fit!r}")
    order = operator.index(bkg_order)
    if not 0 <= order <= MAX_BKG_ORDER:
        raise ValueError(f"bkg_order must be an int in [0, {MAX_BKG_ORDER}], got {bkg_order}")
    workers = check_workers(workers)
    mode = _MODES[bkg_fit] if bkg_profile is not None else 0
    bkg = (_as_f64_2d(bkg_profile, "bkg_profile", shape) if mode
           else np.zeros((1, 1), dtype=np.float64))
    out = np.zeros((9, shape[1]), dtype=np.float64)
    if s.size:
        _boxextract.box_extract(s, vp, vr, vf, prof, bkg, mode, order, out, workers)
    return BoxExtraction(*(row.copy() for row in out))
