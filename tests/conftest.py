"""Shared test configuration: this folder is on ``sys.path`` (pytest's prepend import mode),
so helper modules here (``apcorr_files``) are importable from every test package."""

import pytest


@pytest.fixture(autouse=True)
def _no_crds_cache(monkeypatch):
    """No test sees the developer's CRDS cache: with ``CRDS_PATH`` set, spec3c would take its
    reference files from it (``tests/test_crds.py`` configures its own)."""
    for name in ("CRDS_PATH", "CRDS_CONTEXT", "CRDS_SERVER_URL"):
        monkeypatch.delenv(name, raising=False)
