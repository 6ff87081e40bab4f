# cython: language_level=3
"""Types and inline helpers shared by every spec3c kernel.

``cimport`` this from each ``spec3c/_core/*.pyx`` with a relative cimport
(the modules are members of the ``spec3c._core`` package)::

    from ._shared cimport floating_t, dq_t, is_nan, resolve_threads

Nothing here touches Python objects: every helper is ``noexcept nogil``.
"""

from libc.math cimport isfinite, isnan
from libc.stdint cimport uint32_t

# Science arrays are float32 (JWST products) or float64 (references, tests).
ctypedef fused floating_t:
    float
    double

# JWST DQ arrays are uint32 bit masks (stdatamodels ``dqflags``).
ctypedef uint32_t dq_t

# OpenMP is optional at build time (macOS clang has none): detect it with the
# ``_OPENMP`` macro instead of ``cimport openmp`` so the module still links.
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define SPEC3C_OPENMP 1
    static int spec3c_omp_max_threads(void) { return omp_get_max_threads(); }
    #else
    #define SPEC3C_OPENMP 0
    static int spec3c_omp_max_threads(void) { return 1; }
    #endif
    """
    const int SPEC3C_OPENMP
    int spec3c_omp_max_threads() noexcept nogil


cdef inline bint is_nan(floating_t x) noexcept nogil:
    """True if ``x`` is NaN."""
    return isnan(x)


cdef inline bint is_finite(floating_t x) noexcept nogil:
    """True if ``x`` is neither NaN nor infinite."""
    return isfinite(x)


cdef inline int resolve_threads(int workers) noexcept nogil:
    """Thread count for ``prange(num_threads=...)``: 0 means the OpenMP default."""
    if workers > 0:
        return workers
    return spec3c_omp_max_threads()


cdef inline Py_ssize_t lower_bound(const floating_t* z, Py_ssize_t n, floating_t v) noexcept nogil:
    """First index ``i`` with ``z[i] >= v`` (``n`` if none); ``z`` increasing
    (``numpy.searchsorted(z, v, side="left")``)."""
    cdef Py_ssize_t lo = 0, hi = n, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if z[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef inline Py_ssize_t upper_bound(const floating_t* z, Py_ssize_t n, floating_t v) noexcept nogil:
    """First index ``i`` with ``z[i] > v`` (``n`` if none); ``z`` increasing
    (``numpy.searchsorted(z, v, side="right")``)."""
    cdef Py_ssize_t lo = 0, hi = n, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if z[mid] <= v:
            lo = mid + 1
        else:
            hi = mid
    return lo
