# cython: language_level=3
"""Normal equations of a row-scaled sparse matrix (private tier).

Called by :class:`spec3c._core.normaleq.ScaledNormalEquations`, which
validates and prepares the index arrays.  With ``B = diag(scale) R``
(``R`` fixed, ``scale`` per row), :func:`normal_equations` fills the values
of ``B'B`` on a precomputed sorted pattern and ``B'x``.  Every sum runs
over the rows ``p`` of ``R`` in ascending order and skips the zero entries
of ``B``, the terms and order scipy.sparse uses for ``B.T @ B`` and
``B.T @ x`` of a CSR ``B`` (``csr_matmat`` and ``csc_matvec``), so the
values are scipy's bit for bit.
"""

from libc.stdint cimport int64_t


def normal_equations(const int64_t[::1] t_indptr, const int64_t[::1] t_indices, const double[::1] t_data,
                     const int64_t[::1] r_indptr, const int64_t[::1] r_indices, const double[::1] r_data,
                     const int64_t[::1] pat_indptr, const int64_t[::1] pat_indices,
                     const double[::1] scale, const double[::1] pixels,
                     double[::1] sums, int64_t[::1] out_indptr, int64_t[::1] out_indices,
                     double[::1] out_data, double[::1] rhs):
    """Fill ``out_*`` (CSR of B'B: entries of the pattern whose sum is not 0) and ``rhs`` (B'x).

    ``t_*``: R' in CSR (rows of R ascending within each row of R'); ``r_*``: R in CSR;
    ``pat_*``: the structural pattern of R'R, sorted; ``sums``: zeroed scratch of R's column count.
    Returns the number of entries written.
    """
    cdef Py_ssize_t n = t_indptr.shape[0] - 1
    cdef Py_ssize_t a, jj, kk, p
    cdef int64_t nnz = 0
    cdef double v, w, acc
    with nogil:
        out_indptr[0] = 0
        for a in range(n):
            acc = 0.0
            for jj in range(t_indptr[a], t_indptr[a + 1]):
                p = t_indices[jj]
                v = scale[p] * t_data[jj]
                if v == 0.0:
                    continue
                acc += v * pixels[p]
                for kk in range(r_indptr[p], r_indptr[p + 1]):
                    w = scale[p] * r_data[kk]
                    if w != 0.0:
                        sums[r_indices[kk]] += v * w
            rhs[a] = acc
            for jj in range(pat_indptr[a], pat_indptr[a + 1]):
                p = pat_indices[jj]
                if sums[p] != 0.0:
                    out_indices[nnz] = p
                    out_data[nnz] = sums[p]
                    nnz += 1
                sums[p] = 0.0
            out_indptr[a + 1] = nnz
    return nnz
