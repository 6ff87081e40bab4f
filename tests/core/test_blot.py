"""Tests for spec3c._core.blot against scipy.ndimage.map_coordinates."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from scipy import ndimage

from spec3c._core.blot import blot_image

DTYPES = [">f4", "<f4", ">f8", "<f8"]


def identity(ny, nx):
    yy, xx = np.mgrid[:ny, :nx].astype(np.float64)
    return np.dstack([xx, yy])


@pytest.fixture
def rng():
    return np.random.default_rng(2024)


def test_interior_matches_map_coordinates(rng):
    med = rng.normal(size=(20, 30)).astype(np.float32)
    x = rng.uniform(0, 28.999, size=(15, 17))
    y = rng.uniform(0, 18.999, size=(15, 17))
    got = blot_image(med, np.dstack([x, y]))
    ref = ndimage.map_coordinates(med.astype(np.float64), [y, x], order=1)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)


def test_identity_returns_input(rng):
    med = rng.normal(size=(11, 13)).astype(np.float32)
    np.testing.assert_array_equal(blot_image(med, identity(11, 13)), med)


def test_outside_and_nan_positions_get_fill(rng):
    med = rng.normal(size=(5, 6)).astype(np.float32)
    pm = np.array([[[-0.01, 1.0], [1.0, -0.2], [6.0, 1.0], [1.0, 5.0],
                    [np.nan, 1.0], [1.0, np.nan], [-1.0, -1.0]]])
    got = blot_image(med, pm, fill=-99.0)
    np.testing.assert_array_equal(got, np.full((1, 7), -99.0, np.float32))
    assert np.all(np.isnan(blot_image(med, pm)))


def test_edge_half_pixel_takes_edge_value(rng):
    """drizzle convention: x in [nx-1, nx) interpolates along y only."""
    med = rng.normal(size=(5, 6)).astype(np.float32)
    pm = np.array([[[5.4, 1.5], [2.5, 4.7], [5.9, 4.9]]])
    got = blot_image(med, pm)
    expect = [0.5 * (med[1, 5] + med[2, 5]), 0.5 * (med[4, 2] + med[4, 3]), med[4, 5]]
    np.testing.assert_allclose(got[0], expect, rtol=1e-6)


def test_nan_neighbour_propagates(rng):
    med = rng.normal(size=(6, 6)).astype(np.float32)
    med[3, 3] = np.nan
    pm = np.array([[[2.5, 2.5], [3.0, 2.0], [1.2, 1.2], [2.0, 3.0]]])
    got = blot_image(med, pm)
    assert np.isnan(got[0, 0]) and np.isnan(got[0, 1])  # [3,3] is a neighbour (weight 0 in 2nd)
    assert np.isfinite(got[0, 2])
    assert np.isnan(got[0, 3])


@pytest.mark.parametrize("dtype", DTYPES)
def test_dtypes_and_read_only(rng, dtype):
    med = rng.normal(size=(8, 9)).astype(np.float32)
    pm = np.dstack([rng.uniform(-1, 9, (7, 5)), rng.uniform(-1, 8, (7, 5))])
    ref = blot_image(med, pm)
    m2 = med.astype(dtype)
    p2 = pm.astype(dtype) if dtype.endswith("f8") else pm
    m2.flags.writeable = False
    got = blot_image(m2, p2)
    np.testing.assert_array_equal(got, ref)


def test_workers_and_threads(rng):
    med = rng.normal(size=(50, 70)).astype(np.float32)
    pm = np.dstack([rng.uniform(-1, 71, (60, 80)), rng.uniform(-1, 51, (60, 80))])
    base = blot_image(med, pm, workers=1)
    np.testing.assert_array_equal(blot_image(med, pm, workers=2), base)
    with ThreadPoolExecutor(4) as pool:
        for res in pool.map(lambda w: blot_image(med, pm, workers=w), [0, 1, 2, 3] * 2):
            np.testing.assert_array_equal(res, base)


def test_validation():
    with pytest.raises(ValueError, match="pixmap"):
        blot_image(np.ones((3, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="median"):
        blot_image(np.ones(3), np.ones((3, 3, 2)))
    with pytest.raises(ValueError, match="workers"):
        blot_image(np.ones((3, 3)), np.ones((3, 3, 2)), workers=-2)
