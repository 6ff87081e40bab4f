"""Fixtures for the reference-pipeline (jwst) harness in ``benchmarks/oracle.py``."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

ORACLE_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "oracle.py"


def _load_oracle() -> ModuleType:
    """Import ``benchmarks/oracle.py`` (benchmarks is not a package)."""
    name = "spec3c_benchmarks_oracle"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ORACLE_PATH)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod  # dataclasses look the module up while classes are built
        spec.loader.exec_module(mod)
    return sys.modules[name]


@pytest.fixture(scope="session")
def oracle() -> ModuleType:
    """The harness module."""
    return _load_oracle()


@pytest.fixture(scope="session")
def jwst_py(oracle: ModuleType) -> Path:
    """Python of the jwst venv; skips the test when there is none.

    When ``SPEC3C_JWST_PYTHON`` names one (``make test`` does), its absence is
    a failure, not a skip: CI must not pass by skipping the oracle.
    """
    py = oracle.jwst_python()
    if py is None:
        wanted = os.environ.get("SPEC3C_JWST_PYTHON", "").strip()
        if wanted:
            pytest.fail(f"SPEC3C_JWST_PYTHON={wanted}: no executable python there")
        pytest.skip("no jwst venv (set SPEC3C_JWST_PYTHON, or `make test` creates .venv-jwst)")
    return py


@pytest.fixture(scope="session")
def mrs_reference(tmp_path_factory, oracle: ModuleType, jwst_py: Path):
    """(simulation, jwst ReferenceRun, jwst steps) of calwebb_spec3 on the shared MIRI MRS dataset."""
    from shared_runs import ifu_reference

    return ifu_reference("miri-mrs", tmp_path_factory, oracle, jwst_py)


@pytest.fixture(scope="session")
def nirspec_ifu_reference(tmp_path_factory, oracle: ModuleType, jwst_py: Path):
    """(simulation, jwst ReferenceRun, jwst steps) of calwebb_spec3 on the shared NIRSpec IFU dataset."""
    from shared_runs import ifu_reference

    return ifu_reference("nirspec-ifu", tmp_path_factory, oracle, jwst_py)


@pytest.fixture(scope="session")
def mrs_spec3c(tmp_path_factory, mrs_reference):
    """Folder of spec3c's products on the shared MIRI MRS dataset (``shared_runs.ifu_spec3c_run``)."""
    from shared_runs import ifu_spec3c_run

    return ifu_spec3c_run("miri-mrs", tmp_path_factory, mrs_reference)


@pytest.fixture(scope="session")
def nirspec_ifu_spec3c(tmp_path_factory, nirspec_ifu_reference):
    """Folder of spec3c's products on the shared NIRSpec IFU dataset (``shared_runs.ifu_spec3c_run``)."""
    from shared_runs import ifu_spec3c_run

    return ifu_spec3c_run("nirspec-ifu", tmp_path_factory, nirspec_ifu_reference)
