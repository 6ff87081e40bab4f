"""spec3c run / process / export from the command line."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from spec3c.cli import main
from spec3c.parallel import LocalExecutor
from spec3c.products.export import products_available
from spec3c.simulate import SimOptions, simulate
from spec3c.store import open_store

APERTURES = Path(__file__).resolve().parents[1] / "examples" / "extract1d_nirspec_fs.json"


@pytest.fixture(scope="module")
def fs_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    sim = simulate("nirspec-fs", root / "in", SimOptions(seed=2, n_exposures=2, n_columns=200))
    res = CliRunner().invoke(main, ["run", str(sim.asn_path), "-o", str(root / "out"), "--workers", "1",
                                    f"--steps.extract_1d.override_extract1d={APERTURES}"])
    assert res.exit_code == 0, res.output
    return root, sim, res.output


def test_run_writes_every_product(fs_run):
    root, _, output = fs_run
    names = sorted(p.name for p in (root / "out").glob("*.fits"))
    assert len(names) == 12  # 3 slits x cal, crf, s2d, x1d
    for suffix in ("cal", "crf", "s2d", "x1d"):
        assert sum(n.endswith(f"_{suffix}.fits") for n in names) == 3
    assert all(n.startswith("jw") and "_nirspec_" in n for n in names)
    assert "wrote 12 products" in output
    stages = re.search(r"^run: ingest ([0-9.]+) s, process ([0-9.]+) s, export ([0-9.]+) s$", output, re.MULTILINE)
    # each stage's seconds; the export stage only records the products process's workers wrote
    assert stages is not None and float(stages[1]) > 0 and float(stages[2]) > 0 and float(stages[3]) >= 0


def test_status_and_parameters_recorded(fs_run):
    root, _, _ = fs_run
    store = open_store(root / "out" / "spec3c.store")
    source = store.sources()[0]
    status = store.get_result(source, "status")[1]
    assert status["steps"]["resample_spec"]["status"] == "COMPLETE"
    assert status["steps"]["pixel_replace"]["status"] == "SKIPPED"
    assert status["params"]["extract_1d"]["override_extract1d"] == str(APERTURES)
    assert status["params"]["outlier_detection"]["snr"] == "5.0 4.0"


def test_process_again_is_a_no_op_and_force_recomputes(fs_run):
    root, _, _ = fs_run
    store = str(root / "out" / "spec3c.store")
    runner = CliRunner()
    # the same parameters as the run (another aperture file would change every source's key)
    res = runner.invoke(main, ["process", store, "--workers", "1", f"--steps.extract_1d.override_extract1d={APERTURES}"])
    assert res.exit_code == 0 and "processed 0 sources" in res.output and "3 already complete" in res.output
    source = open_store(store).sources()[0]
    res = runner.invoke(main, ["process", store, "--sources", source, "--force", "--workers", "1",
                               "--skip", "outlier_detection", f"--steps.extract_1d.override_extract1d={APERTURES}"])
    assert res.exit_code == 0, res.output
    assert "processed 1 sources" in res.output
    status = open_store(store).get_result(source, "status")[1]
    assert status["steps"]["outlier_detection"]["status"] == "SKIPPED"
    # a step skipped by parameter saves nothing in the reference: no crf for that source
    other = next(s for s in open_store(store).sources() if s != source)
    assert "crf" not in products_available(open_store(store), source)
    assert "crf" in products_available(open_store(store), other)


def test_export_chosen_suffix(fs_run, tmp_path):
    root, _, _ = fs_run
    res = CliRunner().invoke(main, ["export", str(root / "out" / "spec3c.store"), "-o", str(tmp_path),
                                    "--suffix", "x1d", "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert len(list(tmp_path.glob("*_x1d.fits"))) == 3 and not list(tmp_path.glob("*_s2d.fits"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps.resample_spec.pixfrac=big"], "expected float"),
        (["--steps.resample_spec.nope=1"], "has no parameter 'nope'"),
        (["--steps.nostep.x=1"], "unknown step 'nostep'"),
        (["--sources", "999"], "unknown source(s) 999"),
        (["stray"], "unexpected argument"),
    ],
)
def test_process_bad_arguments(fs_run, args, message):
    root, _, _ = fs_run
    res = CliRunner().invoke(main, ["process", str(root / "out" / "spec3c.store"), "--workers", "1", *args])
    assert res.exit_code != 0
    assert message in res.output


def test_a_small_store_runs_in_this_process_whatever_the_workers(fs_run, tmp_path, monkeypatch):
    """--workers 2 on a store below INLINE_BYTES: process and export start no worker process."""
    root, _, _ = fs_run
    store = tmp_path / "copy.store"
    shutil.copytree(root / "out" / "spec3c.store", store)

    def no_pool(self: LocalExecutor) -> None:
        raise AssertionError("a worker pool was started for a small store")

    monkeypatch.setattr(LocalExecutor, "_get_pool", no_pool)
    runner = CliRunner()
    res = runner.invoke(main, ["process", str(store), "--force", "--workers", "2",
                               f"--steps.extract_1d.override_extract1d={APERTURES}"])
    assert res.exit_code == 0 and "processed 3 sources (0 failed)" in res.output, res.output
    res = runner.invoke(main, ["export", str(store), "-o", str(tmp_path / "products"), "--suffix", "x1d",
                               "--workers", "2"])
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "products").glob("*_x1d.fits"))) == 3
