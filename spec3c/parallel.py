"""Run independent per-source jobs in a local process pool (or in this process)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
ProgressFn = Callable[[str, int, int], None]


def worker_count(requested: int | None, n_jobs: int) -> int:
    """Workers to use: the request (default: CPU count), at most one per job, at least 1."""
    return max(1, min(requested or os.cpu_count() or 1, n_jobs or 1))


#: a pool shared by consecutive map_sources calls (``spec3c run``: process, then export)
_SHARED_POOL: ProcessPoolExecutor | None = None


def warm_worker(modules: Sequence[str]) -> None:
    """Import ``modules`` (what the coming jobs need) and parse the ASDF extension manifests once."""
    import importlib

    import asdf

    for name in modules:
        importlib.import_module(name)
    asdf.get_config().extensions  # noqa: B018 - parses every installed ASDF manifest once (~2.5 s)


@contextmanager
def shared_pool(workers: int | None, warm: Sequence[str] = ()) -> Iterator[None]:
    """Keep one spawned pool for every :func:`map_sources` call inside the block.

    Its workers start importing the modules named in ``warm`` at once
    (:func:`warm_worker`), while the caller does other work (e.g. ingest),
    and are reused from one stage to the next.
    """
    global _SHARED_POOL
    n = worker_count(workers, os.cpu_count() or 1)
    if n == 1 or _SHARED_POOL is not None:
        yield
        return
    _SHARED_POOL = ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"))
    try:
        for _ in range(n):
            _SHARED_POOL.submit(warm_worker, tuple(warm))
        yield
    finally:
        _SHARED_POOL.shutdown()
        _SHARED_POOL = None


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
    if _SHARED_POOL is not None:
        return _collect(_SHARED_POOL, func, sources, args, progress)
    with ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn")) as pool:
        return _collect(pool, func, sources, args, progress)


def _collect(pool: ProcessPoolExecutor, func: Callable[..., T], sources: Sequence[str], args: tuple[Any, ...],
             progress: ProgressFn | None) -> dict[str, T]:
    results: dict[str, T] = {}
    futures = {pool.submit(func, source, *args): source for source in sources}
    for done, fut in enumerate(as_completed(futures), start=1):
        results[futures[fut]] = fut.result()
        if progress:
            progress(futures[fut], done, len(sources))
    return results
