# cython: language_level=3
"""Inline geometry helpers for the resampling kernels (drizzle, blot, cubes).

``cimport`` from a ``spec3c/_core/*.pyx``::

    from ._geometry cimport fortran_round, quad_square_overlap, quad_area

Everything is ``noexcept nogil`` and works in float64.  Polygon overlap is
Sutherland-Hodgman clipping of the subject polygon against the axis-aligned
unit square centred on an output pixel, followed by the shoelace formula;
any vertex order or orientation of the subject is accepted (the absolute
area is returned).
"""

from libc.math cimport fabs

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
                           double* xo, double* yo, double bound, double sign) noexcept nogil:
    """Clip polygon ``(xs, ys)[:n]`` to the half-plane ``sign * xs <= sign * bound``.

    Returns the new vertex count.  Callers swap the x/y pointers to clip in y.
    """
    cdef int k, m = 0
    cdef double px, py, cx, cy, t
    cdef bint pin, cin
    if n == 0:
        return 0
    px = xs[n - 1]
    py = ys[n - 1]
    pin = sign * px <= sign * bound
    for k in range(n):
        cx = xs[k]
        cy = ys[k]
        cin = sign * cx <= sign * bound
        if cin != pin:
            # the edge crosses the boundary, so cx != px
            t = (bound - px) / (cx - px)
            xo[m] = bound
            yo[m] = py + t * (cy - py)
            m += 1
        if cin:
            xo[m] = cx
            yo[m] = cy
            m += 1
        px = cx
        py = cy
        pin = cin
    return m


cdef inline int clip_band(double* xs, double* ys, int n, double* tx, double* ty,
                          double lo, double hi) noexcept nogil:
    """Clip polygon ``(xs, ys)[:n]`` in place to ``lo <= xs <= hi``; returns the new count.

    ``tx, ty`` are scratch (64 each, as ``xs, ys``).  A side no vertex lies beyond is
    not clipped (clipping would return the same vertices in the same order), so the
    result is the one of :func:`quad_square_overlap`'s clips.  Callers swap the x/y
    pointers to clip in y.
    """
    cdef int k
    cdef bint above = False, below = False
    for k in range(n):
        if xs[k] > hi:
            above = True
        if xs[k] < lo:
            below = True
    if above and below:
        n = _clip_half(xs, ys, n, tx, ty, hi, 1.0)
        return _clip_half(tx, ty, n, xs, ys, lo, -1.0)
    if above:
        n = _clip_half(xs, ys, n, tx, ty, hi, 1.0)
    elif below:
        n = _clip_half(xs, ys, n, tx, ty, lo, -1.0)
    else:
        return n
    for k in range(n):
        xs[k] = tx[k]
        ys[k] = ty[k]
    return n


cdef inline double polygon_area(const double* xs, const double* ys, int n) noexcept nogil:
    """Absolute area of polygon ``(xs, ys)[:n]`` (shoelace; 0 for fewer than 3 vertices)."""
    cdef double area = 0.0
    cdef int k
    if n < 3:
        return 0.0
    for k in range(n - 1):
        area += xs[k] * ys[k + 1] - xs[k + 1] * ys[k]
    area += xs[n - 1] * ys[0] - xs[0] * ys[n - 1]
    return fabs(0.5 * area)


cdef inline double quad_square_overlap(const double* qx, const double* qy,
                                       double cx, double cy) noexcept nogil:
    """Area common to quadrilateral ``(qx, qy)[:4]`` and the unit square at ``(cx, cy)``.

    The square is ``[cx - 0.5, cx + 0.5] x [cy - 0.5, cy + 0.5]``.  Vertices are
    shifted to the square's frame first, so large pixel indices lose no
    precision.
    """
    # one half-plane clip at most doubles the vertex count: 4 -> 64 worst case
    cdef double ax[64]
    cdef double ay[64]
    cdef double bx[64]
    cdef double by[64]
    cdef int k, n = 4
    for k in range(4):
        ax[k] = qx[k] - cx
        ay[k] = qy[k] - cy
    n = _clip_half(ax, ay, n, bx, by, 0.5, 1.0)
    n = _clip_half(bx, by, n, ax, ay, -0.5, -1.0)
    n = _clip_half(ay, ax, n, by, bx, 0.5, 1.0)
    n = _clip_half(by, bx, n, ay, ax, -0.5, -1.0)
    return polygon_area(ax, ay, n)
