# cython: language_level=3
"""Blot kernel: bilinear sampling of an image at pixmap positions (private tier).

Called by :func:`spec3c._core.blot.blot_image`, which validates and coerces:
``image`` float32 ``(ny_o, nx_o)``, ``pixmap`` float64 ``(ny_i, nx_i, 2)``,
``out`` float32 ``(ny_i, nx_i)``, all native and C-contiguous.
"""

from cython.parallel cimport prange
from libc.math cimport isnan

from ._shared cimport resolve_threads


cdef inline float _sample(const float[:, ::1] img, double x, double y,
                          float fill) noexcept nogil:
    """drizzle ``interpolate_bilinear`` with its domain ``0 <= x < nx, 0 <= y < ny``."""
    cdef Py_ssize_t ny = img.shape[0], nx = img.shape[1]
    cdef Py_ssize_t i, j
    cdef double sx, sy
    if isnan(x) or isnan(y) or not (x >= 0.0 and x < nx and y >= 0.0 and y < ny):
        return fill
    i = <Py_ssize_t>x
    j = <Py_ssize_t>y
    sx = x - i
    sy = y - j
    if i == nx - 1 and j == ny - 1:
        return img[j, i]
    if i == nx - 1:
        return <float>((1.0 - sy) * img[j, i] + sy * img[j + 1, i])
    if j == ny - 1:
        return <float>((1.0 - sx) * img[j, i] + sx * img[j, i + 1])
    return <float>((1.0 - sx) * (1.0 - sy) * img[j, i] + sx * (1.0 - sy) * img[j, i + 1]
                   + (1.0 - sx) * sy * img[j + 1, i] + sx * sy * img[j + 1, i + 1])


cdef void _blot_row(const float[:, ::1] img, const double[:, :, ::1] pixmap,
                    float[:, ::1] out, Py_ssize_t j, float fill) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(out.shape[1]):
        out[j, i] = _sample(img, pixmap[j, i, 0], pixmap[j, i, 1], fill)


def blot(const float[:, ::1] image, const double[:, :, ::1] pixmap, float[:, ::1] out,
         float fill, int workers):
    """Fill ``out[j, i]`` with ``image`` sampled at ``pixmap[j, i]`` (x, y)."""
    cdef Py_ssize_t j
    cdef int nthreads = resolve_threads(workers)
    for j in prange(out.shape[0], nogil=True, num_threads=nthreads, schedule="static"):
        _blot_row(image, pixmap, out, j, fill)
