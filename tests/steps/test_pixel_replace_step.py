"""pixel_replace as a step: replaces flagged pixels of every input in place."""

from __future__ import annotations

import numpy as np

from spec3c.results import COMPLETE
from spec3c.steps import pixel_replace


def test_replaces_in_place(fs_store, make_context):
    ctx = make_context(fs_store, {"pixel_replace": {"skip": False, "algorithm": "fit_profile"}})
    nan_before = sum(int(np.isnan(c.planes["sci"]).sum()) for c in ctx.inputs.cutouts)
    outcome = pixel_replace.run(ctx)
    assert outcome.status == COMPLETE
    assert isinstance(outcome.details, pixel_replace.ReplaceDetails)
    nan_after = sum(int(np.isnan(c.planes["sci"]).sum()) for c in ctx.inputs.cutouts)
    assert sum(outcome.details.n_replaced.values()) > 0
    assert nan_after < nan_before
