# cython: language_level=3
"""Area-overlap accumulation of IFU cubes in the slicer plane (private tier; ALGORITHMS.md §11.5).

``coord_system=internal_cal`` (NIRSpec, one exposure): each detector pixel is a
quadrilateral in the (along-slice, wavelength) plane of its slice; it adds
``flux * A_overlap / A_pixel`` to the voxels of its slice's column whose
(along-slice x wavelength) cell it overlaps (jwst 3.0.0 ``match_detector_cube``
in ``cube_build/src/cube_match_internal.c``, including its index ranges:
truncation toward zero for the first cell, rounding half away from zero for
the last wavelength plane).

Called by :meth:`spec3c._core.cube.CubeAccumulator.add_slicer_area`, which
validates: every array native, C-contiguous float64 (``column`` int64), the
sums the flattened ``(p1 - p0, ny, nx)`` tile of the accumulator.
"""

from libc.math cimport fabs, round as c_round

from ._geometry cimport quad_square_overlap


cdef inline double _quad_area(const double* x, const double* y, double x0, double y0) noexcept nogil:
    """Shoelace area of the quadrilateral, coordinates taken relative to ``(x0, y0)``."""
    cdef double px[5]
    cdef double py[5]
    cdef int k
    for k in range(4):
        px[k] = x[k] - x0
        py[k] = y[k] - y0
    px[4] = px[0]
    py[4] = py[0]
    return fabs(0.5 * ((px[0] * py[1] - px[1] * py[0]) + (px[1] * py[2] - px[2] * py[1])
                       + (px[2] * py[3] - px[3] * py[2]) + (px[3] * py[4] - px[4] * py[3])))


def area_add(
    const double[::1] along, const double[::1] wave, const double[::1] flux, const double[::1] err,
    const long long[::1] column, const double[::1] acoord, const double[::1] zcoord,
    double crval_along, double cdelt_along, double crval3, double cdelt3,
    Py_ssize_t nx, Py_ssize_t p0, Py_ssize_t p1, tuple sums,
):
    """Accumulate ``n`` pixels (corners ``along``/``wave`` ``(n, 4)`` flattened) into the tile sums.

    ``column`` is each pixel's across-slice cube column; ``acoord`` the
    along-slice centres (cube axis 2), ``zcoord`` the plane centres (whole cube).
    Returns the number of (pixel, voxel) contributions.
    """
    cdef double[::1] sflux = sums[0]
    cdef double[::1] sweight = sums[1]
    cdef double[::1] svar = sums[2]
    cdef double[::1] scount = sums[3]
    cdef Py_ssize_t n = flux.shape[0], na = acoord.shape[0], nz = zcoord.shape[0]
    cdef Py_ssize_t nplane = nx * na
    cdef Py_ssize_t k, c, aa, zz, ia1, ia2, iz1, iz2, idx
    cdef double amin, amax, wmin, wmax, area, overlap, ratio, e
    cdef double qx[4]
    cdef double qy[4]
    cdef double sx[4]
    cdef double sy[4]
    cdef long long added = 0
    with nogil:
        for k in range(n):
            for c in range(4):
                qx[c] = along[4 * k + c]
                qy[c] = wave[4 * k + c]
            amin = amax = qx[0]
            wmin = wmax = qy[0]
            for c in range(1, 4):
                amin = min(amin, qx[c])
                amax = max(amax, qx[c])
                wmin = min(wmin, qy[c])
                wmax = max(wmax, qy[c])
            area = _quad_area(qx, qy, amin, wmin)
            if not (area > 0.0):
                continue
            ia1 = <Py_ssize_t>((amin - crval_along) / cdelt_along)
            ia2 = <Py_ssize_t>((amax - crval_along) / cdelt_along)
            if ia1 < 0:
                ia1 = 0
            if ia2 >= na:
                ia2 = na - 1
            iz1 = <Py_ssize_t>((wmin - crval3) / cdelt3)
            iz2 = <Py_ssize_t>c_round((wmax - crval3) / cdelt3)
            if iz1 < 0:
                iz1 = 0
            if iz2 < 0:
                iz2 = iz1 + 1
            if iz2 >= nz:
                iz2 = nz - 1
            if iz1 < p0:
                iz1 = p0
            if iz2 >= p1:
                iz2 = p1 - 1
            e = err[k]
            for zz in range(iz1, iz2 + 1):
                for aa in range(ia1, ia2 + 1):
                    for c in range(4):
                        sx[c] = (qx[c] - acoord[aa]) / cdelt_along
                        sy[c] = (qy[c] - zcoord[zz]) / cdelt3
                    overlap = quad_square_overlap(sx, sy, 0.0, 0.0) * cdelt_along * cdelt3
                    if overlap > 0.0:
                        ratio = overlap / area
                        idx = (zz - p0) * nplane + aa * nx + column[k]
                        sflux[idx] += ratio * flux[k]
                        sweight[idx] += ratio
                        svar[idx] += (ratio * e) * (ratio * e)
                        scount[idx] += 1.0
                        added += 1
    return added
