# cython: language_level=3
"""NaN-aware 2-D median filter with zero padding (private tier).

Called by :func:`spec3c._core.medfilt.nan_median_filter`, which hands over a
native, C-contiguous float64 image and output.  Per output pixel the window
is the ``ky`` x ``kx`` box centred on it; window positions outside the image
count as 0.0 (the reference pads with zeros), NaN entries are left out, and
the result is the median of the rest (mean of the two middle values for an
even count), NaN when nothing is left.  Each thread owns one window buffer.
"""

from cython.parallel cimport prange, threadid
from libc.stdlib cimport free, malloc

from ._shared cimport is_nan, resolve_threads

cdef extern from "<math.h>":
    const double NAN


cdef inline void _swap(double* v, Py_ssize_t i, Py_ssize_t j) noexcept nogil:
    cdef double t = v[i]
    v[i] = v[j]
    v[j] = t


cdef double _select(double* v, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """The k-th smallest of v[0:n] (quickselect; v is reordered so v[:k] <= v[k])."""
    cdef Py_ssize_t lo = 0, hi = n - 1, i, store, mid
    cdef double pivot
    while hi > lo:
        mid = lo + (hi - lo) // 2
        # median of three as pivot, moved to hi
        if v[mid] < v[lo]:
            _swap(v, mid, lo)
        if v[hi] < v[lo]:
            _swap(v, hi, lo)
        if v[mid] < v[hi]:
            _swap(v, mid, hi)
        pivot = v[hi]
        store = lo
        for i in range(lo, hi):
            if v[i] < pivot:
                _swap(v, i, store)
                store += 1
        _swap(v, store, hi)
        if store == k:
            return v[k]
        if store < k:
            lo = store + 1
        else:
            hi = store - 1
    return v[k]


cdef double _median(double* v, Py_ssize_t n) noexcept nogil:
    """Median of v[0:n] (reordered); NaN for n == 0."""
    cdef Py_ssize_t i, k
    cdef double upper, lower
    if n == 0:
        return NAN
    k = n // 2
    upper = _select(v, n, k)
    if n % 2 == 1:
        return upper
    lower = v[0]
    for i in range(1, k):
        if v[i] > lower:
            lower = v[i]
    return (lower + upper) / 2.0


cdef double _window_median(const double[:, ::1] img, Py_ssize_t y, Py_ssize_t x, Py_ssize_t hy,
                           Py_ssize_t hx, double* buf) noexcept nogil:
    cdef Py_ssize_t ny = img.shape[0], nx = img.shape[1], yy, xx, n = 0
    cdef double value
    for yy in range(y - hy, y + hy + 1):
        for xx in range(x - hx, x + hx + 1):
            if yy < 0 or yy >= ny or xx < 0 or xx >= nx:
                buf[n] = 0.0
                n += 1
            else:
                value = img[yy, xx]
                if not is_nan(value):
                    buf[n] = value
                    n += 1
    return _median(buf, n)


def median_filter(const double[:, ::1] img, Py_ssize_t ky, Py_ssize_t kx, double[:, ::1] out, int workers):
    """Fill ``out`` with the NaN-aware median of the ``ky`` x ``kx`` window (both odd) of each pixel."""
    cdef Py_ssize_t ny = img.shape[0], nx = img.shape[1], y, x
    cdef Py_ssize_t hy = ky // 2, hx = kx // 2, size = ky * kx
    cdef int threads = resolve_threads(workers)
    cdef double* buf = <double*> malloc(threads * size * sizeof(double))
    if buf == NULL:
        raise MemoryError("median_filter: cannot allocate the window buffers")
    with nogil:
        for y in prange(ny, schedule="static", num_threads=threads):
            for x in range(nx):
                out[y, x] = _window_median(img, y, x, hy, hx, buf + threadid() * size)
    free(buf)
