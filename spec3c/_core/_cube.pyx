# cython: language_level=3
"""IFU cube accumulation kernels (private tier; ALGORITHMS.md §11.5-11.6).

Called by :class:`spec3c._core.cube.CubeAccumulator`, which validates and
coerces: every array arrives native, C-contiguous and float64 (``dq``
uint32), parameter tables have one entry per wavelength plane of the whole
cube, and the accumulator planes are the flattened ``(p1 - p0, ny, nx)`` tile.

Behaviour follows jwst 3.0.0 ``cube_build``:

* ``msm`` / ``emsm``: ``match_point_msm`` / ``match_point_emsm`` in
  ``src/cube_match_sky_pointcloud.c`` (region of interest, weights, counts);
* ``drizzle``: ``match_driz`` in ``src/cube_match_sky_driz.c`` (spatial
  polygon overlap times wavelength overlap);
* finalisation: ``IFUCubeData.find_spaxel_flux``, ``set_final_dq_flags`` and
  the NaN/sqrt part of ``setup_final_ifucube_model`` in ``ifu_cube.py``.

Differences from the reference that do not change results: the wavelength
planes of a pixel are found by binary search instead of a scan of all planes;
the spaxel window comes from the grid arithmetic (then the reference's exact
tests decide); per-pixel ROI parameters are looked up from the nearest plane
in the kernel (``find_closest_wave``; the table *is* the plane list).

Parallelism and determinism: a first pass (parallel over pixels) finds each
pixel's candidate planes by binary search.  The tile's planes are then cut
into blocks (about ``BLOCK_BYTES`` of sums each, so a block stays in cache,
and at least 4 per thread); each pixel is listed, in input order, in every
block its plane range touches, and a block is updated by one thread only.
Threads never write the same voxel, and every voxel receives its
contributions in input-pixel order whatever the thread count, block size or
tiling, so those never change a bit of the result.
"""

from cython.parallel cimport prange
from libc.math cimport exp, fabs, floor, isfinite, isnan, pow, sqrt
from libc.stdint cimport int32_t, int64_t, uint32_t
from libc.stdlib cimport free, malloc

from ._geometry cimport clip_band, polygon_area
from ._shared cimport lower_bound, resolve_threads, upper_bound

cdef extern from "<math.h>":
    const double NAN

cdef enum:
    W_EMSM = 0
    W_MSM = 1
    W_DRIZZLE = 2

# DQ values of the cube (stdatamodels dqflags) and the reference's
# intermediate FOV flags (IFUCubeData.overlap_full / overlap_partial)
cdef enum:
    DQ_DO_NOT_USE = 1
    DQ_NON_SCIENCE = 512
    FOV_FULL = 2
    FOV_PARTIAL = 4

# planes of one pixel whose wavelength overlaps are computed once (more: per spaxel)
cdef enum:
    PLANES_AT_ONCE = 16

# target size of the sums one plane block touches (4 float64 per voxel)
cdef Py_ssize_t BLOCK_BYTES = 1 << 20

# a pixel's plane range: invalid pixel / valid but nothing in this tile
cdef enum:
    PIX_INVALID = -2
    PIX_OUTSIDE = -1


ctypedef struct grid_t:
    const double* xc      # (nx,) spaxel centres along axis 1
    const double* yc      # (ny,)
    const double* zc      # (nz,) plane centres (whole cube)
    const double* dz      # (nz,) plane widths, "cdelt3_normal"
    Py_ssize_t nx, ny, nz
    double cdelt1, cdelt2
    double max_dz


ctypedef struct acc_t:
    double* sflux         # sum of flux * w
    double* sweight       # sum of w
    double* svar          # sum of (err * w)**2
    double* scount        # number of contributions
    Py_ssize_t p0, p1     # planes [p0, p1) of the whole cube held here


ctypedef struct pix_t:
    const double* x       # (n,) centres, or (n, 4) corners for drizzle
    const double* y
    const double* wave
    const double* flux
    const double* err
    const double* dwave   # drizzle: wavelength extent of the pixel
    const uint32_t* dq    # NULL: no DQ test
    const double* rois    # per-plane parameter tables (nz,)
    const double* roiw
    const double* power
    const double* softrad
    const double* scalerad
    Py_ssize_t n
    double wmin, wmax     # wavelength preselection window
    int kind


# ----------------------------------------------------------------- searches
cdef inline Py_ssize_t _nearest(const double* z, Py_ssize_t n, double v) noexcept nogil:
    """Index of the plane nearest ``v``, the lower one on a tie (``argmin |z - v|``)."""
    cdef Py_ssize_t i = lower_bound(z, n, v)
    if i == 0:
        return 0
    if i == n:
        return n - 1
    if fabs(z[i - 1] - v) <= fabs(z[i] - v):
        return i - 1
    return i


cdef inline Py_ssize_t _clamp_index(double v, Py_ssize_t n) noexcept nogil:
    """``floor(v)`` clamped to ``[0, n]`` (``v`` finite)."""
    if v <= 0.0:
        return 0
    if v >= <double>n:
        return n
    return <Py_ssize_t>floor(v)


# ------------------------------------------------------------ pixel ranges
cdef inline bint _pixel_valid(const pix_t* p, Py_ssize_t k) noexcept nogil:
    """The reference's pixel selection (``map_detector_to_outputframe``) plus finite inputs."""
    cdef double w = p.wave[k]
    cdef Py_ssize_t c
    if not (w >= p.wmin and w <= p.wmax):
        return False
    if p.dq != NULL and (p.dq[k] & (DQ_DO_NOT_USE | DQ_NON_SCIENCE)):
        return False
    if not isfinite(p.flux[k]):
        return False
    if p.kind == W_DRIZZLE:
        if not isfinite(p.dwave[k]):
            return False
        for c in range(4):
            if not (isfinite(p.x[4 * k + c]) and isfinite(p.y[4 * k + c])):
                return False
        return True
    return isfinite(p.x[k]) and isfinite(p.y[k])


cdef int32_t _plane_range(const pix_t* p, const grid_t* g, const acc_t* a,
                          Py_ssize_t k, int32_t* hi) noexcept nogil:
    """Candidate planes ``[lo, hi)`` of pixel ``k`` in the tile; returns ``lo``.

    ``PIX_INVALID`` for a pixel the reference drops, ``PIX_OUTSIDE`` for a
    valid pixel whose planes all lie outside the tile.  The range is a
    superset (one plane of margin each side); the exact window test of the
    reference is applied per plane when accumulating.
    """
    cdef double w = p.wave[k]
    cdef double half
    cdef Py_ssize_t lo, up
    if not _pixel_valid(p, k):
        return PIX_INVALID
    if p.kind == W_DRIZZLE:
        # reference window: |z_j - w| < |dwave + dz_j| <= dwave + max(dz)
        half = fabs(p.dwave[k]) + g.max_dz
    else:
        half = p.roiw[_nearest(g.zc, g.nz, w)]
    lo = lower_bound(g.zc, g.nz, w - half) - 1
    up = upper_bound(g.zc, g.nz, w + half) + 1
    if lo < a.p0:
        lo = a.p0
    if up > a.p1:
        up = a.p1
    if lo >= up:
        return PIX_OUTSIDE
    hi[0] = <int32_t>up
    return <int32_t>lo


cdef void _ranges(const pix_t* p, const grid_t* g, const acc_t* a, int32_t* lo,
                  int32_t* hi, int nthreads) noexcept nogil:
    cdef Py_ssize_t k
    for k in prange(p.n, nogil=True, num_threads=nthreads, schedule="static"):
        lo[k] = _plane_range(p, g, a, k, &hi[k])


# ------------------------------------------------------------ accumulation
cdef inline void _accumulate(const acc_t* a, Py_ssize_t idx, double f, double e,
                             double ww) noexcept nogil:
    """Add one weighted contribution to voxel ``idx`` of the tile."""
    a.sflux[idx] = a.sflux[idx] + f * ww
    a.sweight[idx] = a.sweight[idx] + ww
    a.svar[idx] = a.svar[idx] + (e * ww) * (e * ww)
    a.scount[idx] = a.scount[idx] + 1.0


cdef void _pointcloud_pixel(const pix_t* p, const grid_t* g, const acc_t* a,
                            Py_ssize_t k, Py_ssize_t jlo, Py_ssize_t jhi) noexcept nogil:
    """msm/emsm: spread pixel ``k`` over planes ``[jlo, jhi)`` (``match_point_*``)."""
    cdef double x = p.x[k], y = p.y[k], w = p.wave[k]
    cdef double f = p.flux[k], e = p.err[k]
    cdef Py_ssize_t q = _nearest(g.zc, g.nz, w)
    cdef double rois = p.rois[q], roiw = p.roiw[q], power = p.power[q]
    cdef double softrad = p.softrad[q], scale = p.scalerad[q] / g.cdelt1
    cdef Py_ssize_t nxy = g.nx * g.ny
    cdef Py_ssize_t ix, iy, j, ix0, ix1, iy0, iy1, idx
    cdef double xdist, ydist, radius, d1, d2, dxy, d3, wsum, wn, ww
    ix0 = _clamp_index((x - rois - g.xc[0]) / g.cdelt1 - 1.0, g.nx)
    ix1 = _clamp_index((x + rois - g.xc[0]) / g.cdelt1 + 2.0, g.nx)
    iy0 = _clamp_index((y - rois - g.yc[0]) / g.cdelt2 - 1.0, g.ny)
    iy1 = _clamp_index((y + rois - g.yc[0]) / g.cdelt2 + 2.0, g.ny)
    for ix in range(ix0, ix1):
        xdist = fabs(g.xc[ix] - x)
        if not (xdist <= rois):
            continue
        for iy in range(iy0, iy1):
            ydist = fabs(g.yc[iy] - y)
            if not (ydist <= rois):
                continue
            radius = sqrt(xdist * xdist + ydist * ydist)
            if not (radius <= rois):
                continue
            d1 = xdist / g.cdelt1
            d2 = ydist / g.cdelt2
            dxy = (d1 * d1) + (d2 * d2)
            for j in range(jlo, jhi):
                if not (fabs(g.zc[j] - w) <= roiw):
                    continue
                d3 = (w - g.zc[j]) / g.dz[j]
                wsum = d3 * d3 + dxy
                if p.kind == W_EMSM:
                    ww = exp(-wsum / scale)
                else:
                    wn = pow(sqrt(wsum), power)
                    if wn < softrad:
                        wn = softrad
                    ww = 1.0 / wn
                idx = (j - a.p0) * nxy + iy * g.nx + ix
                _accumulate(a, idx, f, e, ww)


cdef inline double _wave_overlap(double w, double dw, double zc, double dz) noexcept nogil:
    """Length of ``[w - dw/2, w + dw/2]`` inside ``[zc - dz/2, zc + dz/2]``."""
    cdef double ptmin = w - dw / 2, ptmax = w + dw / 2
    cdef double spxmin = zc - dz / 2, spxmax = zc + dz / 2
    cdef double z1 = spxmax - ptmin, z2 = spxmax - ptmax, z3 = spxmin - ptmin
    cdef double zo
    if z1 < 0:
        z1 = 0
    if z2 < 0:
        z2 = 0
    if z3 < 0:
        z3 = 0
    zo = z1 - z2 - z3
    if zo < 0:
        zo = 0
    return zo


cdef double _plane_overlap(const grid_t* g, double w, double dw, Py_ssize_t j) noexcept nogil:
    """Wavelength overlap of a pixel ``(w, dw)`` with plane ``j``: 0 outside the reference's window."""
    if not (fabs(g.zc[j] - w) < fabs(dw + g.dz[j])):
        return 0.0
    return _wave_overlap(w, dw, g.zc[j], g.dz[j])


cdef void _drizzle_pixel(const pix_t* p, const grid_t* g, const acc_t* a,
                         Py_ssize_t k, Py_ssize_t jlo, Py_ssize_t jhi) noexcept nogil:
    """3-D drizzle of pixel ``k`` over planes ``[jlo, jhi)`` (``match_driz``).

    The footprint is clipped to a spaxel column once, then that polygon to each
    spaxel of the column (the reference clips the footprint to every spaxel:
    the same areas, to rounding); a side the polygon does not cross is not
    clipped.  The wavelength overlaps are the same for every spaxel.
    """
    cdef double qx[4]
    cdef double qy[4]
    cdef double cx[64]
    cdef double cy[64]
    cdef double sx[64]
    cdef double sy[64]
    cdef double tx[64]
    cdef double ty[64]
    cdef double zo[PLANES_AT_ONCE]
    cdef double w = p.wave[k], dw = p.dwave[k], f = p.flux[k], e = p.err[k]
    cdef double xmin, xmax, ymin, ymax, xleft, xright, ybot, ytop, cymin, cymax
    cdef double area, aw, cell = g.cdelt1 * g.cdelt2
    cdef Py_ssize_t nxy = g.nx * g.ny
    cdef Py_ssize_t c, ix, iy, j, ix0, ix1, iy0, iy1, idx
    cdef bint cached = jhi - jlo <= PLANES_AT_ONCE
    cdef int ncol, nrow
    for c in range(4):
        qx[c] = p.x[4 * k + c]
        qy[c] = p.y[4 * k + c]
    xmin = xmax = qx[0]
    ymin = ymax = qy[0]
    for c in range(1, 4):
        xmin = min(xmin, qx[c])
        xmax = max(xmax, qx[c])
        ymin = min(ymin, qy[c])
        ymax = max(ymax, qy[c])
    if cached:
        for j in range(jlo, jhi):
            zo[j - jlo] = _plane_overlap(g, w, dw, j)
    ix0 = _clamp_index((xmin - g.xc[0]) / g.cdelt1 - 1.5, g.nx)
    ix1 = _clamp_index((xmax - g.xc[0]) / g.cdelt1 + 2.5, g.nx)
    iy0 = _clamp_index((ymin - g.yc[0]) / g.cdelt2 - 1.5, g.ny)
    iy1 = _clamp_index((ymax - g.yc[0]) / g.cdelt2 + 2.5, g.ny)
    for ix in range(ix0, ix1):
        xleft = g.xc[ix] - g.cdelt1 * 0.5
        xright = g.xc[ix] + g.cdelt1 * 0.5
        if not (xleft < xmax and xright > xmin):
            continue
        # the footprint within the column, x in the spaxel's unit frame
        for c in range(4):
            cx[c] = (qx[c] - g.xc[ix]) / g.cdelt1
            cy[c] = qy[c]
        ncol = clip_band(cx, cy, 4, tx, ty, -0.5, 0.5)
        if ncol < 3:
            continue
        cymin = cymax = cy[0]
        for c in range(1, ncol):
            cymin = min(cymin, cy[c])
            cymax = max(cymax, cy[c])
        for iy in range(iy0, iy1):
            ybot = g.yc[iy] - g.cdelt2 * 0.5
            ytop = g.yc[iy] + g.cdelt2 * 0.5
            if not (ybot < ymax and ytop > ymin) or not (ybot < cymax and ytop > cymin):
                continue
            for c in range(ncol):
                sx[c] = cx[c]
                sy[c] = (cy[c] - g.yc[iy]) / g.cdelt2
            nrow = clip_band(sy, sx, ncol, ty, tx, -0.5, 0.5)
            area = polygon_area(sx, sy, nrow) * cell
            if not (area > 0.0):
                continue
            for j in range(jlo, jhi):
                aw = area * (zo[j - jlo] if cached else _plane_overlap(g, w, dw, j))
                if aw > 0:
                    idx = (j - a.p0) * nxy + iy * g.nx + ix
                    _accumulate(a, idx, f, e, aw)


cdef inline void _do_pixel(const pix_t* p, const grid_t* g, const acc_t* a, Py_ssize_t k,
                           Py_ssize_t jlo, Py_ssize_t jhi) noexcept nogil:
    if jlo >= jhi:
        return
    if p.kind == W_DRIZZLE:
        _drizzle_pixel(p, g, a, k, jlo, jhi)
    else:
        _pointcloud_pixel(p, g, a, k, jlo, jhi)


cdef void _serial(const pix_t* p, const grid_t* g, const acc_t* a, const int32_t* lo,
                  const int32_t* hi) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(p.n):
        if lo[k] >= 0:
            _do_pixel(p, g, a, k, lo[k], hi[k])


cdef void _count_blocks(Py_ssize_t n, const int32_t* lo, const int32_t* hi, Py_ssize_t p0,
                        Py_ssize_t bsize, Py_ssize_t nblocks, Py_ssize_t* offsets) noexcept nogil:
    """Prefix offsets (size ``nblocks + 1``) of the block membership lists."""
    cdef Py_ssize_t k, b
    for b in range(nblocks + 1):
        offsets[b] = 0
    for k in range(n):
        if lo[k] >= 0:
            for b in range((lo[k] - p0) // bsize, (hi[k] - 1 - p0) // bsize + 1):
                offsets[b + 1] += 1
    for b in range(nblocks):
        offsets[b + 1] += offsets[b]


cdef void _fill_blocks(Py_ssize_t n, const int32_t* lo, const int32_t* hi, Py_ssize_t p0,
                       Py_ssize_t bsize, Py_ssize_t nblocks, Py_ssize_t* cursor,
                       int32_t* members) noexcept nogil:
    """Counting sort of pixels into plane blocks, keeping input order."""
    cdef Py_ssize_t k, b
    for k in range(n):
        if lo[k] >= 0:
            for b in range((lo[k] - p0) // bsize, (hi[k] - 1 - p0) // bsize + 1):
                members[cursor[b]] = <int32_t>k
                cursor[b] += 1


cdef void _run_blocks(const pix_t* p, const grid_t* g, const acc_t* a, const int32_t* lo,
                      const int32_t* hi, Py_ssize_t bsize, Py_ssize_t nblocks,
                      const Py_ssize_t* offsets, const int32_t* members,
                      int nthreads) noexcept nogil:
    cdef Py_ssize_t b, m, k, blo, bhi, jlo, jhi
    for b in prange(nblocks, nogil=True, num_threads=nthreads, schedule="dynamic"):
        blo = a.p0 + b * bsize
        bhi = min(blo + bsize, a.p1)
        for m in range(offsets[b], offsets[b + 1]):
            k = members[m]
            jlo = max(<Py_ssize_t>lo[k], blo)
            jhi = min(<Py_ssize_t>hi[k], bhi)
            _do_pixel(p, g, a, k, jlo, jhi)


cdef inline const double* _ptr(const double[::1] v) noexcept:
    return &v[0] if v.shape[0] > 0 else NULL


def cube_add(
    const double[::1] x, const double[::1] y, const double[::1] wave,
    const double[::1] flux, const double[::1] err, const double[::1] dwave,
    const uint32_t[::1] dq, bint has_dq,
    tuple grid, tuple tables, double wmin, double wmax, int kind,
    Py_ssize_t p0, Py_ssize_t p1, tuple sums, int workers,
):
    """Accumulate one exposure's pixels into the tile sums; return the valid-pixel count.

    ``grid = (xc, yc, zc, dz, cdelt1, cdelt2)``; ``tables = (rois, roiw,
    power, softrad, scalerad)`` (each ``(nz,)`` float64, ignored for drizzle);
    ``sums = (sflux, sweight, svar, scount)``, each flattened ``(p1-p0)*ny*nx``
    float64, updated in place.
    """
    cdef const double[::1] xc = grid[0]
    cdef const double[::1] yc = grid[1]
    cdef const double[::1] zc = grid[2]
    cdef const double[::1] dz = grid[3]
    cdef const double[::1] t_rois = tables[0]
    cdef const double[::1] t_roiw = tables[1]
    cdef const double[::1] t_power = tables[2]
    cdef const double[::1] t_softrad = tables[3]
    cdef const double[::1] t_scalerad = tables[4]
    cdef double[::1] sflux = sums[0]
    cdef double[::1] sweight = sums[1]
    cdef double[::1] svar = sums[2]
    cdef double[::1] scount = sums[3]
    cdef grid_t g
    cdef acc_t a
    cdef pix_t p
    cdef Py_ssize_t k, n = wave.shape[0], nvalid = 0
    cdef Py_ssize_t nt = p1 - p0, nblocks, bsize
    cdef int nthreads = resolve_threads(workers)
    cdef int32_t* lo = NULL
    cdef int32_t* hi = NULL
    cdef int32_t* members = NULL
    cdef Py_ssize_t* offsets = NULL
    cdef Py_ssize_t* cursor = NULL

    g.xc = &xc[0]
    g.yc = &yc[0]
    g.zc = &zc[0]
    g.dz = &dz[0]
    g.nx = xc.shape[0]
    g.ny = yc.shape[0]
    g.nz = zc.shape[0]
    g.cdelt1 = grid[4]
    g.cdelt2 = grid[5]
    g.max_dz = dz[0]
    for k in range(1, g.nz):
        g.max_dz = max(g.max_dz, dz[k])

    a.sflux = &sflux[0]
    a.sweight = &sweight[0]
    a.svar = &svar[0]
    a.scount = &scount[0]
    a.p0 = p0
    a.p1 = p1

    p.x = _ptr(x)
    p.y = _ptr(y)
    p.wave = _ptr(wave)
    p.flux = _ptr(flux)
    p.err = _ptr(err)
    p.dwave = _ptr(dwave)
    p.dq = &dq[0] if has_dq and dq.shape[0] > 0 else NULL
    p.rois = &t_rois[0]
    p.roiw = &t_roiw[0]
    p.power = &t_power[0]
    p.softrad = &t_softrad[0]
    p.scalerad = &t_scalerad[0]
    p.n = n
    p.wmin = wmin
    p.wmax = wmax
    p.kind = kind
    if n == 0 or nt <= 0:
        return 0

    lo = <int32_t*>malloc(n * sizeof(int32_t))
    hi = <int32_t*>malloc(n * sizeof(int32_t))
    if lo == NULL or hi == NULL:
        free(lo)
        free(hi)
        raise MemoryError("cube_add: cannot allocate the per-pixel plane ranges")
    try:
        with nogil:
            _ranges(&p, &g, &a, lo, hi, nthreads)
            for k in range(n):
                if lo[k] != PIX_INVALID:
                    nvalid += 1
        # blocks of about BLOCK_BYTES of sums keep a block's voxels in cache
        # (also serially); with threads, at least 4 blocks per thread
        bsize = max(<Py_ssize_t>1, BLOCK_BYTES // (32 * g.nx * g.ny))
        nblocks = (nt + bsize - 1) // bsize
        if nthreads > 1:
            nblocks = max(nblocks, min(nt, 4 * <Py_ssize_t>nthreads))
        if nblocks <= 1:
            with nogil:
                _serial(&p, &g, &a, lo, hi)
            return nvalid
        bsize = (nt + nblocks - 1) // nblocks
        nblocks = (nt + bsize - 1) // bsize
        offsets = <Py_ssize_t*>malloc((nblocks + 1) * sizeof(Py_ssize_t))
        cursor = <Py_ssize_t*>malloc((nblocks + 1) * sizeof(Py_ssize_t))
        if offsets == NULL or cursor == NULL:
            raise MemoryError("cube_add: cannot allocate the plane-block offsets")
        with nogil:
            _count_blocks(n, lo, hi, p0, bsize, nblocks, offsets)
        members = <int32_t*>malloc(max(offsets[nblocks], 1) * sizeof(int32_t))
        if members == NULL:
            raise MemoryError("cube_add: cannot allocate the plane-block membership lists")
        with nogil:
            for k in range(nblocks + 1):
                cursor[k] = offsets[k]
            _fill_blocks(n, lo, hi, p0, bsize, nblocks, cursor, members)
            _run_blocks(&p, &g, &a, lo, hi, bsize, nblocks, offsets, members, nthreads)
        return nvalid
    finally:
        free(lo)
        free(hi)
        free(offsets)
        free(cursor)
        free(members)


# ------------------------------------------------------------ finalisation
cdef void _finalize_plane(const double* sflux, const double* sweight, const double* svar,
                          const double* scount, const uint32_t* fov, Py_ssize_t ny,
                          Py_ssize_t nx, float* oflux, float* oerr, float* owmap,
                          uint32_t* odq) noexcept nogil:
    """One wavelength plane: normalise, DQ (``set_final_dq_flags``), NaN where DO_NOT_USE."""
    cdef Py_ssize_t i, nb, ix, iy, xn, yn, nxy = nx * ny
    cdef double sw, fl, var
    cdef uint32_t d
    cdef bint found
    cdef Py_ssize_t dx[4]
    cdef Py_ssize_t dy[4]
    dx[0] = -1; dy[0] = 0   # left, right, bottom, top (reference order)
    dx[1] = 1; dy[1] = 0
    dx[2] = 0; dy[2] = -1
    dx[3] = 0; dy[3] = 1
    for i in range(nxy):
        sw = sweight[i]
        fl = sflux[i]
        var = svar[i]
        if scount[i] > 0:
            fl = fl / sw
            var = var / (sw * sw)
        oflux[i] = <float>fl
        oerr[i] = <float>sqrt(var)
        owmap[i] = <float>scount[i]
        d = fov[i] & (FOV_FULL | FOV_PARTIAL) if fov != NULL else 0
        if sw > 0:
            d = FOV_PARTIAL
        if d == 0:
            d = DQ_NON_SCIENCE | DQ_DO_NOT_USE
        elif d & (FOV_FULL | FOV_PARTIAL):
            d = 0
        if d == 0 and sw == 0:
            d = DQ_DO_NOT_USE   # hole: in the FOV but nothing landed here
        odq[i] = d
    # holes on the cube edge or next to a no-coverage spaxel become no-coverage;
    # in place and in index order, as the reference (so conversions propagate)
    for i in range(nxy):
        if odq[i] != DQ_DO_NOT_USE:
            continue
        iy = i // nx
        ix = i - iy * nx
        found = iy == 0 or iy == ny - 1 or ix == 0 or ix == nx - 1
        nb = 0
        while nb < 4 and not found:
            xn = ix + dx[nb]
            yn = iy + dy[nb]
            # the reference skips neighbours in row/column 0 (``> 0``)
            if xn > 0 and xn < nx and yn > 0 and yn < ny:
                if odq[yn * nx + xn] & DQ_NON_SCIENCE:
                    found = True
            nb += 1
        if found:
            odq[i] = DQ_NON_SCIENCE | DQ_DO_NOT_USE
    for i in range(nxy):
        if odq[i] & DQ_DO_NOT_USE:
            oflux[i] = <float>NAN
            oerr[i] = <float>NAN


def cube_finalize(
    tuple sums, const uint32_t[::1] fov, bint has_fov,
    Py_ssize_t nplanes, Py_ssize_t ny, Py_ssize_t nx,
    float[::1] oflux, float[::1] oerr, float[::1] owmap, uint32_t[::1] odq, int workers,
):
    """Final flux, err, WMAP and DQ of ``nplanes`` planes (all flattened, plane-major)."""
    cdef const double[::1] sflux = sums[0]
    cdef const double[::1] sweight = sums[1]
    cdef const double[::1] svar = sums[2]
    cdef const double[::1] scount = sums[3]
    cdef Py_ssize_t j, nxy = nx * ny
    cdef const uint32_t* fp = &fov[0] if has_fov and fov.shape[0] > 0 else NULL
    cdef int nthreads = resolve_threads(workers)
    if nplanes <= 0 or nxy <= 0:
        return
    for j in prange(nplanes, nogil=True, num_threads=nthreads, schedule="static"):
        _finalize_plane(&sflux[j * nxy], &sweight[j * nxy], &svar[j * nxy], &scount[j * nxy],
                        fp + j * nxy if fp != NULL else NULL, ny, nx,
                        &oflux[j * nxy], &oerr[j * nxy], &owmap[j * nxy], &odq[j * nxy])


# ------------------------------------------------------- NIRSpec slice extents
cdef inline void _lower(double* c, double v) noexcept nogil:
    """``c = numpy.minimum(c, v)`` (NaN wins)."""
    if not isnan(c[0]) and (isnan(v) or v < c[0]):
        c[0] = v


cdef inline void _raise(double* c, double v) noexcept nogil:
    """``c = numpy.maximum(c, v)`` (NaN wins)."""
    if not isnan(c[0]) and (isnan(v) or v > c[0]):
        c[0] = v


def slice_extents(
    const double[::1] wave, const double[::1] xi, const double[::1] eta, const int64_t[::1] slice_no,
    const double[::1] z, double roiw, Py_ssize_t p0, Py_ssize_t p1,
    double[::1] c1min, double[::1] c2min, double[::1] c1max, double[::1] c2max,
):
    """Per (plane - p0) * 30 + slice - 1: the min and max of ``xi`` and ``eta`` of the pixels with
    ``|z[plane] - wave| < roiw`` (planes found by binary search; non-finite waves and slices outside
    1-30 skipped), into the ``c*`` arrays (``numpy.minimum/maximum.at`` of every pixel and plane)."""
    cdef Py_ssize_t i, p, lo, hi, key, n = wave.shape[0], nz = z.shape[0]
    cdef int64_t s
    cdef double w
    if nz == 0:
        return
    with nogil:
        for i in range(n):
            w = wave[i]
            s = slice_no[i] - 1
            if not isfinite(w) or s < 0 or s >= 30:
                continue
            lo = upper_bound(&z[0], nz, w - roiw)
            hi = lower_bound(&z[0], nz, w + roiw)
            if lo < p0:
                lo = p0
            if hi > p1:
                hi = p1
            for p in range(lo, hi):
                if fabs(z[p] - w) < roiw:
                    key = (p - p0) * 30 + s
                    _lower(&c1min[key], xi[i])
                    _lower(&c2min[key], eta[i])
                    _raise(&c1max[key], xi[i])
                    _raise(&c2max[key], eta[i])



# ------------------------------------------------------- NIRSpec slice lines
cdef inline int64_t _floor_div(int64_t a, int64_t b) noexcept nogil:
    """``a // b`` as Python floors it (``b > 0``)."""
    return a // b if a >= 0 else -((-a + b - 1) // b)


def mark_slice_lines(
    uint32_t[:, ::1] out, Py_ssize_t nx, const int64_t[::1] plane, const int64_t[::1] x1,
    const int64_t[::1] y1, const int64_t[::1] x2, const int64_t[::1] y2, uint32_t flag,
):
    """OR ``flag`` into ``out[plane[i], y * nx + x]`` for every spaxel ``(x, y)`` of line ``i``: the
    points :func:`spec3c.algorithms.cube_fov.slice_lines` lists (``x1 <= x2``, ``y1 <= y2``).  A
    point whose flat index falls outside the plane (``out`` is ``(planes, ny * nx)``) is dropped."""
    cdef Py_ssize_t i, n = plane.shape[0]
    cdef int64_t size = out.shape[1], j, dx, dy, x, y, index, step
    cdef bint steep, straight
    with nogil:
        for i in range(n):
            dx = x2[i] - x1[i]
            dy = y2[i] - y1[i]
            steep = (dy if dy >= 0 else -dy) > (dx if dx >= 0 else -dx)
            straight = dx == 0 or dy == 0
            for j in range((dy if steep else dx) + 1):
                if steep:  # the reference's swap makes a steep line the diagonal x = y
                    x = y1[i] + j
                    y = x
                else:
                    x = x1[i] + j
                    step = 0 if straight else -_floor_div(dx // 2 - j * dy, dx)
                    y = y1[i] + (step if step > 0 else 0)
                index = y * nx + x
                if 0 <= index < size:
                    out[plane[i], index] |= flag
