"""outlier_detection as a step: flags in place and saves every input's crf DQ."""

from __future__ import annotations

import numpy as np

from spec3c.results import COMPLETE, SKIPPED, crf_key
from spec3c.steps import outlier_detection


def test_flags_and_saves_crf_dq(fs_store, make_context):
    ctx = make_context(fs_store)
    outcome = outlier_detection.run(ctx)
    assert outcome.status == COMPLETE
    details = outcome.details
    assert isinstance(details, outlier_detection.OutlierDetails)
    assert set(details.n_flagged) == {f"{c.exposure}/{c.slit}" for c in ctx.inputs.cutouts}
    assert sum(details.n_flagged.values()) > 0  # the simulator injects cosmic rays
    for c in ctx.inputs.cutouts:
        arrays, meta = ctx.store.get_result(ctx.source, crf_key(c.exposure, c.slit))
        np.testing.assert_array_equal(arrays["dq"], c.planes["dq"])
        assert meta["n_flagged"] == details.n_flagged[f"{c.exposure}/{c.slit}"]


def test_one_exposure_is_skipped_and_saves_nothing(fs_store, make_context):
    ctx = make_context(fs_store)
    ctx.inputs.cutouts = ctx.inputs.cutouts[:1]
    outcome = outlier_detection.run(ctx)
    assert outcome.status == SKIPPED and "needs at least 2" in outcome.message
    assert not [k for _, k in ctx.store.list_results(ctx.source) if k.startswith("crf/")]
