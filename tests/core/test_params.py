"""Tests for the frozen option objects of spec3c._core (validation, coercion, immutability)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from spec3c._core import BackgroundFit, DrizzleParams, OutlierThresholds


def test_drizzle_params_defaults_and_coercion():
    p = DrizzleParams()
    assert (p.kernel, p.pixfrac) == ("square", 1.0) and math.isnan(p.fillval)
    q = DrizzleParams("point", np.float32(0.5), np.float64(-7))
    assert type(q.pixfrac) is float and q.pixfrac == 0.5
    assert type(q.fillval) is float and q.fillval == -7.0


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"kernel": "lanczos3"}, ValueError, "kernel"),
        ({"pixfrac": 0}, ValueError, "pixfrac"),
        ({"pixfrac": -0.5}, ValueError, "pixfrac"),
        ({"pixfrac": math.inf}, ValueError, "pixfrac"),
        ({"pixfrac": math.nan}, ValueError, "pixfrac"),
        ({"pixfrac": "wide"}, TypeError, "pixfrac"),
        ({"fillval": None}, TypeError, "fillval"),
    ],
)
def test_drizzle_params_rejects(kwargs, error, match):
    with pytest.raises(error, match=match):
        DrizzleParams(**kwargs)


def test_outlier_thresholds():
    t = OutlierThresholds(5, 4.0, np.float64(1.2), 0.7)
    assert dataclasses.astuple(t) == (5.0, 4.0, 1.2, 0.7)
    assert all(type(v) is float for v in dataclasses.astuple(t))
    assert OutlierThresholds(math.inf, 4.0, 1.2, 0.7).snr1 == math.inf
    with pytest.raises(ValueError, match="scale2"):
        OutlierThresholds(5.0, 4.0, 1.2, math.nan)
    with pytest.raises(TypeError, match="snr2"):
        OutlierThresholds(5.0, None, 1.2, 0.7)


def test_background_fit():
    assert BackgroundFit() == BackgroundFit("poly", 0)
    assert BackgroundFit("median", np.int64(3)).bkg_order == 3
    with pytest.raises(ValueError, match="bkg_fit"):
        BackgroundFit("mean")
    with pytest.raises(ValueError, match="bkg_order"):
        BackgroundFit("poly", 16)
    with pytest.raises(TypeError, match="bkg_order"):
        BackgroundFit("poly", 1.0)


@pytest.mark.parametrize(
    "obj, field",
    [(DrizzleParams(), "pixfrac"), (OutlierThresholds(1, 1, 1, 1), "snr1"), (BackgroundFit(), "bkg_order")],
)
def test_frozen_and_hashable(obj, field):
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, field, 2)
    hash(obj)
