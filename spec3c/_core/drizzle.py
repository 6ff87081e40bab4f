"""Drizzle accumulator for 2-D resampling (ALGORITHMS.md §10.1).

Public tier: :class:`Drizzle` validates and coerces every input, owns the
output arrays and hands native contiguous arrays to
:mod:`spec3c._core._drizzle`; :class:`VarianceCombiner` resamples and
combines the per-input variances of §10.1 step 6.  Both take their
settings as one :class:`~spec3c._core.params.DrizzleParams`.

Resample recipe (one output frame, inputs ``k``)::

    params = DrizzleParams(kernel=..., pixfrac=..., fillval=...)
    driz = Drizzle(out_shape, params)
    comb = {name: VarianceCombiner(out_shape, params) for name in ("rnoise", "poisson", "flat")}
    for k in inputs:
        driz.add(sci_k, pixmap_k, w_k, iscale=iscale)
        v = {name: comb[name].resample(var_k[name], pixmap_k, w_k, iscale=iscale) for name in comb}
        omega = 1 / v["rnoise"]                            # ivm; or exptime_k
        for name in comb:
            comb[name].add(v[name], omega)
    sci, wht = driz.finalize()
    var_rnoise = comb["rnoise"].finalize(scale=pixel_scale_ratio)

Planes drizzled with one pixmap and weight (science and its errors) go
through one ``Drizzle(out_shape, params, planes=n)``: each input pixel's
footprint and overlaps are computed once for all of them, and each plane
gets the values a drizzle of it alone would.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Sequence
from typing import SupportsIndex

import numpy as np

from . import _drizzle
from ._validate import check_workers
from .params import KERNELS, DrizzleParams

__all__ = ["Drizzle", "VarianceCombiner"]


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


def _check_bounds(bounds: Sequence[int | None] | None, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """Validate ``bounds = (xmin, xmax, ymin, ymax)`` (inclusive; None = the full range)."""
    if bounds is None:
        bounds = (None, None, None, None)
    if len(bounds) != 4:
        raise ValueError(f"bounds must be (xmin, xmax, ymin, ymax), got {bounds!r}")
    xmin, xmax, ymin, ymax = bounds
    return (*_check_range("x", xmin, xmax, shape[1]), *_check_range("y", ymin, ymax, shape[0]))


def _check_shape2(shape: Sequence[SupportsIndex], name: str) -> tuple[int, int]:
    """``shape`` as a pair of positive ints ``(ny, nx)``."""
    try:
        ny, nx = (operator.index(v) for v in shape)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of ints (ny, nx), got {shape!r}") from None
    if ny < 1 or nx < 1:
        raise ValueError(f"{name} must be positive, got {(ny, nx)}")
    return ny, nx


def _check_params(params: DrizzleParams | None) -> DrizzleParams:
    if params is None:
        return DrizzleParams()
    if not isinstance(params, DrizzleParams):
        raise TypeError(f"params must be a DrizzleParams, got {type(params).__name__}")
    return params


class Drizzle:
    """Drizzle accumulator: ``add()`` input images, then ``finalize()``.

    Parameters
    ----------
    out_shape : (int, int)
        Output array shape ``(ny_out, nx_out)``.
    params : DrizzleParams, optional
        Kernel, ``pixfrac`` and ``fillval`` (default: ``DrizzleParams()``,
        square kernel, pixfrac 1, NaN fill).
    context : bool
        Keep int32 context planes ``(n_con, ny_out, nx_out)`` with one bit
        per input id (bit ``id % 32`` of plane ``id // 32``), of data plane 0.
    workers : int
        OpenMP threads (0 = OpenMP default).  Results do not depend on it:
        every output pixel accumulates its contributions in input-pixel
        order whatever the thread count.
    planes : int
        Data planes drizzled together (same pixmap and weight; each its own
        running mean and weight).  With 1, data and outputs are 2-D; with
        more, ``add`` takes ``(planes, ny, nx)`` and the outputs have a
        leading plane axis.

    Attributes
    ----------
    params : DrizzleParams
    out_sci, out_wht : ndarray (ny_out, nx_out) float32, or (planes, ny_out, nx_out)
        Running weighted mean and total weight (0 where never hit).
    out_con : ndarray (n_con, ny_out, nx_out) int32 or None
    n_inputs : int
        Number of images added so far.
    """

    def __init__(
        self,
        out_shape: tuple[int, int],
        params: DrizzleParams | None = None,
        *,
        context: bool = True,
        workers: int = 0,
        planes: int = 1,
    ) -> None:
        self.out_shape = _check_shape2(out_shape, "out_shape")
        self.params = _check_params(params)
        self.workers = check_workers(workers)
        self.planes = operator.index(planes)
        if self.planes < 1:
            raise ValueError(f"planes must be >= 1, got {planes!r}")
        self._sci = np.zeros((self.planes, *self.out_shape), dtype=np.float32)
        self._wht = np.zeros((self.planes, *self.out_shape), dtype=np.float32)
        self.out_sci = self._sci[0] if self.planes == 1 else self._sci
        self.out_wht = self._wht[0] if self.planes == 1 else self._wht
        self.out_con: np.ndarray | None = (
            np.zeros((1, *self.out_shape), dtype=np.int32) if context else None
        )
        self.n_inputs = 0
        self._dummy_con = np.zeros((1, 1), dtype=np.int32)

    def add(
        self,
        data: np.ndarray,
        pixmap: np.ndarray,
        weight: np.ndarray | None = None,
        *,
        iscale: float = 1.0,
        input_id: int | None = None,
        bounds: Sequence[int | None] | None = None,
    ) -> None:
        """Drizzle one input image onto the output.

        Parameters
        ----------
        data : ndarray (ny, nx), or (planes, ny, nx) with several planes, float
            Input science values (any float/int dtype or byte order; used as
            float32).  Non-finite values are skipped (in their plane).
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
        bounds : (xmin, xmax, ymin, ymax), optional
            Inclusive input pixel range to drizzle (drizzle's ``add_image``
            limits); None, or a None entry, = the full range.

        Notes
        -----
        Square kernel: ``J`` = area of the mapped quad, ``a`` = overlap with
        an output pixel, ``dow = a * w / J``;
        ``out = (out * W + dow * data * iscale) / (W + dow)``, ``W += dow``.
        Input arrays need at least 2 rows and 2 columns (pixmap interpolation).
        """
        data_arr = np.asarray(data)
        if self.planes == 1 and data_arr.ndim != 2:
            raise ValueError(f"data must be 2-D (ny, nx), got shape {data_arr.shape}")
        if self.planes > 1 and (data_arr.ndim != 3 or data_arr.shape[0] != self.planes):
            raise ValueError(f"data must be ({self.planes}, ny, nx), got shape {data_arr.shape}")
        shape = data_arr.shape[-2:]
        if self.params.kernel == "square" and (shape[0] < 2 or shape[1] < 2):
            raise ValueError(f"data must have at least 2 rows and 2 columns for the square kernel, got {shape}")
        data32 = _as_f32(data_arr, "data")
        pm = _check_pixmap(pixmap, shape)
        if weight is None:
            wt = np.ones(shape, dtype=np.float32)
        else:
            wt = _as_f32(weight, "weight", shape)
        iscale = float(iscale)
        x0, x1, y0, y1 = _check_bounds(bounds, shape)
        if input_id is None:
            input_id = self.n_inputs
        input_id = operator.index(input_id)
        if input_id < 0:
            raise ValueError(f"input_id must be >= 0, got {input_id}")
        con = self._context_plane(input_id)
        _drizzle.drizzle_add(
            data32.reshape(self.planes, *shape), pm, wt, self._sci, self._wht,
            self._dummy_con if con is None else con, con is not None, input_id % 32,
            KERNELS[self.params.kernel], self.params.pixfrac, iscale, x0, x1, y0, y1, self.workers,
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

    def finalize(self, plane: int = 0, fillval: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(sci, wht)`` copies of data plane ``plane``; ``sci`` is ``fillval`` (default
        ``params.fillval``) where ``wht == 0``.

        The accumulator stays usable (more images can be added afterwards).
        """
        fill = np.float32(self.params.fillval if fillval is None else fillval)
        sci = np.where(self._wht[plane] > 0, self._sci[plane], fill).astype(np.float32)
        return sci, self._wht[plane].copy()

    def clear(self, planes: slice | int) -> None:
        """Start data planes ``planes`` afresh (weights and values 0; plane 0's context is kept)."""
        self._sci[planes] = 0
        self._wht[planes] = 0


class VarianceCombiner:
    """Resample and combine one variance plane over the inputs (§10.1 step 6).

    :meth:`resample` gives the resampled variance ``v_i`` of one input;
    ``add(v_i, omega_i)`` accumulates ``S_var += omega_i**2 * v_i`` and
    ``S_w += omega_i`` wherever ``v_i`` is finite and ``>= 0`` and
    ``omega_i`` is finite and ``> 0``; ``finalize(scale)`` returns
    ``S_var * scale / S_w**2`` (NaN where ``S_w == 0``), float32.  For the
    ivm weighting ``omega_i = 1 / v_rnoise_i``; for exptime it is a scalar.
    Spectra use ``scale = pixel_scale_ratio`` (imaging ``1 / psr**2``).

    Parameters
    ----------
    out_shape : (int, int)
        Output array shape ``(ny_out, nx_out)``.
    params : DrizzleParams, optional
        The science data's drizzle settings (``fillval`` is not used:
        variances are NaN where nothing was resampled).
    workers : int
        OpenMP threads of :meth:`resample` (0 = OpenMP default).
    """

    def __init__(
        self,
        out_shape: tuple[int, int],
        params: DrizzleParams | None = None,
        *,
        workers: int = 0,
    ) -> None:
        self.out_shape = _check_shape2(out_shape, "out_shape")
        self.params = dataclasses.replace(_check_params(params), fillval=math.nan)
        self.workers = check_workers(workers)
        self._svar = np.zeros(self.out_shape, dtype=np.float64)
        self._sw = np.zeros(self.out_shape, dtype=np.float64)

    def resample(
        self,
        variance: np.ndarray,
        pixmap: np.ndarray,
        weight: np.ndarray | None = None,
        *,
        iscale: float = 1.0,
        bounds: Sequence[int | None] | None = None,
    ) -> np.ndarray:
        """Resampled variance of one input, ``(ny_out, nx_out)`` float32.

        Drizzles ``sqrt(variance)`` with the same pixmap, weights and
        kernel as the science data (the arguments of :meth:`Drizzle.add`)
        into a fresh output and squares the result, so the variance scales
        by ``iscale**2``.  Negative/NaN variances are skipped like NaN data;
        output pixels never hit are NaN.  Nothing is accumulated: pass the
        result to :meth:`add`.
        """
        driz = Drizzle(self.out_shape, self.params, context=False, workers=self.workers)
        driz.add(self.errors(variance), pixmap, weight, iscale=iscale, bounds=bounds)
        return self.variance_of(driz)

    @staticmethod
    def errors(variance: np.ndarray) -> np.ndarray:
        """``sqrt(variance)`` as float32, the plane drizzled for a variance (NaN where negative)."""
        with np.errstate(invalid="ignore"):
            return np.sqrt(np.asarray(variance).astype(np.float32, copy=False))

    @staticmethod
    def variance_of(driz: Drizzle, plane: int = 0) -> np.ndarray:
        """The resampled variance held by data plane ``plane`` of ``driz``, into which
        :meth:`errors` were drizzled: its square, NaN where nothing was drizzled."""
        err, _ = driz.finalize(plane, fillval=math.nan)
        return err * err

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
