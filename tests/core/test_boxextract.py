"""Tests for spec3c._core.boxextract against a float64 numpy reference."""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from spec3c._core import BackgroundFit
from spec3c._core.boxextract import box_extract
from spec3c.algorithms.aperture import set_weights

DTYPES = [">f4", "<f4", ">f8", "<f8"]


def ref_extract(sci, vp, vr, vf, prof, bkg=None, fit=None, order=0):
    """Column-by-column numpy version of jwst extract1d (box)."""
    sci, vp, vr, vf, prof = (np.asarray(a, np.float64) for a in (sci, vp, vr, vf, prof))
    ny, nx = sci.shape
    out = {k: np.zeros(nx) for k in ("flux", "npixels", "var_poisson", "var_rnoise", "var_flat",
                                     "background", "bkg_var_poisson", "bkg_var_rnoise",
                                     "bkg_var_flat")}
    t = np.linspace(-1, 1, ny)
    vars_ = {"poisson": vp, "rnoise": vr, "flat": vf}
    for x in range(nx):
        s, p0 = sci[:, x], prof[:, x]
        B = np.zeros(ny)
        bv = {k: 0.0 for k in vars_}
        if fit is not None and bkg is not None:
            use = (bkg[:, x] != 0) & np.isfinite(s) & np.isfinite(vp[:, x] + vr[:, x] + vf[:, x])
            if fit == "median":
                vals = s[(bkg[:, x] != 0) & ~np.isnan(s)]
                B[:] = np.median(vals) if vals.size else np.nan
                n = use.sum()
                for k, v in vars_.items():
                    bv[k] = 1.2**2 * p0.sum() ** 2 * np.nansum(v[use, x] / n**2) if n else 0.0
            else:
                A = np.vander(t, order + 1, increasing=True)
                Am = A[use]
                M = Am.T @ Am
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    ok = np.linalg.cond(M) < 1e10
                C = np.linalg.inv(M) if ok else np.zeros_like(M)
                coef = C @ (Am.T @ s[use])
                B = A @ coef
                # background sum over the aperture = c . S_bkg
                c = np.zeros(ny)
                c[use] = (p0 @ A) @ C @ Am.T
                for k, v in vars_.items():
                    bv[k] = np.nansum(v[:, x] * c**2)
        v = s - B
        p = np.where(np.isfinite(v), p0, 0.0)
        out["npixels"][x] = p.sum()
        out["flux"][x] = np.sum(np.where(p != 0, v, 0) * p) if abs(p.sum()) > 1e-8 else np.nan
        with np.errstate(invalid="ignore"):
            bsum = np.sum(B * p)
        if fit is not None and bkg is not None:
            out["background"][x] = bsum if np.isfinite(bsum) else 0.0
        for k, var in vars_.items():
            with np.errstate(invalid="ignore"):
                out["var_" + k][x] = np.nansum(var[:, x] * p**2) + bv[k]
            out["bkg_var_" + k][x] = bv[k]
    return out


def scene(rng, ny=21, nx=40):
    yy, xx = np.mgrid[:ny, :nx]
    sci = 5 * np.exp(-0.5 * ((yy - 10.3) / 1.5) ** 2) + 0.2 + 0.01 * yy + rng.normal(0, 0.05, (ny, nx))
    vp = rng.uniform(0.01, 0.02, (ny, nx))
    vr = rng.uniform(0.001, 0.002, (ny, nx))
    vf = rng.uniform(0.0001, 0.0002, (ny, nx))
    sci[10, 5] = np.nan
    sci[2, 7] = np.nan
    vr[18, 9] = np.nan
    sci[:, 30] = np.nan  # whole column bad
    lower = 8.3 + 0.02 * np.arange(nx)
    prof = box_profile((ny, nx), lower, lower + 4.4)
    bkg = np.zeros((ny, nx))
    bkg[0:5] = 1
    bkg[16:21] = 1
    bkg[:, 33] = 0  # no background pixels in one column
    return sci, vp, vr, vf, prof, bkg


def check(got, ref):
    for name, arr in ref.items():
        np.testing.assert_allclose(getattr(got, name), arr, rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.fixture
def rng():
    return np.random.default_rng(77)


def test_no_background(rng):
    sci, vp, vr, vf, prof, bkg = scene(rng)
    got = box_extract(sci, (vp, vr, vf), prof)
    check(got, ref_extract(sci, vp, vr, vf, prof))
    assert np.isnan(got.flux[30]) and got.npixels[30] == 0
    assert np.all(got.background == 0)
    for a, b in zip(box_extract(sci, (vp, vr, vf), prof, bkg_profile=bkg), got, strict=True):
        np.testing.assert_array_equal(a, b)  # a background profile without bkg_fit is unused


@pytest.mark.parametrize("order", [0, 1, 2])
def test_poly_background(rng, order):
    sci, vp, vr, vf, prof, bkg = scene(rng)
    got = box_extract(sci, (vp, vr, vf), prof, bkg_profile=bkg, bkg_fit=BackgroundFit("poly", order))
    check(got, ref_extract(sci, vp, vr, vf, prof, bkg, "poly", order))
    assert got.background[33] == 0 and got.bkg_var_poisson[33] == 0  # singular fit
    assert np.all(got.bkg_var_rnoise[np.isfinite(got.flux)] >= 0)


def test_poly_background_singular_when_too_few_points(rng):
    sci, vp, vr, vf, prof, _ = scene(rng)
    bkg = np.zeros_like(sci)
    bkg[0] = 1  # one row: order 1 is singular everywhere
    got = box_extract(sci, (vp, vr, vf), prof, bkg_profile=bkg, bkg_fit=BackgroundFit("poly", 1))
    assert np.all(got.background == 0)
    check(got, ref_extract(sci, vp, vr, vf, prof, bkg, "poly", 1))


def test_median_background(rng):
    sci, vp, vr, vf, prof, bkg = scene(rng)
    got = box_extract(sci, (vp, vr, vf), prof, bkg_profile=bkg, bkg_fit=BackgroundFit("median"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = ref_extract(sci, vp, vr, vf, prof, bkg, "median")
    check(got, ref)
    assert np.isnan(got.flux[33])  # median of nothing -> NaN background -> no valid pixel


def test_background_recovers_linear_sky(rng):
    ny, nx = 30, 5
    yy = np.mgrid[:ny, :nx][0].astype(float)
    sky = 2.0 + 0.1 * yy
    src = np.zeros((ny, nx))
    src[14:17] = 10.0
    prof = box_profile((ny, nx), 14.0, 16.0)
    bkg = np.zeros((ny, nx))
    bkg[:8] = 1
    bkg[22:] = 1
    ones = np.ones((ny, nx))
    got = box_extract(src + sky, (ones, ones, ones), prof, bkg_profile=bkg, bkg_fit=BackgroundFit(bkg_order=1))
    np.testing.assert_allclose(got.flux, 30.0, rtol=1e-12)
    np.testing.assert_allclose(got.background, sky[14:17].sum(axis=0), rtol=1e-12)


def box_profile(shape, lower, upper, allow_partial=True):
    """Profile between inclusive per-column limits (spec3c.algorithms.aperture.set_weights)."""
    prof = np.zeros(shape)
    idx = np.arange(shape[0], dtype=float)[:, None]
    lo = np.broadcast_to(np.asarray(lower, dtype=float), (shape[1],))[None, :]
    hi = np.broadcast_to(np.asarray(upper, dtype=float), (shape[1],))[None, :]
    set_weights(prof, np.broadcast_to(idx, shape), np.broadcast_to(lo, shape), np.broadcast_to(hi, shape),
                allow_partial)
    return prof


def test_box_profile_fractional_edges():
    prof = box_profile((10, 3), np.array([2.0, 2.3, 1.5]), np.array([5.0, 5.6, 1.7]))
    np.testing.assert_allclose(prof[:, 0], [0, 0, 1, 1, 1, 1, 0, 0, 0, 0])
    np.testing.assert_allclose(prof[:, 1], [0, 0, 0.7, 1, 1, 1, 0.6, 0, 0, 0])
    # lower = 1.5 -> pixel 1 gets 0.5; upper 1.7 -> pixel 2 gets 0.7 (jwst order)
    np.testing.assert_allclose(prof[:, 2], [0, 0.5, 0.7, 0, 0, 0, 0, 0, 0, 0])
    full = box_profile((4, 2), 0.0, 3.0, allow_partial=False)
    assert np.all(full == 1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dtypes_and_read_only(rng, dtype):
    sci, vp, vr, vf, prof, bkg = scene(rng)
    arrs = [a.astype(dtype) for a in (sci, vp, vr, vf, prof)]
    for a in arrs:
        a.flags.writeable = False
    got = box_extract(arrs[0], arrs[1:4], arrs[4], bkg_profile=bkg, bkg_fit=BackgroundFit(bkg_order=1))
    ref = ref_extract(*arrs, bkg, "poly", 1)
    check(got, ref)


def test_workers_and_threads(rng):
    sci, vp, vr, vf, prof, bkg = scene(rng, 25, 700)
    fit = BackgroundFit(bkg_order=2)
    base = box_extract(sci, (vp, vr, vf), prof, bkg_profile=bkg, bkg_fit=fit, workers=1)
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(
            lambda w: box_extract(sci, (vp, vr, vf), prof, bkg_profile=bkg, bkg_fit=fit, workers=w),
            [0, 1, 2, 3] * 2))
    for o in outs:
        for a, b in zip(o, base, strict=True):
            np.testing.assert_array_equal(a, b)


def test_validation(rng):
    sci, vp, vr, vf, prof, bkg = scene(rng)
    with pytest.raises(ValueError, match="var_flat"):
        box_extract(sci, (vp, vr, vf[:-1]), prof)
    with pytest.raises(ValueError, match="bkg_fit"):
        box_extract(sci, (vp, vr, vf), prof, bkg_profile=bkg, bkg_fit=BackgroundFit("mean"))
    with pytest.raises(ValueError, match="bkg_order"):
        box_extract(sci, (vp, vr, vf), prof, bkg_profile=bkg, bkg_fit=BackgroundFit(bkg_order=-1))
    with pytest.raises(ValueError, match="bkg_profile"):
        box_extract(sci, (vp, vr, vf), prof, bkg_profile=bkg[:, :3], bkg_fit=BackgroundFit())
    with pytest.raises(ValueError, match="variances"):
        box_extract(sci, (vp, vr), prof)
    with pytest.raises(TypeError, match="bkg_fit"):
        box_extract(sci, (vp, vr, vf), prof, bkg_profile=bkg, bkg_fit="poly")
