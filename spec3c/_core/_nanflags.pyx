# cython: language_level=3
"""NaN/DQ consistency (ALGORITHMS.md §1), in place (private tier).

Called by :func:`spec3c._core.nanflags.match_nans_and_flags`, which checks
shapes and hands over native, C-contiguous, writable, flattened arrays.
One pass per pixel: test every array, then poison every array.
"""

from cython.parallel cimport prange
from libc.stdlib cimport free, malloc

from ._shared cimport dq_t, is_nan, resolve_threads

cdef extern from "<math.h>":
    const double NAN


cdef inline bint _invalid(const dq_t* dq, dq_t bit, float** f32, Py_ssize_t n32,
                          double** f64, Py_ssize_t n64, Py_ssize_t p) noexcept nogil:
    """True if pixel ``p`` has the DO_NOT_USE bit or a NaN in any array."""
    cdef Py_ssize_t i
    if dq[p] & bit:
        return True
    for i in range(n32):
        if is_nan(f32[i][p]):
            return True
    for i in range(n64):
        if is_nan(f64[i][p]):
            return True
    return False


cdef inline void _poison(dq_t* dq, dq_t bit, float** f32, Py_ssize_t n32,
                         double** f64, Py_ssize_t n64, Py_ssize_t p) noexcept nogil:
    """Set pixel ``p`` to NaN in every array and OR ``bit`` into its DQ."""
    cdef Py_ssize_t i
    dq[p] |= bit
    for i in range(n32):
        f32[i][p] = <float> NAN
    for i in range(n64):
        f64[i][p] = NAN


cdef Py_ssize_t _match(dq_t* dq, dq_t bit, float** f32, Py_ssize_t n32,
                       double** f64, Py_ssize_t n64, Py_ssize_t npix,
                       int workers) noexcept nogil:
    """Match NaNs and flags over ``npix`` pixels; return the invalid count."""
    cdef Py_ssize_t p, count = 0
    for p in prange(npix, schedule="static", num_threads=resolve_threads(workers)):
        if _invalid(dq, bit, f32, n32, f64, n64, p):
            _poison(dq, bit, f32, n32, f64, n64, p)
            count += 1
    return count


cdef void** _pointers(list arrays, bint single) except NULL:
    """malloc an array of data pointers to the 1-D ``arrays`` (float or double)."""
    cdef Py_ssize_t i, n = len(arrays)
    cdef float[::1] v32
    cdef double[::1] v64
    cdef void** ptrs = <void**> malloc(max(n, 1) * sizeof(void*))
    if ptrs == NULL:
        raise MemoryError("match_nans_and_flags: cannot allocate pointer table")
    for i in range(n):
        if single:
            v32 = arrays[i]
            ptrs[i] = &v32[0]
        else:
            v64 = arrays[i]
            ptrs[i] = &v64[0]
    return ptrs


def match_flat(dq_t[::1] dq, list f32, list f64, dq_t bit, int workers):
    """Apply the NaN/DQ rule to 1-D arrays of one length; return the invalid count.

    ``f32``/``f64`` are lists of writable float32/float64 arrays, the length of
    ``dq``; the caller keeps them alive for the duration of the call.
    """
    cdef Py_ssize_t count, npix = dq.shape[0], n32 = len(f32), n64 = len(f64)
    cdef void** p32 = NULL
    cdef void** p64 = NULL
    if npix == 0:
        return 0
    try:
        p32 = _pointers(f32, True)
        p64 = _pointers(f64, False)
        with nogil:
            count = _match(&dq[0], bit, <float**> p32, n32,
                           <double**> p64, n64, npix, workers)
    finally:
        free(p32)
        free(p64)
    return count
