"""Shared test configuration: this folder is on ``sys.path`` (pytest's prepend import mode),
so helper modules here (``apcorr_files``) are importable from every test package."""

import os

import pytest

# the store contract lives in the package (spec3c.testing.store): pytest rewrites its asserts as it
# does for test modules, so failures show the values.  Registered here, before any test package
# (tests/ingest imports its helpers at collection) imports it.
pytest.register_assert_rewrite("spec3c.testing")

# every product a test writes is validated against its datamodel schema (a run skips it): with this
# set in every test process (and the CLI subprocesses they start), validity is the suite's guarantee
os.environ["SPEC3C_VALIDATE_PRODUCTS"] = "1"


@pytest.fixture(autouse=True)
def _no_crds_cache(monkeypatch):
    """No test sees the developer's CRDS cache: with ``CRDS_PATH`` set, spec3c would take its
    reference files from it (``tests/test_crds.py`` configures its own)."""
    for name in ("CRDS_PATH", "CRDS_CONTEXT", "CRDS_SERVER_URL"):
        monkeypatch.delenv(name, raising=False)
