"""The DAOFIND source finder of ifu_autocen (spec3c.algorithms.star_finder) on images with known
sources; its agreement with photutils' DAOStarFinder (through jwst) is in
tests/oracle/test_ifu_x1d_reference.py."""

from __future__ import annotations

import numpy as np
import pytest

from spec3c.algorithms.ifu_extract import clipped_stats
from spec3c.algorithms.star_finder import DaoKernel, brightest_star


def image(shape, sources, noise=0.2, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    out = rng.normal(0.0, noise, shape)
    for x0, y0, amp, sigma in sources:
        out += amp * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * sigma**2))
    return out.astype(np.float32)


def find(img):
    _, median, rms = clipped_stats(img)
    return brightest_star(img - median, 3 * rms)


def test_kernel_is_the_daofind_kernel():
    k = DaoKernel.make(3.0)
    assert k.data.shape == (5, 5) and k.mask.sum() == 13  # 1.5 sigma, at least 2 pixels
    assert k.data.sum() == pytest.approx(0.0, abs=1e-12)
    assert k.gaussian[2, 2] == 1.0 and k.sigma == pytest.approx(3.0 / 2.3548200450309493)


@pytest.mark.parametrize(("x0", "y0"), [(20.3, 17.8), (11.0, 25.45), (30.7, 9.2)])
def test_centroid_of_a_round_source(x0, y0):
    star = find(image((36, 44), [(x0, y0, 50.0, 1.3)]))
    assert star is not None
    assert abs(star.x - x0) < 0.1 and abs(star.y - y0) < 0.1
    assert 0.2 <= star.sharpness <= 1.0 and abs(star.roundness2) < 0.2


def test_brightest_of_several_and_none_in_noise():
    star = find(image((40, 40), [(10.2, 10.1, 20.0, 1.3), (28.6, 30.3, 60.0, 1.3), (30.0, 8.0, 35.0, 1.3)]))
    assert star is not None and abs(star.x - 28.6) < 0.1 and abs(star.y - 30.3) < 0.1
    assert find(image((30, 30), [])) is None
    assert brightest_star(np.zeros((20, 20), np.float32), 1.0) is None
