# cython: language_level=3
"""Weighted, NaN-aware median over the first axis of a stack (private tier).

Called by :func:`spec3c._core.median.stack_median`, which validates and
coerces; nothing here re-validates.  Arrays arrive as native, C-contiguous
``(n, npix)`` stacks and a ``(npix,)`` output of the same float type.
"""

from cython.parallel cimport prange
from libc.stdlib cimport free, malloc

from ._shared cimport floating_t, is_finite, resolve_threads

cdef extern from "<math.h>":
    const double NAN

# Pixels per parallel work item; each item allocates its own scratch buffer.
cdef Py_ssize_t CHUNK = 4096
# Above this many valid entries insertion sort gives way to merge sort.
cdef Py_ssize_t INSERTION_MAX = 32

ctypedef struct entry_t:
    double value
    double weight


cdef inline void _insertion_sort(entry_t* a, Py_ssize_t m) noexcept nogil:
    """Stable in-place sort of ``a[:m]`` by value."""
    cdef Py_ssize_t i, j
    cdef entry_t key
    for i in range(1, m):
        key = a[i]
        j = i - 1
        while j >= 0 and a[j].value > key.value:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = key


cdef void _merge(entry_t* src, entry_t* dst, Py_ssize_t lo, Py_ssize_t mid,
                 Py_ssize_t hi) noexcept nogil:
    """Merge sorted runs ``src[lo:mid]`` and ``src[mid:hi]`` into ``dst[lo:hi]``."""
    cdef Py_ssize_t i = lo, j = mid, k = lo
    while i < mid and j < hi:
        if src[j].value < src[i].value:  # ties take the left run: stable
            dst[k] = src[j]
            j += 1
        else:
            dst[k] = src[i]
            i += 1
        k += 1
    while i < mid:
        dst[k] = src[i]
        i += 1
        k += 1
    while j < hi:
        dst[k] = src[j]
        j += 1
        k += 1


cdef void _merge_sort(entry_t* a, Py_ssize_t m, entry_t* tmp) noexcept nogil:
    """Stable bottom-up merge sort of ``a[:m]`` by value; ``tmp`` holds ``m`` entries."""
    cdef Py_ssize_t width = 1, lo, mid, hi, i
    cdef entry_t* src = a
    cdef entry_t* dst = tmp
    cdef entry_t* swap
    while width < m:
        lo = 0
        while lo < m:
            mid = min(lo + width, m)
            hi = min(lo + 2 * width, m)
            _merge(src, dst, lo, mid, hi)
            lo = hi
        swap = src
        src = dst
        dst = swap
        width *= 2
    if src != a:
        for i in range(m):
            a[i] = src[i]


cdef double _weighted_median(entry_t* a, Py_ssize_t m, entry_t* tmp) noexcept nogil:
    """Weighted median of ``a[:m]`` (sorted in place); NaN if ``m == 0``.

    The first sorted value whose cumulative weight reaches half the total; if
    it reaches exactly half, the mean of that value and the next.
    """
    cdef Py_ssize_t k
    cdef double total = 0.0, cum = 0.0, half
    if m == 0:
        return NAN
    if m <= INSERTION_MAX:
        _insertion_sort(a, m)
    else:
        _merge_sort(a, m, tmp)
    for k in range(m):
        total += a[k].weight
    half = 0.5 * total
    for k in range(m):
        cum += a[k].weight
        if cum >= half:
            if cum == half and k + 1 < m:
                return 0.5 * (a[k].value + a[k + 1].value)
            return a[k].value
    return a[m - 1].value


cdef inline Py_ssize_t _gather(const floating_t* stack, const floating_t* weights,
                               Py_ssize_t n, Py_ssize_t npix, Py_ssize_t p,
                               entry_t* buf) noexcept nogil:
    """Copy the valid entries of pixel ``p`` into ``buf``; return their count."""
    cdef Py_ssize_t k, m = 0
    cdef double v, w = 1.0
    for k in range(n):
        v = stack[k * npix + p]
        if weights != NULL:
            w = weights[k * npix + p]
            if not (w > 0.0 and is_finite(w)):
                continue
        if is_finite(v):
            buf[m].value = v
            buf[m].weight = w
            m += 1
    return m


cdef int _median_chunk(const floating_t* stack, const floating_t* weights,
                       Py_ssize_t n, Py_ssize_t npix, Py_ssize_t start,
                       Py_ssize_t stop, floating_t* out) noexcept nogil:
    """Median of pixels ``start:stop``; return 1 if scratch allocation failed."""
    cdef Py_ssize_t p, m
    cdef entry_t* buf = <entry_t*> malloc(2 * n * sizeof(entry_t))
    if buf == NULL:
        return 1
    for p in range(start, stop):
        m = _gather(stack, weights, n, npix, p, buf)
        out[p] = <floating_t> _weighted_median(buf, m, buf + n)
    free(buf)
    return 0


cdef int _median_all(const floating_t* stack, const floating_t* weights,
                     Py_ssize_t n, Py_ssize_t npix, floating_t* out,
                     int workers) noexcept nogil:
    """Run :func:`_median_chunk` over all pixels in parallel; return failures."""
    cdef Py_ssize_t c, nchunks = (npix + CHUNK - 1) // CHUNK
    cdef int failed = 0
    for c in prange(nchunks, schedule="dynamic", num_threads=resolve_threads(workers)):
        failed += _median_chunk(stack, weights, n, npix, c * CHUNK,
                                min((c + 1) * CHUNK, npix), out)
    return failed


def median_unweighted(const floating_t[:, ::1] stack, floating_t[::1] out, int workers):
    """Fill ``out`` (npix,) with the NaN-ignoring median of ``stack`` (n, npix)."""
    if stack.shape[0] == 0 or stack.shape[1] == 0:
        out[:] = NAN
        return
    cdef int failed
    with nogil:
        failed = _median_all(&stack[0, 0], <const floating_t*> NULL,
                             stack.shape[0], stack.shape[1], &out[0], workers)
    if failed:
        raise MemoryError("stack_median: cannot allocate per-thread scratch buffer")


def median_weighted(const floating_t[:, ::1] stack, const floating_t[:, ::1] weights,
                    floating_t[::1] out, int workers):
    """Fill ``out`` (npix,) with the weighted median of ``stack`` (n, npix)."""
    if stack.shape[0] == 0 or stack.shape[1] == 0:
        out[:] = NAN
        return
    cdef int failed
    with nogil:
        failed = _median_all(&stack[0, 0], &weights[0, 0],
                             stack.shape[0], stack.shape[1], &out[0], workers)
    if failed:
        raise MemoryError("stack_median: cannot allocate per-thread scratch buffer")
