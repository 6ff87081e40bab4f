# cython: language_level=3
"""Drizzle accumulation kernel (private tier; ALGORITHMS.md §10.1 step 5).

Called by :class:`spec3c._core.drizzle.Drizzle`, which validates and coerces:
arrays arrive native and C-contiguous (data float32 ``(planes, ny, nx)``,
weight float32 ``(ny, nx)``, pixmap float64 ``(ny, nx, 2)``, outputs float32
``(planes, ny_out, nx_out)``, context int32 ``(ny_out, nx_out)``).

Several data planes (science and errors) drizzled with one pixmap and weight
share each input pixel's footprint and overlap areas, computed once: plane
``k`` gets exactly the updates a drizzle of that plane alone would make (a
pixel whose value in a plane is not finite is skipped in that plane only).

Determinism: every output pixel receives its contributions in input-pixel
order (row-major), whatever the thread count.  With more than one thread the
output is cut into bands along its longer axis; each input pixel is listed,
in order, in every band its footprint touches, and a band is updated by one
thread only.  Results are therefore bit-identical for any ``workers``.
"""

from cython.parallel cimport prange
from libc.math cimport isfinite, isnan
from libc.stdint cimport int32_t, uint32_t
from libc.stdlib cimport free, malloc

from ._geometry cimport fortran_round, quad_area, quad_square_overlap
from ._shared cimport resolve_threads

cdef enum:
    KERNEL_SQUARE = 0
    KERNEL_POINT = 1


ctypedef struct driz_t:
    const float* data  # nplanes planes of in_ny * in_nx
    const double* pixmap
    const float* weight
    float* sci  # nplanes planes of out_ny * out_nx
    float* wht
    int32_t* con  # plane 0's context
    Py_ssize_t nplanes, in_ny, in_nx, out_ny, out_nx
    Py_ssize_t xmin, xmax, ymin, ymax
    double dh
    double iscale
    int kernel
    bint use_con
    int32_t bit


cdef inline double _clampd(double v, double lo, double hi) noexcept nogil:
    if v < lo:
        return lo
    if v > hi:
        return hi
    return v


cdef inline bint _interp_pixmap(const driz_t* p, double xin, double yin,
                                double* xout, double* yout) noexcept nogil:
    """Bilinear interpolation of the pixmap at input position (xin, yin).

    Outside the grid of pixel centres the nearest 2x2 cell is extrapolated
    (as drizzle's ``interpolate_point``).  Returns False on a NaN result.
    """
    cdef Py_ssize_t i0 = <Py_ssize_t>xin
    cdef Py_ssize_t j0 = <Py_ssize_t>yin
    cdef double fx, fy, gx, gy
    cdef const double* r0
    cdef const double* r1
    if i0 < 0:
        i0 = 0
    elif i0 > p.in_nx - 2:
        i0 = p.in_nx - 2
    if j0 < 0:
        j0 = 0
    elif j0 > p.in_ny - 2:
        j0 = p.in_ny - 2
    fx = xin - i0
    fy = yin - j0
    gx = 1.0 - fx
    gy = 1.0 - fy
    r0 = p.pixmap + 2 * (j0 * p.in_nx + i0)
    r1 = r0 + 2 * p.in_nx
    xout[0] = r0[0] * gx * gy + r0[2] * fx * gy + r1[0] * gx * fy + r1[2] * fx * fy
    yout[0] = r0[1] * gx * gy + r0[3] * fx * gy + r1[1] * gx * fy + r1[3] * fx * fy
    return not (isnan(xout[0]) or isnan(yout[0]))


cdef inline bint _footprint(const driz_t* p, Py_ssize_t i, Py_ssize_t j,
                            double* qx, double* qy, double* jaco,
                            Py_ssize_t* ii0, Py_ssize_t* ii1,
                            Py_ssize_t* jj0, Py_ssize_t* jj1) noexcept nogil:
    """Output footprint of input pixel (i, j): quad corners, area, index box.

    Returns False when the pixel contributes nothing (zero/NaN weight,
    non-finite data in every plane, NaN mapping, degenerate quad, or off the
    output).
    For the point kernel ``qx[0], qy[0]`` is the mapped centre.
    """
    cdef Py_ssize_t k
    cdef double w = p.weight[j * p.in_nx + i]
    cdef double xlo, xhi, ylo, yhi
    if not (w > 0.0) or not _any_finite(p, j * p.in_nx + i):
        return False
    if p.kernel == KERNEL_POINT:
        qx[0] = p.pixmap[2 * (j * p.in_nx + i)]
        qy[0] = p.pixmap[2 * (j * p.in_nx + i) + 1]
        if isnan(qx[0]) or isnan(qy[0]):
            return False
        ii0[0] = fortran_round(_clampd(qx[0], -2.0, <double>p.out_nx + 1.0))
        jj0[0] = fortran_round(_clampd(qy[0], -2.0, <double>p.out_ny + 1.0))
        if ii0[0] < 0 or ii0[0] >= p.out_nx or jj0[0] < 0 or jj0[0] >= p.out_ny:
            return False
        ii1[0] = ii0[0]
        jj1[0] = jj0[0]
        jaco[0] = 1.0
        return True
    # square kernel: corners in drizzle's order (clockwise on the input grid)
    if not _interp_pixmap(p, i - p.dh, j + p.dh, &qx[0], &qy[0]):
        return False
    if not _interp_pixmap(p, i + p.dh, j + p.dh, &qx[1], &qy[1]):
        return False
    if not _interp_pixmap(p, i + p.dh, j - p.dh, &qx[2], &qy[2]):
        return False
    if not _interp_pixmap(p, i - p.dh, j - p.dh, &qx[3], &qy[3]):
        return False
    jaco[0] = quad_area(qx, qy)
    if not (jaco[0] > 0.0) or not isfinite(jaco[0]):
        return False
    xlo = xhi = qx[0]
    ylo = yhi = qy[0]
    for k in range(1, 4):
        if not isfinite(qx[k]) or not isfinite(qy[k]):
            return False
        xlo = min(xlo, qx[k])
        xhi = max(xhi, qx[k])
        ylo = min(ylo, qy[k])
        yhi = max(yhi, qy[k])
    ii0[0] = max(fortran_round(_clampd(xlo, -2.0, <double>p.out_nx + 1.0)), 0)
    ii1[0] = min(fortran_round(_clampd(xhi, -2.0, <double>p.out_nx + 1.0)), p.out_nx - 1)
    jj0[0] = max(fortran_round(_clampd(ylo, -2.0, <double>p.out_ny + 1.0)), 0)
    jj1[0] = min(fortran_round(_clampd(yhi, -2.0, <double>p.out_ny + 1.0)), p.out_ny - 1)
    return ii0[0] <= ii1[0] and jj0[0] <= jj1[0]


cdef inline bint _any_finite(const driz_t* p, Py_ssize_t q) noexcept nogil:
    """Whether input pixel ``q`` (flat index) is finite in some plane."""
    cdef Py_ssize_t k
    cdef Py_ssize_t stride = p.in_ny * p.in_nx
    for k in range(p.nplanes):
        if isfinite(p.data[k * stride + q]):
            return True
    return False


cdef inline void _update(const driz_t* p, Py_ssize_t k, Py_ssize_t o, float d, float dow) noexcept nogil:
    """Running weighted mean of plane ``k`` at flat output index ``o`` (drizzle ``update_data``)."""
    cdef Py_ssize_t ko = k * p.out_ny * p.out_nx + o
    cdef float vc = p.wht[ko]
    cdef double total = <double>vc + <double>dow
    if dow == 0.0:
        return
    if vc == 0.0:
        p.sci[ko] = d
    else:
        p.sci[ko] = <float>((<double>p.sci[ko] * vc + <double>dow * d) / total)
    p.wht[ko] = <float>total
    if k == 0 and p.use_con and dow > 0.0:
        p.con[o] = p.con[o] | p.bit


cdef inline void _update_planes(const driz_t* p, Py_ssize_t q, Py_ssize_t o, float dow) noexcept nogil:
    """Input pixel ``q``'s value in every plane where it is finite, into output pixel ``o``."""
    cdef Py_ssize_t k
    cdef Py_ssize_t stride = p.in_ny * p.in_nx
    cdef float v
    for k in range(p.nplanes):
        v = p.data[k * stride + q]
        if isfinite(v):
            _update(p, k, o, <float>(v * p.iscale), dow)


cdef void _drizzle_pixel(const driz_t* p, Py_ssize_t i, Py_ssize_t j, int axis,
                         Py_ssize_t blo, Py_ssize_t bhi) noexcept nogil:
    """Drop input pixel (i, j) onto the output, within band [blo, bhi) of ``axis``."""
    cdef double qx[4]
    cdef double qy[4]
    cdef double jaco, area, w
    cdef Py_ssize_t ii, jj, ii0, ii1, jj0, jj1
    cdef Py_ssize_t q = j * p.in_nx + i
    cdef float dow
    if not _footprint(p, i, j, qx, qy, &jaco, &ii0, &ii1, &jj0, &jj1):
        return
    if axis == 0:
        jj0 = max(jj0, blo)
        jj1 = min(jj1, bhi - 1)
    else:
        ii0 = max(ii0, blo)
        ii1 = min(ii1, bhi - 1)
    w = p.weight[q]
    if p.kernel == KERNEL_POINT:
        if ii0 <= ii1 and jj0 <= jj1:
            _update_planes(p, q, jj0 * p.out_nx + ii0, <float>w)
        return
    for jj in range(jj0, jj1 + 1):
        for ii in range(ii0, ii1 + 1):
            area = quad_square_overlap(qx, qy, <double>ii, <double>jj)
            if area > 0.0:
                dow = <float>(area / jaco * w)
                _update_planes(p, q, jj * p.out_nx + ii, dow)


cdef void _serial(const driz_t* p) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef Py_ssize_t n_axis = p.out_ny
    for j in range(p.ymin, p.ymax + 1):
        for i in range(p.xmin, p.xmax + 1):
            _drizzle_pixel(p, i, j, 0, 0, n_axis)


cdef void _ranges_row(const driz_t* p, Py_ssize_t j, int axis, int32_t* lo,
                      int32_t* hi) noexcept nogil:
    """Band-axis output range of each input pixel of row ``j`` (-1: no contribution)."""
    cdef Py_ssize_t i, k, nxr = p.xmax - p.xmin + 1
    cdef double qx[4]
    cdef double qy[4]
    cdef double jaco
    cdef Py_ssize_t ii0, ii1, jj0, jj1
    for i in range(p.xmin, p.xmax + 1):
        k = (j - p.ymin) * nxr + (i - p.xmin)
        if _footprint(p, i, j, qx, qy, &jaco, &ii0, &ii1, &jj0, &jj1):
            lo[k] = <int32_t>(jj0 if axis == 0 else ii0)
            hi[k] = <int32_t>(jj1 if axis == 0 else ii1)
        else:
            lo[k] = -1
            hi[k] = -1


cdef void _ranges(const driz_t* p, int axis, int32_t* lo, int32_t* hi,
                  int nthreads) noexcept nogil:
    cdef Py_ssize_t j
    for j in prange(p.ymin, p.ymax + 1, nogil=True, num_threads=nthreads,
                    schedule="static"):
        _ranges_row(p, j, axis, lo, hi)


cdef void _run_bands(const driz_t* p, int axis, Py_ssize_t bsize, Py_ssize_t nbands,
                     const Py_ssize_t* offsets, const int32_t* members,
                     int nthreads) noexcept nogil:
    cdef Py_ssize_t b, m, k, i, j, blo, bhi, n_axis
    cdef Py_ssize_t nxr = p.xmax - p.xmin + 1
    n_axis = p.out_ny if axis == 0 else p.out_nx
    for b in prange(nbands, nogil=True, num_threads=nthreads, schedule="dynamic"):
        blo = b * bsize
        bhi = min(blo + bsize, n_axis)
        for m in range(offsets[b], offsets[b + 1]):
            k = members[m]
            j = p.ymin + k // nxr
            i = p.xmin + k % nxr
            _drizzle_pixel(p, i, j, axis, blo, bhi)


cdef Py_ssize_t _bucket(Py_ssize_t nreg, const int32_t* lo, const int32_t* hi,
                        Py_ssize_t bsize, Py_ssize_t nbands, Py_ssize_t* offsets,
                        int32_t* members) noexcept nogil:
    """Counting sort of input pixels into bands, keeping input order.

    With ``members == NULL`` only fills ``offsets`` (size ``nbands + 1``) and
    returns the total membership count; otherwise fills ``members`` (using
    ``offsets`` as cursors, which are restored afterwards).
    """
    cdef Py_ssize_t k, b
    if members == NULL:
        for b in range(nbands + 1):
            offsets[b] = 0
        for k in range(nreg):
            if lo[k] >= 0:
                for b in range(lo[k] // bsize, hi[k] // bsize + 1):
                    offsets[b + 1] += 1
        for b in range(nbands):
            offsets[b + 1] += offsets[b]
        return offsets[nbands]
    for k in range(nreg):
        if lo[k] >= 0:
            for b in range(lo[k] // bsize, hi[k] // bsize + 1):
                members[offsets[b]] = <int32_t>k
                offsets[b] += 1
    # every cursor now sits at the next band's start: shift back
    for b in range(nbands, 0, -1):
        offsets[b] = offsets[b - 1]
    offsets[0] = 0
    return offsets[nbands]


cdef int _parallel(const driz_t* p, int nthreads) noexcept nogil:
    """Banded parallel drizzle; returns -1 on allocation failure."""
    cdef int axis = 0 if p.out_ny >= p.out_nx else 1
    cdef Py_ssize_t n_axis = p.out_ny if axis == 0 else p.out_nx
    cdef Py_ssize_t nreg = (p.xmax - p.xmin + 1) * (p.ymax - p.ymin + 1)
    cdef Py_ssize_t nbands, bsize, total
    cdef int32_t* lo = <int32_t*>malloc(nreg * sizeof(int32_t))
    cdef int32_t* hi = <int32_t*>malloc(nreg * sizeof(int32_t))
    cdef int32_t* members = NULL
    cdef Py_ssize_t* offsets = NULL
    cdef int status = -1
    nbands = min(n_axis, <Py_ssize_t>(8 * nthreads))
    bsize = (n_axis + nbands - 1) // nbands
    nbands = (n_axis + bsize - 1) // bsize
    offsets = <Py_ssize_t*>malloc((nbands + 1) * sizeof(Py_ssize_t))
    if lo != NULL and hi != NULL and offsets != NULL:
        _ranges(p, axis, lo, hi, nthreads)
        total = _bucket(nreg, lo, hi, bsize, nbands, offsets, NULL)
        members = <int32_t*>malloc(max(total, 1) * sizeof(int32_t))
        if members != NULL:
            _bucket(nreg, lo, hi, bsize, nbands, offsets, members)
            _run_bands(p, axis, bsize, nbands, offsets, members, nthreads)
            status = 0
    free(lo)
    free(hi)
    free(members)
    free(offsets)
    return status


def drizzle_add(const float[:, :, ::1] data, const double[:, :, ::1] pixmap,
                const float[:, ::1] weight, float[:, :, ::1] out_sci, float[:, :, ::1] out_wht,
                int32_t[:, ::1] out_con, bint use_con, int bit, int kernel,
                double pixfrac, double iscale, Py_ssize_t xmin, Py_ssize_t xmax,
                Py_ssize_t ymin, Py_ssize_t ymax, int workers):
    """Add one input image's planes to the accumulator planes, in place.

    ``kernel`` is 0 (square) or 1 (point); ``bit`` is the context bit number
    (0..31) set in ``out_con`` (plane 0's context) when ``use_con``.  No validation here: see
    :meth:`spec3c._core.drizzle.Drizzle.add`.
    """
    cdef driz_t p
    cdef int nthreads = resolve_threads(workers)
    cdef int status = 0
    cdef Py_ssize_t nreg = (xmax - xmin + 1) * (ymax - ymin + 1)
    p.data = &data[0, 0, 0]
    p.pixmap = &pixmap[0, 0, 0]
    p.weight = &weight[0, 0]
    p.sci = &out_sci[0, 0, 0]
    p.wht = &out_wht[0, 0, 0]
    p.con = &out_con[0, 0]
    p.nplanes = data.shape[0]
    p.in_ny = data.shape[1]
    p.in_nx = data.shape[2]
    p.out_ny = out_sci.shape[1]
    p.out_nx = out_sci.shape[2]
    p.xmin = xmin
    p.xmax = xmax
    p.ymin = ymin
    p.ymax = ymax
    p.dh = 0.5 * pixfrac
    p.iscale = iscale
    p.kernel = kernel
    p.use_con = use_con
    p.bit = <int32_t>(<uint32_t>1 << bit)
    if nreg >= 2147483647:
        raise ValueError("input region too large (more than 2**31 - 1 pixels)")
    if not (data.shape[0] == out_sci.shape[0] == out_wht.shape[0]) or out_sci.shape[0] < 1:
        raise ValueError("data and output planes differ in number")
    with nogil:
        if nthreads <= 1 or min(p.out_ny, p.out_nx) < 1:
            _serial(&p)
        else:
            status = _parallel(&p, nthreads)
    if status != 0:
        raise MemoryError("drizzle: could not allocate band lists")
