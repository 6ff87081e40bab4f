"""master_background as a step: the association's master is built once, each source subtracts it."""

from __future__ import annotations

import numpy as np

from spec3c.config import MasterBackgroundParams
from spec3c.results import COMPLETE, SKIPPED
from spec3c.steps import master_background


def test_without_a_prepared_master_the_step_skips(fs_store, make_context):
    ctx = make_context(fs_store)
    master_background.prepare_association(ctx.store, MasterBackgroundParams(skip=True))
    outcome = master_background.run(ctx)
    assert outcome.status == SKIPPED and "no background members" in outcome.message


def test_subtracts_and_keeps_the_master_it_used(fs_store, make_context):
    ctx = make_context(fs_store)
    master_background.prepare_association(ctx.store, MasterBackgroundParams())
    sci = [c.planes["sci"].copy() for c in ctx.inputs.cutouts]
    outcome = master_background.run(ctx)
    assert outcome.status == COMPLETE
    assert outcome.details == master_background.BackgroundDetails("background members")
    used = master_background.load_for_source(ctx.store, ctx.source)
    assert used is not None and used.subtract
    for cutout, before in zip(ctx.inputs.cutouts, sci, strict=True):
        finite = np.isfinite(before) & np.isfinite(cutout.planes["sci"])
        assert np.nanmedian(before[finite] - cutout.planes["sci"][finite]) > 0  # sky removed


def test_background_member_without_exposure_time_is_named(fs_store, make_context):
    import pytest

    from spec3c.errors import InputError
    from spec3c.store import ExposureRecord

    ctx = make_context(fs_store)
    member = next(r for r in ctx.store.list_exposures() if r.role == "background")
    meta = {k: v for k, v in member.meta.items() if k != "meta.exposure.exposure_time"}
    broken = ExposureRecord(member.name, member.filename, member.sha256, member.role, member.exp_type,
                            member.model_type, meta)
    ctx.store.commit_exposure(broken, [], ctx.store.read_images(member.name))
    with pytest.raises(InputError, match=r"EFFEXPTM") as err:
        master_background.prepare_association(ctx.store, MasterBackgroundParams())
    assert member.name in str(err.value)
