"""assign_mtwcs as a step: skipped unless the association is a moving target."""

from __future__ import annotations

import numpy as np
import pytest

from spec3c.ingest import ingest
from spec3c.results import COMPLETE, SKIPPED
from spec3c.simulate import SimOptions, simulate
from spec3c.steps import assign_mtwcs


@pytest.fixture(scope="module")
def moving_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("moving")
    sim = simulate("nirspec-fs", root / "in", SimOptions(seed=6, n_exposures=3, moving_target=True))
    ingest(sim.asn_path, root / "store")
    return root / "store"


def test_skipped_for_a_fixed_target(fs_store, make_context):
    outcome = assign_mtwcs.run(make_context(fs_store))
    assert outcome.status == SKIPPED and "not a moving target" in outcome.message
    assert outcome.details is None


def test_aligns_a_moving_target(moving_store, make_context):
    ctx = make_context(moving_store)
    before = [c.planes["ra"].copy() for c in ctx.inputs.cutouts]
    outcome = assign_mtwcs.run(ctx)
    assert outcome.status == COMPLETE
    assert isinstance(outcome.details, assign_mtwcs.AlignmentDetails)
    record = outcome.record(0.5)
    assert record["mt_avra"] == outcome.details.mt_avra and record["seconds"] == 0.5
    moved = [np.nanmax(np.abs(c.planes["ra"] - b)) for c, b in zip(ctx.inputs.cutouts, before, strict=True)]
    assert max(moved) > 0  # the later exposures were shifted onto the mean target position
