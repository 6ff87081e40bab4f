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


HELD_AFTER_FREE = """
import sys
import numpy as np
from spec3c.allocator import return_freed_blocks

def rss_mib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) // 1024 for line in f if line.startswith("VmRSS"))

if sys.argv[1] == "return":
    assert return_freed_blocks()
big = np.ones(8 << 20, np.uint8)
del big  # a mapped block freed: glibc's dynamic threshold rises to 8 MiB
blocks = [np.ones(4 << 20, np.uint8) for _ in range(32)]  # 128 MiB of 4 MiB blocks
last = blocks.pop()  # (kept: the heap cannot shrink below it)
before = rss_mib()
del blocks
print(before - rss_mib())
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_large_blocks_go_back_to_the_kernel():
    def freed(setting: str) -> int:
        return int(subprocess.run([sys.executable, "-c", HELD_AFTER_FREE, setting], capture_output=True,
                                  text=True, check=True).stdout)

    assert freed("default") < 32  # glibc's dynamic threshold: the blocks came from the heap and stay
    assert freed("return") > 100  # mapped apart, unmapped when freed
