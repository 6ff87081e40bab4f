# cython: language_level=3
"""Inline geometry helpers for the resampling kernels (drizzle, blot, cubes).

``cimport`` from a ``spec3c/_core/*.pyx``::

    from _geometry cimport fortran_round, quad_square_overlap, quad_area

Everything is ``noexcept nogil`` and works in float64.  Polygon overlap is
Sutherland-Hodgman clipping of the subject polygon against the axis-aligned
unit square centred on an output pixel, followed by the shoelace formula;
any vertex order or orientation of the subject is accepted (the absolute
area is returned).
"""

from libc.math cimport fabs

# Largest vertex count the clip buffers must hold: a 4-gon clipped by four
# half-planes stays below 4 * 2**4 vertices even for self-intersecting input.
DEF CLIP_MAX = 64


cdef inline Py_ssize_t fortran_round(double x) noexcept nogil:
    """Round half away from zero (drizzle's ``fortran_round``).

    ``x`` must already be clamped to a range that fits ``Py_ssize_t``.
    """
    if x >= 0.0:
        return <Py_ssize_t>(x + 0.5)
    return -(<Py_ssize_t>(0.5 - x))


cdef inline double quad_area(const double* x, const double* y) noexcept nogil:
    """Absolute area of the quadrilateral ``(x[k], y[k])``, k = 0..3 (any order)."""
    return fabs(0.5 * ((x[1] - x[3]) * (y[0] - y[2]) - (x[0] - x[2]) * (y[1] - y[3])))


cdef inline int _clip_half(const double* xs, const double* ys, int n,
                           double* xo, double* yo, int axis, double bound,
                           bint keep_below) noexcept nogil:
    """Clip polygon ``(xs, ys)[:n]`` to one half-plane; return the new vertex count.

    The half-plane is ``coord <= bound`` (``keep_below``) or ``coord >= bound``
    where ``coord`` is x (``axis == 0``) or y (``axis == 1``).
    """
    cdef int k, m = 0
    cdef double pc, cc, px, py, cx, cy, t
    cdef bint pin, cin
    if n == 0:
        return 0
    px = xs[n - 1]
    py = ys[n - 1]
    pc = px if axis == 0 else py
    pin = (pc <= bound) if keep_below else (pc >= bound)
    for k in range(n):
        cx = xs[k]
        cy = ys[k]
        cc = cx if axis == 0 else cy
        cin = (cc <= bound) if keep_below else (cc >= bound)
        if cin != pin:
            # the edge crosses the boundary: cc != pc is guaranteed here
            t = (bound - pc) / (cc - pc)
            if axis == 0:
                xo[m] = bound
                yo[m] = py + t * (cy - py)
            else:
                xo[m] = px + t * (cx - px)
                yo[m] = bound
            m += 1
        if cin:
            xo[m] = cx
            yo[m] = cy
            m += 1
        px = cx
        py = cy
        pc = cc
        pin = cin
    return m


cdef inline double quad_square_overlap(const double* qx, const double* qy,
                                       double cx, double cy) noexcept nogil:
    """Area common to quadrilateral ``(qx, qy)[:4]`` and the unit square at ``(cx, cy)``.

    The square is ``[cx - 0.5, cx + 0.5] x [cy - 0.5, cy + 0.5]``.  Vertices are
    shifted to the square's frame first, so large pixel indices lose no
    precision.
    """
    cdef double ax[CLIP_MAX]
    cdef double ay[CLIP_MAX]
    cdef double bx[CLIP_MAX]
    cdef double by[CLIP_MAX]
    cdef double area = 0.0
    cdef int k, n = 4
    for k in range(4):
        ax[k] = qx[k] - cx
        ay[k] = qy[k] - cy
    n = _clip_half(ax, ay, n, bx, by, 0, 0.5, True)
    n = _clip_half(bx, by, n, ax, ay, 0, -0.5, False)
    n = _clip_half(ax, ay, n, bx, by, 1, 0.5, True)
    n = _clip_half(bx, by, n, ax, ay, 1, -0.5, False)
    if n < 3:
        return 0.0
    for k in range(n - 1):
        area += ax[k] * ay[k + 1] - ax[k + 1] * ay[k]
    area += ax[n - 1] * ay[0] - ax[0] * ay[n - 1]
    return fabs(0.5 * area)
