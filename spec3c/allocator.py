"""How this process allocates large arrays: freed blocks reused instead of faulted in afresh.

Work that allocates and frees image-sized arrays many times over (the NIRISS
SOSS extraction: several 4 MB model and mask images per integration, in
threads) spends a large part of its time in the kernel when every such array
is a fresh mapping: glibc gives blocks above its (dynamic) mmap threshold
back to the kernel when freed, its thread arenas trim their heaps, and numpy
asks for transparent huge pages on every large array, which the kernel then
compacts memory for.  Measured on the 100-integration SOSS benchmark
(``spec3c process``, 2 workers, three runs each): system time 11.7-14.5 s ->
5.2-7.5 s, wall 28.0-31.5 s -> 19.5-24.0 s, peak RSS 2.0 -> 2.2 GB.  The
glibc thresholds alone gave system time 8.9 s; numpy's advice alone 10.2 s.
Under the benchmarks' memory sampler, with huge pages still advised, runs were
slower (34.7, 35.0 s against 31.4, 32.0 s).  Not used for the MIRI MRS cubes:
there it cost system time (19 -> 24 s of a ``process``, one run each).

:func:`reuse_freed_memory` keeps such blocks in the process instead: glibc
serves blocks under 1 GiB from its heaps and keeps up to 2 GiB of freed heap
top, and numpy stops asking for huge pages.  It lasts for the rest of the
process (glibc cannot be put back to its dynamic thresholds).  Elsewhere
than glibc it only turns numpy's advice off.
"""

from __future__ import annotations

import ctypes
import logging

import numpy as np

__all__ = ["release_freed_memory", "return_freed_blocks", "reuse_freed_memory"]

log = logging.getLogger("spec3c")

#: mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: blocks below this come from the heap (and are reused once freed)
MMAP_THRESHOLD = 1 << 30
#: freed memory at the heap top kept before it is returned to the kernel
TRIM_THRESHOLD = (1 << 31) - 1

_taken: bool | None = None  # what glibc answered, once set


def reuse_freed_memory() -> bool:
    """Set this process's allocator as the module docstring says (once); True if glibc took it."""
    global _taken
    if _taken is not None:
        return _taken
    multiarray = getattr(getattr(np, "_core", None), "multiarray", None)
    # the private setter behind numpy's documented NUMPY_MADVISE_HUGEPAGE, which numpy reads at import only
    set_hugepage = getattr(multiarray, "_set_madvise_hugepage", None)
    if set_hugepage is not None:
        set_hugepage(False)
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - glibc only: other C libraries' mallopt differ
        _taken = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
            bool(libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except (OSError, AttributeError):
        _taken = False
    log.debug("allocator: freed blocks kept for reuse (glibc: %s), numpy huge-page advice off", _taken)
    return _taken


#: return_freed_blocks: blocks from this size up are mapped apart and unmapped when freed
RETURNED_BLOCK = 1 << 20


def return_freed_blocks() -> bool:
    """Map blocks of :data:`RETURNED_BLOCK` bytes and more apart, so each goes back to the kernel
    when freed (glibc; elsewhere nothing; True if glibc took it).

    glibc's mmap threshold is dynamic: once a mapped block is freed, blocks up to its size come
    from the heap, whose freed memory stays with the process.  A process that reads, processes
    and writes one after another (``spec3c run`` of a small association, in one process) then
    holds the leftovers of each phase under the next: NIRSpec FS with background, peak PSS
    259-350 -> 226-234 MiB (three runs each), times unchanged.  Not for pool workers: on MOS-50
    it cost ~0.3 s of ``process`` (every image-sized array faulted in afresh) and saved little.
    Overridden by :func:`reuse_freed_memory`.
    """
    if _taken is not None:  # reuse_freed_memory has set the thresholds for this process
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - glibc only
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, RETURNED_BLOCK))
    except (OSError, AttributeError):
        return False


def release_freed_memory() -> None:
    """Give the memory this process freed back to the kernel (glibc's ``malloc_trim``; elsewhere
    nothing): after a large transient allocation, so that the next one does not stack on its leftovers."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass
