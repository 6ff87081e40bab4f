"""spec3c ingest on simulated data: coordinates, atomicity, idempotence."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from spec3c.cli import main
from spec3c.errors import InputError
from spec3c.ingest import ingest
from spec3c.simulate import SimOptions, simulate
from spec3c.store import open_store


@pytest.fixture(scope="module")
def mos(tmp_path_factory):
    out = tmp_path_factory.mktemp("mos")
    return simulate("nirspec-mos", out, SimOptions(seed=3, n_sources=6, n_exposures=3, n_columns=160))


@pytest.fixture(scope="module")
def fs(tmp_path_factory):
    out = tmp_path_factory.mktemp("fs")
    return simulate("nirspec-fs", out, SimOptions(seed=4, n_exposures=2, n_columns=160))


def _open_cal(path):
    from stdatamodels.jwst import datamodels

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return datamodels.open(path)


def _wcs_tree(blob: bytes) -> bytes:
    """The ASDF bytes from the ``wcs:`` tree on (the history lists extensions in use order)."""
    return blob[blob.index(b"\nwcs: "):]


def assert_stores_equal(path_a, path_b):
    a, b = open_store(path_a), open_store(path_b)
    assert a.list_exposures() == b.list_exposures()
    assert a.list_cutouts() == b.list_cutouts()
    for src in a.sources():
        for ca, cb in zip(a.read_cutouts(src), b.read_cutouts(src), strict=True):
            assert ca.key == cb.key and ca.meta == cb.meta
            assert _wcs_tree(ca.wcs_asdf) == _wcs_tree(cb.wcs_asdf)
            for plane in ca.planes:
                np.testing.assert_array_equal(ca.planes[plane], cb.planes[plane])


@pytest.mark.parametrize("backend", ["tiledb", "hdf5"])
def test_store_coordinates_equal_direct_gwcs(mos, tmp_path, backend):
    report = ingest(mos.asn_path, tmp_path / "s", backend=backend)
    assert len(report.ingested) == 3
    store = open_store(tmp_path / "s")
    checked = 0
    for cal in mos.cal_paths:
        with _open_cal(cal) as model:
            name = cal.name[: -len(".fits")]
            for slit in model.slits:
                key = slit.source_name if (slit.source_name or "").strip() else str(slit.source_id)
                [cut] = [c for c in store.read_cutouts(key) if c.exposure == name and c.slit == slit.name]
                y, x = np.indices(slit.data.shape)
                ra, dec, lam = slit.meta.wcs(x, y)
                np.testing.assert_allclose(cut.planes["ra"], ra, atol=1e-9, rtol=0)
                np.testing.assert_allclose(cut.planes["dec"], dec, atol=1e-9, rtol=0)
                np.testing.assert_allclose(cut.planes["wavelength"], lam, atol=1e-6, rtol=0)
                slit_y = slit.meta.wcs.get_transform("detector", "slit_frame")(x, y)[1]
                ok = np.isfinite(lam)
                np.testing.assert_allclose(cut.planes["slit_y"][ok], slit_y[ok], atol=1e-9, rtol=0)
                np.testing.assert_array_equal(cut.planes["sci"], slit.data)
                np.testing.assert_array_equal(cut.planes["dq"], slit.dq)
                np.testing.assert_array_equal(cut.planes["var_rnoise"], slit.var_rnoise)
                assert cut.meta["source_type"] == slit.source_type
                assert cut.meta["xstart"] == slit.xstart
                checked += 1
    assert checked == sum(1 for _ in store.list_cutouts())


def test_source_stack_spans_exposures(mos, tmp_path):
    ingest(mos.asn_path, tmp_path / "s")
    store = open_store(tmp_path / "s")
    src = next(s for s in store.sources() if "BKG" not in s)
    stack = store.source(src)
    assert len(set(stack.exposures)) == 3
    sci = stack["sci"]
    assert sci.ndim == 3 and sci.shape[0] == len(stack)
    assert stack["wavelength"].dtype == np.float64


def test_fs_sources_keyed_by_source_id(fs, tmp_path):
    ingest(fs.asn_path, tmp_path / "s", backend="hdf5")
    store = open_store(tmp_path / "s")
    for src in store.sources():
        assert src.isdigit()
        infos = store.list_cutouts(src)
        assert {i.meta["source_id"] for i in infos} == {int(src)}


def test_second_ingest_is_a_no_op(mos, tmp_path):
    first = ingest(mos.asn_path, tmp_path / "s")
    assert not first.nothing_to_do
    before = sorted(p.stat().st_mtime_ns for p in (tmp_path / "s").rglob("*") if p.is_file())
    second = ingest(mos.asn_path, tmp_path / "s")
    assert second.nothing_to_do and len(second.unchanged) == 3
    after = sorted(p.stat().st_mtime_ns for p in (tmp_path / "s").rglob("*") if p.is_file())
    assert before == after


def test_changed_file_refused_unless_replace(mos, tmp_path):
    ingest(mos.asn_path, tmp_path / "s", backend="hdf5")
    other = simulate(
        "nirspec-mos",
        tmp_path / "other",
        SimOptions(seed=99, n_sources=6, n_exposures=3, n_columns=160),
    )
    victim = sorted(other.cal_paths)[0].name
    copy = tmp_path / "copy"
    shutil.copytree(mos.asn_path.parent, copy)
    shutil.copy(other.asn_path.parent / victim, copy / victim)
    with pytest.raises(InputError, match="--replace"):
        ingest(copy / mos.asn_path.name, tmp_path / "s")
    report = ingest(copy / mos.asn_path.name, tmp_path / "s", replace=True)
    assert report.replaced == [victim[: -len(".fits")]] and len(report.unchanged) == 2


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import spec3c.ingest
    from spec3c.ingest import ingest
    from spec3c.store import tiledb_store
    commits = []
    batched = len(sys.argv) > 4
    if not batched:
        spec3c.ingest.BATCH_BYTES = 0  # one commit per member: the second is killed half-way

    def kill():
        os.kill(os.getpid(), signal.SIGKILL)

    if sys.argv[3] == "tiledb":
        write_cutouts = tiledb_store.TileDBStore._write_cutouts

        def write_then_die(self, cutouts):
            write_cutouts(self, cutouts)  # the second exposure's (or the batch's) cutouts are written ...
            commits.append(1)
            if len(commits) == (1 if batched else 2):
                kill()  # ... but its record (their records) never is

        tiledb_store.TileDBStore._write_cutouts = write_then_die
    else:
        replace = os.replace

        def die_before_second_rename(src, dst):
            if Path(dst).parent.name == "exposures":
                commits.append(1)
                if len(commits) == 2:
                    kill()  # the temporary exposure file is complete, the rename never happens
            replace(src, dst)

        os.replace = die_before_second_rename
    ingest(sys.argv[1], sys.argv[2], backend=sys.argv[3])
    """
)


@pytest.mark.parametrize("backend", ["tiledb", "hdf5"])
def test_killed_ingest_then_rerun_equals_uninterrupted(mos, tmp_path, backend):
    killed = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(mos.asn_path), str(tmp_path / "killed"), backend],
        capture_output=True, text=True, check=False,
    )
    assert killed.returncode == -9, killed.stderr
    partial = open_store(tmp_path / "killed")
    assert len(partial.list_exposures()) == 1  # the half-written exposure is invisible
    assert {i.exposure for i in partial.list_cutouts()} == {partial.list_exposures()[0].name}
    report = ingest(mos.asn_path, tmp_path / "killed")
    assert len(report.ingested) == 2 and len(report.unchanged) == 1
    ingest(mos.asn_path, tmp_path / "clean", backend=backend)
    assert_stores_equal(tmp_path / "killed", tmp_path / "clean")


def test_cli_ingest_ls_show(mos, tmp_path):
    runner = CliRunner()
    store = tmp_path / "cli.store"
    res = runner.invoke(main, ["ingest", str(mos.asn_path), "--store", str(store), "--backend", "hdf5"])
    assert res.exit_code == 0, res.output
    assert "ingested 3 new" in res.output
    res = runner.invoke(main, ["ingest", str(mos.asn_path), "--store", str(store)])
    assert res.exit_code == 0 and "nothing to do" in res.output
    res = runner.invoke(main, ["ls", str(store), "--sources"])
    assert res.exit_code == 0, res.output
    n_sources = len(open_store(store).sources())
    assert f"3 exposures, {n_sources} sources" in res.output
    src = open_store(store).sources()[0]
    res = runner.invoke(main, ["show", str(store), "--source", src])
    assert res.exit_code == 0, res.output
    assert res.output.count("jw") >= 3


def test_cli_bad_asn_writes_nothing(tmp_path):
    bad = tmp_path / "bad_asn.json"
    bad.write_text("{not json")
    res = CliRunner().invoke(main, ["ingest", str(bad), "--store", str(tmp_path / "s")])
    assert res.exit_code == 1
    assert "bad_asn.json" in res.output and "JSON" in res.output
    assert not (tmp_path / "s").exists()


def test_cli_missing_member_writes_nothing(mos, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(mos.asn_path.parent, copy)
    missing = sorted(copy.glob("*_cal.fits"))[-1]
    missing.unlink()
    res = CliRunner().invoke(main, ["ingest", str(copy / mos.asn_path.name), "--store", str(tmp_path / "s")])
    assert res.exit_code == 1
    assert missing.name in res.output
    assert not (tmp_path / "s").exists()


def test_small_members_are_committed_together(mos, tmp_path, monkeypatch):
    """Small in-memory members go into the store in one write and one commit; the store is the one
    that committing them one by one makes."""
    import spec3c.ingest as ingest_module
    from spec3c.store import tiledb_store

    writes: list[int] = []
    write_cells = tiledb_store._write_cells
    monkeypatch.setattr(tiledb_store, "_write_cells", lambda arr, cutouts: (writes.append(len(cutouts)),
                                                                             write_cells(arr, cutouts)))
    together = ingest(mos.asn_path, tmp_path / "together")
    assert len(together.ingested) == 3 and writes == [together.n_cutouts]  # one write of every cutout
    writes.clear()
    monkeypatch.setattr(ingest_module, "BATCH_BYTES", 0)  # each member on its own
    apart = ingest(mos.asn_path, tmp_path / "apart")
    assert len(writes) == 3
    assert (together.ingested, together.n_cutouts) == (apart.ingested, apart.n_cutouts)
    assert_stores_equal(tmp_path / "together", tmp_path / "apart")


def test_ingest_killed_in_a_batched_commit_then_rerun(mos, tmp_path):
    """Killed after a batch's cutouts were written and before its records: no exposure is seen, and
    the next ingest reads them all."""
    killed = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(mos.asn_path), str(tmp_path / "killed"), "tiledb", "batched"],
        capture_output=True, text=True, check=False,
    )
    assert killed.returncode == -9, killed.stderr
    assert open_store(tmp_path / "killed").list_exposures() == []
    assert open_store(tmp_path / "killed").list_cutouts() == []
    assert len(ingest(mos.asn_path, tmp_path / "killed").ingested) == 3
    ingest(mos.asn_path, tmp_path / "clean")
    assert_stores_equal(tmp_path / "killed", tmp_path / "clean")
