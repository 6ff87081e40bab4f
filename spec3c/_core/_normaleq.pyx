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

from cython.parallel cimport prange, threadid
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free, malloc, qsort

import numpy as np

from ._shared cimport resolve_threads


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


# -- B'B of one matrix: the upper triangle in parallel, mirrored ----------------------------------

cdef int _ascending(const void* x, const void* y) noexcept nogil:
    cdef int64_t a = (<const int64_t*>x)[0]
    cdef int64_t b = (<const int64_t*>y)[0]
    return (a > b) - (a < b)


cdef struct _Rows:
    int64_t** indices          # each row's kept columns (malloc'd by whoever fills the row)
    double** data
    int64_t* count


cdef bint _rows_alloc(_Rows* rows, Py_ssize_t n) noexcept nogil:
    """A table of ``n`` empty rows; False if out of memory (free it with :func:`_rows_free` anyway)."""
    rows.indices = <int64_t**>calloc(n + 1, sizeof(int64_t*))
    rows.data = <double**>calloc(n + 1, sizeof(double*))
    rows.count = <int64_t*>calloc(n + 1, sizeof(int64_t))
    return rows.indices != NULL and rows.data != NULL and rows.count != NULL


cdef void _rows_free(_Rows* rows, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    if rows.indices != NULL and rows.data != NULL:
        for i in range(n):
            free(rows.indices[i])
            free(rows.data[i])
    free(rows.indices)
    free(rows.data)
    free(rows.count)


cdef int _rows_keep(_Rows* rows, Py_ssize_t i, Py_ssize_t n, int64_t** indices, double** data) noexcept nogil:
    """Room for up to ``n`` entries of row ``i`` (``*indices``, ``*data``; the caller sets
    ``rows.count[i]``); -1 if out of memory."""
    indices[0] = <int64_t*>malloc((n + 1) * sizeof(int64_t))
    data[0] = <double*>malloc((n + 1) * sizeof(double))
    if indices[0] == NULL or data[0] == NULL:
        free(indices[0])
        free(data[0])
        return -1
    rows.indices[i], rows.data[i] = indices[0], data[0]
    return 0


cdef struct _Operands:
    const int64_t* l_indptr    # the left matrix in CSR (gram: B', each row's columns ascending)
    const int64_t* l_indices
    const double* l_data
    const int64_t* r_indptr    # the right one in CSR (gram: B)
    const int64_t* r_indices
    const double* r_data
    _Rows out                  # the result's rows


cdef void _operands(_Operands* m, const int64_t[::1] l_indptr, const int64_t[::1] l_indices,
                    const double[::1] l_data, const int64_t[::1] r_indptr, const int64_t[::1] r_indices,
                    const double[::1] r_data) noexcept:
    m.l_indptr, m.l_indices, m.l_data = &l_indptr[0], &l_indices[0], &l_data[0]
    m.r_indptr, m.r_indices, m.r_data = &r_indptr[0], &r_indices[0], &r_data[0]


cdef int _upper_row(_Operands* m, Py_ssize_t a, double* sums, int64_t* mark, int64_t* touched) noexcept nogil:
    """Row ``a`` of B'B from column ``a`` on, where the sum is not 0; -1 if out of memory."""
    cdef Py_ssize_t jj, kk, p, k, n_touched = 0, n_kept = 0
    cdef double v
    cdef int64_t* kept_indices
    cdef double* kept_data
    for jj in range(m.l_indptr[a], m.l_indptr[a + 1]):  # the rows p holding column a, ascending
        p = m.l_indices[jj]
        v = m.l_data[jj]
        for kk in range(m.r_indptr[p], m.r_indptr[p + 1]):
            k = m.r_indices[kk]
            if k < a:
                continue
            if mark[k] != a:
                mark[k] = a
                sums[k] = 0.0
                touched[n_touched] = k
                n_touched += 1
            sums[k] += v * m.r_data[kk]
    qsort(touched, n_touched, sizeof(int64_t), _ascending)
    if _rows_keep(&m.out, a, n_touched, &kept_indices, &kept_data) != 0:
        return -1
    for jj in range(n_touched):
        k = touched[jj]
        if sums[k] != 0.0:
            kept_indices[n_kept] = k
            kept_data[n_kept] = sums[k]
            n_kept += 1
    m.out.count[a] = n_kept
    return 0


cdef void _mirror(_Operands* m, Py_ssize_t n, int64_t* indptr, int64_t* indices, double* data) noexcept nogil:
    """The full symmetric CSR from the upper rows: row r is (k, r) for k < r, then row r's own."""
    cdef Py_ssize_t a, j, k
    for a in range(n + 1):
        indptr[a] = 0
    for a in range(n):
        indptr[a + 1] += m.out.count[a]
        for j in range(m.out.count[a]):
            k = m.out.indices[a][j]
            if k > a:
                indptr[k + 1] += 1
    for a in range(n):
        indptr[a + 1] += indptr[a]
    for a in range(n):  # rows a ascending: each row's lower entries arrive in column order
        for j in range(m.out.count[a]):
            k = m.out.indices[a][j]
            if k > a:
                indices[indptr[k]] = a
                data[indptr[k]] = m.out.data[a][j]
                indptr[k] += 1
        for j in range(m.out.count[a]):
            indices[indptr[a]] = m.out.indices[a][j]
            data[indptr[a]] = m.out.data[a][j]
            indptr[a] += 1
    for a in range(n, 0, -1):  # each indptr[r] now marks the end of row r: shift back
        indptr[a] = indptr[a - 1]
    indptr[0] = 0


def gram(const int64_t[::1] t_indptr, const int64_t[::1] t_indices, const double[::1] t_data,
         const int64_t[::1] b_indptr, const int64_t[::1] b_indices, const double[::1] b_data, int workers):
    """``B'B`` in canonical CSR: ``(indptr, indices, data)``.

    ``b_*``: B in CSR; ``t_*``: B' in CSR, each row's columns (B's rows)
    ascending; both non-empty.  Entry (a, k) sums
    ``B[p, a] * B[p, k]`` over the p storing both, ascending, as scipy's
    ``csr_matmat`` does for ``B.T @ B``, and is kept where the sum is not 0
    (as scipy keeps it).  (k, a) has the same terms in the same order, so
    only the upper triangle is summed, its rows in ``workers`` OpenMP threads
    (0: the OpenMP default), and mirrored.
    """
    cdef Py_ssize_t n = t_indptr.shape[0] - 1
    cdef Py_ssize_t a, width = n + 1
    cdef int nthreads = resolve_threads(workers)
    cdef int failed = 0, tid
    cdef _Operands m
    cdef double* sums = <double*>malloc(nthreads * width * sizeof(double))
    cdef int64_t* mark = <int64_t*>malloc(nthreads * width * sizeof(int64_t))
    cdef int64_t* touched = <int64_t*>malloc(nthreads * width * sizeof(int64_t))
    cdef bint table = _rows_alloc(&m.out, n)
    try:
        if not (sums and mark and touched and table):
            raise MemoryError("gram: could not allocate scratch")
        _operands(&m, t_indptr, t_indices, t_data, b_indptr, b_indices, b_data)
        for a in range(nthreads * width):
            mark[a] = -1
        for a in prange(n, nogil=True, num_threads=nthreads, schedule="dynamic", chunksize=8):
            tid = threadid()
            failed += _upper_row(&m, a, sums + tid * width, mark + tid * width, touched + tid * width) != 0
        if failed:
            raise MemoryError("gram: could not allocate a row")
        total = 0
        for a in range(n):
            total += 2 * m.out.count[a]
        indptr = np.empty(n + 1, dtype=np.int64)
        indices = np.empty(total, dtype=np.int64)  # at most: the diagonal is counted twice
        data = np.empty(total, dtype=np.float64)
        _mirror_into(&m, n, indptr, indices, data)
        return indptr, indices[:indptr[n]], data[:indptr[n]]
    finally:
        _rows_free(&m.out, n)
        free(sums)
        free(mark)
        free(touched)


cdef void _mirror_into(_Operands* m, Py_ssize_t n, int64_t[::1] indptr, int64_t[::1] indices,
                       double[::1] data) noexcept:
    with nogil:
        _mirror(m, n, &indptr[0], &indices[0] if indices.shape[0] else NULL,
                &data[0] if data.shape[0] else NULL)


# -- A @ B as scipy's csr_matmat makes it, rows in parallel ---------------------------------------

cdef int _product_row(_Operands* m, Py_ssize_t i, double* sums, int64_t* nxt) noexcept nogil:
    """Row ``i`` of A @ B in csr_matmat's order (the columns last touched first first); -1 if out
    of memory.  ``nxt`` is -1 everywhere on entry and on return, ``sums`` 0."""
    cdef Py_ssize_t jj, kk, j, k, length = 0, n_kept = 0, head = -2, temp
    cdef double v
    cdef int64_t* kept_indices
    cdef double* kept_data
    cdef int status
    for jj in range(m.l_indptr[i], m.l_indptr[i + 1]):
        j = m.l_indices[jj]
        v = m.l_data[jj]
        for kk in range(m.r_indptr[j], m.r_indptr[j + 1]):
            k = m.r_indices[kk]
            sums[k] += v * m.r_data[kk]
            if nxt[k] == -1:
                nxt[k] = head
                head = k
                length += 1
    status = _rows_keep(&m.out, i, length, &kept_indices, &kept_data)
    for jj in range(length):
        if sums[head] != 0.0 and status == 0:
            kept_indices[n_kept] = head
            kept_data[n_kept] = sums[head]
            n_kept += 1
        temp = head
        head = nxt[head]
        nxt[temp] = -1
        sums[temp] = 0.0
    if status == 0:
        m.out.count[i] = n_kept
    return status


def product(const int64_t[::1] a_indptr, const int64_t[::1] a_indices, const double[::1] a_data,
            const int64_t[::1] b_indptr, const int64_t[::1] b_indices, const double[::1] b_data,
            Py_ssize_t n_cols, int workers):
    """``A @ B`` of CSR matrices as scipy's ``csr_matmat`` makes it: ``(indptr, indices, data)``.

    Each entry sums ``A[i, j] * B[j, k]`` over row i's stored entries in their
    stored order, is kept where the sum is not 0, and each row lists its columns
    in scipy's order (the column first touched last comes first): the arrays are
    scipy's, element for element.  Rows run in ``workers`` OpenMP threads (0:
    the OpenMP default).  ``n_cols``: B's column count.
    """
    cdef Py_ssize_t n = a_indptr.shape[0] - 1
    cdef Py_ssize_t i, width = n_cols + 1
    cdef int nthreads = resolve_threads(workers)
    cdef int failed = 0, tid
    cdef _Operands m
    cdef double* sums = <double*>calloc(nthreads * width, sizeof(double))
    cdef int64_t* nxt = <int64_t*>malloc(nthreads * width * sizeof(int64_t))
    cdef bint table = _rows_alloc(&m.out, n)
    try:
        if not (sums and nxt and table):
            raise MemoryError("product: could not allocate scratch")
        _operands(&m, a_indptr, a_indices, a_data, b_indptr, b_indices, b_data)
        for i in range(nthreads * width):
            nxt[i] = -1
        for i in prange(n, nogil=True, num_threads=nthreads, schedule="dynamic", chunksize=64):
            tid = threadid()
            failed += _product_row(&m, i, sums + tid * width, nxt + tid * width) != 0
        if failed:
            raise MemoryError("product: could not allocate a row")
        indptr_arr = np.empty(n + 1, dtype=np.int64)
        total = 0
        for i in range(n):
            total += m.out.count[i]
        indices_arr = np.empty(total, dtype=np.int64)
        data_arr = np.empty(total, dtype=np.float64)
        _concatenate(&m.out, n, indptr_arr, indices_arr, data_arr)
        return indptr_arr, indices_arr, data_arr
    finally:
        _rows_free(&m.out, n)
        free(sums)
        free(nxt)


cdef void _concatenate(_Rows* rows, Py_ssize_t n, int64_t[::1] indptr, int64_t[::1] indices,
                       double[::1] data) noexcept:
    cdef Py_ssize_t i, j, pos = 0
    with nogil:
        indptr[0] = 0
        for i in range(n):
            for j in range(rows.count[i]):
                indices[pos] = rows.indices[i][j]
                data[pos] = rows.data[i][j]
                pos += 1
            indptr[i + 1] = pos
