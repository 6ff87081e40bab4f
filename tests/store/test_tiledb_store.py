"""The TileDB store passes the store contract."""

from __future__ import annotations

from pathlib import Path

from spec3c.store import Store, create_store
from spec3c.store.tiledb_store import TileDBStore
from spec3c.testing.store import StoreContract


class TestTileDBStore(StoreContract):
    store_cls = TileDBStore
    capabilities = {"supports_images": True, "supports_concurrent_writes": True}

    def make_store(self, tmp_path: Path) -> Store:
        return create_store(tmp_path / "store.tdb", "tiledb")


def test_creation_killed_mid_array_is_redone(tmp_path, monkeypatch):
    """A kill while TileDB writes an array's schema (found by ``make soak``) must not leave a
    half-written array under its name: the next open creates it whole."""
    import tiledb

    real_create = tiledb.Array.create

    def dies_on_images(uri, schema, **kwargs):
        real_create(uri, schema, **kwargs)
        if "images" in str(uri):  # the schema is on disk, the process dies before anything else
            for f in (p for p in Path(uri, "__schema").iterdir() if p.is_file()):
                f.write_bytes(f.read_bytes()[:52])  # what the soak trial left: a truncated schema
            raise KeyboardInterrupt

    monkeypatch.setattr(tiledb.Array, "create", dies_on_images)
    path = tmp_path / "store.tdb"
    try:
        create_store(path, "tiledb")
    except KeyboardInterrupt:
        pass
    assert not (path / "images").exists()
    monkeypatch.setattr(tiledb.Array, "create", real_create)
    with TileDBStore(path, "w") as store:
        assert store.read_images("nothing") == {}
    assert not list(path.glob(".*.creating"))


def test_results_larger_than_the_consolidation_buffers_are_consolidated(tmp_path):
    """An IFU cube result (tens of MB in one cell) once made libtiledb's consolidation 'read 0 cells'
    under the small default budget: consolidate() must merge such fragments without a warning."""
    import warnings

    import numpy as np

    from spec3c.store import open_store

    path = tmp_path / "store.tdb"
    create_store(path, "tiledb").close()
    cube = np.arange(40 * 40 * 4000, dtype=np.float32).reshape(4000, 40, 40)  # 25 MB per plane
    with open_store(path, mode="w") as store:
        for key in ("cube/a", "cube/b", "cube/a"):  # three fragments, one cell superseded: merged
            store.put_result("1", key, {"sci": cube, "err": cube, "wmap": cube}, {"n": 1})
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            store.consolidate()
        arrays, meta = store.get_result("1", "cube/b")
    np.testing.assert_array_equal(arrays["wmap"], cube)
    assert meta == {"n": 1}
    assert len([p for p in (path / "results" / "__fragments").iterdir()]) == 1


def test_reads_do_not_use_the_asynchronous_tile_merge(tmp_path):
    """libtiledb 2.30 crashed a CI worker (SIGSEGV in ``MergeUnit::~MergeUnit``, the asynchronous
    tile merge of the sparse global-order reader) while reading the cutouts after a re-commit:
    every context the store reads through has that merge switched off, and reads stay correct."""
    from spec3c.testing.store import assert_cutouts_equal, make_cutout, make_record

    store = TileDBStore(tmp_path / "store.tdb", mode="w")
    assert store.ctx.config()["sm.query.sparse_global_order.preprocess_tile_merge"] == "0"
    for seed in range(3):  # several fragments and a delete condition: the reads the merge served
        store.commit_exposure(make_record("e1", sha=str(seed) * 64), [make_cutout("a", "e1", "s", seed=seed)])
    reader = TileDBStore(tmp_path / "store.tdb")
    assert reader.ctx.config()["sm.query.sparse_global_order.preprocess_tile_merge"] == "0"
    [got] = reader.read_cutouts("a")
    assert_cutouts_equal(got, make_cutout("a", "e1", "s", seed=2))


_IGNORED_SIGINT_SCRIPT = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)  # as for a job started with & in a script
from spec3c.store import create_store
store = create_store(sys.argv[1], "tiledb")
assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
os.kill(os.getpid(), signal.SIGINT)
time.sleep(0.2)
print("still running")
"""


def test_ctrl_c_ignored_before_opening_a_store_stays_ignored(tmp_path):
    """libtiledb's first context installs a SIGINT handler that calls the previous one; an ignored
    SIGINT (a background job's) made it call SIG_IGN's address and crash with SIGSEGV."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _IGNORED_SIGINT_SCRIPT, str(tmp_path / "store.tdb")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "still running" in done.stdout


def test_an_exposures_cutouts_are_written_in_bounded_batches(tmp_path, monkeypatch):
    """An exposure's cutouts go to TileDB in writes of at most _WRITE_BYTES of planes each (a write
    holds about twice its cells): several fragments, read back whole."""
    import spec3c.store.tiledb_store as tdb
    from spec3c.testing.store import assert_cutouts_equal, make_cutout, make_record

    cutouts = [make_cutout(str(k), "e1", "1", shape=(20, 30), seed=k) for k in range(7)]
    one = sum(a.nbytes for a in cutouts[0].planes.values())
    monkeypatch.setattr(tdb, "_WRITE_BYTES", 2 * one + 1)  # 2 cutouts per write: 4 writes
    writes = []
    real_cells = tdb._cutout_cells
    monkeypatch.setattr(tdb, "_cutout_cells", lambda batch: writes.append(len(batch)) or real_cells(batch))
    with TileDBStore(tmp_path / "s.tdb", "w") as store:
        store.commit_exposure(make_record("e1"), cutouts)
        assert writes == [2, 2, 2, 1]
        assert len(list((tmp_path / "s.tdb" / "cutouts" / "__fragments").iterdir())) == 4
        for c in cutouts:
            assert_cutouts_equal(store.read_cutouts(c.source)[0], c)
        store.consolidate()
        assert [c.key for c in store.read_cutouts_of([c.source for c in cutouts])["3"]] == [cutouts[3].key]


def _fragments(path: Path, array: str) -> int:
    return len(list((path / array / "__fragments").iterdir()))


def test_cutouts_written_in_key_order_are_merged_only_once_some_are_superseded(tmp_path, monkeypatch):
    """Each write holds a contiguous run of sources (the exposure's cutouts sorted by key), so
    consolidate() leaves a fresh store's cutout fragments as they are; once an exposure is ingested
    again (its old cells overwritten or deleted) it merges them."""
    import spec3c.store.tiledb_store as tdb
    from spec3c.testing.store import assert_cutouts_equal, make_cutout, make_record

    writes = []
    real_cells = tdb._cutout_cells
    monkeypatch.setattr(tdb, "_cutout_cells", lambda batch: writes.append([c.source for c in batch]) or real_cells(batch))
    cutouts = {e: [make_cutout(s, e, "1", shape=(20, 30), seed=int(s)) for s in ("7", "3", "9", "1")]
               for e in ("e1", "e2")}
    one = sum(a.nbytes for a in cutouts["e1"][0].planes.values())
    monkeypatch.setattr(tdb, "_WRITE_BYTES", 2 * one + 1)
    path = tmp_path / "s.tdb"
    with TileDBStore(path, "w") as store:
        for e in ("e1", "e2"):
            store.commit_exposure(make_record(e), cutouts[e])
        assert writes == [["1", "3"], ["7", "9"]] * 2
        store.consolidate()
        assert _fragments(path, "cutouts") == 4
        store.commit_exposure(make_record("e2"), cutouts["e2"][:2])  # ingested again, with fewer slits
        store.consolidate()
        assert _fragments(path, "cutouts") == 1
        assert [c.exposure for c in store.read_cutouts("1")] == ["e1"]
        for c in (*cutouts["e1"], *cutouts["e2"][:2]):
            assert_cutouts_equal(next(x for x in store.read_cutouts(c.source) if x.exposure == c.exposure), c)


def test_results_are_merged_only_once_some_are_superseded(tmp_path):
    """A fresh store's result fragments are left as written (merging an IFU association's cubes
    rewrote ~450 MB: 5.6 s of a MIRI MRS process); once results are replaced or deleted they are
    merged, and reads return the live results either way."""
    import numpy as np

    path = tmp_path / "s.tdb"
    with TileDBStore(path, "w") as store:
        for source in ("1", "2", "3"):
            store.put_result(source, "x1d", {"flux": np.full(5, float(source))}, {"n": source})
        store.consolidate()
        assert _fragments(path, "results") == 3
        store.put_result("2", "x1d", {"flux": np.zeros(5)}, {"n": "again"})  # process --force
        store.delete_result("3", "x1d")
        store.consolidate()
        assert _fragments(path, "results") == 1
        assert store.list_results() == [("1", "x1d"), ("2", "x1d")]
        arrays, meta = store.get_result("2", "x1d")
        assert meta == {"n": "again"} and not arrays["flux"].any()
        assert store.get_result("1", "x1d")[0]["flux"].tolist() == [1.0] * 5


def test_a_few_superseded_results_are_not_worth_a_merge(tmp_path):
    """One result replaced among many (the x1d spectral_leak corrects after extract_1d wrote it) leaves
    the fragments as they are: merging would rewrite every cell (an MRS association's cubes: 2.6 s and
    ~500 MB); once more than a tenth of the cells are superseded they are merged."""
    import numpy as np

    path = tmp_path / "s.tdb"
    with TileDBStore(path, "w") as store:
        for chunk in range(3):
            store.put_results((str(s), "x1d", {"flux": np.full(5, float(s))}, {}) for s in range(chunk * 10, chunk * 10 + 10))
        store.put_result("4", "x1d", {"flux": np.zeros(5)}, {"corrected": True})
        store.consolidate()
        assert _fragments(path, "results") == 4  # 1 of 31 cells superseded
        assert store.get_result("4", "x1d")[1] == {"corrected": True}
        store.put_results((str(s), "x1d", {"flux": np.ones(5)}, {}) for s in range(20, 25))
        store.consolidate()
        assert _fragments(path, "results") == 1  # 6 of 36
        assert store.get_result("4", "x1d")[1] == {"corrected": True}
        assert store.get_result("21", "x1d")[0]["flux"].tolist() == [1.0] * 5
        assert len(store.list_results()) == 30


def test_lazy_cutouts_are_committed_one_at_a_time(tmp_path):
    """A LazyCutouts exposure (a staging file's) is loaded cutout by cutout while it is written, and
    gives the store what the list gives."""
    from spec3c.store.records import LazyCutouts
    from spec3c.testing.store import assert_cutouts_equal, make_cutout, make_record

    cutouts = [make_cutout(str(k), "e1", "1", shape=(20, 30), seed=k) for k in range(5)]

    class Counted(LazyCutouts):
        loads: list[int] = []

        def load(self, index):
            self.loads.append(index)
            return cutouts[index]

    lazy = Counted([c.key for c in cutouts])
    with TileDBStore(tmp_path / "s.tdb", "w") as store:
        store.commit_exposure(make_record("e1"), lazy)
        assert sorted(lazy.loads) == list(range(5))  # each once
        for c in cutouts:
            assert_cutouts_equal(store.read_cutouts(c.source)[0], c)


def _frames_of(seed: int) -> dict:
    import numpy as np

    rng = np.random.default_rng(seed)
    return {"sci": rng.normal(size=(70, 600)).astype(np.float32), "dq": rng.integers(0, 9, (70, 600)).astype(np.uint32),
            "spectrum": rng.normal(size=7)}


def test_frames_written_beforehand_are_committed_as_the_exposures_images(tmp_path):
    """An ingest worker writes a member's frames into the new store; the commit only names them, and
    replaces an earlier array of the exposure."""
    import numpy as np
    import pytest

    from spec3c.errors import StoreError
    from spec3c.store.tiledb_store import write_frames_beforehand
    from spec3c.testing.store import make_record

    store = create_store(tmp_path / "store", "tiledb")
    store.commit_exposures([(make_record("e1"), [], _frames_of(0))])  # an earlier ingest of e1
    images = _frames_of(1)
    written, rest = write_frames_beforehand(tmp_path / "store", "e1", images)
    assert written is not None and set(written.planes) == {"sci", "dq"} and set(rest) == {"spectrum"}
    assert store.read_images("e1")["sci"][0, 0] == _frames_of(0)["sci"][0, 0]  # not seen before the commit
    with pytest.raises(StoreError, match="not committed"):
        store.commit_exposures([(make_record("e2"), [], {})], written={"e1": written})
    store.commit_exposures([(make_record("e1"), [], rest)], written={"e1": written})
    got = store.read_images("e1")
    assert sorted(got) == sorted(images)
    for name, value in images.items():
        np.testing.assert_array_equal(got[name], value)
    assert [p.name for p in (tmp_path / "store" / "frames").iterdir()] == [written.folder]
    store.close()


def test_frames_written_beforehand_must_exist_and_need_a_backend_that_takes_them(tmp_path):
    import pytest

    from spec3c.errors import StoreError
    from spec3c.store.records import WrittenFrames
    from spec3c.testing.store import make_record

    missing = WrittenFrames("e1.000000000000", {"sci": ("p0", (70, 600), "<f4")})
    store = create_store(tmp_path / "store", "tiledb")
    with pytest.raises(StoreError, match="not in"):
        store.commit_exposures([(make_record("e1"), [], {})], written={"e1": missing})
    assert store.list_exposures() == []
    hdf5 = create_store(tmp_path / "store.h5", "hdf5")
    with pytest.raises(StoreError, match="does not take frames written beforehand"):
        hdf5.commit_exposures([(make_record("e1"), [], {})], written={"e1": missing})
    store.close()
    hdf5.close()
