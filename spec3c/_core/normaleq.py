"""Normal equations of sparse matrices, as scipy sums them (ALGORITHMS.md §12, SOSS ATOCA).

Public tier over :mod:`spec3c._core._normaleq`.  ATOCA solves ``B'B f = B'x``
once per integration with ``B = diag(profile / error) R``: the matrix ``R``
is fixed, only the row scale changes.  scipy rebuilds ``B`` and multiplies
``B.T @ B`` each time; :class:`ScaledNormalEquations` keeps ``R`` in both
orientations and the pattern of ``R'R``, and fills the values in one pass.
The result has the entries, values and sums of scipy's ``B.T @ B`` and
``B.T @ x`` bit for bit (zero products skipped, zero sums dropped), in
canonical (sorted) CSR.  :func:`gram` is ``B.T @ B`` of one matrix, bit for
bit, summed in OpenMP threads over half of it (it is symmetric), and
:func:`product` is scipy's ``A @ B`` of CSR matrices, array for array, its
rows in OpenMP threads.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_array

from . import _normaleq
from ._validate import check_workers

__all__ = ["ScaledNormalEquations", "gram", "product"]

_I64 = np.dtype(np.int64)
_F64 = np.dtype(np.float64)


def _csr_parts(matrix: csr_array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.ascontiguousarray(matrix.indptr, dtype=_I64), np.ascontiguousarray(matrix.indices, dtype=_I64),
            np.ascontiguousarray(matrix.data, dtype=_F64))


class ScaledNormalEquations:
    """``B'B`` and ``B'x`` of ``B = diag(scale) R`` for a fixed sparse ``R`` (n_rows, n_cols).

    Parameters
    ----------
    matrix : sparse array (n_rows, n_cols)
        ``R``, any scipy sparse format; it must not hold duplicate entries
        (scipy's products and sums never do).
    """

    def __init__(self, matrix: object) -> None:
        r = csr_array(matrix, dtype=_F64)
        if not r.has_canonical_format:  # duplicates would be summed by scipy before use
            r = r.copy()
            r.sum_duplicates()
        self.shape = r.shape
        self._r = _csr_parts(r)
        t = r.T.tocsr()  # R' by rows; csr conversion lists each row's entries by ascending column
        t.sort_indices()
        self._t = _csr_parts(t)
        ones = csr_array((np.ones(r.nnz), r.indices, r.indptr), shape=r.shape)
        pattern = csr_array(ones.T @ ones)  # positive sums: the structural pattern, nothing cancels
        pattern.sort_indices()
        self._pattern = (np.ascontiguousarray(pattern.indptr, dtype=_I64),
                         np.ascontiguousarray(pattern.indices, dtype=_I64))

    def __call__(self, scale: np.ndarray, pixels: np.ndarray) -> tuple[csr_array, np.ndarray]:
        """``(B'B, B'x)`` for row scale ``scale`` and ``x = pixels`` (each (n_rows,), float64).

        Raises
        ------
        ValueError
            If ``scale`` or ``pixels`` is not of length n_rows.
        """
        n_rows, n_cols = self.shape
        scale = np.ascontiguousarray(scale, dtype=_F64)
        pixels = np.ascontiguousarray(pixels, dtype=_F64)
        for name, arr in (("scale", scale), ("pixels", pixels)):
            if arr.shape != (n_rows,):
                raise ValueError(f"{name} must have shape ({n_rows},), got {arr.shape}")
        capacity = self._pattern[1].size
        indptr = np.empty(n_cols + 1, dtype=_I64)
        indices = np.empty(capacity, dtype=_I64)
        data = np.empty(capacity, dtype=_F64)
        rhs = np.empty(n_cols, dtype=_F64)
        nnz = _normaleq.normal_equations(*self._t, *self._r, *self._pattern, scale, pixels,
                                         np.zeros(n_cols, dtype=_F64), indptr, indices, data, rhs)
        normal = csr_array((data[:nnz], indices[:nnz], indptr), shape=(n_cols, n_cols))
        normal.has_canonical_format = True  # sorted, no duplicates: the pattern's order
        return normal, rhs


def gram(matrix: object, workers: int = 0) -> csr_array:
    """``B'B`` of a sparse ``B`` (n_rows, n_cols), with the entries, values and sums of scipy's
    ``B.T @ B`` bit for bit (every product of stored entries, rows ascending; zero sums
    dropped), in canonical CSR.

    Parameters
    ----------
    matrix : sparse array (n_rows, n_cols)
        ``B``, any scipy sparse format, without duplicate entries (as in :class:`ScaledNormalEquations`).
    workers : int
        OpenMP threads (0: OpenMP's default, ``OMP_NUM_THREADS`` or all cores).  The values do not
        depend on it.
    """
    workers = check_workers(workers)
    b = csr_array(matrix, dtype=_F64)  # rows in any column order: each product is taken as stored
    n_cols = b.shape[1]
    if b.nnz == 0 or n_cols == 0:
        return csr_array((n_cols, n_cols), dtype=_F64)
    t = b.T.tocsr()  # B' by rows, each row's columns (B's rows) ascending, as the conversion lists them
    indptr, indices, data = _normaleq.gram(*_csr_parts(t), *_csr_parts(b), workers)
    normal = csr_array((data, indices, indptr), shape=(n_cols, n_cols))
    normal.has_canonical_format = True
    return normal


def product(left: csr_array, right: object, workers: int = 0) -> csr_array:
    """scipy's ``left @ right`` (CSR ``left``): the same ``indptr``, ``indices`` (each row's columns in
    scipy's unsorted order) and ``data`` bit for bit, as scipy's ``csr_matmat`` sums and lists them.

    Parameters
    ----------
    left : csr_array (n_rows, n_inner)
    right : sparse array (n_inner, n_cols)
        Converted to CSR as scipy converts it.
    workers : int
        OpenMP threads (0: OpenMP's default).  The result does not depend on it.
    """
    workers = check_workers(workers)
    if not isinstance(left, csr_array):
        raise TypeError(f"product: left must be a csr_array, got {type(left).__name__}")
    right_csr = csr_array(right)
    if left.shape[1] != right_csr.shape[0]:
        raise ValueError(f"product: shapes {left.shape} and {right_csr.shape} do not align")
    shape = (left.shape[0], right_csr.shape[1])
    if left.nnz == 0 or right_csr.nnz == 0:
        return csr_array(shape, dtype=np.result_type(left.dtype, right_csr.dtype))
    if left.dtype != _F64 or right_csr.dtype != _F64:
        raise TypeError("product: float64 matrices only")
    indptr, indices, data = _normaleq.product(*_csr_parts(left), *_csr_parts(right_csr), shape[1], workers)
    return csr_array((data, indices, indptr), shape=shape)
