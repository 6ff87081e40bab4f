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


def test_a_source_run_writes_its_results_in_few_store_writes(monkeypatch):
    """Each store write is a TileDB fragment (~0.1 s): a source's results are held and written
    together; a read sees what was written before it; a large result is not held."""
    from spec3c import process as proc
    from spec3c.store.memory import MemoryStore

    store = MemoryStore()
    writes = []

    def put_results(items):
        writes.append(list(items))
        for item in writes[-1]:
            MemoryStore.put_result(store, *item)

    monkeypatch.setattr(store, "put_results", put_results)
    monkeypatch.setattr(store, "put_result", lambda *item: put_results([item]))
    recording = proc._RecordingStore(store)
    data = np.arange(6.0).reshape(2, 3)
    for k in ("a", "b", "c"):
        recording.put_result("s", k, {"x": data}, {"k": k})
    data[:] = -1  # a step changing its array after saving it does not change the saved result
    assert writes == []
    arrays, meta = recording.get_result("s", "b")  # a read writes what is held first
    assert len(writes) == 1 and len(writes[0]) == 3
    assert meta == {"k": "b"} and arrays["x"][1, 2] == 5.0
    big = np.zeros(proc._PENDING_BYTES // 8 + 1)
    recording.put_result("s", "d", {"x": np.ones(1)}, {})
    recording.put_result("s", "big", {"x": big}, {})  # held results first, then the large one alone
    assert [len(w) for w in writes] == [3, 1, 1]
    recording.flush()
    assert recording.written == {"a", "b", "c", "d", "big"}
    assert [k for _, k in store.list_results("s")] == ["a", "b", "big", "c", "d"]


def test_a_source_run_lists_its_results_once_until_it_changes_them(monkeypatch):
    """IFU cube building lists the source's results for every exposure it reads: the listing is
    kept until the run writes or deletes a result, and always says what the store holds."""
    from spec3c import process as proc
    from spec3c.store.memory import MemoryStore

    store = MemoryStore()
    store.put_result("s", "old", {}, {})
    store.put_result("t", "other", {}, {})
    listings = []
    real = store.list_results
    monkeypatch.setattr(store, "list_results", lambda source=None: listings.append(source) or real(source))
    recording = proc._RecordingStore(store)
    assert recording.list_results("s") == recording.list_results("s") == [("s", "old")]
    assert listings == ["s"]
    recording.put_result("s", "new", {"x": np.ones(2)}, {})  # held, then written by the listing
    assert recording.list_results("s") == recording.list_results("s") == [("s", "new"), ("s", "old")]
    assert listings == ["s", "s"]
    recording.delete_result("s", "old")
    assert recording.list_results("s") == [("s", "new")]
    recording.delete_results("s")
    assert recording.list_results("s") == [] and recording.list_results("t") == [("t", "other")]
    assert recording.list_results(None) == [("t", "other")]
