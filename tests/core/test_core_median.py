"""Tests for spec3c._core.stack_median against a float64 numpy reference."""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from spec3c._core import stack_median

DTYPES = [">f4", "<f4", ">f8", "<f8"]


def nanmedian64(stack: np.ndarray) -> np.ndarray:
    """numpy.nanmedian over axis 0 in float64, silencing all-NaN warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(stack.astype(np.float64), axis=0)


def ref_pixel(values: np.ndarray, weights: np.ndarray) -> float:
    """Weighted median of one pixel by sorted cumulative weight (float64)."""
    keep = np.isfinite(values) & np.isfinite(weights) & (weights > 0)
    v, w = values[keep], weights[keep]
    if v.size == 0:
        return np.nan
    order = np.argsort(v, kind="stable")
    v, cw = v[order], np.cumsum(w[order])
    half = 0.5 * cw[-1]
    k = int(np.searchsorted(cw, half, side="left"))
    if cw[k] == half and k + 1 < v.size:
        return 0.5 * (v[k] + v[k + 1])
    return float(v[k])


def ref_weighted(stack: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Reference weighted median; weights rounded to the stack dtype first, like the kernel."""
    n = stack.shape[0]
    s = stack.astype(np.float64).reshape(n, -1)
    w = weights.astype(stack.dtype).astype(np.float64).reshape(n, -1)
    out = np.array([ref_pixel(s[:, p], w[:, p]) for p in range(s.shape[1])])
    return out.reshape(stack.shape[1:])


def native(dtype: str) -> np.dtype:
    return np.dtype(dtype).newbyteorder("=")


def random_stack(dtype: str, shape=(7, 9, 11), seed=0, nan_frac=0.2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    stack = rng.normal(size=shape)
    stack[rng.random(shape) < nan_frac] = np.nan
    stack[(slice(None),) + (0,) * (stack.ndim - 1)] = np.nan  # an all-NaN pixel
    return stack.astype(dtype)


def assert_same(result: np.ndarray, reference: np.ndarray, dtype: str) -> None:
    assert result.dtype == native(dtype)
    np.testing.assert_array_equal(result, reference.astype(native(dtype)))


# --- unit weights: equals numpy.nanmedian ------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 2, 3, 4, 33, 64])
def test_unweighted_matches_nanmedian(dtype, n):
    stack = random_stack(dtype, shape=(n, 6, 5), seed=n)
    result = stack_median(stack)
    assert_same(result, nanmedian64(stack), dtype)
    assert np.isnan(result[0, 0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_unit_weights_equal_no_weights(dtype):
    stack = random_stack(dtype)
    np.testing.assert_array_equal(stack_median(stack, np.ones(stack.shape)), stack_median(stack))


def test_float64_equals_nanmedian_exactly_even_counts():
    stack = np.array([[1.0, 5.0], [2.0, np.nan], [10.0, 7.0], [4.0, np.nan]])
    np.testing.assert_array_equal(stack_median(stack), [3.0, 6.0])
    np.testing.assert_array_equal(stack_median(stack), np.nanmedian(stack, axis=0))


def test_infinite_values_are_ignored():
    stack = np.array([[1.0], [np.inf], [-np.inf], [3.0]])
    np.testing.assert_array_equal(stack_median(stack), [2.0])


# --- weights ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ([1, 1, 2], 2.5),  # cumulative weight hits exactly half at 2 -> mean(2, 3)
        ([1, 0, 5], 3.0),  # zero weight ignored
        ([2, 1, 1], 1.5),  # exactly half at the first value
        ([4, 1, 1], 1.0),
        ([-5, 1, 1], 2.5),  # negative weight ignored
        ([np.nan, 1, np.inf], 2.0),  # non-finite weights ignored
        ([0, 0, 0], np.nan),  # no valid entry
    ],
)
def test_weighted_hand_cases(weights, expected):
    stack = np.array([1.0, 2.0, 3.0])[:, None]
    w = np.array(weights, dtype=float)[:, None]
    np.testing.assert_array_equal(stack_median(stack, w), [expected])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [3, 20, 100])
def test_weighted_matches_reference(dtype, n):
    rng = np.random.default_rng(n)
    stack = random_stack(dtype, shape=(n, 5, 8), seed=n)
    stack[:, 1] = rng.integers(0, 4, size=stack[:, 1].shape)  # ties
    weights = rng.uniform(-0.5, 3.0, size=stack.shape).astype(dtype)
    weights[rng.random(stack.shape) < 0.1] = 0.0
    weights[rng.random(stack.shape) < 0.05] = np.nan
    assert_same(stack_median(stack, weights), ref_weighted(stack, weights), dtype)


# --- FITS-shaped inputs -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_read_only_inputs(dtype):
    stack = random_stack(dtype)
    weights = np.abs(random_stack(dtype, seed=1))
    stack.setflags(write=False)
    weights.setflags(write=False)
    assert_same(stack_median(stack), nanmedian64(stack), dtype)
    assert_same(stack_median(stack, weights), ref_weighted(stack, weights), dtype)


def test_read_only_memmap(tmp_path):
    path = tmp_path / "stack.dat"
    data = random_stack(">f4")
    data.tofile(path)
    stack = np.memmap(path, dtype=">f4", mode="r", shape=data.shape)
    assert_same(stack_median(stack), nanmedian64(data), ">f4")


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_inputs(dtype):
    base = random_stack(dtype, shape=(5, 12, 14))
    stack = base[:, ::2, 1::3]
    weights = np.abs(random_stack(dtype, shape=(14, 12, 5), seed=3)).T[:, ::2, 1::3]
    assert not stack.flags.c_contiguous and not weights.flags.c_contiguous
    assert_same(stack_median(stack), nanmedian64(stack), dtype)
    assert_same(stack_median(stack, weights), ref_weighted(stack, weights), dtype)


@pytest.mark.parametrize("shape", [(4, 10), (4, 3, 2, 5), (3, 1, 1)])
def test_trailing_dimensions(shape):
    stack = random_stack("<f8", shape=shape)
    result = stack_median(stack)
    assert result.shape == shape[1:]
    np.testing.assert_array_equal(result, nanmedian64(stack))


def test_empty_stacks():
    assert np.isnan(stack_median(np.empty((0, 2, 3), np.float32))).all()
    assert stack_median(np.empty((3, 0, 4), np.float32)).shape == (0, 4)


def test_out_is_filled_and_returned():
    stack = random_stack("<f4")
    out = np.empty(stack.shape[1:], np.float32)
    assert stack_median(stack, out=out) is out
    assert_same(out, nanmedian64(stack), "<f4")


# --- threads ----------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True])
def test_workers_do_not_change_result(weighted):
    stack = random_stack("<f4", shape=(9, 150, 170))
    weights = np.abs(random_stack("<f4", shape=stack.shape, seed=5)) if weighted else None
    results = [stack_median(stack, weights, workers=w) for w in (1, 2, 0)]
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_concurrent_python_threads():
    stack = random_stack(">f4", shape=(40, 120, 130))
    weights = np.abs(random_stack("<f4", shape=stack.shape, seed=9))
    expected = stack_median(stack, weights, workers=1)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: stack_median(stack, weights, workers=2), range(8)))
    for result in results:
        np.testing.assert_array_equal(result, expected)


# --- property tests ---------------------------------------------------------------------

SHAPES = hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=70).map(
    lambda s: (s[0], min(s[1], 4))
)


@st.composite
def stacks_and_weights(draw):
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(SHAPES)
    width = 32 if "f4" in dtype else 64
    # finite values bounded away from the float64 limit: a midpoint (a + b) / 2 of two values
    # near 1.8e308 overflows in any implementation; NaN and +-inf are drawn explicitly
    bound = 1e300 if width == 64 else float(np.float32(3e38))
    finite = st.floats(min_value=-bound, max_value=bound, width=width)
    values = draw(hnp.arrays(dtype, shape, elements=st.one_of(finite, st.sampled_from([np.nan, np.inf, -np.inf]))))
    weight_elems = st.one_of(
        st.floats(-1.0, 1e6, width=width), st.sampled_from([0.0, 1.0, np.nan, np.inf])
    )
    weights = draw(hnp.arrays(dtype, shape, elements=weight_elems))
    return values, weights


@settings(max_examples=150, deadline=None)
@given(stacks_and_weights())
def test_property_weighted_matches_reference(data):
    stack, weights = data
    assert_same(stack_median(stack, weights), ref_weighted(stack, weights), stack.dtype.str)


@settings(max_examples=150, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        SHAPES,
        elements=st.floats(allow_infinity=False, min_value=-1e300, max_value=1e300),
    )
)
def test_property_unweighted_equals_nanmedian(stack):
    np.testing.assert_array_equal(stack_median(stack), nanmedian64(stack))


# --- errors name the argument -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"stack": np.zeros(5)}, ValueError, "stack"),
        ({"stack": np.zeros((2, 3), np.int32)}, TypeError, "stack"),
        ({"stack": np.zeros((2, 3), np.float16)}, TypeError, "stack"),
        ({"weights": np.ones((2, 4))}, ValueError, "weights"),
        ({"weights": np.full((2, 3), "a")}, TypeError, "weights"),
        ({"out": np.empty(4)}, ValueError, "out"),
        ({"out": np.empty(3, np.float32)}, TypeError, "out"),
        ({"out": np.empty(6)[::2]}, ValueError, "out"),
        ({"workers": -1}, ValueError, "workers"),
        ({"workers": 1.5}, TypeError, "workers"),
    ],
)
def test_bad_arguments_raise_naming_them(kwargs, error, match):
    args = {"stack": np.zeros((2, 3)), **kwargs}
    with pytest.raises(error, match=match):
        stack_median(**args)
