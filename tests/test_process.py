"""``process_store`` with a real pool: two workers give the same results as one, and a failing
source is reported with its error while the others still finish."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from spec3c.config import resolve_config
from spec3c.ingest import ingest
from spec3c.process import process_store
from spec3c.results import STATUS, Resampled2D, Spectrum1D
from spec3c.simulate import SimOptions, simulate
from spec3c.store import open_store


@pytest.fixture(scope="module")
def mos_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("mos")
    sim = simulate("nirspec-mos", root / "in", SimOptions(seed=8, n_sources=4, n_exposures=3))
    ingest(sim.asn_path, root / "store")
    return root / "store"


def _copy(store, tmp_path, name):
    dest = tmp_path / name
    shutil.copytree(store, dest)
    return dest


def test_two_workers_match_one(mos_store, tmp_path):
    one, two = _copy(mos_store, tmp_path, "one"), _copy(mos_store, tmp_path, "two")
    r1 = process_store(one, workers=1)
    r2 = process_store(two, workers=2)
    assert not r1.failed and not r2.failed
    assert sorted(r.source for r in r2.processed) == sorted(r.source for r in r1.processed)
    with open_store(one) as a, open_store(two) as b:
        for source in a.sources():
            s1, s2 = Resampled2D.load(a, source), Resampled2D.load(b, source)
            np.testing.assert_array_equal(s1.sci, s2.sci)
            np.testing.assert_array_equal(s1.con, s2.con)
            x1, x2 = Spectrum1D.load(a, source), Spectrum1D.load(b, source)
            np.testing.assert_array_equal(x1.columns["FLUX"], x2.columns["FLUX"])


def test_worker_failures_are_reported_per_source(mos_store, tmp_path):
    store_path = _copy(mos_store, tmp_path, "failing")
    config = resolve_config(overrides={"pixel_replace": {"skip": "false", "algorithm": "trace_model"}})
    report = process_store(store_path, config=config, workers=2)
    assert len(report.failed) == len(report.processed) == 4
    assert all("trace_model" in r.error for r in report.failed)
    with open_store(store_path) as store:
        statuses = [store.get_result(s, STATUS)[1] for s in store.sources()]
    assert all("trace_model" in s["error"] for s in statuses)
    again = process_store(store_path, workers=2)  # failed sources are not complete: a re-run redoes them
    assert not again.failed and len(again.processed) == 4
