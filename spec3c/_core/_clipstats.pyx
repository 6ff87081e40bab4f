# cython: language_level=3
"""Sigma-clipped background range of one float32 plane (private tier).

Called by :func:`spec3c._core.clipstats.clipped_range_f32`, which validates;
nothing here re-validates.  The arithmetic is numpy's on float32 arrays, step
for step: sums by numpy's pairwise summation (blocks of 8 accumulators up to
128 values, halves above), means and variances divided in float32, products
with ``sigma`` rounded to float32 (a Python float meeting a float32 scalar),
so the values are the bits :func:`spec3c.algorithms.ifu_extract.clipped_stats`
computes with numpy.
"""

from libc.math cimport NAN, isfinite, sqrtf
from libc.stdlib cimport free, malloc

from ._shared cimport lower_bound, upper_bound

#: numpy's pairwise-summation block (loops_utils.h)
cdef Py_ssize_t BLOCK = 128


cdef float _pairwise(const float* a, Py_ssize_t n) noexcept nogil:
    """``numpy.add.reduce`` of ``a[:n]`` (float32)."""
    cdef Py_ssize_t i, j, half
    cdef float res
    cdef float r[8]
    if n < 8:
        res = 0.0
        for i in range(n):
            res = res + a[i]
        return res
    if n <= BLOCK:
        for j in range(8):
            r[j] = a[j]
        i = 8
        while i < n - (n % 8):
            for j in range(8):
                r[j] = r[j] + a[i + j]
            i += 8
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        while i < n:
            res = res + a[i]
            i += 1
        return res
    half = n // 2
    half -= half % 8
    return _pairwise(a, half) + _pairwise(a + half, n - half)


cdef float _mean(const float* a, Py_ssize_t n) noexcept nogil:
    """``numpy.mean`` in float32: the reduction starts from 0 (add's identity), then a float32 division."""
    cdef float zero = 0.0, total = zero + _pairwise(a, n)
    return total / <float>n


cdef float _std(const float* a, Py_ssize_t n, float* scratch) noexcept nogil:
    """``numpy.std`` (ddof 0) in float32: the mean, the squared deviations, their mean, its root."""
    cdef Py_ssize_t i
    cdef float m = _mean(a, n), d
    for i in range(n):
        d = a[i] - m
        scratch[i] = d * d
    return sqrtf(_mean(scratch, n))


cdef float _median_sorted(const float* s, Py_ssize_t n) noexcept nogil:
    """``numpy.median`` of sorted values: the middle one, or the float32 mean of the middle two."""
    cdef Py_ssize_t mid = n // 2
    return _mean(s + mid, 1) if n % 2 else _mean(s + mid - 1, 2)


cdef void _sort(float* a, Py_ssize_t n) noexcept nogil:
    """Sort ``a[:n]`` ascending (finite values): quicksort on the larger side, insertion sort below 16."""
    cdef Py_ssize_t lo = 0, hi = n - 1, i, j, mid
    cdef float pivot, t
    while hi - lo >= 16:
        mid = lo + (hi - lo) // 2  # median of three as the pivot, moved to the middle
        if a[mid] < a[lo]:
            a[mid], a[lo] = a[lo], a[mid]
        if a[hi] < a[lo]:
            a[hi], a[lo] = a[lo], a[hi]
        if a[hi] < a[mid]:
            a[hi], a[mid] = a[mid], a[hi]
        pivot = a[mid]
        i, j = lo, hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                t = a[i]
                a[i] = a[j]
                a[j] = t
                i += 1
                j -= 1
        if j - lo < hi - i:  # the smaller side first, by recursion; the larger by the loop
            _sort(a + lo, j - lo + 1)
            lo = i
        else:
            _sort(a + i, hi - i + 1)
            hi = j
    for i in range(lo + 1, hi + 1):
        t = a[i]
        j = i - 1
        while j >= lo and a[j] > t:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = t


cdef void _clipped(const float[::1] values, float k, int maxiters, float* kept, float* ordered,
                   float* scratch, float* out) noexcept nogil:
    """``out[0:2]``: the range of :func:`clipped_range` (the kept values are always ``ordered[first:stop]``)."""
    cdef Py_ssize_t n = values.shape[0], i, nk = 0, kept_now, first = 0, stop, total, it
    cdef float centre, spread, low, high, mean, std
    out[0] = NAN
    out[1] = NAN
    for i in range(n):
        if isfinite(values[i]):
            kept[nk] = values[i]
            ordered[nk] = values[i]
            nk += 1
    _sort(ordered, nk)  # (equal values in any order: the sums run over the unsorted ones)
    stop = total = nk
    for it in range(maxiters):
        if nk == 0:
            break
        centre = _median_sorted(ordered + first, stop - first)
        spread = _std(kept, nk, scratch)
        low = centre - spread * k
        high = centre + spread * k
        kept_now = 0
        for i in range(nk):
            if kept[i] >= low and kept[i] <= high:
                kept[kept_now] = kept[i]
                kept_now += 1
        if kept_now == nk:
            break
        nk = kept_now
        first = max(first, lower_bound(ordered, total, low))
        stop = min(stop, upper_bound(ordered, total, high))
    if nk == 0:
        return
    mean = _mean(kept, nk)
    std = _std(kept, nk, scratch)
    out[0] = mean - k * std
    out[1] = mean + k * std


def clipped_range(const float[::1] values, double sigma, int maxiters):
    """``(mean - sigma std, mean + sigma std)`` of ``values`` after iterative clipping at ``sigma``
    std about the median (non-finite values left out; NaN, NaN when none is left)."""
    cdef Py_ssize_t n = max(values.shape[0], 1)
    cdef float out[2]
    cdef float* kept = <float*>malloc(n * sizeof(float))
    cdef float* ordered = <float*>malloc(n * sizeof(float))
    cdef float* scratch = <float*>malloc(n * sizeof(float))
    try:
        if kept == NULL or ordered == NULL or scratch == NULL:
            raise MemoryError()
        with nogil:
            _clipped(values, <float>sigma, maxiters, kept, ordered, scratch, out)
        return out[0], out[1]
    finally:
        free(kept)
        free(ordered)
        free(scratch)
