# cython: language_level=3
"""NIRISS SOSS box sums of one integration, every order (private tier).

Called by :func:`spec3c._core.sossbox.soss_box_sums`, which validates and
coerces: ``data`` float32 or float64 ``(ny, nx)``, ``err``, every weight and
model image native C-contiguous float64 ``(ny, nx)``, ``scimask`` uint8.
Each column is summed over rows 0..ny-1 in order, the order in which numpy
reduces a C-contiguous ``(ny, nx)`` array over axis 0, so the sums are those
of :func:`spec3c.modes.soss.box.extract_box` bit for bit.
"""

from cython.parallel cimport prange
from libc.math cimport NAN, isfinite, sqrt
from libc.stdlib cimport free, malloc

from ._shared cimport floating_t, resolve_threads


cdef inline double _others(const double** models, const Py_ssize_t* model_orders, Py_ssize_t nmodels,
                           Py_ssize_t order, Py_ssize_t p) noexcept nogil:
    """Sum of the finite models of every order but ``order`` at pixel ``p`` (0 where not finite)."""
    cdef Py_ssize_t m
    cdef double total = 0.0, value
    cdef bint first = True
    for m in range(nmodels):
        if model_orders[m] == order:
            continue
        value = models[m][p]
        if not isfinite(value):
            value = 0.0
        total = value if first else total + value
        first = False
    return total


cdef void _column(const floating_t* data, const double* err, const unsigned char* scimask,
                  const double* weights, const double** models, const Py_ssize_t* model_orders,
                  Py_ssize_t nmodels, Py_ssize_t order, Py_ssize_t ny, Py_ssize_t nx, Py_ssize_t x,
                  double* flux, double* flux_error, double* npixels) noexcept nogil:
    cdef Py_ssize_t y, p
    cdef double w, e, d, f = 0.0, var = 0.0, n = 0.0
    for y in range(ny):
        p = y * nx + x
        w = weights[p]
        e = err[p]
        d = <double> data[p]
        if scimask[p] or not (e > 0) or not isfinite(d) or not isfinite(e):
            w = 0.0
        n = n + w
        if w > 0:
            if nmodels:
                d = d - _others(models, model_orders, nmodels, order, p)
            f = f + w * d
            var = var + w * e * e
    npixels[x] = n
    if n > 0:
        flux[x] = f
        flux_error[x] = sqrt(var)
    else:
        flux[x] = NAN
        flux_error[x] = NAN


cdef void _sums(const floating_t* data, const double* err, const unsigned char* scimask,
                const double** weights, const Py_ssize_t* orders, const Py_ssize_t* cutoffs, Py_ssize_t norders,
                const double** models, const Py_ssize_t* model_orders, Py_ssize_t nmodels,
                Py_ssize_t ny, Py_ssize_t nx, double* out, Py_ssize_t stride, int workers) noexcept nogil:
    """``out[k]``: flux, flux_error and npixels rows (``stride`` apart) of order ``k``."""
    cdef Py_ssize_t k, x
    cdef double* row
    for k in range(norders):
        row = out + 3 * stride * k
        for x in prange(cutoffs[k], schedule="static", num_threads=resolve_threads(workers)):
            _column(data, err, scimask, weights[k], models, model_orders, nmodels, orders[k], ny, nx, x,
                    row, row + stride, row + 2 * stride)


cdef const double** _pointers(list arrays) except NULL:
    cdef Py_ssize_t i, n = len(arrays)
    cdef const double[:, ::1] view
    cdef const double** ptrs = <const double**> malloc(max(n, 1) * sizeof(double*))
    if ptrs == NULL:
        raise MemoryError("soss_box_sums: cannot allocate pointer table")
    for i in range(n):
        view = arrays[i]
        ptrs[i] = &view[0, 0]
    return ptrs


def box_sums(const floating_t[:, ::1] data, const double[:, ::1] err, const unsigned char[:, ::1] scimask,
             list weights, const Py_ssize_t[::1] orders, const Py_ssize_t[::1] cutoffs, list models,
             const Py_ssize_t[::1] model_orders, double[:, :, ::1] out, int workers):
    """Fill ``out[k]`` (3, nx) with order ``k``'s flux, flux error and npixels (columns < cutoffs[k]).

    The caller keeps ``weights`` and ``models`` (lists of (ny, nx) float64) alive during the call.
    """
    cdef Py_ssize_t ny = data.shape[0], nx = data.shape[1]
    cdef const double** w = NULL
    cdef const double** m = NULL
    if ny == 0 or nx == 0 or len(weights) == 0:
        return
    try:
        w = _pointers(weights)
        m = _pointers(models)
        with nogil:
            _sums(&data[0, 0], &err[0, 0], &scimask[0, 0], w, &orders[0], &cutoffs[0], orders.shape[0],
                  m, &model_orders[0] if model_orders.shape[0] else NULL, model_orders.shape[0],
                  ny, nx, &out[0, 0, 0], out.shape[2], workers)
    finally:
        free(w)
        free(m)
