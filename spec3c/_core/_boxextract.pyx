# cython: language_level=3
"""Box extraction per dispersion column (private tier; ALGORITHMS.md §12.3).

Called by :func:`spec3c._core.boxextract.box_extract`, which validates and
coerces: every 2-D input is native C-contiguous float64 ``(ny, nx)`` with
dispersion along x; outputs are nine float64 ``(nx,)`` arrays.  Follows
jwst ``extract1d`` (``_fit_background_for_box_extraction`` and
``_box_extract``) column by column.
"""

from cython.parallel cimport prange
from libc.math cimport NAN, fabs, isfinite, isnan, sqrt
from libc.stdlib cimport free, malloc, qsort

from ._shared cimport resolve_threads

cdef enum:
    BKG_NONE = 0
    BKG_POLY = 1
    BKG_MEDIAN = 2
    KMAX = 16          # largest polynomial order + 1
    CHUNK = 32         # columns per parallel work item

cdef double COND_MAX = 1e10


ctypedef struct cols_t:
    const double* sci
    const double* vp
    const double* vr
    const double* vf
    const double* prof
    const double* bkg
    Py_ssize_t ny, nx
    int mode
    int order
    double* flux
    double* npix
    double* var_p
    double* var_r
    double* var_f
    double* bsum
    double* bvar_p
    double* bvar_r
    double* bvar_f


cdef int _cmp_double(const void* a, const void* b) noexcept nogil:
    cdef double x = (<const double*>a)[0], y = (<const double*>b)[0]
    return (x > y) - (x < y)


cdef void _jacobi(double* a, double* v, int n) noexcept nogil:
    """Eigen-decompose symmetric ``a`` (n x n, row-major) in place.

    On return the diagonal of ``a`` holds the eigenvalues and the columns of
    ``v`` the eigenvectors (cyclic Jacobi rotations).
    """
    cdef int p, q, k, sweep
    cdef double off, theta, t, c, s, tau, apq, akp, akq, scale
    for p in range(n):
        for q in range(n):
            v[p * n + q] = 1.0 if p == q else 0.0
    for sweep in range(100):
        off = 0.0
        scale = 0.0
        for p in range(n):
            scale += a[p * n + p] * a[p * n + p]
            for q in range(p + 1, n):
                off += a[p * n + q] * a[p * n + q]
        if off <= 1e-30 * scale or off == 0.0:
            return
        for p in range(n - 1):
            for q in range(p + 1, n):
                apq = a[p * n + q]
                if apq == 0.0:
                    continue
                theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq)
                t = (1.0 if theta >= 0 else -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0))
                c = 1.0 / sqrt(t * t + 1.0)
                s = t * c
                tau = s / (1.0 + c)
                a[p * n + p] -= t * apq
                a[q * n + q] += t * apq
                a[p * n + q] = 0.0
                a[q * n + p] = 0.0
                for k in range(n):
                    if k != p and k != q:
                        akp = a[k * n + p]
                        akq = a[k * n + q]
                        a[k * n + p] = akp - s * (akq + tau * akp)
                        a[p * n + k] = a[k * n + p]
                        a[k * n + q] = akq + s * (akp - tau * akq)
                        a[q * n + k] = a[k * n + q]
                for k in range(n):
                    akp = v[k * n + p]
                    akq = v[k * n + q]
                    v[k * n + p] = akp - s * (akq + tau * akp)
                    v[k * n + q] = akq + s * (akp - tau * akq)


cdef bint _sym_inverse(double* m, double* inv, int n) noexcept nogil:
    """``inv`` = inverse of symmetric PSD ``m`` if its 2-norm condition < 1e10.

    ``m`` is destroyed.  Returns False (``inv`` zeroed) when ill-conditioned,
    as jwst does with ``np.linalg.cond(matrix) < 1e10``.
    """
    cdef double v[KMAX * KMAX]
    cdef double lmax = 0.0, lmin, lam, acc
    cdef int i, j, k
    for i in range(n * n):
        inv[i] = 0.0
    _jacobi(m, v, n)
    lmin = fabs(m[0])
    for i in range(n):
        lam = fabs(m[i * n + i])
        lmax = max(lmax, lam)
        lmin = min(lmin, lam)
    if not (lmin > 0.0) or not (lmax / lmin < COND_MAX):
        return False
    for i in range(n):
        for j in range(n):
            acc = 0.0
            for k in range(n):
                acc += v[i * n + k] * v[j * n + k] / m[k * n + k]
            inv[i * n + j] = acc
    return True


cdef inline double _t(Py_ssize_t y, Py_ssize_t ny) noexcept nogil:
    """``numpy.linspace(-1, 1, ny)[y]``."""
    if ny == 1:
        return -1.0
    if y == ny - 1:
        return 1.0
    return -1.0 + y * (2.0 / (ny - 1))


cdef inline bint _bkg_pixel(const cols_t* c, Py_ssize_t o) noexcept nogil:
    """Background pixel used by the fit: bkg profile != 0, finite SCI and variance."""
    return (c.bkg[o] != 0.0 and isfinite(c.sci[o])
            and isfinite(c.vp[o] + c.vr[o] + c.vf[o]))


cdef inline void _nan_add(double* acc, double term) noexcept nogil:
    if not isnan(term):
        acc[0] += term


cdef void _poly_background(const cols_t* c, Py_ssize_t x, double* coef,
                           double* wtot, double* bv) noexcept nogil:
    """Polynomial background of column ``x``: coefficients and variance terms.

    ``wtot[y]`` receives the weight of background pixel y in the aperture sum
    of the fitted background; ``bv[0:3]`` the (poisson, rnoise, flat)
    background variances.
    """
    cdef int n = c.order + 1, k, l
    cdef double m[KMAX * KMAX]
    cdef double inv[KMAX * KMAX]
    cdef double rhs[KMAX]
    cdef double bm[KMAX]
    cdef double g[KMAX]
    cdef double phi[KMAX]
    cdef Py_ssize_t y, o
    cdef double acc
    for k in range(n * n):
        m[k] = 0.0
    for k in range(n):
        rhs[k] = 0.0
        bm[k] = 0.0
    for y in range(c.ny):
        o = y * c.nx + x
        phi[0] = 1.0
        for k in range(1, n):
            phi[k] = phi[k - 1] * _t(y, c.ny)
        for k in range(n):
            bm[k] += phi[k] * c.prof[o]
        if _bkg_pixel(c, o):
            for k in range(n):
                rhs[k] += phi[k] * c.sci[o]
                for l in range(n):
                    m[k * n + l] += phi[k] * phi[l]
    _sym_inverse(m, inv, n)
    for k in range(n):
        coef[k] = 0.0
        g[k] = 0.0
        for l in range(n):
            coef[k] += inv[k * n + l] * rhs[l]
            g[k] += inv[k * n + l] * bm[l]
    bv[0] = 0.0
    bv[1] = 0.0
    bv[2] = 0.0
    for y in range(c.ny):
        o = y * c.nx + x
        acc = 0.0
        if _bkg_pixel(c, o):
            phi[0] = 1.0
            for k in range(1, n):
                phi[k] = phi[k - 1] * _t(y, c.ny)
            for k in range(n):
                acc += phi[k] * g[k]
        wtot[y] = acc
        _nan_add(&bv[0], c.vp[o] * acc * acc)
        _nan_add(&bv[1], c.vr[o] * acc * acc)
        _nan_add(&bv[2], c.vf[o] * acc * acc)


cdef double _median_background(const cols_t* c, Py_ssize_t x, double* buf,
                               double* bv) noexcept nogil:
    """NaN-median of the column's background pixels and its variance terms."""
    cdef Py_ssize_t y, o, nval = 0
    cdef double npix = 0.0, nw = 0.0, pw, med
    cdef int k
    for y in range(c.ny):
        o = y * c.nx + x
        npix += c.prof[o]
        if c.bkg[o] != 0.0 and not isnan(c.sci[o]):
            buf[nval] = c.sci[o]
            nval += 1
        if _bkg_pixel(c, o):
            nw += 1.0
    if nval == 0:
        med = NAN
    else:
        qsort(buf, nval, sizeof(double), _cmp_double)
        if nval % 2 == 1:
            med = buf[nval // 2]
        else:
            med = 0.5 * (buf[nval // 2 - 1] + buf[nval // 2])
    bv[0] = 0.0
    bv[1] = 0.0
    bv[2] = 0.0
    if nw > 0.0:
        for y in range(c.ny):
            o = y * c.nx + x
            if _bkg_pixel(c, o):
                pw = 1.0 / nw
                _nan_add(&bv[0], c.vp[o] * pw * pw)
                _nan_add(&bv[1], c.vr[o] * pw * pw)
                _nan_add(&bv[2], c.vf[o] * pw * pw)
        for k in range(3):
            bv[k] *= 1.2 * 1.2 * npix * npix
    return med


cdef void _column(const cols_t* c, Py_ssize_t x, double* buf) noexcept nogil:
    """Extract column ``x``; ``buf`` is ``ny`` doubles of scratch."""
    cdef double coef[KMAX]
    cdef double bv[3]
    cdef double med = 0.0, b, v, p, phi, flux = 0.0, npix = 0.0, bsum = 0.0
    cdef double vp = 0.0, vr = 0.0, vf = 0.0
    cdef Py_ssize_t y, o
    cdef int k
    bv[0] = 0.0
    bv[1] = 0.0
    bv[2] = 0.0
    if c.mode == BKG_POLY:
        _poly_background(c, x, coef, buf, bv)
    elif c.mode == BKG_MEDIAN:
        med = _median_background(c, x, buf, bv)
    for y in range(c.ny):
        o = y * c.nx + x
        b = 0.0
        if c.mode == BKG_MEDIAN:
            b = med
        elif c.mode == BKG_POLY:
            phi = 1.0
            for k in range(c.order + 1):
                b += coef[k] * phi
                phi *= _t(y, c.ny)
        v = c.sci[o] - b
        p = c.prof[o]
        if not isfinite(v):
            p = 0.0
        if p != 0.0:
            flux += v * p
        npix += p
        bsum += b * p
        _nan_add(&vp, c.vp[o] * p * p)
        _nan_add(&vr, c.vr[o] * p * p)
        _nan_add(&vf, c.vf[o] * p * p)
    c.flux[x] = NAN if fabs(npix) <= 1e-8 else flux
    c.npix[x] = npix
    c.var_p[x] = vp + bv[0]
    c.var_r[x] = vr + bv[1]
    c.var_f[x] = vf + bv[2]
    c.bsum[x] = bsum if (c.mode != BKG_NONE and isfinite(bsum)) else 0.0
    c.bvar_p[x] = bv[0]
    c.bvar_r[x] = bv[1]
    c.bvar_f[x] = bv[2]


cdef int _chunk(const cols_t* c, Py_ssize_t x0) noexcept nogil:
    """Extract columns ``x0 .. x0 + CHUNK - 1``; -1 on allocation failure."""
    cdef double* buf = <double*>malloc(max(c.ny, 1) * sizeof(double))
    cdef Py_ssize_t x
    if buf == NULL:
        return -1
    for x in range(x0, min(x0 + CHUNK, c.nx)):
        _column(c, x, buf)
    free(buf)
    return 0


def box_extract(const double[:, ::1] sci, const double[:, ::1] var_poisson,
                const double[:, ::1] var_rnoise, const double[:, ::1] var_flat,
                const double[:, ::1] profile, const double[:, ::1] bkg_profile,
                int mode, int order, double[:, ::1] out, int workers):
    """Fill ``out`` (9, nx): flux, npixels, var_poisson, var_rnoise, var_flat,
    background, bkg_var_poisson, bkg_var_rnoise, bkg_var_flat.

    ``mode``: 0 no background, 1 polynomial of ``order``, 2 median.
    ``bkg_profile`` is ignored (may be 1x1) when ``mode == 0``.
    """
    cdef cols_t c
    cdef Py_ssize_t b, nchunks
    cdef int nthreads = resolve_threads(workers)
    cdef int failed = 0
    c.sci = &sci[0, 0]
    c.vp = &var_poisson[0, 0]
    c.vr = &var_rnoise[0, 0]
    c.vf = &var_flat[0, 0]
    c.prof = &profile[0, 0]
    c.bkg = &bkg_profile[0, 0]
    c.ny = sci.shape[0]
    c.nx = sci.shape[1]
    c.mode = mode
    c.order = order
    c.flux = &out[0, 0]
    c.npix = &out[1, 0]
    c.var_p = &out[2, 0]
    c.var_r = &out[3, 0]
    c.var_f = &out[4, 0]
    c.bsum = &out[5, 0]
    c.bvar_p = &out[6, 0]
    c.bvar_r = &out[7, 0]
    c.bvar_f = &out[8, 0]
    nchunks = (c.nx + CHUNK - 1) // CHUNK
    for b in prange(nchunks, nogil=True, num_threads=nthreads, schedule="dynamic"):
        failed += _chunk(&c, b * CHUNK) != 0
    if failed:
        raise MemoryError("box_extract: could not allocate column scratch")
