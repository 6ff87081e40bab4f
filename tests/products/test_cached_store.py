"""Export's read-through cache (spec3c.products.export._CachedStore) reads a source's results (all
wanted by its products) in one store query; the association's, one family at a time."""

from __future__ import annotations

import numpy as np
import pytest

from spec3c.products.export import _CachedStore
from spec3c.results import ASSOCIATION_SOURCE
from spec3c.store.memory import MemoryStore


class _CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.queries: list[tuple[str, ...]] = []

    def get_result(self, source, key):  # type: ignore[no-untyped-def]
        self.queries.append(("one", key))
        return super().get_result(source, key)

    def get_results_of(self, source, keys):  # type: ignore[no-untyped-def]
        self.queries.append(("many", *keys))
        return {k: MemoryStore.get_result(self, source, k) for k in keys
                if (source, k) in self.list_results(source)}


def test_a_sources_results_are_read_in_one_query() -> None:
    store = _CountingStore()
    for exposure in ("e1", "e2", "e3"):
        store.put_result("s1", f"crf/{exposure}/7", {"dq": np.full(2, int(exposure[1]), np.uint32)}, {})
    store.put_result("s1", "crf/e1/planes/0", {"big": np.zeros(2)}, {})
    store.put_result("s1", "x1d", {"flux": np.ones(3)}, {"n": 1})
    store.put_result("s2", "crf/e1/7", {"dq": np.zeros(2, np.uint32)}, {})
    cached = _CachedStore(store)
    got = [int(cached.get_result("s1", f"crf/{e}/7")[0]["dq"][0]) for e in ("e2", "e1", "e3")]
    assert got == [2, 1, 3]
    assert cached.get_result("s1", "x1d")[1] == {"n": 1}
    assert store.queries == [("many", "crf/e1/7", "crf/e2/7", "crf/e3/7", "x1d")]  # one query, tiles left out
    with pytest.raises(KeyError):
        cached.get_result("s1", "crf/e9/7")


def test_the_associations_results_are_read_one_family_at_a_time() -> None:
    store = _CountingStore()
    store.put_result(ASSOCIATION_SOURCE, "asn", {}, {"asn_pool": "p"})
    for k in range(3):
        store.put_result(ASSOCIATION_SOURCE, f"exported/{k}", {}, {"k": k})
    cached = _CachedStore(store)
    assert cached.get_result(ASSOCIATION_SOURCE, "asn")[1] == {"asn_pool": "p"}
    assert cached.get_result(ASSOCIATION_SOURCE, "exported/1")[1] == {"k": 1}
    assert store.queries == [("many", "asn"), ("many", "exported/0", "exported/1", "exported/2")]


def test_the_outlier_flags_of_full_frames_are_read_one_at_a_time() -> None:
    """An IFU exposure's flagged DQ is a whole detector frame: read in one query, 24 MIRI frames held
    ~400 MB in the backend's buffers and their copies.  They are read as each _crf is written."""
    from dataclasses import replace

    from spec3c.testing.store import make_cutout, make_record

    store = _CountingStore()
    for exposure in ("e1", "e2"):
        record = replace(make_record(exposure), exp_type="MIR_MRS", model_type="IFUImageModel")
        store.commit_exposure(record, [make_cutout("1", exposure, "MIR_MRS")])
        store.put_result("1", f"crf/{exposure}/MIR_MRS", {"dq": np.full((4, 4), int(exposure[1]), np.uint32)}, {})
    store.put_result("1", "x1d", {"flux": np.ones(3)}, {"n": 1})
    cached = _CachedStore(store)
    assert cached.get_result("1", "x1d")[1] == {"n": 1}
    assert [int(cached.get_result("1", f"crf/{e}/MIR_MRS")[0]["dq"][0, 0]) for e in ("e2", "e1")] == [2, 1]
    assert store.queries == [("many", "x1d"), ("one", "crf/e2/MIR_MRS"), ("one", "crf/e1/MIR_MRS")]
