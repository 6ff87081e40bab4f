"""resample_spec as a step: the s2d on the mode's grid, saved to the store."""

from __future__ import annotations

import numpy as np

from spec3c.results import COMPLETE, Resampled2D
from spec3c.steps import resample_spec


def test_resamples_and_saves(fs_store, make_context):
    ctx = make_context(fs_store, {"resample_spec": {"pixfrac": 0.8}})
    outcome = resample_spec.run(ctx)
    assert outcome.status == COMPLETE and ctx.s2d is not None
    saved = Resampled2D.load(ctx.store, ctx.source)
    np.testing.assert_array_equal(saved.sci, ctx.s2d.sci)
    assert saved.meta["pixfrac"] == 0.8
    assert "source_location" not in saved.meta  # NIRSpec locates the source from SRCYPOS at extraction


def test_custom_output_shape_is_refused(fs_store, make_context):
    ctx = make_context(fs_store, {"resample_spec": {"output_shape": "7 9"}})
    outcome = resample_spec.run(ctx)
    assert outcome.status == "FAILED" and "custom output shapes" in outcome.message
    assert ctx.s2d is None
