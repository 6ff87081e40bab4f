# cython: language_level=3
"""Projection of RA/Dec onto an IFU cube's tangent plane (private tier).

The formula of jwst 3.0.0 ``cube_build.coord.radec2std``, in the same order of
float64 operations, parallel over points: gnomonic projection about
``(crval1, crval2)``, xi negated (East to the left, the cube's ``PC1_1 = -1``),
in arcsec, optionally rotated by the cube's position angle.  Non-finite inputs
give NaN.  Called by :mod:`spec3c._core.tangent`, which validates.
"""

from cython.parallel cimport prange
from libc.math cimport M_PI, NAN, cos, sin
from libc.stdint cimport int64_t, uint8_t

from ._shared cimport resolve_threads


ctypedef struct frame_t:
    double ra0, sd0, cd0    # tangent point: RA (rad), sin and cos of Dec
    double cr, sr           # rotation of the axes
    bint rotate


cdef frame_t _frame(double crval1, double crval2, bint rotate, double rot_angle) noexcept:
    cdef double deg2rad = M_PI / 180.0
    cdef frame_t f
    f.ra0 = crval1 * deg2rad
    f.sd0 = sin(crval2 * deg2rad)
    f.cd0 = cos(crval2 * deg2rad)
    f.cr = cos(-rot_angle * deg2rad)
    f.sr = sin(-rot_angle * deg2rad)
    f.rotate = rotate
    return f


cdef inline void _project_one(const frame_t* f, double ra, double dec, double* xi, double* eta) noexcept nogil:
    cdef double rad2arcsec = (180.0 * 3600.0) / M_PI
    cdef double deg2rad = M_PI / 180.0
    cdef double radiff = ra * deg2rad - f.ra0
    cdef double decr = dec * deg2rad
    cdef double sdec = sin(decr), cdec = cos(decr), cra = cos(radiff)
    cdef double h = sdec * f.sd0 + cdec * f.cd0 * cra
    cdef double x = cdec * sin(radiff) / h
    cdef double y = (sdec * f.cd0 - cdec * f.sd0 * cra) / h
    x = -x * rad2arcsec
    y = y * rad2arcsec
    if f.rotate:
        xi[0] = x * f.cr - y * f.sr
        eta[0] = x * f.sr + y * f.cr
    else:
        xi[0] = x
        eta[0] = y


def project(const double[::1] ra, const double[::1] dec, double crval1, double crval2,
            bint rotate, double rot_angle, double[::1] xi, double[::1] eta, int workers):
    cdef Py_ssize_t n = ra.shape[0], k
    cdef frame_t f = _frame(crval1, crval2, rotate, rot_angle)
    cdef int nthreads = resolve_threads(workers)
    for k in prange(n, nogil=True, num_threads=nthreads, schedule="static"):
        _project_one(&f, ra[k], dec[k], &xi[k], &eta[k])


def project_corners(const double[::1] ra, const double[::1] dec, const int64_t[::1] index,
                    tuple offsets, const uint8_t[::1] reach, double crval1, double crval2,
                    bint rotate, double rot_angle, double[:, ::1] xi, double[:, ::1] eta, int workers):
    """The 4 footprint corners of pixels ``k`` (centres ``ra[k], dec[k]``, deg), projected.

    Corner ``c`` is the centre plus the offsets ``offsets[2c][index[k]]`` (RA) and
    ``offsets[2c + 1][index[k]]`` (Dec), float32 arcsec over a whole frame, as
    ``ra + float64(offset) / 3600``.  Pixels with ``reach[k] == 0`` get NaN
    (``reach`` empty: every pixel).
    """
    cdef const float[::1] plane
    cdef const float* planes[8]    # RA, Dec offsets of corner 1, ..., corner 4 (held by ``offsets``)
    cdef Py_ssize_t n = ra.shape[0], k, c
    cdef int64_t i
    cdef bint every = reach.shape[0] == 0
    cdef frame_t f = _frame(crval1, crval2, rotate, rot_angle)
    cdef int nthreads = resolve_threads(workers)
    for c in range(8):
        plane = offsets[c]
        planes[c] = &plane[0]
    for k in prange(n, nogil=True, num_threads=nthreads, schedule="static"):
        if not every and reach[k] == 0:
            for c in range(4):
                xi[k, c] = NAN
                eta[k, c] = NAN
            continue
        i = index[k]
        for c in range(4):
            _project_one(&f, ra[k] + (<double>planes[2 * c][i]) / 3600.0,
                         dec[k] + (<double>planes[2 * c + 1][i]) / 3600.0, &xi[k, c], &eta[k, c])
