# cython: language_level=3
"""Projection of RA/Dec onto an IFU cube's tangent plane (private tier).

The formula of jwst 3.0.0 ``cube_build.coord.radec2std``, in the same order of
float64 operations, parallel over points: gnomonic projection about
``(crval1, crval2)``, xi negated (East to the left, the cube's ``PC1_1 = -1``),
in arcsec, optionally rotated by the cube's position angle.  Non-finite inputs
give NaN.  Called by :func:`spec3c._core.tangent.sky_to_tangent`, which validates.
"""

from cython.parallel cimport prange
from libc.math cimport M_PI, cos, sin

from ._shared cimport resolve_threads


def project(const double[::1] ra, const double[::1] dec, double crval1, double crval2,
            bint rotate, double rot_angle, double[::1] xi, double[::1] eta, int workers):
    cdef Py_ssize_t n = ra.shape[0], k
    cdef double rad2arcsec = (180.0 * 3600.0) / M_PI
    cdef double deg2rad = M_PI / 180.0
    cdef double ra0 = crval1 * deg2rad
    cdef double dec0 = crval2 * deg2rad
    cdef double sd0 = sin(dec0), cd0 = cos(dec0)
    cdef double cr = cos(-rot_angle * deg2rad), sr = sin(-rot_angle * deg2rad)
    cdef double radiff, decr, h, x, y, cdec, sdec, cra
    cdef int nthreads = resolve_threads(workers)
    for k in prange(n, nogil=True, num_threads=nthreads, schedule="static"):
        radiff = ra[k] * deg2rad - ra0
        decr = dec[k] * deg2rad
        sdec = sin(decr)
        cdec = cos(decr)
        cra = cos(radiff)
        h = sdec * sd0 + cdec * cd0 * cra
        x = cdec * sin(radiff) / h
        y = (sdec * cd0 - cdec * sd0 * cra) / h
        x = -x * rad2arcsec
        y = y * rad2arcsec
        if rotate:
            xi[k] = x * cr - y * sr
            eta[k] = x * sr + y * cr
        else:
            xi[k] = x
            eta[k] = y
