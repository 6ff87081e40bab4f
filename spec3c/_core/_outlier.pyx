# cython: language_level=3
"""Outlier (cosmic-ray) flagging kernels (private tier; ALGORITHMS.md §7.1 5-6).

Called by :mod:`spec3c._core.outlier`, which validates and coerces: all float
inputs share one native dtype (float32 or float64) and are C-contiguous;
masks are uint8.  Arithmetic runs in that dtype, in the same order as
stcal's numpy code, so float32 results match it bit for bit.
"""

from cython.parallel cimport prange
from libc.math cimport NAN, fabs, isnan

from ._shared cimport floating_t, resolve_threads


cdef inline floating_t _deriv(const floating_t[:, ::1] b, Py_ssize_t j,
                              Py_ssize_t i) noexcept nogil:
    """max |b[j, i] - b[q]| over the 4 edge neighbours q inside the array.

    NaN centre -> NaN; neighbours giving a NaN difference are ignored; 0 when
    no neighbour counts (stcal ``_abs_deriv``).
    """
    cdef Py_ssize_t ny = b.shape[0], nx = b.shape[1]
    cdef floating_t c = b[j, i], m = 0, d
    if isnan(c):
        return c
    if j > 0:
        d = fabs(c - b[j - 1, i])
        if d > m:
            m = d
    if j < ny - 1:
        d = fabs(c - b[j + 1, i])
        if d > m:
            m = d
    if i > 0:
        d = fabs(c - b[j, i - 1])
        if d > m:
            m = d
    if i < nx - 1:
        d = fabs(c - b[j, i + 1])
        if d > m:
            m = d
    return m


cdef void _masks_row(const floating_t[:, ::1] sci, const floating_t[:, ::1] blot,
                     const floating_t[:, ::1] err, Py_ssize_t j, floating_t snr1,
                     floating_t snr2, floating_t scale1, floating_t scale2,
                     floating_t backg, unsigned char[:, ::1] m1,
                     unsigned char[:, ::1] m2) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating_t deriv, sigma, diff
    for i in range(sci.shape[1]):
        deriv = _deriv(blot, j, i)
        sigma = err[j, i]
        if isnan(sigma):
            sigma = 0
        diff = fabs(sci[j, i] - blot[j, i] - backg)
        m1[j, i] = diff > scale1 * deriv + snr1 * sigma
        m2[j, i] = diff > scale2 * deriv + snr2 * sigma


cdef void _dilate_and_row(const unsigned char[:, ::1] m1, const unsigned char[:, ::1] m2,
                          Py_ssize_t j, unsigned char[:, ::1] out) noexcept nogil:
    """out = (3x3 dilation of m1, in-bounds neighbours only) AND m2, row ``j``."""
    cdef Py_ssize_t ny = m1.shape[0], nx = m1.shape[1]
    cdef Py_ssize_t i, jj, ii, j0 = max(j - 1, 0), j1 = min(j + 1, ny - 1)
    cdef unsigned char hit
    for i in range(nx):
        hit = 0
        if m2[j, i]:
            for jj in range(j0, j1 + 1):
                for ii in range(max(i - 1, 0), min(i + 1, nx - 1) + 1):
                    if m1[jj, ii]:
                        hit = 1
        out[j, i] = hit


def flag_resampled(const floating_t[:, ::1] sci, const floating_t[:, ::1] blot,
                   const floating_t[:, ::1] err, double snr1, double snr2,
                   double scale1, double scale2, double backg,
                   unsigned char[:, ::1] m1, unsigned char[:, ::1] m2,
                   unsigned char[:, ::1] out, int workers):
    """Fill ``out`` (uint8 0/1); ``m1``/``m2`` are scratch masks of the same shape."""
    cdef Py_ssize_t j, ny = sci.shape[0]
    cdef int nthreads = resolve_threads(workers)
    cdef floating_t s1 = <floating_t>snr1, s2 = <floating_t>snr2
    cdef floating_t c1 = <floating_t>scale1, c2 = <floating_t>scale2
    cdef floating_t bg = <floating_t>backg
    for j in prange(ny, nogil=True, num_threads=nthreads, schedule="static"):
        _masks_row(sci, blot, err, j, s1, s2, c1, c2, bg, m1, m2)
    for j in prange(ny, nogil=True, num_threads=nthreads, schedule="static"):
        _dilate_and_row(m1, m2, j, out)


cdef void _direct_row(const floating_t[:, ::1] sci, const floating_t[:, ::1] med,
                      const floating_t[:, ::1] err, Py_ssize_t j, floating_t snr,
                      unsigned char[:, ::1] out) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating_t sigma
    for i in range(sci.shape[1]):
        sigma = err[j, i]
        if isnan(sigma):
            sigma = 0
        out[j, i] = fabs(sci[j, i] - med[j, i]) > snr * sigma


def flag_direct(const floating_t[:, ::1] sci, const floating_t[:, ::1] median,
                const floating_t[:, ::1] err, double snr, unsigned char[:, ::1] out,
                int workers):
    """Fill ``out`` with ``|sci - median| > snr * nan_to_num(err)``."""
    cdef Py_ssize_t j
    cdef int nthreads = resolve_threads(workers)
    cdef floating_t s = <floating_t>snr
    for j in prange(sci.shape[0], nogil=True, num_threads=nthreads, schedule="static"):
        _direct_row(sci, median, err, j, s, out)


# ------------------------------------------------------- IFU neighbour differences
cdef inline double _nan_min(double a, double b) noexcept nogil:
    """``numpy.fmin``: the smaller, the other where one is NaN, NaN where both are."""
    if isnan(a):
        return b
    if isnan(b):
        return a
    return a if a <= b else b


def min_neighbour_difference(const floating_t[:, :] sci, const unsigned char[:, :] bad, double[:, :] running,
                             bint first, int workers):
    """``running = fmin(running, d)`` (``first``: ``running = d``), ``d`` the smaller absolute difference
    of each pixel to its two neighbours along a row (a missing neighbour of an edge pixel counts as
    0), pixels ``bad`` taken as NaN, in float64.  Columns are rows of the transposed views."""
    cdef Py_ssize_t rows = sci.shape[0], n = sci.shape[1], i, k
    cdef double here, before, after, d
    cdef int nthreads = resolve_threads(workers)
    for i in prange(rows, nogil=True, num_threads=nthreads, schedule="static"):
        for k in range(n):
            here = NAN if bad[i, k] else <double>sci[i, k]
            before = (NAN if bad[i, k - 1] else <double>sci[i, k - 1]) if k > 0 else 0.0
            after = (NAN if bad[i, k + 1] else <double>sci[i, k + 1]) if k < n - 1 else 0.0
            d = _nan_min(fabs(here - before) if k > 0 else fabs(here),
                         fabs(after - here) if k < n - 1 else fabs(here))
            running[i, k] = d if first else _nan_min(running[i, k], d)
