"""The store contract: one test suite that every :class:`~spec3c.store.Store` backend passes.

A backend's test file subclasses :class:`StoreContract` and only says how to
make (and re-open) its store and which capability flags it declares::

    class TestHDF5Store(StoreContract):
        store_cls = HDF5Store
        capabilities = {"supports_images": True, "supports_concurrent_writes": True}

        def make_store(self, tmp_path):
            return create_store(tmp_path / "store", "hdf5")

Capability flags are asserted (the declared value must be the expected one)
and exercised (a backend that declares a capability passes its test).
"""

from __future__ import annotations

import multiprocessing
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from ..errors import StoreError
from ..store import CUTOUT_PLANES, SCHEMA_VERSION, Cutout, ExposureRecord, Store, open_store
from ..store.layout import MANIFEST

#: every capability flag of the Store ABC; each backend's test states all of them
CAPABILITIES = tuple(sorted(name for name in vars(Store) if name.startswith("supports_")))


def make_record(name: str, role: str = "science", sha: str = "0" * 64) -> ExposureRecord:
    """An exposure record with a little metadata."""
    return ExposureRecord(
        name=name,
        filename=f"/data/{name}.fits",
        sha256=sha,
        role=role,
        exp_type="TEST_MODE",
        model_type="MultiSlitModel",
        meta={"meta.exposure.exposure_time": 1000.5, "meta.instrument.name": "NIRSPEC"},
    )


def make_cutout(
    source: str,
    exposure: str,
    slit: str,
    shape: tuple[int, int] = (5, 7),
    seed: int = 0,
    optional: bool = False,
) -> Cutout:
    """A cutout with random planes of ``shape`` (a NaN in ``sci``), optionally a pathloss plane."""
    rng = np.random.default_rng(seed)
    planes: dict[str, np.ndarray] = {}
    for name, dtype in CUTOUT_PLANES.items():
        if dtype.kind == "u":
            planes[name] = rng.integers(0, 2**31, shape).astype(dtype)
        else:
            planes[name] = rng.normal(size=shape).astype(dtype)
    planes["sci"][0, 0] = np.nan
    planes["ra"] += 150.0
    if optional:
        planes["pathloss_point"] = np.full(shape, 0.8, np.float32)
    meta = {"source_id": seed, "source_type": "POINT", "xstart": 11, "name": slit}
    return Cutout(source, exposure, slit, meta, planes, wcs_asdf=b"#ASDF \x00\x01" + bytes([seed % 256]))


def assert_cutouts_equal(a: Cutout, b: Cutout) -> None:
    """Same key, metadata, gwcs bytes, plane names, dtypes and values (NaN == NaN)."""
    assert a.key == b.key
    assert a.meta == b.meta
    assert a.wcs_asdf == b.wcs_asdf
    assert set(a.planes) == set(b.planes)
    for name in a.planes:
        assert a.planes[name].dtype == b.planes[name].dtype, name
        np.testing.assert_array_equal(a.planes[name], b.planes[name], err_msg=name)


def write_results(path: str, source: str, n: int) -> None:
    """Open the store at ``path`` for appending and write ``n`` results of ``source``.

    Runs in a worker process of :meth:`StoreContract.test_concurrent_writes`.
    """
    with open_store(path, mode="a") as store:
        for k in range(n):
            store.put_result(source, f"r{k}", {"x": np.full(3, k)}, {"k": k, "source": source})


class StoreContract(ABC):
    """Tests every store backend passes; subclass once per backend.

    Subclasses set :attr:`store_cls` and :attr:`capabilities` and implement
    :meth:`make_store`; :meth:`reopen` opens a fresh handle on an on-disk
    store and is overridden by stores that have no path.
    """

    #: the backend class under test
    store_cls: ClassVar[type[Store]]
    #: the value every flag of :data:`CAPABILITIES` must have on that class
    capabilities: ClassVar[Mapping[str, bool]]

    @abstractmethod
    def make_store(self, tmp_path: Path) -> Store:
        """A new, empty, writable store (under ``tmp_path`` if it lives on disk)."""

    def reopen(self, store: Store, mode: str = "r") -> Store:
        """A fresh handle on ``store`` as another process would open it (``"r"`` or ``"a"``)."""
        assert store.path is not None, "stores without a path override reopen()"
        return open_store(store.path, mode)

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        s = self.make_store(tmp_path)
        yield s
        s.close()

    # -- identity and capabilities ------------------------------------------
    def test_store_class_and_backend(self, store: Store) -> None:
        assert type(store) is self.store_cls
        assert store.backend == self.store_cls.backend
        if store.path is not None:
            assert type(self.reopen(store)) is self.store_cls

    def test_capability_flags(self, store: Store) -> None:
        assert CAPABILITIES, "the Store ABC declares no capability flags"
        assert set(self.capabilities) == set(CAPABILITIES), "state every capability flag"
        declared = {name: getattr(type(store), name) for name in CAPABILITIES}
        assert declared == dict(self.capabilities)

    def test_concurrent_writes(self, store: Store) -> None:
        """Processes that open the store themselves write results of different sources at once."""
        if not store.supports_concurrent_writes:
            pytest.skip(f"{store.backend} store: no concurrent writes from several processes")
        assert store.path is not None
        sources = [f"src{i}" for i in range(4)]
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
            futures = [pool.submit(write_results, str(store.path), src, 5) for src in sources]
            for f in futures:
                f.result()
        s = self.reopen(store)
        assert s.list_results() == sorted((src, f"r{k}") for src in sources for k in range(5))
        arrays, meta = s.get_result("src3", "r4")
        assert meta == {"k": 4, "source": "src3"}
        np.testing.assert_array_equal(arrays["x"], np.full(3, 4))

    # -- exposures and cutouts ------------------------------------------------
    def test_new_store_is_empty(self, store: Store) -> None:
        s = self.reopen(store)
        assert s.schema_version == SCHEMA_VERSION
        assert s.list_exposures() == []
        assert s.list_cutouts() == []
        assert s.sources() == []
        assert s.list_results() == []

    def test_exposure_round_trip(self, store: Store) -> None:
        rec = make_record("jw1_cal")
        cut = make_cutout("src1", "jw1_cal", "S200A1", optional=True)
        store.commit_exposure(rec, [cut])
        s = self.reopen(store)
        assert s.list_exposures() == [rec]
        assert s.get_exposure("jw1_cal") == rec
        assert s.get_exposure("nope") is None
        [got] = s.read_cutouts("src1")
        assert_cutouts_equal(got, cut)

    def test_big_endian_and_float64_inputs_are_stored_as_schema_dtype(self, store: Store) -> None:
        cut = make_cutout("a", "e1", "s1")
        cut.planes["sci"] = cut.planes["sci"].astype(">f8")
        store.commit_exposure(make_record("e1"), [cut])
        [got] = self.reopen(store).read_cutouts("a", ["sci"])
        assert got.planes["sci"].dtype == np.dtype("<f4")
        np.testing.assert_array_equal(got.planes["sci"], cut.planes["sci"].astype("<f4"))

    def test_cutouts_grouped_by_source_across_exposures(self, store: Store) -> None:
        for k in range(3):
            name = f"e{k}"
            cuts = [make_cutout(src, name, f"slit{src}", shape=(4 + k, 9), seed=k) for src in ("a", "b")]
            store.commit_exposure(make_record(name), cuts)
        s = self.reopen(store)
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

    def test_exposures_committed_together(self, store: Store) -> None:
        """commit_exposures: the same store as one commit_exposure each; a bad exposure commits none."""
        cuts = {name: [make_cutout(src, name, f"slit{src}", shape=(4, 5 + k), seed=k) for src in ("a", "b")]
                for k, name in enumerate(("e0", "e1", "e2"))}
        store.commit_exposure(make_record("e2", sha="1" * 64), [make_cutout("c", "e2", "old")])  # replaced
        store.commit_exposures([(make_record(name), cuts[name], None) for name in cuts])
        s = self.reopen(store)
        assert [r.name for r in s.list_exposures()] == ["e0", "e1", "e2"]
        assert s.get_exposure("e2").sha256 == "0" * 64  # type: ignore[union-attr]
        assert s.sources() == ["a", "b"]  # e2's old cutout is gone
        for src in ("a", "b"):
            got = s.read_cutouts(src)
            assert [c.exposure for c in got] == ["e0", "e1", "e2"]
            for c, want in zip(got, [cuts[n][0 if src == "a" else 1] for n in cuts], strict=True):
                assert_cutouts_equal(c, want)
        bad = make_cutout("a", "e4", "s")
        del bad.planes["ra"]
        with pytest.raises(StoreError, match="missing planes"):
            store.commit_exposures([(make_record("e3"), [make_cutout("a", "e3", "s")], None),
                                    (make_record("e4"), [bad], None)])
        assert [r.name for r in self.reopen(store).list_exposures()] == ["e0", "e1", "e2"]

    def test_plane_selection(self, store: Store) -> None:
        store.commit_exposure(make_record("e1"), [make_cutout("a", "e1", "s")])
        [got] = self.reopen(store).read_cutouts("a", ["wavelength", "dq"])
        assert set(got.planes) == {"wavelength", "dq"}

    def test_recommit_replaces_and_drops_stale_cutouts(self, store: Store) -> None:
        old = [make_cutout("a", "e1", "s"), make_cutout("b", "e1", "t")]
        store.commit_exposure(make_record("e1", sha="1" * 64), old)
        new = make_cutout("a", "e1", "s", seed=5)
        store.commit_exposure(make_record("e1", sha="2" * 64), [new])
        s = self.reopen(store)
        rec = s.get_exposure("e1")
        assert rec is not None and rec.sha256 == "2" * 64
        assert s.sources() == ["a"]
        assert_cutouts_equal(s.read_cutouts("a")[0], new)

    def test_uncommitted_cutouts_are_invisible(self, store: Store) -> None:
        """Cutouts written without their exposure record (a killed ingest) are not seen."""
        store.commit_exposure(make_record("e1"), [make_cutout("a", "e1", "s")])
        store.delete_exposure("e1")
        assert self.reopen(store).list_cutouts() == []
        assert self.reopen(store).sources() == []

    def test_delete_exposure(self, store: Store) -> None:
        for name in ("e1", "e2"):
            store.commit_exposure(make_record(name), [make_cutout("a", name, "s")])
        store.delete_exposure("e1")
        s = self.reopen(store)
        assert [r.name for r in s.list_exposures()] == ["e2"]
        assert [c.exposure for c in s.read_cutouts("a")] == ["e2"]

    def test_rejects_bad_cutouts(self, store: Store) -> None:
        bad = make_cutout("a", "e1", "s")
        del bad.planes["ra"]
        with pytest.raises(StoreError, match="missing planes"):
            store.commit_exposure(make_record("e1"), [bad])
        other = make_cutout("a", "e2", "s")
        with pytest.raises(StoreError, match="does not belong"):
            store.commit_exposure(make_record("e1"), [other])
        assert self.reopen(store).list_exposures() == []

    def test_keys_with_quotes_and_separators(self, store: Store) -> None:
        src = "it's a/b"
        store.commit_exposure(make_record("e1"), [make_cutout(src, "e1", "S 1")])
        s = self.reopen(store)
        assert s.sources() == [src]
        assert s.read_cutouts(src)[0].slit == "S 1"

    # -- images ---------------------------------------------------------------
    def test_images(self, store: Store) -> None:
        img = np.arange(12, dtype=">f4").reshape(3, 4)
        images = {"sci": img, "dq": np.ones((3, 4), np.uint32)}
        if not store.supports_images:
            with pytest.raises(StoreError):
                store.commit_exposure(make_record("e1"), [], images=images)
            return
        store.commit_exposure(make_record("e1"), [], images=images)
        s = self.reopen(store)
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

    def test_exposures_with_images_committed_together(self, store: Store) -> None:
        """commit_exposures with images: spectra (1-D) and, in a second batch, full frames (2-D)."""
        if not store.supports_images:
            return
        spectra = {f"b{k}": {"wavelength": np.linspace(1, 2, 5 + k), "flux": np.arange(5.0 + k)} for k in range(2)}
        store.commit_exposures([(make_record("s0"), [make_cutout("a", "s0", "s")], None),
                                *[(make_record(n, role="background"), [], spectra[n]) for n in spectra]])
        frames = {f"f{k}": {"sci": np.full((3, 4), k, np.float32), "wave": np.arange(4.0)} for k in range(2)}
        store.commit_exposures([(make_record(n), [], frames[n]) for n in frames])
        s = self.reopen(store)
        assert [r.name for r in s.list_exposures()] == ["b0", "b1", "f0", "f1", "s0"]
        for name, images in {**spectra, **frames}.items():
            assert s.list_images(name) == sorted(images)
            got = s.read_images(name)
            for plane, array in images.items():
                np.testing.assert_array_equal(got[plane], array)
        assert [c.exposure for c in s.read_cutouts("a")] == ["s0"]

    def test_full_frames_mixed_with_other_planes(self, store: Store) -> None:
        """IFU exposures: many full-frame planes of several dtypes beside 1-D and smaller planes;
        a re-commit replaces them all, a delete removes them."""
        if not store.supports_images:
            pytest.skip("backend without images")
        rng = np.random.default_rng(2)
        frames: dict[str, np.ndarray] = {"sci": rng.normal(size=(70, 530)).astype(">f4"), "dq": rng.integers(0, 9, (70, 530)).astype(np.uint32),
                  "ra": rng.normal(size=(70, 530)), "slice": rng.integers(0, 40, (70, 530)).astype(np.int16),
                  "dec.x": np.full((70, 530), np.nan)}
        others: dict[str, np.ndarray] = {"spec0.wavelength": np.linspace(1, 2, 9), "small": np.ones((2, 3), np.float32)}
        store.commit_exposure(make_record("e1"), [], images={**frames, **others})
        store.commit_exposure(make_record("e2"), [], images={"sci": np.zeros((4, 4), np.float32)})
        s = self.reopen(store)
        got = s.read_images("e1")
        assert sorted(got) == sorted({**frames, **others})
        for name, value in {**frames, **others}.items():
            np.testing.assert_array_equal(got[name], value)
            assert got[name].dtype.newbyteorder("=") == value.dtype.newbyteorder("=")
        np.testing.assert_array_equal(s.read_image("e1", "slice"), frames["slice"])
        some = s.read_images("e1", planes=["dq", "spec0.wavelength", "absent"])
        assert sorted(some) == ["dq", "spec0.wavelength"]
        some["dq"][0, 0] = 99  # planes read are the caller's to change
        np.testing.assert_array_equal(some["spec0.wavelength"], others["spec0.wavelength"])
        changed = {**frames, "sci": frames["sci"] + 1}
        del changed["ra"]
        store.commit_exposure(make_record("e1"), [], images=changed)
        s = self.reopen(store)
        assert s.list_images("e1") == sorted(changed)
        np.testing.assert_array_equal(s.read_images("e1")["sci"], changed["sci"])
        np.testing.assert_array_equal(s.read_image("e2", "sci"), np.zeros((4, 4)))
        store.delete_exposure("e1")
        s = self.reopen(store)
        assert s.read_images("e1") == {} and s.list_images("e1") == []
        assert s.list_images("e2") == ["sci"]

    def test_stacks_of_frames(self, store: Store) -> None:
        """SOSS exposures: (nints, ny, nx) cubes, beside a smaller frame; read back whole and re-committed."""
        if not store.supports_images:
            pytest.skip("backend without images")
        rng = np.random.default_rng(3)
        cubes: dict[str, np.ndarray] = {"sci": rng.normal(size=(5, 70, 530)).astype(np.float32),
                                        "dq": rng.integers(0, 9, (5, 70, 530)).astype(np.uint32)}
        small = {"map": rng.normal(size=(70, 530))}
        store.commit_exposure(make_record("e1"), [], images={**cubes, **small})
        s = self.reopen(store)
        got = s.read_images("e1")
        assert sorted(got) == ["dq", "map", "sci"]
        for name, value in {**cubes, **small}.items():
            np.testing.assert_array_equal(got[name], value)
            assert got[name].shape == value.shape and got[name].dtype == value.dtype
        np.testing.assert_array_equal(s.read_image("e1", "dq"), cubes["dq"])
        store.commit_exposure(make_record("e1"), [], images={"sci": cubes["sci"][:2] + 1})
        s = self.reopen(store)
        assert s.list_images("e1") == ["sci"]
        np.testing.assert_array_equal(s.read_images("e1")["sci"], cubes["sci"][:2] + 1)

    # -- results --------------------------------------------------------------
    def test_results_round_trip_and_delete(self, store: Store) -> None:
        writer = self.reopen(store, "a")
        arrays: dict[str, np.ndarray] = {
            "sci": np.ones((2, 3), np.float32),
            "wave": np.linspace(1, 2, 3),
            "n": np.array(3),
        }
        writer.put_result("src/1", "s2d", arrays, {"status": "COMPLETE", "pixfrac": 1.0})
        writer.put_result("src/1", "x1d", {"flux": np.zeros(4)}, {})
        writer.put_result("other", "s2d", {}, {"status": "SKIPPED"})
        s = self.reopen(store)
        assert s.list_results() == [("other", "s2d"), ("src/1", "s2d"), ("src/1", "x1d")]
        got, meta = s.get_result("src/1", "s2d")
        assert meta == {"status": "COMPLETE", "pixfrac": 1.0}
        for k, v in arrays.items():
            np.testing.assert_array_equal(got[k], v)
            assert got[k].dtype == v.dtype
        writer.put_result("src/1", "s2d", {"sci": np.zeros(1)}, {"status": "FAILED"})
        assert self.reopen(store).get_result("src/1", "s2d")[1] == {"status": "FAILED"}
        writer.delete_results("src/1")
        assert self.reopen(store).list_results() == [("other", "s2d")]
        with pytest.raises(KeyError):
            self.reopen(store).get_result("src/1", "x1d")

    def test_result_as_read_is_what_a_read_returns(self, store: Store) -> None:
        """A backend that says what a read of a result returns (for exports made without reading
        results back) says exactly that: the same keys, values, dtypes and metadata."""
        arrays = {"sci": np.arange(6, dtype=">f4").reshape(2, 3), "wave": np.linspace(1, 2, 3), "n": np.array(3),
                  "dq": np.array([1, 2**31], np.uint32), "empty": np.zeros((0, 4))}
        meta = {"status": "COMPLETE", "shape": (2, 3), "nested": {"a": [1.5, None]}, "n": np.int64(4)}
        predicted = store.result_as_read(arrays, meta)
        if predicted is None:
            pytest.skip(f"{self.store_cls.__name__} does not say what a read returns")
        writer = self.reopen(store, "a")
        writer.put_result("src", "s2d", arrays, meta)
        got, got_meta = self.reopen(store).get_result("src", "s2d")
        assert predicted[1] == got_meta
        assert list(predicted[0]) == list(got)
        for key, value in got.items():
            assert predicted[0][key].dtype == value.dtype and predicted[0][key].shape == value.shape
            np.testing.assert_array_equal(predicted[0][key], value)

    def test_results_of_one_source_read_together(self, store: Store) -> None:
        writer = self.reopen(store, "a")
        for exposure in ("e1", "e2", "e3"):
            writer.put_result("s1", f"crf/{exposure}/7", {"dq": np.full(4, len(exposure), np.uint32)}, {"e": exposure})
        writer.put_result("s2", "crf/e1/7", {"dq": np.zeros(4, np.uint32)}, {"e": "other source"})
        s = self.reopen(store)
        got = s.get_results_of("s1", ["crf/e3/7", "crf/e1/7", "crf/missing/7"])
        assert sorted(got) == ["crf/e1/7", "crf/e3/7"]
        for key in got:
            assert got[key][1] == s.get_result("s1", key)[1]
            np.testing.assert_array_equal(got[key][0]["dq"], s.get_result("s1", key)[0]["dq"])
        assert s.get_results_of("s1", []) == {}

    # -- on-disk stores -------------------------------------------------------
    def test_read_only_store_refuses_writes(self, store: Store) -> None:
        if store.path is None:
            pytest.skip(f"{store.backend} store: no path, so no read-only handle")
        s = self.reopen(store, "r")
        with pytest.raises(StoreError, match="read-only"):
            s.commit_exposure(make_record("e1"), [make_cutout("a", "e1", "s")])
        with pytest.raises(StoreError, match="read-only"):
            s.put_result("a", "s2d", {}, {})
        assert self.reopen(store).list_exposures() == []

    def test_schema_version_mismatch(self, store: Store) -> None:
        if store.path is None:
            pytest.skip(f"{store.backend} store: no path, so no manifest")
        manifest = store.path / MANIFEST
        manifest.write_text(f'{{"backend": "{store.backend}", "schema_version": 999}}')
        with pytest.raises(StoreError, match="schema version 999"):
            self.reopen(store)
