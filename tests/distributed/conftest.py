"""A real Dask cluster on this machine: one ``dask scheduler`` and two ``dask worker`` processes on
127.0.0.1 (free ports), started for the module that asks for it and stopped after it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
START_TIMEOUT = 90.0  # seconds for the scheduler and both workers to be up (imports on a busy machine)
STOP_TIMEOUT = 20.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dask_command() -> list[str]:
    exe = Path(sys.executable).with_name("dask")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "dask"]


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Terminate (then kill, if need be) the processes we started: the workers, then the scheduler
    (workers whose scheduler is gone keep trying to reconnect instead of closing)."""
    for group in (procs[1:], procs[:1]):
        for proc in group:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in group:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)


def _wait_for_workers(address: str, n: int, procs: list[subprocess.Popen[bytes]], logs: Path) -> None:
    from distributed import Client

    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        dead = [p.args for p in procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"a Dask process exited: {dead}; logs in {logs}")
        try:
            with Client(address, timeout=5) as client:
                client.wait_for_workers(n, timeout=max(1.0, deadline - time.monotonic()))
                return
        except (OSError, TimeoutError):
            time.sleep(0.5)
    raise TimeoutError(f"the Dask cluster at {address} was not up after {START_TIMEOUT} s; logs in {logs}")


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory) -> Iterator[str]:
    """The scheduler address of a running cluster: 1 scheduler + 2 single-threaded workers."""
    pytest.importorskip("distributed")
    work = tmp_path_factory.mktemp("dask")  # the processes' working folder: paths sent to them must be absolute
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    dask = _dask_command()
    commands = [
        [*dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        *[[*dask, "worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--nworkers", "1",
           "--no-dashboard", "--name", f"w{i}"] for i in range(2)],
    ]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i, command in enumerate(commands):
            log = (work / f"process{i}.log").open("wb")
            procs.append(subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT))
            if i == 0:
                time.sleep(0.5)  # let the scheduler bind before the workers dial it
        _wait_for_workers(address, 2, procs, work)
        yield address
    finally:
        _stop(procs)
        shutil.rmtree(work / "dask-scratch-space", ignore_errors=True)
