"""Tests for spec3c._core.sossbox (SOSS box sums) against the numpy path it replaces."""

from __future__ import annotations

import numpy as np
import pytest

from spec3c._core.sossbox import soss_box_sums
from spec3c.modes.soss.atoca import _merge
from spec3c.modes.soss.box import _extract_in_numpy, box_weights, extract_integration

SHAPE = (60, 90)


def _scene(seed: int, dtype: type = np.float32) -> dict:
    """An integration with NaNs, zero and NaN errors, masked pixels, three apertures and models."""
    rng = np.random.default_rng(seed)
    ny, nx = SHAPE
    data = rng.normal(100.0, 20.0, SHAPE).astype(dtype)
    err = rng.uniform(0.5, 2.0, SHAPE)
    data[rng.random(SHAPE) < 0.02] = np.nan
    err[rng.random(SHAPE) < 0.02] = 0.0
    err[rng.random(SHAPE) < 0.01] = np.nan
    err[rng.random(SHAPE) < 0.01] = np.inf
    scimask = rng.random(SHAPE) < 0.03
    cols = np.arange(nx)
    weights = {o: box_weights(10.0 + 15 * o + 0.05 * cols, 9.5, SHAPE, cols) for o in (1, 2, 3)}
    weights[2][:, 70:] = 0.0  # an order without weight past column 70: NaN columns
    models = {o: rng.normal(5.0, 1.0, SHAPE) for o in (1, 2, 3)}
    for m in models.values():
        m[rng.random(SHAPE) < 0.05] = np.nan
    models[3][0, :] = np.inf
    cutoffs = {1: nx, 2: 80, 3: 45}
    return {"data": data, "err": err, "scimask": scimask, "weights": weights, "cutoffs": cutoffs,
            "models": models}


def _same(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for order in a:
        for got, want in zip((a[order].flux, a[order].flux_error, a[order].npixels),
                             (b[order].flux, b[order].flux_error, b[order].npixels), strict=True):
            assert got.shape == want.shape
            np.testing.assert_array_equal(got, want)  # bit for bit, NaN where NaN


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_models", [False, True])
def test_kernel_sums_are_the_numpy_sums_bit_for_bit(dtype, with_models):
    s = _scene(3, dtype)
    models = s["models"] if with_models else None
    args = (s["data"], s["err"], s["scimask"], s["weights"], s["cutoffs"])
    _same(extract_integration(*args, models=models), _extract_in_numpy(*args, models, False))


def test_one_model_subtracts_nothing_from_its_own_order():
    s = _scene(5)
    args = (s["data"], s["err"], s["scimask"], s["weights"], s["cutoffs"])
    _same(extract_integration(*args, models={2: s["models"][2]}),
          _extract_in_numpy(*args, {2: s["models"][2]}, False))


def test_sums_of_a_known_image():
    data = np.full((6, 4), 3.0, np.float32)
    err = np.full((6, 4), 2.0)
    w = np.zeros((6, 4))
    w[1:4, :3] = 0.5
    mask = np.zeros((6, 4), bool)
    mask[2, 0] = True
    model = np.ones((6, 4))
    (flux, error, npix), = soss_box_sums(data, err, mask, {1: w}, {1: 4}).values()
    np.testing.assert_array_equal(npix, [1.0, 1.5, 1.5, 0.0])
    np.testing.assert_array_equal(flux[:3], [3.0, 4.5, 4.5])
    np.testing.assert_allclose(error[:3], np.sqrt([4.0, 6.0, 6.0]))  # sqrt(sum w e^2), w not w^2
    assert np.isnan(flux[3]) and np.isnan(error[3])
    sums = soss_box_sums(data, err, mask, {1: w, 2: w}, {1: 2, 2: 2}, {2: model, 1: 2 * model})
    np.testing.assert_array_equal(sums[1][0], [2.0, 3.0])  # (3 - 1) per unit weight
    np.testing.assert_array_equal(sums[2][0], [1.0, 1.5])  # (3 - 2)


def test_bad_arguments_are_named():
    s = _scene(1)
    with pytest.raises(ValueError, match="err must have the shape"):
        soss_box_sums(s["data"], s["err"][:, :10], s["scimask"], s["weights"], s["cutoffs"])
    with pytest.raises(ValueError, match=r"weights\[2\]"):
        soss_box_sums(s["data"], s["err"], s["scimask"], {2: np.ones((3, 3))}, {2: 1})
    with pytest.raises(ValueError, match="cutoffs"):
        soss_box_sums(s["data"], s["err"], s["scimask"], s["weights"], {1: 91, 2: 1, 3: 1})
    with pytest.raises(TypeError, match="data must be float32 or float64"):
        soss_box_sums(np.ones(SHAPE, np.int16), s["err"], s["scimask"], s["weights"], s["cutoffs"])


def _merge_as_nansum(joint: np.ndarray, single: np.ndarray) -> np.ndarray:
    """The merge written as the nansum of the joint model and the single-order model where the
    joint one is not finite (the formula the compiled path replaced)."""
    single = np.where(np.isfinite(joint), 0.0, single)
    with np.errstate(invalid="ignore"):  # inf - inf
        merged = np.where(np.isnan(joint), 0.0, joint) + np.where(np.isnan(single), 0.0, single)
    merged[np.isnan(joint) & np.isnan(single)] = np.nan
    return merged


def test_merge_is_the_nansum_bit_for_bit():
    rng = np.random.default_rng(2)
    joint, single = rng.normal(size=(2, 40, 50))
    joint[rng.random(joint.shape) < 0.3] = np.nan
    single[rng.random(single.shape) < 0.3] = np.nan
    joint[0, :5] = [np.inf, -np.inf, -0.0, np.inf, 0.0]
    single[0, :5] = [np.nan, 2.0, 1.0, -np.inf, -0.0]
    joint[1, :2] = np.nan
    single[1, :2] = [-0.0, 0.0]
    got, want = _merge(joint, single), _merge_as_nansum(joint, single)
    np.testing.assert_array_equal(got, want)
    assert np.array_equal(np.signbit(got), np.signbit(want))
    no_joint = _merge(np.full(single.shape, np.nan), single.copy())
    got = _merge(None, single)
    assert got is single  # merged in place
    np.testing.assert_array_equal(got, no_joint)
    assert np.array_equal(np.signbit(got), np.signbit(no_joint))
    assert not np.signbit(got[1, 0])  # -0.0 where the joint model is NaN: +0.0, as the nansum
