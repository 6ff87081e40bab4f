"""combine_1d as a step: the per-exposure spectra of a source into its c1d."""

from __future__ import annotations

import pytest

from spec3c.errors import InputError
from spec3c.results import COMPLETE, SKIPPED, CombinedResult
from spec3c.steps import combine_1d, extract_1d


def test_nothing_to_combine_skips(slitless_store, make_context):
    outcome = combine_1d.run(make_context(slitless_store))
    assert outcome.status == SKIPPED and outcome.message == "no extracted spectra"


def test_combines_and_saves(slitless_store, make_context):
    ctx = make_context(slitless_store)
    extract_1d.run(ctx)
    outcome = combine_1d.run(ctx)
    assert outcome.status == COMPLETE
    assert outcome.details == combine_1d.CombineDetails("exposure_time", {})
    combined = CombinedResult.load(ctx.store, ctx.source)
    assert list(combined.orders) == [1] and combined.orders[1].n_input.max() == 3


def test_missing_exposure_time_is_an_error_naming_the_file(slitless_store, make_context):
    ctx = make_context(slitless_store)
    extract_1d.run(ctx)
    record = ctx.inputs.exposures[ctx.inputs.cutouts[1].exposure]
    del record.meta["meta.exposure.exposure_time"]
    with pytest.raises(InputError, match="EFFEXPTM") as err:
        combine_1d.run(ctx)
    assert record.filename in str(err.value)
    unit = make_context(slitless_store, {"combine_1d": {"exptime_key": "unit_weight"}})
    extract_1d.run(unit)
    del unit.inputs.exposures[unit.inputs.cutouts[1].exposure].meta["meta.exposure.exposure_time"]
    assert combine_1d.run(unit).status == COMPLETE  # unit weights need no exposure time
