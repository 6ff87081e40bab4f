"""Small simulated datasets shared by the reliability tests (this folder's helpers are importable)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from harness import FS_APERTURES, Baseline, asn_of

from spec3c.cli import main
from spec3c.simulate import SimOptions, simulate


@pytest.fixture(scope="session")
def fs_input(tmp_path_factory) -> Path:
    """NIRSpec fixed slits, 2 nods, 3 slits of 100 columns: the folder with the cal files and the ASN."""
    folder = tmp_path_factory.mktemp("session-fs") / "in"
    simulate("nirspec-fs", folder, SimOptions(seed=11, n_exposures=2, n_columns=100))
    return folder


@pytest.fixture(scope="session")
def fs_output(fs_input, tmp_path_factory) -> Path:
    """An uninterrupted ``spec3c run`` of ``fs_input`` (store and products), not to be changed."""
    out = tmp_path_factory.mktemp("session-fs_run") / "out"
    res = CliRunner().invoke(main, ["run", str(asn_of(fs_input)), "-o", str(out), "--workers", "1", FS_APERTURES])
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture
def fs_output_copy(fs_output, tmp_path) -> Path:
    """A copy of ``fs_output`` a test may change."""
    return Path(shutil.copytree(fs_output, tmp_path / "out"))


@pytest.fixture(scope="session")
def fs_baseline(fs_input, tmp_path_factory) -> Baseline:
    """Stage by stage (subprocesses), with the store kept after ingest and after process."""
    return Baseline(asn_of(fs_input), tmp_path_factory.mktemp("session-baseline"), (FS_APERTURES,)).build()
