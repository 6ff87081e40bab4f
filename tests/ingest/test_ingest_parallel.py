"""Large members (IFU frames) read in worker processes: the same store as a serial ingest, and a
broken member still refused, by name, before anything is written."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from ifu_inputs import Scene, nirspec_set

import spec3c.ingest as ingest_module
from spec3c.errors import InputError
from spec3c.ingest import ingest
from spec3c.parallel import shared_executor
from spec3c.store import open_store


@pytest.fixture(scope="module")
def ifu_asn(tmp_path_factory):
    return nirspec_set(tmp_path_factory.mktemp("nrs"), Scene(flat=1.0, point_flux=5.0), n_dithers=2, nx=40).asn


@pytest.fixture(scope="module")
def pool():
    """Two worker processes both tests' ingests use (starting them is most of the time)."""
    with shared_executor(workers=2) as executor:
        yield executor


def _serial_executor(*args, **kwargs):  # noqa: ARG001 - executor_for's signature
    raise AssertionError("a serial ingest must not use an executor")


def test_parallel_reads_give_the_serial_store(ifu_asn, pool, tmp_path, monkeypatch):
    monkeypatch.setattr(ingest_module, "executor_for", _serial_executor)
    serial = ingest(ifu_asn, tmp_path / "serial", workers=1)
    monkeypatch.undo()
    monkeypatch.setattr(ingest_module, "PARALLEL_BYTES", 0)  # these small files are read in workers too
    parallel = ingest(ifu_asn, tmp_path / "parallel", workers=2)
    assert parallel.ingested == serial.ingested and len(serial.ingested) == 2
    a, b = open_store(tmp_path / "serial"), open_store(tmp_path / "parallel")
    assert [(e.name, e.sha256, e.meta) for e in a.list_exposures()] == \
           [(e.name, e.sha256, e.meta) for e in b.list_exposures()]
    for name in serial.ingested:
        frames_a, frames_b = a.read_images(name), b.read_images(name)
        assert sorted(frames_a) == sorted(frames_b)
        for plane, value in frames_a.items():
            np.testing.assert_array_equal(value, frames_b[plane], err_msg=f"{name} {plane}")
    for ca, cb in zip(a.read_cutouts("1"), b.read_cutouts("1"), strict=True):
        assert ca.key == cb.key and ca.meta == cb.meta


def test_a_broken_member_read_in_a_worker_is_refused_by_name(ifu_asn, pool, tmp_path, monkeypatch):
    folder = tmp_path / "asn"
    folder.mkdir()
    for path in ifu_asn.parent.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    broken = sorted(folder.glob("*_cal.fits"))[1]
    with fits.open(broken, mode="update") as hdul:
        hdul["SCI"].data[:] = np.nan
    monkeypatch.setattr(ingest_module, "PARALLEL_BYTES", 0)
    with pytest.raises(InputError, match=f"{broken.name}.*NaN everywhere"):
        ingest(folder / ifu_asn.name, tmp_path / "store", workers=2)
    assert not (tmp_path / "store").exists()


def test_members_are_read_by_the_workers_a_run_started_anyway(ifu_asn, pool, monkeypatch):
    """Inside spec3c run's shared executor, small members are read in its (otherwise idle) workers;
    outside one, below PARALLEL_BYTES, in this process."""
    import spec3c.parallel as parallel

    todo = ingest_module.plan_ingest(ingest_module.read_association(ifu_asn), None, False)
    assert sum(p.path.stat().st_size for p in todo) < ingest_module.PARALLEL_BYTES
    assert ingest_module._in_parallel(todo, 2, None)  # the module's pool fixture is a shared executor
    monkeypatch.setattr(parallel, "_SHARED", None)  # no shared executor open
    assert not ingest_module._in_parallel(todo, 2, None)


class _OrderedExecutor:
    """Runs the read jobs in this process and yields them in a chosen order, noting before each
    which exposures the store under construction has committed."""

    slots = 2

    def __init__(self, order, store_path, seen):  # type: ignore[no-untyped-def]
        self.order, self.store_path, self.seen = order, store_path, seen

    def __enter__(self):  # type: ignore[no-untyped-def]
        return self

    def __exit__(self, *exc):  # type: ignore[no-untyped-def]
        return None

    def completed(self, func, jobs):  # type: ignore[no-untyped-def]
        names = list(jobs)
        for k in self.order:
            with open_store(self.store_path) as store:
                self.seen.append(sorted(e.name for e in store.list_exposures()))
            yield names[k], True, func(names[k], *jobs[names[k]])


def test_a_new_store_commits_each_member_once_it_and_those_before_it_are_read(ifu_asn, tmp_path, monkeypatch):
    seen: list[list[str]] = []
    store_path = tmp_path / "store"
    monkeypatch.setattr(ingest_module, "executor_for",
                        lambda *a, **k: _OrderedExecutor([1, 0], store_path, seen))
    monkeypatch.setattr(ingest_module, "PARALLEL_BYTES", 0)
    report = ingest(ifu_asn, store_path, workers=2)
    first, second = report.ingested
    assert seen == [[], []]  # the second member read first waits for the first
    monkeypatch.setattr(ingest_module, "executor_for",
                        lambda *a, **k: _OrderedExecutor([0, 1], tmp_path / "store2", seen))
    seen.clear()
    ingest(ifu_asn, tmp_path / "store2", workers=2)
    assert seen == [[], [first]]  # committed while the second is read
    assert [e.name for e in open_store(tmp_path / "store2").list_exposures()] == [first, second]


def test_a_broken_member_leaves_an_empty_store_folder_empty(ifu_asn, pool, tmp_path, monkeypatch):
    folder = tmp_path / "asn"
    folder.mkdir()
    for path in ifu_asn.parent.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    with fits.open(sorted(folder.glob("*_cal.fits"))[1], mode="update") as hdul:
        hdul["SCI"].data[:] = np.nan
    monkeypatch.setattr(ingest_module, "PARALLEL_BYTES", 0)
    (tmp_path / "store").mkdir()
    with pytest.raises(InputError, match="NaN everywhere"):
        ingest(folder / ifu_asn.name, tmp_path / "store", workers=2)
    assert list((tmp_path / "store").iterdir()) == []
