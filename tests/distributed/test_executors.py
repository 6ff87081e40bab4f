"""The executor interface without a cluster: the local pool, errors per job, retries of dead
workers, ``--scheduler`` parsing, and no Dask import unless Dask is asked for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dask_jobs
import pytest

from spec3c.errors import Spec3cError
from spec3c.parallel import (
    INLINE_BYTES,
    INLINE_BYTES_ENV,
    LocalExecutor,
    data_bytes,
    map_sources,
    open_executor,
    shared_executor,
    workers_for,
)


def test_serial_executor_collects_results_errors_and_progress():
    calls = []
    with open_executor(None, 1) as executor:
        assert isinstance(executor, LocalExecutor) and executor.slots == 1
        out = executor.map(dask_jobs.square, {"2": (1,), "3": (0,)}, progress=lambda *a: calls.append(a))
        bad = executor.map(dask_jobs.fail, {"x": ()})
    assert out.results == {"2": 5, "3": 9} and not out.errors
    assert calls == [("2", 1, 2), ("3", 2, 2)]
    assert bad.errors == {"x": "ValueError: bad item x"}


def test_pool_retries_jobs_whose_worker_died(tmp_path):
    """Two items kill their worker process the first time they run; every item still completes (the
    jobs that were only waiting when a worker died are not counted as attempts)."""
    with LocalExecutor(2) as executor:
        out = executor.map(dask_jobs.die_once, {item: (str(tmp_path), "ac") for item in "abcd"})
        again = executor.map(dask_jobs.square, {"4": (0,)})  # the restarted pool still serves
    assert sorted(out.results) == list("abcd") and not out.errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "c"]
    assert again.results == {"4": 16}


def test_pool_gives_up_on_a_job_that_always_kills_its_worker(tmp_path):
    with LocalExecutor(2) as executor:
        out = executor.map(dask_jobs.always_die, {"bad": (), "good": ()})
    assert out.results == {"good": "good"}
    assert "worker process died 3 times" in out.errors["bad"]


def test_pool_workers_freeze_what_their_first_job_left():
    """A spawned worker's first job imports the modules; the collections of its next jobs skip them."""
    with LocalExecutor(workers=2) as ex:
        counts = ex.map(dask_jobs.freeze_count, {str(k): () for k in range(6)}).results
    assert len(counts) == 6 and max(counts.values()) > 0


def test_a_lone_job_gets_the_cores_of_the_idle_workers():
    """Each of as many jobs as workers gets its share of the cores; fewer jobs get more (``spec3c
    process`` of one IFU source in a 2-worker pool: both cores for its kernels)."""
    cores = os.cpu_count() or 1
    with LocalExecutor(workers=2) as ex:
        alone = ex.map(dask_jobs.openmp_threads, {"a": ()}).results["a"]
        shared = ex.map(dask_jobs.openmp_threads, {"a": (), "b": ()}).results
    assert alone == cores
    assert set(shared.values()) == {max(1, cores // 2)}


def test_shared_executor_is_reused():
    with shared_executor(None, 1) as outer, shared_executor(None, 2) as inner:
        assert inner is outer
        assert map_sources(dask_jobs.square, {"5": (0,)}).results == {"5": 25}


@pytest.mark.parametrize("spec", ["local:two", "local:"])
def test_bad_scheduler_is_a_clear_error(spec):
    with pytest.raises(Spec3cError, match="local:N"):
        open_executor(spec)


def test_local_pool_needs_no_dask():
    code = ("import sys, spec3c.process, spec3c.products.export, spec3c.cli; "
            "assert not [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')]")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_small_data_runs_in_this_process_unless_a_scheduler_is_named(tmp_path, monkeypatch):
    (tmp_path / "a").write_bytes(b"x" * 100)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"y" * 50)
    assert data_bytes([tmp_path]) == 150 and data_bytes([tmp_path / "a", tmp_path / "missing"]) == 100
    assert workers_for(150, 2, None) == 1 and workers_for(150, None, None) == 1
    assert workers_for(INLINE_BYTES, 2, None) == 2 and workers_for(INLINE_BYTES, None, None) is None
    assert workers_for(150, 2, "local:2") == 2
    monkeypatch.setenv(INLINE_BYTES_ENV, "0")
    assert workers_for(150, 2, None) == 2
    monkeypatch.setenv(INLINE_BYTES_ENV, "lots")
    with pytest.raises(Spec3cError, match=INLINE_BYTES_ENV):
        workers_for(150, 2, None)


#: a program that warms a 2-worker pool with ``import_marker`` (forking it when ``allow_fork_start``
#: was called), has item "x" kill its worker once, and prints what the jobs saw as JSON (and the
#: threads this process had at each of its forks)
_WARM_PROGRAM = """
import json, os, sys, threading
import dask_jobs
from spec3c import log
from spec3c.parallel import allow_fork_start, map_sources, shared_executor
forks = []
os.register_at_fork(before=lambda: forks.append(sorted(t.name for t in threading.enumerate())))
if sys.argv[1] == "fork":
    allow_fork_start()
log.configure()  # as the spec3c command does: the workers forward their records to these handlers
with shared_executor(None, 2, warm=("import_marker",)):
    first = map_sources(dask_jobs.where_imported, {k: () for k in "abcd"})
    handlers = map_sources(dask_jobs.log_handlers, {"h": ()}).results["h"]
    after = map_sources(dask_jobs.where_imported, {"x": (sys.argv[2], "x"), "y": (sys.argv[2], "x")})
print(json.dumps({"parent": os.getpid(), "first": first.results, "after": after.results, "handlers": handlers,
                  "errors": {**first.errors, **after.errors}, "forks": forks}))
"""


def _warm_run(how: str, marks: Path) -> dict:
    here = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, "-c", _WARM_PROGRAM, how, str(marks)], capture_output=True, text=True,
                         env=env, timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.splitlines()[-1])


def test_a_program_forks_its_warm_workers_and_spawns_a_restarted_pool(tmp_path):
    """The spec3c command (allow_fork_start) imports the warm modules once, in its own process, and
    forks the workers; after a worker died, the pool is spawned (the process has TileDB contexts by
    then in real runs): the new workers import for themselves."""
    out = _warm_run("fork", tmp_path)
    assert not out["errors"]
    pids = {pid for pid, _ in out["first"].values()}
    assert out["parent"] not in pids and len(pids) >= 1
    assert {imported for _, imported in out["first"].values()} == {out["parent"]}  # imported once, here
    assert out["handlers"] == ["_ForwardingHandler"]  # not the parent's handlers it was forked with
    # the log forwarder accepts the workers only once both are forked: a forked worker once inherited
    # the lock of an import (hmac) the accepting thread held for the first worker's handshake, and hung
    assert len(out["forks"]) >= 2 and not any("spec3c-log-accept" in names for names in out["forks"][:2])
    pid, imported = out["after"]["x"]  # x ran again after its worker died: in the restarted pool
    assert pid == imported != out["parent"]  # spawned: it imported for itself
    assert (tmp_path / "x").exists()


def test_without_allow_fork_start_warm_workers_are_spawned(tmp_path):
    out = _warm_run("spawn", tmp_path)
    assert not out["errors"]
    assert all(pid == imported != out["parent"] for pid, imported in out["first"].values())
    assert out["handlers"] == ["_ForwardingHandler"]
