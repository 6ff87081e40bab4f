"""spec3c._core.aperture: circle and annulus weights against numpy references.

``exact``: the area of the disk in each pixel against a dense numerical
integration; ``center``/``subpixel``: against a numpy count of sub-pixel
centres strictly inside the circle; every method: the bounding box and the
clipping at the image edges.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spec3c._core.aperture import circle_weights, disk_rectangle_area


def numeric_area(x0: float, y0: float, x1: float, y1: float, r: float, n: int = 200000) -> float:
    """Midpoint-rule integral of the disk's chord inside [y0, y1] over x = r sin(t) in [x0, x1]."""
    t0, t1 = (math.asin(min(max(v, -r), r) / r) for v in (x0, x1))
    if t1 <= t0:
        return 0.0
    t = t0 + (np.arange(n) + 0.5) * (t1 - t0) / n
    h = r * np.cos(t)
    chord = np.clip(np.minimum(y1, h) - np.maximum(y0, -h), 0.0, None)
    return float((chord * r * np.cos(t)).sum() * (t1 - t0) / n)


def subpixel_reference(shape, x, y, r, sub):
    """Fraction of the sub x sub centres of every pixel strictly inside the circle (numpy)."""
    ny, nx = shape
    offsets = (np.arange(sub) + 0.5) / sub - 0.5
    yy = np.arange(ny)[:, None, None, None] + offsets[None, None, :, None] - y
    xx = np.arange(nx)[None, :, None, None] + offsets[None, None, None, :] - x
    return ((xx**2 + yy**2) < r * r).mean(axis=(2, 3))


def image(w, shape):
    out = np.zeros(shape)
    out[w.rows, w.cols] = w.weights
    return out


@pytest.mark.parametrize(("rect", "r"), [
    ((0.0, 0.0, 1.0, 1.0), 0.7), ((-0.5, -0.5, 0.5, 0.5), 0.6), ((0.3, -2.0, 1.3, -1.0), 2.1),
    ((-3.0, -3.0, 3.0, 1.0), 2.0), ((2.5, 0.0, 3.5, 1.0), 2.0), ((-1.2, 0.4, -0.2, 1.4), 1.5),
])
def test_exact_area_of_one_rectangle(rect, r):
    assert disk_rectangle_area(*rect, r) == pytest.approx(numeric_area(*rect, r), rel=1e-7, abs=1e-12)


def test_whole_disk_and_quadrants():
    assert disk_rectangle_area(-5, -5, 5, 5, 2.0) == pytest.approx(math.pi * 4, rel=1e-14)
    assert disk_rectangle_area(0, 0, 5, 5, 2.0) == pytest.approx(math.pi, rel=1e-14)
    assert disk_rectangle_area(2.0, -1, 3, 1, 2.0) == 0.0


@settings(max_examples=60, deadline=None)
@given(x=st.floats(-3, 25), y=st.floats(-3, 20), r=st.floats(0.3, 9.0))
def test_exact_weights_sum_to_the_disk_inside_the_image(x, y, r):
    shape = (17, 23)
    w = circle_weights(shape, x, y, r)
    if w is None:
        assert x + r < -0.5 or y + r < -0.5 or x - r > shape[1] - 0.5 or y - r > shape[0] - 0.5
        return
    expected = disk_rectangle_area(-0.5 - x, -0.5 - y, shape[1] - 0.5 - x, shape[0] - 0.5 - y, r)
    assert w.weights.sum() == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert w.weights.min() >= 0.0 and w.weights.max() <= 1.0 + 1e-12
    assert w.area == pytest.approx(math.pi * r * r)


# (centres off the sub-pixel lattice: a sub-pixel centre exactly on the circle is decided by rounding)
@pytest.mark.parametrize(("method", "sub"), [("center", 1), ("subpixel", 5), ("subpixel", 10)])
@pytest.mark.parametrize(("x", "y", "r"), [(10.3, 7.8, 4.2), (0.2, 1.1, 3.0), (15.0, 9.0, 2.5), (21.73, 15.21, 6.07)])
def test_sampled_methods_against_numpy(method, sub, x, y, r):
    shape = (17, 23)
    w = circle_weights(shape, x, y, r, method=method, subpixels=sub)
    np.testing.assert_allclose(image(w, shape), subpixel_reference(shape, x, y, r, sub), atol=1e-12)


@pytest.mark.parametrize("method", ["exact", "center", "subpixel"])
def test_annulus_is_the_outer_circle_minus_the_inner(method):
    shape = (30, 30)
    outer = circle_weights(shape, 14.2, 15.6, 9.0, method=method)
    inner = circle_weights(shape, 14.2, 15.6, 4.0, method=method)
    ring = circle_weights(shape, 14.2, 15.6, 9.0, inner=4.0, method=method)
    np.testing.assert_allclose(image(ring, shape), image(outer, shape) - image(inner, shape), atol=1e-14)
    assert ring.area == pytest.approx(math.pi * (81 - 16))


def test_bounding_box_and_clipping():
    w = circle_weights((10, 12), 1.2, 8.7, 2.0)
    assert (w.rows, w.cols) == (slice(7, 10), slice(0, 4))  # box floor(x-r+.5)..ceil(x+r+.5), clipped
    assert circle_weights((10, 12), -5.0, 4.0, 2.0) is None


def test_refusals_name_the_argument():
    with pytest.raises(ValueError, match="method"):
        circle_weights((5, 5), 2, 2, 1, method="fancy")
    with pytest.raises(ValueError, match="radius"):
        circle_weights((5, 5), 2, 2, 0.0)
    with pytest.raises(ValueError, match="inner"):
        circle_weights((5, 5), 2, 2, 1.0, inner=1.5)
    with pytest.raises(ValueError, match="subpixels"):
        circle_weights((5, 5), 2, 2, 1.0, method="subpixel", subpixels=0)


def test_threads_give_the_same_weights():
    args = [((40, 40), 19.3 + k / 7, 20.1, 3 + k / 3) for k in range(16)]
    serial = [image(circle_weights(*a), a[0]) for a in args]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda a: image(circle_weights(*a), a[0]), args))
    for a, b in zip(serial, threaded, strict=True):
        np.testing.assert_array_equal(a, b)
