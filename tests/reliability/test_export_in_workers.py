"""``spec3c run`` writes each source's products in the worker that processed it, from the cutouts
and results it holds (not read back from the store).  They must be exactly what ``spec3c export``
writes from the store, and the export must know them as its own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from astropy.io import fits
from click.testing import CliRunner
from harness import data_differences, product_data, run_spec3c

import spec3c.products.export as export_module
from spec3c.cli import main
from spec3c.parallel import INLINE_BYTES_ENV
from spec3c.simulate import SimOptions, simulate

#: header cards that say when a file was written, not what it holds
_WRITE_TIME = {"DATE", "CHECKSUM", "DATASUM"}


@pytest.fixture(scope="module")
def mos_input(tmp_path_factory) -> Path:
    """NIRSpec MOS, 4 sources x 3 nods: outlier_detection flags (and changes the inputs in place)."""
    sim = simulate("nirspec-mos", tmp_path_factory.mktemp("mos") / "in",
                   SimOptions(seed=8, n_sources=4, n_exposures=3, n_columns=200))
    return sim.asn_path


def _headers(folder: Path) -> dict[str, list[list[tuple[str, object]]]]:
    out = {}
    for path in sorted(folder.glob("*.fits")):
        with fits.open(path) as hdul:
            out[path.name] = [[(c.keyword, c.value) for c in hdu.header.cards if c.keyword not in _WRITE_TIME]
                              for hdu in hdul]
    return out


def test_products_of_the_workers_equal_an_export_of_the_store(mos_input, tmp_path):
    """Two worker processes write the products as they process; exporting the store again gives
    the same data, headers and ASDF trees, and exporting into the run's folder writes nothing."""
    out, again = tmp_path / "out", tmp_path / "again"
    env = {**os.environ, INLINE_BYTES_ENV: "0"}  # worker processes even for this small association
    run = run_spec3c("run", mos_input, "-o", out, "--workers", "2", env=env)
    assert "wrote 16 products" in run.stdout, run.stdout
    run_spec3c("export", out / "spec3c.store", "-o", again, env=env)
    assert data_differences(product_data(out), product_data(again)) == []
    assert _headers(out) == _headers(again)
    res = run_spec3c("export", out / "spec3c.store", "-o", out, env=env)
    assert "wrote 0 products" in res.stdout and "(16 unchanged)" in res.stdout, res.stdout


def test_the_export_stage_of_a_run_writes_no_processed_source_again(mos_input, tmp_path, monkeypatch):
    """In one process: the export stage after process is left nothing of a source to write."""

    def no_source_export(*args: object) -> None:
        raise AssertionError(f"the export stage wrote a processed source: {args[0]}")

    monkeypatch.setattr(export_module, "_export_one", no_source_export)
    res = CliRunner().invoke(main, ["run", str(mos_input), "-o", str(tmp_path / "out"), "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert "wrote 16 products" in res.output
    assert len(list((tmp_path / "out").glob("*.fits"))) == 16


def test_a_source_the_worker_could_not_export_is_exported_after(mos_input, tmp_path, monkeypatch):
    """A product the worker fails to write is written by the export stage, from the store."""
    calls = []

    def failing(store, processed, request):  # type: ignore[no-untyped-def]
        calls.append(processed.source)
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(export_module, "export_processed", failing)
    res = CliRunner().invoke(main, ["run", str(mos_input), "-o", str(tmp_path / "out"), "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert len(calls) == 4 and "wrote 16 products" in res.output


def test_what_is_too_large_to_keep_is_read_back(mos_input, tmp_path, monkeypatch):
    """Cutouts and results over the keeping limits are read back from the store by the worker's
    export: the same products as when everything is kept."""
    import spec3c.process as process_module

    kept, read_back = tmp_path / "kept", tmp_path / "read_back"
    res = CliRunner().invoke(main, ["run", str(mos_input), "-o", str(kept), "--workers", "1"])
    assert res.exit_code == 0, res.output
    reads = []
    real_read = export_module._CachedStore.read_cutouts

    def counted(self, source, planes=None):  # type: ignore[no-untyped-def]
        reads.append(source)
        return real_read(self, source, planes)

    monkeypatch.setattr(process_module, "_KEPT_CUTOUT_BYTES", 0)
    monkeypatch.setattr(process_module, "_KEPT_RESULT_BYTES", 0)
    monkeypatch.setattr(export_module._CachedStore, "read_cutouts", counted)
    res = CliRunner().invoke(main, ["run", str(mos_input), "-o", str(read_back), "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert reads, "the export read the cutouts back"
    assert data_differences(product_data(read_back), product_data(kept)) == []
    assert _headers(read_back) == _headers(kept)
