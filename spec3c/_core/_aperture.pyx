# cython: language_level=3
"""Fraction of each pixel of a grid inside a circle centred on the origin (private tier).

The pixel grid, its bounding-box test and the three overlap methods are those
of ``photutils`` ``circular_overlap_grid``, which jwst 3.0.0's IFU extract_1d
calls through ``aperture_photometry`` (ALGORITHMS.md §12.6): pixel ``i`` spans
``[xmin + i dx, xmin + (i + 1) dx]`` with ``dx = (xmax - xmin) / nx``; a pixel
whose centre is closer than ``r - pixel_radius`` counts whole, one farther
than ``r + pixel_radius`` not at all, and the others get the exact area of the
disk inside the pixel (``exact``) or the fraction of ``subpixels**2`` sub-pixel
centres strictly inside the circle (``subpixel``; ``center`` is one sub-pixel).

The exact area is computed here by integrating the disk's chord height over
the pixel's x range, piecewise between the abscissae where the circle crosses
the pixel's lower and upper edges, with the antiderivative of
``sqrt(r^2 - x^2)``.

Called by :func:`spec3c._core.aperture.circle_weights`, which validates.
"""

from libc.math cimport asin, fabs, sqrt


cdef inline double _chord_integral(double x, double r) noexcept nogil:
    """Antiderivative of ``sqrt(r^2 - x^2)`` (x clamped to [-r, r])."""
    cdef double t = x / r
    cdef double s = r * r - x * x
    if t > 1.0:
        t = 1.0
    elif t < -1.0:
        t = -1.0
    if s < 0.0:
        s = 0.0
    return 0.5 * (x * sqrt(s) + r * r * asin(t))


cdef double disk_rectangle_area(double x0, double y0, double x1, double y1, double r) noexcept nogil:
    """Area of the disk of radius ``r`` about the origin inside ``[x0, x1] x [y0, y1]``."""
    cdef double a = x0 if x0 > -r else -r
    cdef double b = x1 if x1 < r else r
    cdef double cuts[6]
    cdef double edges[2]
    cdef double c, p, q, m, h, upper, lower, part, total = 0.0, tmp
    cdef int n = 0, k, j
    cdef bint upper_flat, lower_flat
    if a >= b or y0 >= r or y1 <= -r:
        return 0.0
    cuts[n] = a
    n += 1
    cuts[n] = b
    n += 1
    edges[0] = y0
    edges[1] = y1
    for k in range(2):
        if fabs(edges[k]) < r:
            c = sqrt(r * r - edges[k] * edges[k])
            if a < -c < b:
                cuts[n] = -c
                n += 1
            if a < c < b:
                cuts[n] = c
                n += 1
    for k in range(1, n):  # insertion sort of at most 6 abscissae
        tmp = cuts[k]
        j = k - 1
        while j >= 0 and cuts[j] > tmp:
            cuts[j + 1] = cuts[j]
            j -= 1
        cuts[j + 1] = tmp
    for k in range(n - 1):
        p = cuts[k]
        q = cuts[k + 1]
        if q <= p:
            continue
        m = 0.5 * (p + q)
        h = r * r - m * m
        h = sqrt(h) if h > 0.0 else 0.0
        upper_flat = y1 < h  # the pixel's top edge bounds the chord there, else the circle
        lower_flat = y0 > -h
        upper = y1 if upper_flat else h
        lower = y0 if lower_flat else -h
        if upper <= lower:
            continue
        part = y1 * (q - p) if upper_flat else _chord_integral(q, r) - _chord_integral(p, r)
        if lower_flat:
            part -= y0 * (q - p)
        else:
            part += _chord_integral(q, r) - _chord_integral(p, r)
        total += part
    return total


cdef double subpixel_fraction(double x0, double y0, double x1, double y1, double r,
                              int subpixels) noexcept nogil:
    """Fraction of the ``subpixels**2`` sub-pixel centres of the pixel strictly inside the circle."""
    cdef double dx = (x1 - x0) / subpixels
    cdef double dy = (y1 - y0) / subpixels
    cdef double r2 = r * r
    cdef double x, y, hits = 0.0
    cdef int i, j
    x = x0 - 0.5 * dx
    for i in range(subpixels):
        x += dx
        y = y0 - 0.5 * dy
        for j in range(subpixels):
            y += dy
            if x * x + y * y < r2:
                hits += 1.0
    return hits / (subpixels * subpixels)


cdef void _grid(double xmin, double xmax, double ymin, double ymax, double r, bint exact, int subpixels,
                double[:, ::1] out, double sign) noexcept nogil:
    cdef Py_ssize_t ny = out.shape[0], nx = out.shape[1], i, j
    cdef double dx = (xmax - xmin) / nx
    cdef double dy = (ymax - ymin) / ny
    cdef double pixel_radius = 0.5 * sqrt(dx * dx + dy * dy)
    cdef double bxmin = -r - 0.5 * dx, bxmax = r + 0.5 * dx
    cdef double bymin = -r - 0.5 * dy, bymax = r + 0.5 * dy
    cdef double pxmin, pxcen, pxmax, pymin, pycen, pymax, d, value
    for i in range(nx):
        pxmin = xmin + i * dx
        pxcen = pxmin + dx * 0.5
        pxmax = pxmin + dx
        if not (pxmax > bxmin and pxmin < bxmax):
            continue
        for j in range(ny):
            pymin = ymin + j * dy
            pycen = pymin + dy * 0.5
            pymax = pymin + dy
            if not (pymax > bymin and pymin < bymax):
                continue
            d = sqrt(pxcen * pxcen + pycen * pycen)
            if d < r - pixel_radius:
                value = 1.0
            elif d < r + pixel_radius:
                if exact:
                    value = disk_rectangle_area(pxmin, pymin, pxmax, pymax, r) / (dx * dy)
                else:
                    value = subpixel_fraction(pxmin, pymin, pxmax, pymax, r, subpixels)
            else:
                continue
            out[j, i] += sign * value


def circle_grid(double xmin, double xmax, double ymin, double ymax, double r_out, double r_in,
                bint exact, int subpixels, double[:, ::1] out):
    """Add the overlap fractions of the circle ``r_out`` to ``out`` ``(ny, nx)`` (zeroed by the
    caller), minus those of the circle ``r_in`` when ``r_in > 0`` (an annulus).

    ``xmin .. ymax``: the grid's outer pixel edges relative to the circle's centre.
    """
    with nogil:
        _grid(xmin, xmax, ymin, ymax, r_out, exact, subpixels, out, 1.0)
        if r_in > 0.0:
            _grid(xmin, xmax, ymin, ymax, r_in, exact, subpixels, out, -1.0)


def rectangle_area(double x0, double y0, double x1, double y1, double r):
    """Exact area of the disk of radius ``r`` about the origin inside a rectangle (for tests)."""
    return disk_rectangle_area(x0, y0, x1, y1, r)
