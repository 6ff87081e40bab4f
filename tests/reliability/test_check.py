"""``spec3c check``: committed content complete and readable, leftovers of interrupted writes found
and removed (by ``--repair`` or the next writer, never under a live writer)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from spec3c.check import check_store, store_writer
from spec3c.cli import main
from spec3c.errors import StoreError
from spec3c.ingest import ingest
from spec3c.ingest.reader import read_exposure
from spec3c.store import open_store


@pytest.fixture
def store(fs_output, tmp_path) -> Path:
    """A copy of a finished run's (TileDB) store."""
    return Path(shutil.copytree(fs_output / "spec3c.store", tmp_path / "store"))


def test_a_finished_store_is_ok(store):
    report = check_store(store)
    assert report.ok, report.summary()
    assert (report.exposures, report.cutouts, report.sources_complete) == (2, 6, 3)
    res = CliRunner().invoke(main, ["check", str(store)])
    assert res.exit_code == 0 and res.output.strip().endswith("ok")


def _uncommitted_cells(store: Path, fs_input: Path) -> str:
    """Cutouts of an exposure written without its record, as an ingest killed before its commit leaves."""
    cal = sorted(fs_input.glob("*_cal.fits"))[0]
    data = read_exposure(cal, "science")
    renamed = "jw_never_committed_cal"
    for c in data.cutouts:
        c.exposure = renamed
    with open_store(store, mode="a") as st:
        st._write_cutouts(data.cutouts)  # type: ignore[attr-defined]  # the backend's first write, alone
    return renamed


def test_orphan_cells_found_and_repaired(store, fs_input):
    name = _uncommitted_cells(store, fs_input)
    with open_store(store) as st:
        assert name not in {i.exposure for i in st.list_cutouts()}  # invisible to readers
    report = check_store(store)
    assert not report.ok and [item.exposure for item in report.leftovers] == [name]
    res = CliRunner().invoke(main, ["check", str(store)])
    assert res.exit_code == 1 and "never committed" in res.output and "--repair" in res.output
    res = CliRunner().invoke(main, ["check", str(store), "--repair"])
    assert res.exit_code == 0, res.output
    assert "removed" in res.output
    assert check_store(store).ok


def test_uncommitted_fragment_and_temporary_files(store):
    fragments = store / "results" / "__fragments"
    first = next(fragments.iterdir())
    orphan = fragments / ("__1_1_" + "0" * 32 + "_22")
    shutil.copytree(first, orphan)  # a fragment without its commit file
    tmp = store / ".something.12345.tmp"
    tmp.write_bytes(b"partial")
    report = check_store(store)
    assert {item.path for item in report.leftovers} == {orphan, tmp}
    with store_writer(store) as removed:  # the next writer cleans up first
        assert {item.path for item in removed} == {orphan, tmp}
    assert not orphan.exists() and not tmp.exists()
    assert check_store(store).ok


HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from spec3c.check import store_writer
    with store_writer(sys.argv[1], clean=False):
        print("locked", flush=True)
        time.sleep(60)
""")


def test_leftovers_of_a_live_writer_are_not_touched(store):
    tmp = store / ".exposure.999.tmp"
    tmp.write_bytes(b"being written")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(store)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        report = check_store(store)
        assert report.writer_active and report.ok and "not judged" in report.summary()
        with pytest.raises(StoreError, match="another spec3c process is writing"):
            check_store(store, repair=True)
        with store_writer(store) as removed:
            assert removed == []
        assert tmp.exists()
    finally:
        holder.kill()
        holder.wait()
    assert not check_store(store).ok
    assert check_store(store, repair=True).ok and not tmp.exists()


def test_missing_and_unreadable_results(fs_input, tmp_path):
    """HDF5 (one file per result): a result deleted or damaged after its status was written."""
    store = tmp_path / "h5"
    ingest(next(fs_input.glob("*_asn.json")), store, backend="hdf5")
    res = CliRunner().invoke(main, ["process", str(store), "--workers", "1", "--skip", "extract_1d"])
    assert res.exit_code == 0, res.output
    assert check_store(store).ok
    s2d = sorted((store / "results").glob("*/s2d.h5"))
    s2d[0].unlink()
    s2d[1].write_bytes(b"not hdf5")
    report = check_store(store)
    messages = [str(p) for p in report.problems]
    assert len(messages) == 3, messages  # the unreadable one, and both sources' missing s2d
    assert any("cannot be read back" in m for m in messages)
    assert sum("resample_spec is COMPLETE but its 's2d' result is missing" in m for m in messages) == 2
