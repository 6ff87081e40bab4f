"""One contract every store backend passes (memory, TileDB, HDF5)."""

from __future__ import annotations

import numpy as np
import pytest

from spec3c.errors import StoreError
from spec3c.store import (
    CUTOUT_PLANES,
    SCHEMA_VERSION,
    Cutout,
    ExposureRecord,
    create_store,
    open_store,
)
from spec3c.store.memory import MemoryStore

BACKENDS = ["memory", "tiledb", "hdf5"]


class Harness:
    """Creates a store of one backend and re-opens it as a fresh reader."""

    def __init__(self, backend: str, tmp_path) -> None:
        self.backend = backend
        self.path = tmp_path / f"store-{backend}"
        self.store = MemoryStore() if backend == "memory" else create_store(self.path, backend)

    def reopen(self, mode: str = "r"):
        return self.store if self.backend == "memory" else open_store(self.path, mode)


@pytest.fixture(params=BACKENDS)
def harness(request, tmp_path) -> Harness:
    return Harness(request.param, tmp_path)


def make_record(name: str, role: str = "science", sha: str = "0" * 64) -> ExposureRecord:
    return ExposureRecord(
        name=name,
        filename=f"/data/{name}.fits",
        sha256=sha,
        role=role,
        exp_type="NRS_MSASPEC",
        model_type="MultiSlitModel",
        meta={"meta.exposure.exposure_time": 1000.5, "meta.instrument.name": "NIRSPEC"},
    )


def make_cutout(source: str, exposure: str, slit: str, shape=(5, 7), seed=0, optional=False) -> Cutout:
    rng = np.random.default_rng(seed)
    planes = {}
    for name, dtype in CUTOUT_PLANES.items():
        if dtype.kind == "u":
            planes[name] = rng.integers(0, 2**31, shape).astype(dtype)
        else:
            planes[name] = rng.normal(size=shape).astype(dtype)
    planes["sci"][0, 0] = np.nan
    planes["ra"] += 150.0
    if optional:
        planes["pathloss_point"] = np.full(shape, 0.8, np.float32)
    meta = {"source_id": int(seed), "source_type": "POINT", "xstart": 11, "name": slit}
    return Cutout(source, exposure, slit, meta, planes, wcs_asdf=b"#ASDF \x00\x01" + bytes([seed % 256]))


def assert_cutouts_equal(a: Cutout, b: Cutout) -> None:
    assert a.key == b.key
    assert a.meta == b.meta
    assert a.wcs_asdf == b.wcs_asdf
    assert set(a.planes) == set(b.planes)
    for name in a.planes:
        assert a.planes[name].dtype == b.planes[name].dtype, name
        np.testing.assert_array_equal(a.planes[name], b.planes[name], err_msg=name)


def test_new_store_is_empty(harness):
    s = harness.reopen()
    assert s.schema_version == SCHEMA_VERSION
    assert s.list_exposures() == []
    assert s.list_cutouts() == []
    assert s.sources() == []
    assert s.list_results() == []


def test_exposure_round_trip(harness):
    rec = make_record("jw1_cal")
    cut = make_cutout("src1", "jw1_cal", "S200A1", optional=True)
    harness.store.commit_exposure(rec, [cut])
    s = harness.reopen()
    assert s.list_exposures() == [rec]
    assert s.get_exposure("jw1_cal") == rec
    assert s.get_exposure("nope") is None
    [got] = s.read_cutouts("src1")
    assert_cutouts_equal(got, cut)


def test_big_endian_and_float64_inputs_are_stored_as_schema_dtype(harness):
    cut = make_cutout("a", "e1", "s1")
    cut.planes["sci"] = cut.planes["sci"].astype(">f8")
    harness.store.commit_exposure(make_record("e1"), [cut])
    [got] = harness.reopen().read_cutouts("a", ["sci"])
    assert got.planes["sci"].dtype == np.dtype("<f4")
    np.testing.assert_array_equal(got.planes["sci"], cut.planes["sci"].astype("<f4"))


def test_cutouts_grouped_by_source_across_exposures(harness):
    for k in range(3):
        name = f"e{k}"
        cuts = [make_cutout(src, name, f"slit{src}", shape=(4 + k, 9), seed=k) for src in ("a", "b")]
        harness.store.commit_exposure(make_record(name), cuts)
    s = harness.reopen()
    assert s.sources() == ["a", "b"]
    stack = s.source("a")
    assert stack.exposures == ["e0", "e1", "e2"]
    assert stack["sci"].shape == (3, 6, 9)
    assert np.isnan(stack["sci"][0, 4:, :]).all()  # padding of the smaller cutout
    np.testing.assert_array_equal(stack["ra"][2], s.read_cutouts("a")[2].planes["ra"])
    infos = s.list_cutouts("b")
    assert [(i.exposure, i.shape) for i in infos] == [("e0", (4, 9)), ("e1", (5, 9)), ("e2", (6, 9))]
    with pytest.raises(KeyError, match="no source"):
        s.source("zzz")


def test_plane_selection(harness):
    harness.store.commit_exposure(make_record("e1"), [make_cutout("a", "e1", "s")])
    [got] = harness.reopen().read_cutouts("a", ["wavelength", "dq"])
    assert set(got.planes) == {"wavelength", "dq"}


def test_recommit_replaces_and_drops_stale_cutouts(harness):
    harness.store.commit_exposure(make_record("e1", sha="1" * 64), [make_cutout("a", "e1", "s"), make_cutout("b", "e1", "t")])
    new = make_cutout("a", "e1", "s", seed=5)
    harness.store.commit_exposure(make_record("e1", sha="2" * 64), [new])
    s = harness.reopen()
    assert s.get_exposure("e1").sha256 == "2" * 64
    assert s.sources() == ["a"]
    assert_cutouts_equal(s.read_cutouts("a")[0], new)


def test_uncommitted_cutouts_are_invisible(harness):
    """Cutouts written without their exposure record (a killed ingest) are not seen."""
    store = harness.store
    store.commit_exposure(make_record("e1"), [make_cutout("a", "e1", "s")])
    store.delete_exposure("e1")
    assert harness.reopen().list_cutouts() == []
    assert harness.reopen().sources() == []


def test_delete_exposure(harness):
    for name in ("e1", "e2"):
        harness.store.commit_exposure(make_record(name), [make_cutout("a", name, "s")])
    harness.store.delete_exposure("e1")
    s = harness.reopen()
    assert [r.name for r in s.list_exposures()] == ["e2"]
    assert [c.exposure for c in s.read_cutouts("a")] == ["e2"]


def test_images(harness):
    img = np.arange(12, dtype=">f4").reshape(3, 4)
    harness.store.commit_exposure(make_record("e1"), [], images={"sci": img, "dq": np.ones((3, 4), np.uint32)})
    s = harness.reopen()
    assert s.list_images("e1") == ["dq", "sci"]
    np.testing.assert_array_equal(s.read_image("e1", "sci"), img)
    with pytest.raises(KeyError):
        s.read_image("e1", "err")
    with pytest.raises(KeyError):
        s.read_image("nope", "sci")
    both = s.read_images("e1")
    assert sorted(both) == ["dq", "sci"]
    np.testing.assert_array_equal(both["sci"], img)
    assert s.read_images("nope") == {}


def test_results_round_trip_and_delete(harness):
    store = harness.reopen("a") if harness.backend != "memory" else harness.store
    arrays = {"sci": np.ones((2, 3), np.float32), "wave": np.linspace(1, 2, 3), "n": np.array(3)}
    store.put_result("src/1", "s2d", arrays, {"status": "COMPLETE", "pixfrac": 1.0})
    store.put_result("src/1", "x1d", {"flux": np.zeros(4)}, {})
    store.put_result("other", "s2d", {}, {"status": "SKIPPED"})
    s = harness.reopen()
    assert s.list_results() == [("other", "s2d"), ("src/1", "s2d"), ("src/1", "x1d")]
    got, meta = s.get_result("src/1", "s2d")
    assert meta == {"status": "COMPLETE", "pixfrac": 1.0}
    for k, v in arrays.items():
        np.testing.assert_array_equal(got[k], v)
        assert got[k].dtype == v.dtype
    store.put_result("src/1", "s2d", {"sci": np.zeros(1)}, {"status": "FAILED"})
    assert harness.reopen().get_result("src/1", "s2d")[1] == {"status": "FAILED"}
    store.delete_results("src/1")
    assert harness.reopen().list_results() == [("other", "s2d")]
    with pytest.raises(KeyError):
        harness.reopen().get_result("src/1", "x1d")


def test_rejects_bad_cutouts(harness):
    bad = make_cutout("a", "e1", "s")
    del bad.planes["ra"]
    with pytest.raises(StoreError, match="missing planes"):
        harness.store.commit_exposure(make_record("e1"), [bad])
    other = make_cutout("a", "e2", "s")
    with pytest.raises(StoreError, match="does not belong"):
        harness.store.commit_exposure(make_record("e1"), [other])
    assert harness.reopen().list_exposures() == []


def test_keys_with_quotes_and_separators(harness):
    src = "it's a/b"
    harness.store.commit_exposure(make_record("e1"), [make_cutout(src, "e1", "S 1")])
    s = harness.reopen()
    assert s.sources() == [src]
    assert s.read_cutouts(src)[0].slit == "S 1"


def test_read_only_store_refuses_writes(harness):
    if harness.backend == "memory":
        pytest.skip("the memory store has no read-only mode")
    s = open_store(harness.path, "r")
    with pytest.raises(StoreError, match="read-only"):
        s.commit_exposure(make_record("e1"), [make_cutout("a", "e1", "s")])


def test_open_store_errors(tmp_path):
    with pytest.raises(StoreError, match="not a spec3c store"):
        open_store(tmp_path / "nothing")
    create_store(tmp_path / "t", "tiledb")
    with pytest.raises(StoreError, match="existing tiledb store"):
        create_store(tmp_path / "t", "hdf5")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(StoreError, match="not empty"):
        create_store(tmp_path / "busy", "hdf5")


def test_schema_version_mismatch(tmp_path):
    create_store(tmp_path / "s", "hdf5")
    (tmp_path / "s" / "spec3c-store.json").write_text('{"backend": "hdf5", "schema_version": 999}')
    with pytest.raises(StoreError, match="schema version 999"):
        open_store(tmp_path / "s")
