"""How the ``spec3c`` program ends: at once (no module teardown, no wait for the Ctrl-C watcher), with its
output, its log and its exit status complete; the usual way while other threads still run."""

from __future__ import annotations

import subprocess
import sys
import time

from spec3c.interrupt import interruptible


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)


def test_exit_now_flushes_output_and_logs_and_keeps_the_status(tmp_path):
    log = tmp_path / "x.log"
    res = _python(
        "import logging, sys\n"
        f"logging.basicConfig(filename={str(log)!r}, level=logging.INFO)\n"
        "logging.getLogger('t').info('last record')\n"
        "sys.stdout.write('no newline'); sys.stderr.write('err text')\n"
        "from spec3c.cli import _exit_now\n"
        "_exit_now(3)\n"
        "print('not reached')\n")
    assert res.returncode == 3
    assert res.stdout == "no newline" and res.stderr == "err text"
    assert "last record" in log.read_text()


def test_exit_now_with_a_message_prints_it_and_ends_with_status_1():
    res = _python("from spec3c.cli import _exit_now\n_exit_now('it failed')\n")
    assert res.returncode == 1 and res.stderr.strip() == "it failed"
    ok = _python("from spec3c.cli import _exit_now\n_exit_now(None)\n")
    assert ok.returncode == 0


def test_exit_now_returns_while_another_thread_runs():
    """A thread still working (not a daemon) is not cut off: the process ends the usual way, after it."""
    res = _python(
        "import threading, time\n"
        "from spec3c.cli import _exit_now\n"
        "t = threading.Thread(target=lambda: (time.sleep(0.3), print('thread done', flush=True)))\n"
        "t.start()\n"
        "_exit_now(0)\n"
        "print('returned', flush=True)\n")
    assert res.returncode == 0
    assert res.stdout.split() == ["returned", "thread", "done"]


def test_the_program_exits_with_its_status():
    bad = subprocess.run([sys.executable, "-m", "spec3c.cli", "no-such-command"], capture_output=True, text=True,
                         timeout=60, check=False)
    assert bad.returncode == 2 and "No such command" in bad.stderr
    version = subprocess.run([sys.executable, "-m", "spec3c.cli", "--version"], capture_output=True, text=True,
                             timeout=60, check=False)
    assert version.returncode == 0 and version.stdout.startswith("spec3c, version")


def test_leaving_an_interruptible_block_does_not_wait_for_the_watcher():
    """The watcher polls once a second; the block's end wakes it, so leaving takes no poll."""
    start = time.perf_counter()
    for _ in range(10):
        with interruptible():
            pass
    assert time.perf_counter() - start < 0.5  # ten polls would take ~10 s
