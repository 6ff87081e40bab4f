"""Normal equations of a row-scaled sparse matrix, for many scalings (ALGORITHMS.md §12, SOSS ATOCA).

Public tier over :mod:`spec3c._core._normaleq`.  ATOCA solves ``B'B f = B'x``
once per integration with ``B = diag(profile / error) R``: the matrix ``R``
is fixed, only the row scale changes.  scipy rebuilds ``B`` and multiplies
``B.T @ B`` each time; :class:`ScaledNormalEquations` keeps ``R`` in both
orientations and the pattern of ``R'R``, and fills the values in one pass.
The result has the entries, values and sums of scipy's ``B.T @ B`` and
``B.T @ x`` bit for bit (zero products skipped, zero sums dropped), in
canonical (sorted) CSR.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_array

from . import _normaleq

__all__ = ["ScaledNormalEquations"]

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
