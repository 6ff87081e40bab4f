"""Tests for spec3c._core._openmp (OpenMP build detection)."""

import sys

import pytest

from spec3c._core import max_threads, openmp_enabled


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="OpenMP is required on Linux only")
def test_openmp_enabled_on_linux():
    assert openmp_enabled() is True


def test_max_threads_is_positive_int():
    n = max_threads()
    assert isinstance(n, int)
    assert n >= 1
