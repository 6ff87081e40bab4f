"""Tests for spec3c._core.drizzle against float64 pure-Python references."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from polygon_reference import rect_overlap

from spec3c._core import Drizzle, DrizzleParams, VarianceCombiner

DTYPES = [">f4", "<f4", ">f8", "<f8"]


def drizzle_once(data, pixmap, out_shape, weight=None, params=None, **add_kwargs):
    """One image into a fresh accumulator: ``(sci, wht)``."""
    driz = Drizzle(out_shape, params, context=False)
    driz.add(data, pixmap, weight, **add_kwargs)
    return driz.finalize()


# ----------------------------------------------------------------- references
def fround(x: float) -> int:
    """Round half away from zero."""
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(0.5 - x))


def interp_pixmap(pm: np.ndarray, x: float, y: float) -> tuple[float, float]:
    """Bilinear pixmap interpolation, extrapolating from the nearest 2x2 cell."""
    ny, nx = pm.shape[:2]
    i0 = min(max(int(x), 0), nx - 2)
    j0 = min(max(int(y), 0), ny - 2)
    fx, fy = x - i0, y - j0
    c = (pm[j0, i0] * (1 - fx) * (1 - fy) + pm[j0, i0 + 1] * fx * (1 - fy)
         + pm[j0 + 1, i0] * (1 - fx) * fy + pm[j0 + 1, i0 + 1] * fx * fy)
    return float(c[0]), float(c[1])


def ref_drizzle(data, pm, w, out_shape, pixfrac=1.0, kernel="square", iscale=1.0,
                state=None):
    """Float64 drizzle of one image (optionally continuing ``state``)."""
    ny_o, nx_o = out_shape
    sci, wht = state if state is not None else (np.zeros(out_shape), np.zeros(out_shape))
    dh = 0.5 * pixfrac
    for j in range(data.shape[0]):
        for i in range(data.shape[1]):
            d, wi = float(data[j, i]), float(w[j, i])
            if not (wi > 0) or not np.isfinite(d):
                continue
            if kernel == "point":
                x, y = pm[j, i]
                if np.isnan(x) or np.isnan(y):
                    continue
                ii, jj = fround(x), fround(y)
                if 0 <= ii < nx_o and 0 <= jj < ny_o:
                    contrib = [(ii, jj, wi)]
                else:
                    contrib = []
            else:
                quad = [interp_pixmap(pm, i - dh, j + dh), interp_pixmap(pm, i + dh, j + dh),
                        interp_pixmap(pm, i + dh, j - dh), interp_pixmap(pm, i - dh, j - dh)]
                if any(np.isnan(c) for q in quad for c in q):
                    continue
                xs = [q[0] for q in quad]
                ys = [q[1] for q in quad]
                jac = abs(0.5 * ((xs[1] - xs[3]) * (ys[0] - ys[2]) - (xs[0] - xs[2]) * (ys[1] - ys[3])))
                contrib = []
                for jj in range(max(fround(min(ys)), 0), min(fround(max(ys)), ny_o - 1) + 1):
                    for ii in range(max(fround(min(xs)), 0), min(fround(max(xs)), nx_o - 1) + 1):
                        a = rect_overlap(quad, ii - 0.5, ii + 0.5, jj - 0.5, jj + 0.5)
                        if a > 0:
                            contrib.append((ii, jj, a / jac * wi))
            for ii, jj, dow in contrib:
                tot = wht[jj, ii] + dow
                sci[jj, ii] = (sci[jj, ii] * wht[jj, ii] + dow * d * iscale) / tot
                wht[jj, ii] = tot
    return sci, wht


def grid(ny, nx):
    yy, xx = np.mgrid[:ny, :nx].astype(np.float64)
    return xx, yy


def affine_pixmap(ny, nx, angle=0.0, scale=1.0, shift=(0.0, 0.0)):
    xx, yy = grid(ny, nx)
    c, s = math.cos(angle), math.sin(angle)
    x = scale * (c * xx - s * yy) + shift[0]
    y = scale * (s * xx + c * yy) + shift[1]
    return np.dstack([x, y])


def finalize_ref(sci, wht, fill=np.nan):
    return np.where(wht > 0, sci, fill), wht


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


# ---------------------------------------------------------------------- tests
def test_identity_reproduces_input(rng):
    data = rng.normal(size=(17, 23)).astype(np.float32)
    sci, wht = drizzle_once(data, affine_pixmap(17, 23), (17, 23))
    np.testing.assert_array_equal(sci, data)
    np.testing.assert_array_equal(wht, np.ones((17, 23), np.float32))


def test_shift_matches_interval_overlap(rng):
    """Pure shift: every quad is an axis-aligned unit square; overlap = dx*dy."""
    ny, nx, sx, sy = 9, 11, 0.5, 0.25
    data = rng.normal(size=(ny, nx))
    sci, wht = drizzle_once(data, affine_pixmap(ny, nx, shift=(sx, sy)), (ny + 1, nx + 1))
    num = np.zeros((ny + 1, nx + 1))
    den = np.zeros((ny + 1, nx + 1))
    for j in range(ny):
        for i in range(nx):
            for jj in range(ny + 1):
                dy = min(j + sy + 0.5, jj + 0.5) - max(j + sy - 0.5, jj - 0.5)
                for ii in range(nx + 1):
                    dx = min(i + sx + 0.5, ii + 0.5) - max(i + sx - 0.5, ii - 0.5)
                    if dx > 0 and dy > 0:
                        num[jj, ii] += dx * dy * data[j, i]
                        den[jj, ii] += dx * dy
    with np.errstate(invalid="ignore"):
        ref = np.where(den > 0, num / den, np.nan)
    np.testing.assert_allclose(sci, ref, rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(wht, den, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("pixfrac", [1.0, 0.6])
@pytest.mark.parametrize("angle,scale", [(0.3, 1.0), (1.1, 0.7), (-0.4, 1.6)])
def test_square_vs_reference(rng, pixfrac, angle, scale):
    ny, nx = 10, 13
    data = rng.normal(size=(ny, nx)).astype(np.float32)
    w = rng.uniform(0.5, 2.0, size=(ny, nx)).astype(np.float32)
    pm = affine_pixmap(ny, nx, angle, scale, shift=(6.3, 2.1))
    pm[..., 0] += 0.05 * np.sin(pm[..., 1])  # a little non-linear distortion
    out_shape = (25, 27)
    sci, wht = drizzle_once(data, pm, out_shape, w, DrizzleParams(pixfrac=pixfrac), iscale=1.5)
    rs, rw = finalize_ref(*ref_drizzle(data, pm, w, out_shape, pixfrac, iscale=1.5))
    np.testing.assert_allclose(sci, rs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(wht, rw, rtol=1e-5, atol=1e-6)


def test_mirrored_pixmap_orientation(rng):
    """A flipped (negative-determinant) mapping gives the same areas."""
    ny, nx = 8, 9
    data = rng.normal(size=(ny, nx))
    pm = affine_pixmap(ny, nx, 0.2, shift=(3.0, 2.0))
    pm[..., 0] = 20 - pm[..., 0]
    sci, wht = drizzle_once(data, pm, (20, 22))
    rs, rw = finalize_ref(*ref_drizzle(data, pm, np.ones((ny, nx)), (20, 22)))
    np.testing.assert_allclose(sci, rs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(wht, rw, rtol=1e-5, atol=1e-6)


def test_flux_conservation_with_bigger_output_pixels(rng):
    """Output pixels 2x larger: Σ sci·wht = Σ data·w and Σ wht = Σ w.

    With surface-brightness data (iscale=1) the weighted mean of a constant
    is the constant; a flux density needs iscale = 4 (output pixel area).
    """
    ny, nx = 16, 20
    data = rng.uniform(1, 2, size=(ny, nx))
    w = rng.uniform(0.5, 1.5, size=(ny, nx)).astype(np.float32)
    pm = affine_pixmap(ny, nx, scale=0.5, shift=(1.0, 1.0))
    sci, wht = drizzle_once(data, pm, (11, 13), w)
    hit = wht > 0
    np.testing.assert_allclose(np.sum(sci[hit] * wht[hit], dtype=np.float64),
                               np.sum(data * w), rtol=1e-5)
    np.testing.assert_allclose(np.sum(wht, dtype=np.float64), np.sum(w), rtol=1e-5)
    const, _ = drizzle_once(np.full((ny, nx), 3.0), pm, (11, 13), iscale=4.0)
    np.testing.assert_allclose(const[hit], 12.0, rtol=1e-6)


def test_point_kernel_vs_reference(rng):
    ny, nx = 12, 14
    data = rng.normal(size=(ny, nx)).astype(np.float32)
    w = rng.uniform(0.5, 2.0, size=(ny, nx)).astype(np.float32)
    pm = affine_pixmap(ny, nx, 0.7, 0.8, shift=(8.0, 1.0))
    pm[0, 0] = (2.5, 3.5)  # exact halves round away from zero
    pm[0, 1] = (-0.5, 2.0)  # rounds to -1: off the output
    sci, wht = drizzle_once(data, pm, (20, 20), w, DrizzleParams(kernel="point"))
    rs, rw = finalize_ref(*ref_drizzle(data, pm, w, (20, 20), kernel="point"))
    np.testing.assert_allclose(sci, rs, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(wht, rw, rtol=1e-6)


@pytest.mark.parametrize("kernel", ["square", "point"])
def test_nan_pixmap_and_zero_weight_skipped(rng, kernel):
    ny, nx = 10, 12
    data = rng.normal(size=(ny, nx)).astype(np.float32)
    w = np.ones((ny, nx), np.float32)
    w[2, 3] = 0.0
    w[7, 7] = np.nan
    data[4, 9] = np.nan
    pm = affine_pixmap(ny, nx, 0.1, shift=(1.0, 1.0))
    pm[5, 5] = np.nan
    sci, wht = drizzle_once(data, pm, (14, 16), w, DrizzleParams(kernel=kernel))
    rs, rw = finalize_ref(*ref_drizzle(data, pm, np.nan_to_num(w), (14, 16), kernel=kernel))
    np.testing.assert_allclose(sci, rs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(wht, rw, rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(sci[wht > 0]))


def test_input_range_limits(rng):
    ny, nx = 10, 12
    data = rng.normal(size=(ny, nx))
    pm = affine_pixmap(ny, nx, 0.2, shift=(2.0, 1.0))
    sci, wht = drizzle_once(data, pm, (16, 18), bounds=(2, 8, 3, 6))
    w = np.zeros((ny, nx))
    w[3:7, 2:9] = 1
    rs, rw = finalize_ref(*ref_drizzle(data, pm, w, (16, 18)))
    np.testing.assert_allclose(sci, rs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(wht, rw, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dtypes_and_byte_order(rng, dtype):
    ny, nx = 9, 10
    data = rng.normal(size=(ny, nx)).astype(np.float32)
    w = rng.uniform(0.5, 1, size=(ny, nx)).astype(np.float32)
    pm = affine_pixmap(ny, nx, 0.3, shift=(4.0, 1.0))
    ref = drizzle_once(data, pm, (16, 16), w)
    got = drizzle_once(data.astype(dtype), pm.astype(dtype), (16, 16), w.astype(dtype))
    if dtype.endswith("f4"):  # the pixmap loses precision in float32
        ref = drizzle_once(data, pm.astype(np.float32), (16, 16), w)
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_array_equal(a, b)


def test_read_only_and_non_contiguous_inputs(rng):
    ny, nx = 9, 10
    data = rng.normal(size=(ny, 2 * nx)).astype(np.float32)[:, ::2]
    pm = affine_pixmap(ny, nx, 0.3, shift=(4.0, 1.0))
    w = np.ones((ny, nx), np.float32)
    for a in (data, pm, w):
        a.flags.writeable = False
    got = drizzle_once(data, pm, (16, 16), w)
    ref = drizzle_once(np.ascontiguousarray(data), pm.copy(), (16, 16), w.copy())
    np.testing.assert_array_equal(got[0], ref[0])


def _multi_add(workers, rng_seed=7, kernel="square"):
    rng = np.random.default_rng(rng_seed)
    driz = Drizzle((40, 60), DrizzleParams(kernel=kernel, pixfrac=0.8), workers=workers)
    for k in range(4):
        ny, nx = 30, 45
        pm = affine_pixmap(ny, nx, 0.05 * k, 1.0 + 0.1 * k, shift=(3 + k, 2 + 0.3 * k))
        driz.add(rng.normal(size=(ny, nx)).astype(np.float32), pm,
                 rng.uniform(0, 1, size=(ny, nx)).astype(np.float32), input_id=k * 20)
    return (*driz.finalize(), driz.out_con.copy())


@pytest.mark.parametrize("kernel", ["square", "point"])
def test_workers_do_not_change_results(kernel):
    base = _multi_add(1, kernel=kernel)
    for workers in (2, 3, 0):
        for a, b in zip(_multi_add(workers, kernel=kernel), base, strict=True):
            np.testing.assert_array_equal(a, b)


def test_concurrent_threads():
    base = _multi_add(2)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: _multi_add(2), range(6)))
    for res in results:
        for a, b in zip(res, base, strict=True):
            np.testing.assert_array_equal(a, b)


def test_context_bits():
    ny, nx = 6, 7
    pm = affine_pixmap(ny, nx)
    driz = Drizzle((ny, nx), DrizzleParams(kernel="point"))
    w = np.ones((ny, nx), np.float32)
    w0 = w.copy()
    w0[0, 0] = 0
    driz.add(np.ones((ny, nx)), pm, w0, input_id=0)
    driz.add(np.ones((ny, nx)), pm, w, input_id=31)
    driz.add(np.ones((ny, nx)), pm, w, input_id=33)
    con = driz.out_con
    assert con.shape == (2, ny, nx) and con.dtype == np.int32
    assert con[0, 0, 0] == np.int32(-(2**31))  # bit 31 only
    assert con[0, 1, 1] == np.int32(-(2**31) + 1)
    assert np.all(con[1] == 2)
    assert driz.n_inputs == 3


def test_finalize_fill_and_accumulator_reuse(rng):
    data = rng.normal(size=(5, 5))
    pm = affine_pixmap(5, 5, shift=(10.0, 10.0))  # entirely off the output
    driz = Drizzle((4, 4), DrizzleParams(fillval=-7.0))
    driz.add(data, pm)
    sci, wht = driz.finalize()
    assert np.all(sci == -7) and np.all(wht == 0)
    driz.add(data, affine_pixmap(5, 5))
    sci, wht = driz.finalize()
    np.testing.assert_allclose(sci, data[:4, :4].astype(np.float32))


def test_two_inputs_weighted_mean(rng):
    pm = affine_pixmap(6, 6)
    driz = Drizzle((6, 6))
    driz.add(np.full((6, 6), 1.0), pm, np.full((6, 6), 1.0))
    driz.add(np.full((6, 6), 4.0), pm, np.full((6, 6), 3.0))
    sci, wht = driz.finalize()
    np.testing.assert_allclose(sci, 3.25)
    np.testing.assert_allclose(wht, 4.0)


def test_drizzle_variance_and_combiner(rng):
    ny, nx = 8, 9
    pm = affine_pixmap(ny, nx, 0.2, shift=(2.0, 1.0))
    var = rng.uniform(1, 2, size=(ny, nx))
    comb = VarianceCombiner((14, 14))
    v = comb.resample(var, pm, iscale=2.0)
    ref, _ = finalize_ref(*ref_drizzle(np.sqrt(var), pm, np.ones((ny, nx)), (14, 14), iscale=2.0))
    np.testing.assert_allclose(v, ref**2, rtol=2e-5)
    comb.add(v, 1.0 / v)
    comb.add(v, 1.0 / v)
    np.testing.assert_allclose(comb.finalize(scale=1.0), v / 2, rtol=1e-6)
    assert np.all(np.isnan(comb.finalize()[np.isnan(v)]))


def test_variance_resample_ignores_fillval(rng):
    pm = affine_pixmap(5, 5, shift=(1.0, 1.0))
    var = rng.uniform(1, 2, size=(5, 5))
    params = DrizzleParams(pixfrac=0.7, fillval=0.0)
    v = VarianceCombiner((8, 8), params).resample(var, pm)
    assert np.isnan(v[0, 0]) and np.isnan(v[7, 7])
    ref, _ = drizzle_once(np.sqrt(var.astype(np.float32)), pm, (8, 8), params=DrizzleParams(pixfrac=0.7))
    np.testing.assert_array_equal(v, ref * ref)


def test_validation_errors():
    pm = affine_pixmap(4, 4)
    with pytest.raises(ValueError, match="pixmap"):
        drizzle_once(np.ones((4, 4)), pm[:, :3], (4, 4))
    with pytest.raises(ValueError, match="weight"):
        drizzle_once(np.ones((4, 4)), pm, (4, 4), np.ones((3, 4)))
    with pytest.raises(ValueError, match="kernel"):
        DrizzleParams(kernel="lanczos3")
    with pytest.raises(ValueError, match="pixfrac"):
        DrizzleParams(pixfrac=0)
    with pytest.raises(ValueError, match="data"):
        drizzle_once(np.ones(4), pm, (4, 4))
    with pytest.raises(ValueError, match="xmin"):
        drizzle_once(np.ones((4, 4)), pm, (4, 4), bounds=(3, 1, None, None))
    with pytest.raises(ValueError, match="workers"):
        Drizzle((4, 4), workers=-1)
    with pytest.raises(TypeError, match="params"):
        Drizzle((4, 4), {"kernel": "point"})
    with pytest.raises(ValueError, match="bounds"):
        drizzle_once(np.ones((4, 4)), pm, (4, 4), bounds=(0, 3))
    with pytest.raises(TypeError, match="data"):
        drizzle_once(np.ones((4, 4), dtype=complex), pm, (4, 4))


def _planes_with_own_nans(rng, ny, nx, n):
    """``n`` planes, each with NaNs (and, in plane 1, infinities) where the others have values."""
    planes = rng.normal(size=(n, ny, nx)).astype(np.float32)
    for k in range(n):
        planes[k][rng.uniform(size=(ny, nx)) < 0.1] = np.nan
    planes[1, 2, :5] = np.inf
    planes[:, 4, 4] = np.nan  # a pixel no plane has: skipped, its neighbours' corners still use it
    return planes


@pytest.mark.parametrize("kernel", ["square", "point"])
@pytest.mark.parametrize("workers", [1, 2])
def test_planes_drizzled_together_equal_each_alone(kernel, workers):
    rng = np.random.default_rng(11)
    params = DrizzleParams(kernel=kernel, pixfrac=0.7)
    together = Drizzle((40, 60), params, workers=workers, planes=3)
    alone = [Drizzle((40, 60), params, workers=workers, context=k == 0) for k in range(3)]
    for k in range(3):
        ny, nx = 30, 45
        pm = affine_pixmap(ny, nx, 0.05 * k, 1.0 + 0.1 * k, shift=(3 + k, 2 + 0.3 * k))
        planes = _planes_with_own_nans(rng, ny, nx, 3)
        w = rng.uniform(0, 1, size=(ny, nx)).astype(np.float32)
        together.add(planes, pm, w, iscale=1.3, input_id=k)
        for p in range(3):
            alone[p].add(planes[p], pm, w, iscale=1.3, input_id=k)
    for p in range(3):
        for a, b in zip(together.finalize(p), alone[p].finalize(), strict=True):
            np.testing.assert_array_equal(a, b)  # bit for bit
    np.testing.assert_array_equal(together.out_con, alone[0].out_con)  # plane 0's context
    assert together.out_sci.shape == (3, 40, 60)


def test_cleared_planes_start_afresh(rng):
    pm = affine_pixmap(6, 6)
    planes = rng.normal(size=(2, 6, 6)).astype(np.float32)
    driz = Drizzle((6, 6), planes=2)
    driz.add(planes, pm)
    driz.clear(slice(1, None))
    driz.add(planes, pm)
    fresh = Drizzle((6, 6))
    fresh.add(planes[1], pm)
    np.testing.assert_array_equal(driz.finalize(1)[0], fresh.finalize()[0])
    assert np.all(driz.finalize(0)[1] == 2 * fresh.finalize()[1])  # plane 0 kept both


def test_planes_shape_is_checked(rng):
    with pytest.raises(ValueError, match=r"data must be \(3, ny, nx\)"):
        Drizzle((4, 4), planes=3).add(rng.normal(size=(2, 5, 5)), affine_pixmap(5, 5))
    with pytest.raises(ValueError, match="planes must be >= 1"):
        Drizzle((4, 4), planes=0)


def test_variance_of_resampled_errors_equals_resample(rng):
    pm = affine_pixmap(8, 8, 0.1, 1.2, shift=(0.3, 0.2))
    var = rng.uniform(0, 2, size=(8, 8)).astype(np.float32)
    var[3, 3] = -1.0
    params = DrizzleParams(pixfrac=0.9)
    driz = Drizzle((10, 10), params, planes=2)
    driz.add(np.stack([var, VarianceCombiner.errors(var)]), pm, iscale=0.7)
    expected = VarianceCombiner((10, 10), params).resample(var, pm, iscale=0.7)
    np.testing.assert_array_equal(VarianceCombiner.variance_of(driz, 1), expected)
