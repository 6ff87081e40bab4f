"""Tests for spec3c._core.match_nans_and_flags against a numpy reference."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from spec3c import dqflags
from spec3c._core import match_nans_and_flags
from spec3c.errors import Spec3cWarning

DTYPES = [">f4", "<f4", ">f8", "<f8"]


def reference(sci, dq, *others, do_not_use=1):
    """numpy version of the rule on float64 copies; returns (count, sci, dq, others)."""
    floats = [np.array(a, dtype=np.float64) for a in (sci, *others)]
    bad = (np.asarray(dq) & do_not_use) != 0
    for a in floats:
        bad |= np.isnan(a)
    for a in floats:
        a[bad] = np.nan
    new_dq = np.where(bad, dq | np.uint32(do_not_use), dq).astype(np.uint32)
    return int(bad.sum()), floats[0], new_dq, floats[1:]


def make_arrays(dtypes, shape=(13, 17), seed=0, dq_dtype="<u4"):
    """sci + others of the given dtypes with scattered NaNs, and a dq with random bits."""
    rng = np.random.default_rng(seed)
    floats = []
    for dtype in dtypes:
        a = rng.normal(size=shape)
        a[rng.random(shape) < 0.1] = np.nan
        floats.append(a.astype(dtype))
    dq = rng.choice(
        np.array([0, 1, 2, 4, 16, 17, 512, 513], np.uint32),
        size=shape,
        p=[0.6, 0.05, 0.05, 0.05, 0.05, 0.05, 0.1, 0.05],
    )
    return floats, dq.astype(dq_dtype)


def check_against_reference(floats, dq, do_not_use=1, **kwargs):
    expected = reference(floats[0], dq.copy(), *floats[1:], do_not_use=do_not_use)
    count = match_nans_and_flags(floats[0], dq, *floats[1:], do_not_use=do_not_use, **kwargs)
    assert count == expected[0]
    np.testing.assert_array_equal(floats[0], expected[1])
    np.testing.assert_array_equal(dq, expected[2])
    for got, want in zip(floats[1:], expected[3], strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dq_dtype", ["<u4", ">u4"])
def test_matches_reference_all_dtypes(dtype, dq_dtype):
    floats, dq = make_arrays([dtype] * 5, dq_dtype=dq_dtype)
    originals = [a.dtype for a in floats]
    check_against_reference(floats, dq)
    assert [a.dtype for a in floats] == originals  # in place, byte order kept


def test_mixed_float_dtypes():
    floats, dq = make_arrays(["<f4", ">f8", "<f8", ">f4"], seed=1)
    check_against_reference(floats, dq)


def test_known_pixels_and_other_bits_kept():
    sci = np.array([1.0, np.nan, 3.0, 4.0], np.float32)
    err = np.array([1.0, 1.0, np.nan, 1.0], np.float32)
    dq = np.array([0, 0, 4, dqflags.DO_NOT_USE | dqflags.OUTLIER], np.uint32)
    assert match_nans_and_flags(sci, dq, err) == 3
    np.testing.assert_array_equal(sci, [1.0, np.nan, np.nan, np.nan])
    np.testing.assert_array_equal(err, [1.0, np.nan, np.nan, np.nan])
    np.testing.assert_array_equal(dq, [0, 1, 5, 17])


def test_custom_do_not_use_bit():
    floats, dq = make_arrays(["<f4", "<f4"], seed=2)
    check_against_reference(floats, dq, do_not_use=dqflags.NON_SCIENCE)


def test_sci_only_and_none_entries():
    floats, dq = make_arrays(["<f8"], seed=3)
    check_against_reference(floats, dq)
    floats, dq = make_arrays(["<f4", "<f4"], seed=4)
    expected = reference(floats[0], dq.copy(), floats[1])
    assert match_nans_and_flags(floats[0], dq, None, floats[1], None) == expected[0]
    np.testing.assert_array_equal(floats[1], expected[3][0])


def test_wrong_shape_other_is_skipped_with_warning():
    floats, dq = make_arrays(["<f4", "<f4"], seed=5)
    odd = np.full((3, 3), np.nan, np.float32)
    with pytest.warns(Spec3cWarning, match=r"others\[1\]"):
        count = match_nans_and_flags(floats[0], dq.copy(), floats[1], odd)
    assert count == reference(floats[0], dq, floats[1])[0]
    assert np.isnan(odd).all() and odd.shape == (3, 3)


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_arrays_are_written_back(dtype):
    base, dq = make_arrays([dtype, dtype], shape=(20, 30), seed=6)
    floats = [base[0][::2, 1::2], base[1].T.copy().T[::2, 1::2]]
    dq = dq[::2, 1::2]
    assert not any(a.flags.c_contiguous for a in [*floats, dq])
    check_against_reference(floats, dq)


@pytest.mark.parametrize("position", ["sci", "dq", "others[1]"])
def test_read_only_raises_and_modifies_nothing(position):
    floats, dq = make_arrays(["<f4", "<f4", "<f4"], seed=7)
    target = {"sci": floats[0], "dq": dq, "others[1]": floats[2]}[position]
    target.setflags(write=False)
    before = [a.copy() for a in [*floats, dq]]
    with pytest.raises(ValueError, match=re.escape(position) + ".*read-only"):
        match_nans_and_flags(floats[0], dq, *floats[1:])
    for a, b in zip([*floats, dq], before, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((np.zeros(4, np.int32), np.zeros(4, np.uint32)), {}, TypeError, "sci"),
        ((np.zeros(4), np.zeros(4, np.int32)), {}, TypeError, "dq"),
        ((np.zeros(4), np.zeros(5, np.uint32)), {}, ValueError, "dq"),
        (
            (np.zeros(4), np.zeros(4, np.uint32), np.zeros(4, np.int64)),
            {},
            TypeError,
            r"others\[0\]",
        ),
        ((np.zeros(4), np.zeros(4, np.uint32), [0.0] * 4), {}, TypeError, r"others\[0\]"),
        (([0.0] * 4, np.zeros(4, np.uint32)), {}, TypeError, "sci"),
        ((np.zeros(4), np.zeros(4, np.uint32)), {"do_not_use": 0}, ValueError, "do_not_use"),
        ((np.zeros(4), np.zeros(4, np.uint32)), {"do_not_use": 2**32}, ValueError, "do_not_use"),
        ((np.zeros(4), np.zeros(4, np.uint32)), {"do_not_use": 1.0}, TypeError, "do_not_use"),
        ((np.zeros(4), np.zeros(4, np.uint32)), {"workers": -2}, ValueError, "workers"),
    ],
)
def test_bad_arguments_raise_naming_them(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        match_nans_and_flags(*args, **kwargs)


def test_empty_arrays():
    assert match_nans_and_flags(np.empty((0, 3)), np.empty((0, 3), np.uint32)) == 0


def test_workers_do_not_change_result():
    results = []
    for workers in (1, 2, 0):
        floats, dq = make_arrays(["<f4"] * 5, shape=(300, 400), seed=8)
        count = match_nans_and_flags(floats[0], dq, *floats[1:], workers=workers)
        results.append((count, floats, dq))
    for count, floats, dq in results[1:]:
        assert count == results[0][0]
        np.testing.assert_array_equal(dq, results[0][2])
        for a, b in zip(floats, results[0][1], strict=True):
            np.testing.assert_array_equal(a, b)


def test_concurrent_python_threads():
    def run(seed):
        floats, dq = make_arrays([">f4", "<f4", "<f8"], shape=(200, 300), seed=seed)
        expected = reference(floats[0], dq.copy(), *floats[1:])
        count = match_nans_and_flags(floats[0], dq, *floats[1:], workers=2)
        return (
            count == expected[0]
            and np.array_equal(dq, expected[2])
            and all(
                np.array_equal(a, b, equal_nan=True)
                for a, b in zip(floats, [expected[1], *expected[3]], strict=True)
            )
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(run, range(12)))


@st.composite
def nanflag_inputs(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=6))
    dtypes = draw(st.lists(st.sampled_from(DTYPES), min_size=1, max_size=4))
    floats = [
        draw(hnp.arrays(d, shape, elements=st.floats(width=32 if "f4" in d else 64)))
        for d in dtypes
    ]
    dq = draw(hnp.arrays(np.uint32, shape, elements=st.sampled_from([0, 1, 2, 3, 512, 2**31])))
    bit = draw(st.sampled_from([1, 2, 512, 2**31]))
    return floats, dq, bit


@settings(max_examples=150, deadline=None)
@given(nanflag_inputs())
def test_property_matches_reference(data):
    floats, dq, bit = data
    check_against_reference(floats, dq, do_not_use=bit)
