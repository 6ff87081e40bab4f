"""Wall time and peak memory of a command, the one way every benchmark measures them.

Peak memory is the PSS (proportional set size: shared pages split among the
processes sharing them) summed over the root process and all its
descendants, read from ``/proc/PID/smaps_rollup`` every ~50 ms; the largest
sum seen is the peak.  Both pipelines are measured this way: spec3c's
commands with :func:`measure`, the reference (jwst ``calwebb_spec3``, run as
``oracle.py`` runs it) with :func:`measure_reference`.

    from measure import measure
    m = measure(["spec3c", "run", "asn.json", "-o", "out"], Path("run.log"))
    m.seconds, m.peak_pss_mb
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
INTERVAL = 0.05  # seconds between samples

__all__ = ["Measured", "ReferenceMeasured", "load_oracle", "measure", "measure_reference", "tree_pss"]


@dataclass
class Measured:
    """Wall seconds and peak PSS (MiB) summed over the process tree."""

    seconds: float
    peak_pss_mb: float
    returncode: int = 0
    stopped: str = ""  # "timeout" or "memory" when measure() killed it


def _pss_bytes(pid: int) -> int:
    """PSS of one process (0 if it is gone or not readable)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (children of any of its threads)."""
    kids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                kids += [int(x) for x in fh.read().split()]
        except OSError:
            pass
    return kids


def _tree(root: int) -> list[int]:
    """``root`` and all its descendants."""
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += _children(pid)
    return pids


def tree_pss(root: int) -> int:
    """PSS in bytes summed over ``root`` and all its descendants."""
    return sum(_pss_bytes(pid) for pid in _tree(root))


def _kill_tree(root: int) -> None:
    for pid in reversed(_tree(root)):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _sample_until_exit(proc: subprocess.Popen, deadline: float | None, max_bytes: float | None) -> tuple[int, str]:
    """Peak tree PSS (bytes) while ``proc`` runs, and why it was stopped ("" if it was not).

    The tree is killed past ``deadline`` ("timeout") or above ``max_bytes`` ("memory").
    """
    peak, stopped = 0, ""
    while proc.poll() is None:
        t0 = time.perf_counter()
        peak = max(peak, tree_pss(proc.pid))
        if deadline is not None and time.monotonic() > deadline:
            stopped = "timeout"
        elif max_bytes is not None and peak > max_bytes:
            stopped = "memory"
        if stopped:
            _kill_tree(proc.pid)
            proc.wait()
            break
        cost = time.perf_counter() - t0
        # reading smaps of a many-GB process costs kernel time: keep it below ~1/3 of a core
        time.sleep(max(INTERVAL, 2 * cost))
    return peak, stopped


@functools.cache
def _compile_spec3c() -> None:
    """Byte-compile spec3c's modules (once), so that its commands read them as an installed
    package's, not compiling them from source on every start: an editable install is not
    byte-compiled by pip, and under PYTHONDONTWRITEBYTECODE=1 nothing writes the cache later
    (0.4 s of every command here; the reference's venv is compiled when pip installs it)."""
    import compileall

    spec = importlib.util.find_spec("spec3c")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        compileall.compile_dir(folder, quiet=1)


def measure(
    cmd: list[str],
    log: Path | None = None,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    max_mb: float | None = None,
    check: bool = True,
    append: bool = False,
) -> Measured:
    """Run ``cmd`` (stdout and stderr to ``log``); wall time and peak tree PSS.

    ``check``: exit with the log's tail when the command fails.  ``timeout``
    (seconds) or ``max_mb`` (peak PSS): kill the whole tree when exceeded
    (return code -9, ``stopped`` says which).
    """
    _compile_spec3c()
    temporary = log is None
    if log is None:
        log = Path(tempfile.mkstemp(prefix="measure-", suffix=".log")[1])
    # the writes of earlier steps (simulated inputs: a SOSS time series is 1.2 GB) are flushed
    # before the clock starts, so that neither pipeline pays for the other's or the simulator's
    os.sync()
    deadline = None if timeout is None else time.monotonic() + timeout
    start = time.perf_counter()
    with log.open("a" if append else "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        peak, stopped = _sample_until_exit(proc, deadline, None if max_mb is None else max_mb * 2**20)
    seconds = time.perf_counter() - start
    failed = check and proc.returncode != 0
    tail = log.read_text(errors="replace")[-3000:] if failed else ""
    if temporary:
        log.unlink()
    if failed:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")
    return Measured(seconds, peak / 2**20, proc.returncode, stopped)


def load_oracle():  # type: ignore[no-untyped-def]
    """``benchmarks/oracle.py`` as a module (loaded by path, once)."""
    if "spec3c_oracle" in sys.modules:
        return sys.modules["spec3c_oracle"]
    spec = importlib.util.spec_from_file_location("spec3c_oracle", HERE / "oracle.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["spec3c_oracle"] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class ReferenceMeasured:
    """One reference run measured by :func:`measure_reference`."""

    wall_seconds: float
    peak_pss_mb: float
    returncode: int
    log_path: Path
    products: dict[str, list[Path]] = field(default_factory=dict)
    stopped: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def measure_reference(
    asn: Path,
    output_dir: Path,
    *,
    extract1d: Path | None = None,
    steps: dict[str, dict[str, Any]] | None = None,
    timeout: float | None = None,
    max_mb: float | None = None,
    python: Path | None = None,
) -> ReferenceMeasured:
    """jwst ``calwebb_spec3`` on ``asn`` exactly as ``oracle.run_reference`` runs it, measured by :func:`measure`.

    Same child command, environment, CRDS cache and ``oracle.log``; only the
    memory figure differs (tree PSS here, ``ru_maxrss`` there).
    """
    oracle = load_oracle()
    py = python if python is not None else oracle.jwst_python()
    if py is None:
        raise FileNotFoundError("no jwst venv: set SPEC3C_JWST_PYTHON or create /work/.venv-jwst")
    out = Path(output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cache = oracle.make_crds_cache(out / "crds_cache")
    pars = oracle.reference_steps(extract1d, steps)
    asn_abs = Path(asn).resolve()
    log = out / "oracle.log"
    log.write_text("# " + oracle.strun_command(asn_abs, out, pars).replace("\n", "\n# ") + "\n")
    cmd = [str(py), "-c", oracle._CHILD, str(asn_abs), str(out), json.dumps(pars)]  # oracle's own child script
    m = measure(cmd, log, cwd=out, env=oracle.offline_env(cache), timeout=timeout, max_mb=max_mb,
                check=False, append=True)
    return ReferenceMeasured(m.seconds, m.peak_pss_mb, m.returncode, log, oracle.find_products(out), m.stopped)
