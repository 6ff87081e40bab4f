"""Executors: run independent per-source jobs in local processes or on a Dask cluster.

One interface, :class:`Executor`, whose :meth:`~Executor.map` runs
``func(item, *args)`` for every item and collects results, errors and
progress; two implementations decide only where the jobs run:

* :class:`LocalExecutor` — this process (one worker) or a spawned process
  pool (no Dask needed; the default);
* :class:`DaskExecutor` — a ``dask.distributed`` cluster: an existing one
  (``tcp://HOST:PORT``) or a LocalCluster started for the run (``local[:N]``).

Both run each job through :func:`run_job`, which caps the OpenMP and BLAS
threads so the jobs of one machine do not oversubscribe its cores, and both
retry a job whose worker process died (the local pool is restarted; Dask's
scheduler reschedules it itself).  An exception raised by a job is that
job's error: the other jobs still run.

``spec3c run`` keeps one warm executor for process and export
(:func:`shared_executor`): the ``spec3c`` command imports what the jobs need
first, then forks the workers, which share those modules' memory (copy on
write) and start without importing anything.  The ``spec3c`` commands run small
data sets (below
:data:`INLINE_BYTES`, :func:`workers_for`) in their own process instead: a
worker process costs seconds of start-up and ~200 MiB, and the kernels use
every core through OpenMP anyway.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import shutil
import sys
import tempfile
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from .asdf_plugins import load_only_jwst_plugins
from .errors import Spec3cError
from .heap import freeze_long_lived_objects
from .import_hooks import defer_unused_imports
from .interrupt import interrupted
from .log import (
    LogForwarder,
    WorkerLogging,
    configure_worker,
    forget_parent_logging,
    worker_logging,
)

T = TypeVar("T")
ProgressFn = Callable[[str, int, int], None]
#: item -> the arguments after the item: ``func(item, *jobs[item])``
Jobs = Mapping[str, tuple[Any, ...]]

__all__ = ["INLINE_BYTES", "INLINE_BYTES_ENV", "DaskExecutor", "Executor", "JobResults", "LocalExecutor",
           "ProgressFn", "allow_fork_start", "data_bytes", "executor_for", "map_sources", "open_executor", "run_job",
           "share_with_helper", "shared_executor", "shared_workers_running",
           "worker_count", "workers_for"]

#: whether :meth:`LocalExecutor.warm` may fork workers from this process (:func:`allow_fork_start`)
_FORK_ALLOWED = False

#: attempts of a job whose worker process died (Dask's ``allowed-failures`` is the analogue)
MAX_ATTEMPTS = 3


#: data (bytes) below which the ``spec3c`` commands run every job in their own process: a worker process
#: pays ~2 s of imports and ~1 s of ASDF set-up and holds ~200 MiB before its first job, more than it
#: saves by sharing so little work (the kernels still use every core through OpenMP)
INLINE_BYTES = 64 * 2**20
#: environment variable overriding :data:`INLINE_BYTES` (0: worker processes whatever the size)
INLINE_BYTES_ENV = "SPEC3C_INLINE_BYTES"


def allow_fork_start() -> None:
    """Let the first :meth:`LocalExecutor.warm` of this process fork its workers from it.

    Only a program's entry point calls it (the ``spec3c`` command does), so
    that the fork happens before the process has a TileDB context, an OpenMP
    thread pool or threads of its own, none of which survive a fork.  Code that
    runs inside another program (a library call, a test runner invoking the
    command) spawns its workers.
    """
    global _FORK_ALLOWED
    _FORK_ALLOWED = True


def data_bytes(paths: Iterable[str | Path]) -> int:
    """Bytes of the files at ``paths`` and under the folders among them (missing paths count 0)."""
    roots = [str(p) for p in paths]
    files = [p for p in roots if os.path.isfile(p)]
    for root in roots:
        files += [os.path.join(folder, name) for folder, _, names in os.walk(root) for name in names]
    return sum(_size(f) for f in files)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:  # removed since it was listed
        return 0


def workers_for(data: int, workers: int | None, scheduler: str | None) -> int | None:
    """The workers for jobs over ``data`` bytes: 1 (this process, no pool) below :data:`INLINE_BYTES`
    (or ``$SPEC3C_INLINE_BYTES``) unless a ``scheduler`` is named, else ``workers`` (None: one per core)."""
    setting = os.environ.get(INLINE_BYTES_ENV, "").strip()
    try:
        inline = int(setting) if setting else INLINE_BYTES
    except ValueError as exc:
        raise Spec3cError(f"{INLINE_BYTES_ENV}={setting!r}: expected a number of bytes") from exc
    return 1 if scheduler is None and data < inline else workers


def worker_count(requested: int | None, n_jobs: int) -> int:
    """Workers to use: the request (default: CPU count), at most one per job, at least 1."""
    return max(1, min(requested or os.cpu_count() or 1, n_jobs or 1))


@dataclass
class JobResults(Generic[T]):
    """What :meth:`Executor.map` returns: each item's result, or its error message."""

    results: dict[str, T] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


# -- what runs in a worker ------------------------------------------------------------

def warm_worker(modules: Sequence[str]) -> None:
    """Import ``modules`` (what the coming jobs need) and parse the ASDF extension manifests once."""
    import importlib

    import asdf

    for name in modules:
        importlib.import_module(name)
    asdf.get_config().extensions  # noqa: B018 - parses every installed ASDF manifest once (~2.5 s)


def run_job(func: Callable[..., T], item: str, args: tuple[Any, ...], threads: int) -> T:
    """``func(item, *args)`` with at most ``threads`` OpenMP threads and one BLAS thread (0: no cap)."""
    if not threads:
        return func(item, *args)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads, user_api="openmp"), threadpool_limits(limits=1, user_api="blas"):
        return func(item, *args)


#: a local pool worker's folder where it notes the job it is running (the parent reads it if the worker dies)
_RUNNING_DIR: str | None = None


def _init_local_worker(threads: int, running_dir: str, logging_settings: WorkerLogging) -> None:
    global _RUNNING_DIR
    # read by libgomp when it loads, i.e. before any kernel module is imported in a spawned worker
    # (a forked one has libgomp loaded already: run_job caps its threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    _RUNNING_DIR = running_dir
    load_only_jwst_plugins()  # as the spec3c command does
    defer_unused_imports()
    forget_parent_logging()  # a forked worker has the parent's handlers
    configure_worker(logging_settings)  # its records go to the parent's handlers


def _run_local_job(func: Callable[..., T], item: str, args: tuple[Any, ...], threads: int) -> T:
    """A job in a local pool worker; ``<running dir>/<pid>`` names it while it runs."""
    note = os.path.join(_RUNNING_DIR or ".", str(os.getpid()))
    with open(note + ".tmp", "w") as f:
        f.write(item)
    os.replace(note + ".tmp", note)  # never seen half written, even if the worker is killed here
    try:
        return run_job(func, item, args, threads)
    finally:
        os.unlink(note)
        # (once) what the first job imported and cached stays out of the next jobs' collections
        freeze_long_lived_objects()


def _run_dask_job(func: Callable[..., T], item: str, args: tuple[Any, ...], host_threads: Mapping[str, int],
                  logging_settings: WorkerLogging) -> T:
    """A job on a Dask worker: the cores of its host shared among the host's worker threads; its
    records written as the client process writes them (stderr, and the log file if the worker sees it)."""
    from urllib.parse import urlparse

    from distributed import get_worker

    configure_worker(logging_settings)
    worker = get_worker()
    host = urlparse(worker.address).hostname or ""
    share = host_threads.get(host) or int(getattr(worker.state, "nthreads", 1))
    return run_job(func, item, args, max(1, (os.cpu_count() or 1) // max(1, share)))


# -- the interface ----------------------------------------------------------------------

class Executor(ABC):
    """Runs independent jobs somewhere; :meth:`map` is the one scheduling loop."""

    #: jobs that run at the same time
    slots: int

    def map(self, func: Callable[..., T], jobs: Jobs, progress: ProgressFn | None = None) -> JobResults[T]:
        """Run ``func(item, *jobs[item])`` for every item; return when all have finished.

        ``func`` must be a module-level function (it is pickled).  A job that
        raises gets its error recorded; ``progress(item, done, total)`` follows
        completion (failed jobs included).
        """
        out: JobResults[T] = JobResults()
        for done, (item, ok, value) in enumerate(self.completed(func, jobs), start=1):
            if ok:
                out.results[item] = value
            else:
                out.errors[item] = value
            if progress:
                progress(item, done, len(jobs))
        return out

    def completed(self, func: Callable[..., T], jobs: Jobs) -> Iterator[tuple[str, bool, Any]]:
        """Run the jobs as :meth:`map` does, yielding ``(item, True, result)`` or ``(item, False, error
        message)`` as each finishes (for a caller that uses each result at once)."""
        return self._completed(func, jobs)

    @abstractmethod
    def _completed(self, func: Callable[..., Any], jobs: Jobs) -> Iterator[tuple[str, bool, Any]]:
        """Yield ``(item, True, result)`` or ``(item, False, error message)`` as jobs finish."""

    def warm(self, modules: Sequence[str]) -> None:  # noqa: B027 - optional: workers import ahead
        """Start importing ``modules`` in the workers, without waiting."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the workers."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalExecutor(Executor):
    """This process (``workers=1``) or a pool of processes on this machine.

    The workers are spawned, but those :meth:`warm` may fork at a program's
    start (:func:`allow_fork_start`): TileDB contexts and OpenMP thread pools do
    not survive a fork.  If a worker process dies, the pool is restarted
    (spawned) and the unfinished jobs are tried again (at most
    :data:`MAX_ATTEMPTS` times each).
    """

    def __init__(self, workers: int | None = None) -> None:
        self.slots = worker_count(workers, os.cpu_count() or 1)
        self.threads = max(1, (os.cpu_count() or 1) // self.slots)
        self._start_method = "spawn"  # of the next pool
        self._pool: ProcessPoolExecutor | None = None
        self._running_dir: str | None = None
        self._logs: LogForwarder | None = None  # the workers' log records, to this process's handlers

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._running_dir = tempfile.mkdtemp(prefix="spec3c-pool-")
            if self._logs is None:  # (a forking pool's workers are accepted once all are forked: warm)
                self._logs = LogForwarder(accept=self._start_method != "fork")
            context = multiprocessing.get_context(self._start_method)
            self._pool = ProcessPoolExecutor(max_workers=self.slots, mp_context=context,
                                             initializer=_init_local_worker,
                                             initargs=(self.threads, self._running_dir, worker_logging(self._logs)))
            self._start_method = "spawn"  # a restarted pool: this process has TileDB contexts by then
        return self._pool

    def warm(self, modules: Sequence[str]) -> None:
        """Start the workers and have them import ``modules``.  If this process may fork them
        (:func:`allow_fork_start`), it imports the modules itself and forks the workers, which then
        share its memory and import nothing; else spawned workers import them while the caller goes on."""
        global _FORK_ALLOWED
        if self.slots == 1 or self._pool is not None:
            return
        if _FORK_ALLOWED and sys.platform == "linux" and "fork" in multiprocessing.get_all_start_methods():
            _FORK_ALLOWED = False  # once: this process opens stores and runs kernels next
            warm_worker(modules)
            gc.collect()
            gc.freeze()  # the collector never writes to these objects: their pages stay shared with the workers
            self._start_method = "fork"
        pool = self._get_pool()
        for _ in range(self.slots):  # (forked workers all start at the first submit)
            pool.submit(warm_worker, tuple(modules))
        assert self._logs is not None
        self._logs.start()  # after the last fork: no thread of this process was in a handshake then

    def _running(self) -> set[str]:
        """Jobs the pool's workers were running (read after the pool broke: those of dead workers)."""
        folder = Path(self._running_dir) if self._running_dir else None
        if folder is None or not folder.is_dir():
            return set()
        return {p.read_text() for p in folder.iterdir() if p.suffix != ".tmp"}

    def _completed(self, func: Callable[..., Any], jobs: Jobs) -> Iterator[tuple[str, bool, Any]]:
        if self.slots == 1:
            for item, args in jobs.items():
                try:
                    yield item, True, run_job(func, item, args, 0)
                except Exception as exc:  # noqa: BLE001 - a job's error is its result
                    yield item, False, _error_text(exc)
            return
        pending, attempts = dict(jobs), dict.fromkeys(jobs, 0)
        while pending:
            pool = self._get_pool()
            # fewer jobs than workers: each job's kernels get the cores of the idle workers too (one IFU source)
            threads = max(self.threads, (os.cpu_count() or 1) // min(self.slots, len(pending)))
            futures = {pool.submit(_run_local_job, func, item, args, threads): item
                       for item, args in pending.items()}
            lost: list[str] = []
            for fut in as_completed(futures):
                item = futures[fut]
                try:
                    value = fut.result()
                except BrokenProcessPool:
                    lost.append(item)
                    continue
                except Exception as exc:  # noqa: BLE001 - a job's error is its result
                    del pending[item]
                    yield item, False, _error_text(exc)
                    continue
                del pending[item]
                yield item, True, value
            if lost and interrupted():  # Ctrl-C terminated the workers: no restart
                self._shutdown(wait=False)
                raise KeyboardInterrupt
            if lost:  # a worker died: the jobs it was running count one attempt; the others just go again
                running = self._running() & set(lost) or set(lost)
                self._shutdown(wait=False)
                for item in sorted(running):
                    attempts[item] += 1
                    if attempts[item] >= MAX_ATTEMPTS:
                        del pending[item]
                        yield item, False, f"its worker process died {attempts[item]} times (killed, or out of memory?)"

    def _shutdown(self, wait: bool) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
            self._pool = None
        if self._running_dir is not None:
            shutil.rmtree(self._running_dir, ignore_errors=True)
            self._running_dir = None

    def close(self) -> None:
        self._shutdown(wait=True)
        if self._logs is not None:  # after the workers exited: their last records are in
            self._logs.close()
            self._logs = None


class DaskExecutor(Executor):
    """Jobs on a ``dask.distributed`` cluster.

    Parameters
    ----------
    address : str or None
        Scheduler address (``tcp://HOST:PORT``); None starts a LocalCluster of
        ``workers`` single-threaded worker processes (default: CPU count).
    workers : int, optional
    timeout : float
        Seconds to wait for the scheduler to answer.

    Dask's scheduler reschedules the job of a worker that died on another
    worker (``distributed.scheduler.allowed-failures`` times).
    """

    def __init__(self, address: str | None = None, workers: int | None = None, timeout: float = 30.0) -> None:
        try:
            import logging

            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise Spec3cError("--scheduler needs Dask: pip install 'spec3c[dask]'") from exc
        self._cluster = None
        if address is None:
            self._cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                                         processes=True, dashboard_address=None, silence_logs=logging.ERROR)
            self._client = Client(self._cluster)
        else:
            try:
                self._client = Client(address, timeout=timeout)
            except OSError as exc:
                raise Spec3cError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
        self.slots = max(1, sum(w["nthreads"] for w in self._workers().values()))

    def _workers(self) -> dict[str, dict[str, Any]]:
        workers: dict[str, dict[str, Any]] = self._client.scheduler_info()["workers"]
        return workers

    def _host_threads(self) -> dict[str, int]:
        """Worker threads per host: the share of each host's cores a job gets."""
        threads: dict[str, int] = {}
        for info in self._workers().values():
            threads[info["host"]] = threads.get(info["host"], 0) + int(info["nthreads"])
        return threads

    def warm(self, modules: Sequence[str]) -> None:
        for address in self._workers():
            self._client.submit(warm_worker, tuple(modules), workers=[address], allow_other_workers=False,
                                pure=False, key=f"spec3c-warm-{uuid.uuid4().hex}")

    def _completed(self, func: Callable[..., Any], jobs: Jobs) -> Iterator[tuple[str, bool, Any]]:
        from distributed import as_completed as dask_completed

        if not jobs:
            return
        if not self._workers():
            raise Spec3cError(f"the Dask cluster at {self._client.scheduler.address} has no workers")
        token, host_threads, logs = uuid.uuid4().hex[:12], self._host_threads(), worker_logging()
        futures = {
            self._client.submit(_run_dask_job, func, item, args, host_threads, logs, pure=False,
                                key=f"spec3c-{getattr(func, '__name__', 'job')}-{token}-{item}"): item
            for item, args in jobs.items()
        }
        for fut in dask_completed(futures):
            item = futures[fut]
            if fut.status == "finished":
                yield item, True, fut.result()
            else:
                yield item, False, _dask_error(fut)
            fut.release()

    def close(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def _dask_error(fut: Any) -> str:
    """The error of a Dask future that did not finish (``KilledWorker`` when its workers kept dying)."""
    try:
        exc = fut.exception()
    except BaseException as cancelled:  # noqa: BLE001 - a cancelled future raises instead of returning
        return f"job {fut.status}: {_error_text(cancelled)}"
    return _error_text(exc) if exc is not None else f"job {fut.status}"


def open_executor(scheduler: str | None = None, workers: int | None = None, n_jobs: int | None = None) -> Executor:
    """The executor ``--scheduler`` names.

    ``None``: :class:`LocalExecutor` with ``workers`` processes (at most one
    per job when ``n_jobs`` is given); ``"local"`` or ``"local:N"``: a Dask
    LocalCluster of N (default ``workers``, else CPU count) processes; anything
    else is a Dask scheduler address (``tcp://HOST:PORT``).
    """
    if scheduler is None or scheduler == "":
        return LocalExecutor(worker_count(workers, n_jobs) if n_jobs is not None else workers)
    if scheduler == "local" or scheduler.startswith("local:"):
        count = scheduler.partition(":")[2]
        if scheduler != "local" and not count.isdigit():
            raise Spec3cError(f"--scheduler {scheduler!r}: expected local or local:N (N workers)")
        return DaskExecutor(None, int(count) if count else workers)
    return DaskExecutor(scheduler)


#: the executor of a :func:`shared_executor` block (``spec3c run``: process, then export)
_SHARED: Executor | None = None


@contextmanager
def shared_executor(scheduler: str | None = None, workers: int | None = None,
                    warm: Sequence[str] = ()) -> Iterator[Executor]:
    """One executor for every :func:`map_sources` call inside the block.

    The workers start at once and import the modules named in ``warm``; in
    the ``spec3c`` command, whose blocks start before it opens a store, a
    local pool's workers are forked from this process after it imported them
    (:meth:`LocalExecutor.warm`).  The workers are reused from one stage to
    the next.  Inside another such block, the outer executor is used.
    """
    global _SHARED
    if _SHARED is not None:
        yield _SHARED
        return
    executor = open_executor(scheduler, workers)
    _SHARED = executor
    try:
        if warm:
            executor.warm(warm)
        yield executor
    finally:
        _SHARED = None
        executor.close()


def shared_workers_running() -> bool:
    """Whether a :func:`shared_executor` block with worker processes (or a cluster) is open: its
    workers are there anyway, idle until the caller gives them jobs."""
    return _SHARED is not None and not (isinstance(_SHARED, LocalExecutor) and _SHARED.slots == 1)


@contextmanager
def executor_for(n_jobs: int, workers: int | None = None, scheduler: str | None = None) -> Iterator[Executor]:
    """The shared executor if one is open, else :func:`open_executor` ``(scheduler, workers)`` for
    ``n_jobs`` jobs, closed when the block ends."""
    if _SHARED is not None:
        yield _SHARED
        return
    with open_executor(scheduler, workers, n_jobs=n_jobs) as executor:
        yield executor


def share_with_helper(func: Callable[..., T], item: str, parts: Sequence[tuple[Any, ...]],
                      modules: Sequence[str] = ()) -> list[T]:
    """``func(item, *part)`` for every part, in this process and one spawned helper process.

    For one large job in a process with a second core and no pool (an IFU source's products):
    the helper takes parts from the front (after importing ``modules``), this process from the
    back, until they meet, so neither waits for the other however long the helper takes to
    start.  Results in the order of ``parts``.  A part that raises raises here; the parts of a
    helper that died are run in this process.
    """
    if len(parts) < 2:
        return [func(item, *part) for part in parts]
    running_dir = tempfile.mkdtemp(prefix="spec3c-helper-")
    logs = LogForwarder()
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_local_worker, initargs=(1, running_dir, worker_logging(logs)))
    try:
        pool.submit(warm_worker, tuple(modules))
        futures = [pool.submit(run_job, func, item, part, 1) for part in parts]
        results: dict[int, T] = {}
        for k in reversed(range(len(parts))):
            if not futures[k].cancel():  # the helper has it: it has all those before it too
                break
            results[k] = func(item, *parts[k])
        for k, fut in enumerate(futures):
            if k not in results:
                try:
                    results[k] = fut.result()
                except BrokenProcessPool:
                    results[k] = func(item, *parts[k])
        return [results[k] for k in range(len(parts))]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        logs.close()
        shutil.rmtree(running_dir, ignore_errors=True)


def map_sources(func: Callable[..., T], jobs: Jobs, *, workers: int | None = None, scheduler: str | None = None,
                progress: ProgressFn | None = None) -> JobResults[T]:
    """``func(item, *jobs[item])`` for every item, on the shared executor if one is open, else on
    :func:`open_executor` ``(scheduler, workers)`` for this call."""
    if _SHARED is None and not jobs:
        return JobResults()
    with executor_for(len(jobs), workers, scheduler) as executor:
        return executor.map(func, jobs, progress)
