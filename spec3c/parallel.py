"""Run independent per-source jobs in a local process pool (or in this process)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

T = TypeVar("T")
ProgressFn = Callable[[str, int, int], None]


def worker_count(requested: int | None, n_jobs: int) -> int:
    """Workers to use: the request (default: CPU count), at most one per job, at least 1."""
    return max(1, min(requested or os.cpu_count() or 1, n_jobs or 1))


def map_sources(func: Callable[..., T], sources: Sequence[str], args: tuple[Any, ...], *,
                workers: int | None = None, progress: ProgressFn | None = None) -> dict[str, T]:
    """``{source: func(source, *args)}`` computed by ``workers`` processes.

    ``func`` must be a module-level function (it is pickled).  Processes are
    spawned, not forked: TileDB contexts and OpenMP thread pools do not
    survive a fork.  ``progress(source, done, total)`` follows completion.
    """
    n = worker_count(workers, len(sources))
    results: dict[str, T] = {}
    if n == 1:
        for done, source in enumerate(sources, start=1):
            results[source] = func(source, *args)
            if progress:
                progress(source, done, len(sources))
        return results
    with ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(func, source, *args): source for source in sources}
        for done, fut in enumerate(as_completed(futures), start=1):
            results[futures[fut]] = fut.result()
            if progress:
                progress(futures[fut], done, len(sources))
    return results
