"""Shared test configuration: this folder is on ``sys.path`` (pytest's prepend import mode),
so helper modules here (``apcorr_files``) are importable from every test package."""

import atexit
import os
import shutil
import tempfile

import pytest

# the store contract lives in the package (spec3c.testing.store): pytest rewrites its asserts as it
# does for test modules, so failures show the values.  Registered here, before any test package
# (tests/ingest imports its helpers at collection) imports it.
pytest.register_assert_rewrite("spec3c.testing")

# every product a test writes is validated against its datamodel schema (a run skips it): with this
# set in every test process (and the CLI subprocesses they start), validity is the suite's guarantee
os.environ["SPEC3C_VALIDATE_PRODUCTS"] = "1"

# the class schemas products are made with are built and kept in a cache of this test process (and of the
# CLI subprocesses it starts), not in the developer's ~/.cache/spec3c
_SCHEMA_CACHE = tempfile.mkdtemp(prefix="spec3c-test-cache-")
os.environ["SPEC3C_CACHE_DIR"] = _SCHEMA_CACHE
atexit.register(shutil.rmtree, _SCHEMA_CACHE, ignore_errors=True)


@pytest.fixture(autouse=True)
def _no_crds_cache(monkeypatch):
    """No test sees the developer's CRDS cache: with ``CRDS_PATH`` set, spec3c would take its
    reference files from it (``tests/test_crds.py`` configures its own)."""
    for name in ("CRDS_PATH", "CRDS_CONTEXT", "CRDS_SERVER_URL"):
        monkeypatch.delenv(name, raising=False)


# -- disk: CI machines may have only a few GB free, and the whole suite writes ~6 GB of temporary
# files (simulated exposures, stores, jwst's and spec3c's products).  Each test's ``tmp_path`` goes
# when the test passes (``tmp_path_retention_policy = "failed"`` in pyproject.toml); the folders a
# test module made go when the module is done, unless one of its tests failed.

#: folders kept for the whole session: shared_cache's builds and the session fixtures' folders
SESSION_FOLDER_PREFIXES = ("shared-", "session-")

_modules_with_failures: set[str] = set()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        _modules_with_failures.add(item.nodeid.split("::")[0])
    return report


@pytest.fixture(scope="module", autouse=True)
def _module_folders_removed(request, tmp_path_factory):
    """Remove the temporary folders made while this module ran (module fixtures' and tests'), once
    it is done, unless a test failed.  Session fixtures name theirs ``session-*`` to be kept."""
    base = tmp_path_factory.getbasetemp()
    before = {path.name for path in base.iterdir()}
    yield
    if request.node.nodeid in _modules_with_failures:
        return
    for path in base.iterdir():
        if path.name not in before and not path.name.startswith(SESSION_FOLDER_PREFIXES):
            shutil.rmtree(path, ignore_errors=True)
