"""Tests for spec3c._core.outlier against a numpy/scipy reference."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from scipy import ndimage

from spec3c._core import OutlierThresholds
from spec3c._core.outlier import flag_direct, flag_resampled_crs

DTYPES = [">f4", "<f4", ">f8", "<f8"]
PARS = {"snr1": 5.0, "snr2": 4.0, "scale1": 1.2, "scale2": 0.7, "backg": 0.1}


def options(pars):
    """The reference parameters as flag_resampled_crs arguments: (thresholds,), {backg}."""
    th = OutlierThresholds(pars["snr1"], pars["snr2"], pars["scale1"], pars["scale2"])
    return (th,), {"backg": pars["backg"]}


ARGS, KWARGS = options(PARS)


def ref_deriv(b: np.ndarray) -> np.ndarray:
    """max |b - neighbour| over in-bounds edge neighbours, NaN-aware (edge pad)."""
    p = np.pad(b, 1, mode="edge")
    c = p[1:-1, 1:-1]
    diffs = [np.abs(c - p[:-2, 1:-1]), np.abs(c - p[2:, 1:-1]),
             np.abs(c - p[1:-1, :-2]), np.abs(c - p[1:-1, 2:])]
    d = np.zeros_like(b)
    for x in diffs:
        d = np.fmax(d, x)
    d[np.isnan(b)] = np.nan
    return d


def ref_flag(sci, blot, err, snr1, snr2, scale1, scale2, backg):
    sigma = np.nan_to_num(err)
    deriv = ref_deriv(blot)
    diff = np.abs(sci - blot - backg)
    with np.errstate(invalid="ignore"):
        m1 = diff > scale1 * deriv + snr1 * sigma
        m2 = diff > scale2 * deriv + snr2 * sigma
    m1d = ndimage.maximum_filter(m1, size=3, mode="nearest")
    assert np.array_equal(m1d, ndimage.binary_dilation(m1, np.ones((3, 3), bool)))
    return m1d & m2


def make_scene(rng, ny=40, nx=60, dtype=np.float32):
    yy, xx = np.mgrid[:ny, :nx]
    blot = (10 * np.exp(-0.5 * ((yy - ny / 2) / 2.0) ** 2) + 0.01 * xx).astype(dtype)
    err = np.full((ny, nx), 0.1, dtype)
    sci = (blot + rng.normal(0, 0.1, (ny, nx))).astype(dtype)
    spikes = [(3, 5), (20, 30), (0, 0), (ny - 1, nx - 1), (10, nx - 1), (31, 17)]
    for j, i in spikes:
        sci[j, i] += 50
    blot[7, 7] = np.nan
    err[12, 40] = np.nan
    sci[25, 25] = np.nan
    return sci, blot, err, spikes


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_reference_and_finds_spikes(dtype):
    rng = np.random.default_rng(5)
    sci, blot, err, spikes = make_scene(rng, dtype=dtype)
    got = flag_resampled_crs(sci, blot, err, *ARGS, **KWARGS)
    ref = ref_flag(sci, blot, err, **PARS)
    assert got.dtype == bool
    np.testing.assert_array_equal(got, ref)
    for j, i in spikes:
        assert got[j, i]
    assert not got[7, 7] and not got[25, 25]


def test_random_fields_match_reference():
    rng = np.random.default_rng(9)
    for _ in range(5):
        sci = rng.normal(size=(23, 31)).astype(np.float32)
        blot = rng.normal(size=(23, 31)).astype(np.float32)
        err = rng.uniform(0.01, 0.3, size=(23, 31)).astype(np.float32)
        blot[rng.random((23, 31)) < 0.05] = np.nan
        err[rng.random((23, 31)) < 0.05] = np.nan
        pars = {"snr1": 3.0, "snr2": 2.0, "scale1": 0.5, "scale2": 0.3, "backg": 0.0}
        args, kwargs = options(pars)
        np.testing.assert_array_equal(flag_resampled_crs(sci, blot, err, *args, **kwargs),
                                      ref_flag(sci, blot, err, **pars))


@pytest.mark.parametrize("dtype", DTYPES)
def test_dtypes_and_read_only(dtype):
    rng = np.random.default_rng(1)
    sci, blot, err, _ = make_scene(rng, dtype=np.float32)
    ref = flag_resampled_crs(sci, blot, err, *ARGS, **KWARGS)
    arrs = [a.astype(dtype) for a in (sci, blot, err)]
    for a in arrs:
        a.flags.writeable = False
    got = flag_resampled_crs(*arrs, *ARGS, **KWARGS)
    if dtype.endswith("f4"):
        np.testing.assert_array_equal(got, ref)
    else:
        np.testing.assert_array_equal(got, ref_flag(*(a.astype(np.float64) for a in arrs), **PARS))


def test_workers_and_threads():
    rng = np.random.default_rng(3)
    sci, blot, err, _ = make_scene(rng, 200, 300)
    base = flag_resampled_crs(sci, blot, err, *ARGS, **KWARGS, workers=1)
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda w: flag_resampled_crs(sci, blot, err, *ARGS, **KWARGS, workers=w),
                             [0, 1, 2, 3] * 2))
    for o in outs:
        np.testing.assert_array_equal(o, base)


def test_flag_direct():
    rng = np.random.default_rng(4)
    sci = rng.normal(size=(20, 20)).astype(np.float32)
    med = rng.normal(size=(20, 20)).astype(np.float32)
    err = rng.uniform(0.1, 1, size=(20, 20)).astype(np.float32)
    err[0, :5] = np.nan
    got = flag_direct(sci, med, err, 2.0)
    ref = np.abs(sci - med) > 2.0 * np.nan_to_num(err)
    np.testing.assert_array_equal(got, ref)
    assert np.all(got[0, :5] == (sci[0, :5] != med[0, :5]))


def test_validation():
    a = np.ones((4, 4))
    with pytest.raises(ValueError, match="blot_err"):
        flag_resampled_crs(a, a, np.ones((4, 5)), *ARGS, **KWARGS)
    with pytest.raises(ValueError, match="sci"):
        flag_direct(np.ones(4), a, a, 1.0)
    with pytest.raises(TypeError, match="thresholds"):
        flag_resampled_crs(a, a, a, (5.0, 4.0, 1.2, 0.7))
