"""spec3c.allocator: the process's allocator settings (checked in a child process: they last)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

CHECK = """
import numpy as np
from spec3c.allocator import reuse_freed_memory
assert np._core.multiarray._get_madvise_hugepage() in (True, False)
taken = reuse_freed_memory()
assert reuse_freed_memory() is taken  # set once; a second call gives the first answer
print(taken, np._core.multiarray._get_madvise_hugepage())
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_takes_the_thresholds_and_numpy_stops_advising_huge_pages():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False"]
