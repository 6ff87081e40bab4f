"""Drizzle accumulator for 2-D resampling (ALGORITHMS.md §10.1).

Public tier: :class:`Drizzle` validates and coerces every input, owns the
output arrays and hands native contiguous arrays to
:mod:`spec3c._core._drizzle`.  :func:`drizzle_image` and
:func:`drizzle_variance` are one-shot conveniences, and
:class:`VarianceCombiner` implements the per-input variance weighting of
§10.1 step 6.

Resample recipe (one output frame, inputs ``k``)::

    driz = Drizzle(out_shape, kernel=..., pixfrac=...)
    comb = {name: VarianceCombiner(out_shape) for name in ("rnoise", "poisson", "flat")}
    for k in inputs:
        driz.add(sci_k, pixmap_k, w_k, iscale=iscale)
        v_rn = drizzle_variance(var_rnoise_k, pixmap_k, w_k, out_shape, iscale=iscale, ...)
        omega = 1 / v_rn                                   # ivm; or exptime_k
        comb["rnoise"].add(v_rn, omega)
        comb["poisson"].add(drizzle_variance(var_poisson_k, ...), omega)
        comb["flat"].add(drizzle_variance(var_flat_k, ...), omega)
    sci, wht = driz.finalize()
    var_rnoise = comb["rnoise"].finalize(scale=pixel_scale_ratio)
"""

from __future__ import annotations

import operator
from typing import Literal

import numpy as np

from . import _drizzle
from ._validate import check_workers

__all__ = ["Drizzle", "VarianceCombiner", "drizzle_image", "drizzle_variance"]

_KERNELS = {"square": 0, "point": 1}
Kernel = Literal["square", "point"]


def _as_f32(arr: object, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Return ``arr`` as a native C-contiguous float32 array, checking its shape."""
    a = np.asarray(arr)
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a real-number array, got dtype {a.dtype}")
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    return np.ascontiguousarray(a, dtype=np.float32)


def _check_pixmap(pixmap: object, shape: tuple[int, int]) -> np.ndarray:
    """Return ``pixmap`` as a native C-contiguous (ny, nx, 2) float64 array."""
    pm = np.asarray(pixmap)
    if pm.dtype.kind not in "fiu":
        raise TypeError(f"pixmap must be a real-number array, got dtype {pm.dtype}")
    if pm.shape != (*shape, 2):
        raise ValueError(f"pixmap must have shape {(*shape, 2)} (data shape + (2,)), got {pm.shape}")
    return np.ascontiguousarray(pm, dtype=np.float64)


def _check_range(name: str, lo: int | None, hi: int | None, n: int) -> tuple[int, int]:
    """Validate an inclusive index range [lo, hi] within [0, n - 1]."""
    lo = 0 if lo is None else operator.index(lo)
    hi = n - 1 if hi is None else operator.index(hi)
    if not 0 <= lo <= hi <= n - 1:
        raise ValueError(f"{name}min/{name}max must satisfy 0 <= min <= max <= {n - 1}, got {lo}, {hi}")
    return lo, hi


def _check_shape2(shape: object, name: str) -> tuple[int, int]:
    try:
        ny, nx = (operator.index(v) for v in shape)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of ints (ny, nx), got {shape!r}") from None
    if ny < 1 or nx < 1:
        raise ValueError(f"{name} must be positive, got {(ny, nx)}")
    return ny, nx


class Drizzle:
    """Drizzle accumulator: ``add()`` input images, then ``finalize()``.

    Parameters
    ----------
    out_shape : (int, int)
        Output array shape ``(ny_out, nx_out)``.
    kernel : {"square", "point"}
        ``square``: each input pixel, shrunk by ``pixfrac`` about its centre,
        is mapped to a quadrilateral on the output (corners bilinearly
        interpolated from ``pixmap``, extrapolated from the nearest 2x2 cell
        at the edges) and shares its value with every output pixel in
        proportion to the exact overlap area.  ``point``: the whole weight
        goes to the output pixel nearest the mapped centre (round half away
        from zero, as drizzle).
    pixfrac : float
        Linear shrink factor of input pixels (> 0; square kernel only).
    fillval : float
        Value of output pixels that received no weight (``finalize``).
    context : bool
        Keep int32 context planes ``(n_planes, ny_out, nx_out)`` with one bit
        per input id (bit ``id % 32`` of plane ``id // 32``).
    workers : int
        OpenMP threads (0 = OpenMP default).  Results do not depend on it:
        every output pixel accumulates its contributions in input-pixel
        order whatever the thread count.

    Attributes
    ----------
    out_sci, out_wht : ndarray (ny_out, nx_out) float32
        Running weighted mean and total weight (0 where never hit).
    out_con : ndarray (n_planes, ny_out, nx_out) int32 or None
    n_inputs : int
        Number of images added so far.
    """

    def __init__(
        self,
        out_shape: tuple[int, int],
        kernel: Kernel = "square",
        pixfrac: float = 1.0,
        fillval: float = np.nan,
        *,
        context: bool = True,
        workers: int = 0,
    ) -> None:
        self.out_shape = _check_shape2(out_shape, "out_shape")
        if kernel not in _KERNELS:
            raise ValueError(f"kernel must be one of {sorted(_KERNELS)}, got {kernel!r}")
        pixfrac = float(pixfrac)
        if not (pixfrac > 0.0 and np.isfinite(pixfrac)):
            raise ValueError(f"pixfrac must be a finite number > 0, got {pixfrac}")
        self.kernel: Kernel = kernel
        self.pixfrac = pixfrac
        self.fillval = float(fillval)
        self.workers = check_workers(workers)
        self.out_sci = np.zeros(self.out_shape, dtype=np.float32)
        self.out_wht = np.zeros(self.out_shape, dtype=np.float32)
        self.out_con: np.ndarray | None = (
            np.zeros((1, *self.out_shape), dtype=np.int32) if context else None
        )
        self.n_inputs = 0
        self._dummy_con = np.zeros((1, 1), dtype=np.int32)

    def add(  # noqa: PLR0913 -- drizzle add_image keyword set (input range)
        self,
        data: np.ndarray,
        pixmap: np.ndarray,
        weight: np.ndarray | None = None,
        *,
        iscale: float = 1.0,
        input_id: int | None = None,
        xmin: int | None = None,
        xmax: int | None = None,
        ymin: int | None = None,
        ymax: int | None = None,
    ) -> None:
        """Drizzle one input image onto the output.

        Parameters
        ----------
        data : ndarray (ny, nx), float
            Input science values (any float/int dtype or byte order; used as
            float32).  Non-finite values are skipped.
        pixmap : ndarray (ny, nx, 2), float
            Output (x, y) pixel coordinate of every input pixel centre.
            NaN entries make the pixel (and, for the square kernel, the
            neighbours whose corners interpolate from it) skip.
        weight : ndarray (ny, nx), float, optional
            Per-pixel input weight (float32); pixels with weight <= 0 or NaN
            are skipped.  None = 1 everywhere.
        iscale : float
            Factor applied to ``data`` before accumulation.
        input_id : int, optional
            Context bit number (default: the count of images added so far).
        xmin, xmax, ymin, ymax : int, optional
            Inclusive input pixel range to drizzle (default: all).

        Notes
        -----
        Square kernel: ``J`` = area of the mapped quad, ``a`` = overlap with
        an output pixel, ``dow = a * w / J``;
        ``out = (out * W + dow * data * iscale) / (W + dow)``, ``W += dow``.
        Input arrays need at least 2 rows and 2 columns (pixmap interpolation).
        """
        data_arr = np.asarray(data)
        if data_arr.ndim != 2:
            raise ValueError(f"data must be 2-D (ny, nx), got shape {data_arr.shape}")
        shape = data_arr.shape
        if self.kernel == "square" and (shape[0] < 2 or shape[1] < 2):
            raise ValueError(f"data must have at least 2 rows and 2 columns for the square kernel, got {shape}")
        data32 = _as_f32(data_arr, "data")
        pm = _check_pixmap(pixmap, shape)
        if weight is None:
            wt = np.ones(shape, dtype=np.float32)
        else:
            wt = _as_f32(weight, "weight", shape)
        iscale = float(iscale)
        x0, x1 = _check_range("x", xmin, xmax, shape[1])
        y0, y1 = _check_range("y", ymin, ymax, shape[0])
        if input_id is None:
            input_id = self.n_inputs
        input_id = operator.index(input_id)
        if input_id < 0:
            raise ValueError(f"input_id must be >= 0, got {input_id}")
        con = self._context_plane(input_id)
        _drizzle.drizzle_add(
            data32, pm, wt, self.out_sci, self.out_wht,
            self._dummy_con if con is None else con, con is not None, input_id % 32,
            _KERNELS[self.kernel], self.pixfrac, iscale, x0, x1, y0, y1, self.workers,
        )
        self.n_inputs += 1

    def _context_plane(self, input_id: int) -> np.ndarray | None:
        """Return the (writable, contiguous) context plane holding ``input_id``."""
        if self.out_con is None:
            return None
        plane = input_id // 32
        if plane >= self.out_con.shape[0]:
            grow = np.zeros((plane + 1 - self.out_con.shape[0], *self.out_shape), dtype=np.int32)
            self.out_con = np.concatenate([self.out_con, grow])
        return self.out_con[plane]

    def finalize(self) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(sci, wht)`` copies; ``sci`` is ``fillval`` where ``wht == 0``.

        The accumulator stays usable (more images can be added afterwards).
        """
        sci = np.where(self.out_wht > 0, self.out_sci, np.float32(self.fillval)).astype(np.float32)
        return sci, self.out_wht.copy()


def drizzle_image(  # noqa: PLR0913 -- Drizzle options + add() options
    data: np.ndarray,
    pixmap: np.ndarray,
    out_shape: tuple[int, int],
    weight: np.ndarray | None = None,
    *,
    kernel: Kernel = "square",
    pixfrac: float = 1.0,
    iscale: float = 1.0,
    fillval: float = np.nan,
    xmin: int | None = None,
    xmax: int | None = None,
    ymin: int | None = None,
    ymax: int | None = None,
    workers: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Drizzle one image into a fresh output; return ``(sci, wht)`` float32.

    Same parameters as :class:`Drizzle` and :meth:`Drizzle.add`.
    """
    driz = Drizzle(out_shape, kernel, pixfrac, fillval, context=False, workers=workers)
    driz.add(data, pixmap, weight, iscale=iscale, xmin=xmin, xmax=xmax, ymin=ymin, ymax=ymax)
    return driz.finalize()


def drizzle_variance(  # noqa: PLR0913 -- same options as drizzle_image
    variance: np.ndarray,
    pixmap: np.ndarray,
    out_shape: tuple[int, int],
    weight: np.ndarray | None = None,
    *,
    kernel: Kernel = "square",
    pixfrac: float = 1.0,
    iscale: float = 1.0,
    xmin: int | None = None,
    xmax: int | None = None,
    ymin: int | None = None,
    ymax: int | None = None,
    workers: int = 0,
) -> np.ndarray:
    """Resampled variance of one input (§10.1 step 6, per input ``v_i``).

    Drizzles ``sqrt(variance)`` with the same pixmap, weights and kernel as
    the science data into a fresh output and squares the result, so the
    variance scales by ``iscale**2``.  Negative/NaN variances are skipped
    like NaN data; output pixels never hit are NaN.

    Returns
    -------
    ndarray (ny_out, nx_out) float32
    """
    var = np.asarray(variance)
    with np.errstate(invalid="ignore"):
        err = np.sqrt(var.astype(np.float32, copy=False))
    sci, _ = drizzle_image(
        err, pixmap, out_shape, weight, kernel=kernel, pixfrac=pixfrac, iscale=iscale,
        fillval=np.nan, xmin=xmin, xmax=xmax, ymin=ymin, ymax=ymax, workers=workers,
    )
    return sci * sci


class VarianceCombiner:
    """Combine per-input resampled variances (§10.1 step 6).

    ``add(v_i, omega_i)`` accumulates ``S_var += omega_i**2 * v_i`` and
    ``S_w += omega_i`` wherever ``v_i`` is finite and ``>= 0`` and
    ``omega_i`` is finite and ``> 0``; ``finalize(scale)`` returns
    ``S_var * scale / S_w**2`` (NaN where ``S_w == 0``), float32.  For the
    ivm weighting ``omega_i = 1 / v_rnoise_i``; for exptime it is a scalar.
    Spectra use ``scale = pixel_scale_ratio`` (imaging ``1 / psr**2``).
    """

    def __init__(self, out_shape: tuple[int, int]) -> None:
        self.out_shape = _check_shape2(out_shape, "out_shape")
        self._svar = np.zeros(self.out_shape, dtype=np.float64)
        self._sw = np.zeros(self.out_shape, dtype=np.float64)

    def add(self, variance: np.ndarray, omega: np.ndarray | float) -> None:
        """Add one input's resampled variance ``(ny_out, nx_out)`` with weight ``omega``."""
        v = np.asarray(variance, dtype=np.float64)
        if v.shape != self.out_shape:
            raise ValueError(f"variance must have shape {self.out_shape}, got {v.shape}")
        om = np.broadcast_to(np.asarray(omega, dtype=np.float64), self.out_shape)
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(v) & (v >= 0) & np.isfinite(om) & (om > 0)
        self._svar[ok] += om[ok] ** 2 * v[ok]
        self._sw[ok] += om[ok]

    def finalize(self, scale: float = 1.0) -> np.ndarray:
        """Return the combined variance, float32, NaN where nothing was added."""
        out = np.full(self.out_shape, np.nan, dtype=np.float64)
        ok = self._sw > 0
        out[ok] = self._svar[ok] * float(scale) / self._sw[ok] ** 2
        return out.astype(np.float32)
