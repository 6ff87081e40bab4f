"""Tests for spec3c._core.nan_median_filter against the reference's zero-padded nanmedian windows."""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from spec3c._core import nan_median_filter

DTYPES = [">f4", "<f4", ">f8", "<f8"]


def reference(image: np.ndarray, kernel: tuple[int, int]) -> np.ndarray:
    """Pad with zeros, nanmedian over every window (float64), as stcal's ``medfilt``."""
    padded = np.pad(image.astype(np.float64), [[kernel[0] // 2], [kernel[1] // 2]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(sliding_window_view(padded, kernel), axis=(-2, -1))


def random_image(dtype: str, shape=(41, 37), seed=0, nan_frac=0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.normal(size=shape)
    image[rng.random(shape) < nan_frac] = np.nan
    image[10:20, 5:15] = np.nan  # windows with nothing but NaN
    return image.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel", [(7, 7), (3, 5), (5, 1), (1, 1)])
def test_matches_the_zero_padded_nanmedian(dtype, kernel):
    image = random_image(dtype)
    out = nan_median_filter(image, kernel)
    assert out.dtype == np.float64 and out.shape == image.shape
    np.testing.assert_array_equal(out, reference(image, kernel))


def test_even_counts_take_the_mean_of_the_middle_values():
    image = np.full((1, 3), np.nan)
    image[0, 1] = 4.0
    # window of pixel (0, 0) with kernel (1, 3): padding 0, NaN, 4 -> median of {0, 4} = 2
    assert nan_median_filter(image, (1, 3))[0, 0] == 2.0
    assert np.isnan(nan_median_filter(np.full((9, 9), np.nan), (3, 3))[4, 4])


def test_ties_and_constant_windows():
    image = np.ones((12, 12))
    image[::2, ::3] = 5.0
    np.testing.assert_array_equal(nan_median_filter(image, (5, 5)), reference(image, (5, 5)))


def test_result_does_not_depend_on_workers_or_threads():
    image = random_image("<f8", shape=(200, 150), seed=3)
    one = nan_median_filter(image, (7, 7), workers=1)
    np.testing.assert_array_equal(nan_median_filter(image, (7, 7), workers=2), one)
    with ThreadPoolExecutor(4) as pool:
        for out in pool.map(lambda _: nan_median_filter(image, (7, 7)), range(4)):
            np.testing.assert_array_equal(out, one)


def test_read_only_input_is_accepted():
    image = random_image("<f4")
    image.flags.writeable = False
    np.testing.assert_array_equal(nan_median_filter(image, (3, 3)), reference(image, (3, 3)))


@pytest.mark.parametrize(("image", "kernel", "error"), [
    (np.zeros(5), (3, 3), ValueError),
    (np.zeros((5, 5)), (2, 3), ValueError),
    (np.zeros((5, 5)), (3, 0), ValueError),
    (np.zeros((5, 5), dtype=complex), (3, 3), TypeError),
])
def test_bad_arguments_are_refused(image, kernel, error):
    with pytest.raises(error):
        nan_median_filter(image, kernel)
