"""Failures the user causes: a full disk or a file-size limit mid-export, Ctrl-C, a read-only
output folder.  Each gives one clear error; nothing partial appears under a product's name;
running again completes the work."""

from __future__ import annotations

import errno
import os
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
import warnings
from pathlib import Path

import pytest
from harness import (
    FS_APERTURES,
    asn_of,
    data_differences,
    product_data,
    run_spec3c,
    spec3c_command,
    temporaries,
)

from spec3c.check import check_store
from spec3c.errors import Spec3cError
from spec3c.products.fits_io import atomic_save, finished_in_background, remove_stale_temporaries

#: a file-size limit between the small products (x1d ~50 kB, s2d ~250 kB) and the large (cal, crf ~600 kB)
FSIZE_LIMIT = 400_000


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, FSIZE_LIMIT))


@pytest.mark.parametrize("workers", [1, 2])
def test_file_size_limit_mid_export(fs_baseline, tmp_path, workers):
    store = Path(shutil.copytree(fs_baseline.processed, tmp_path / "store"))
    out = tmp_path / "out"
    small_first = ("--suffix", "x1d,s2d,cal,crf")  # each source writes products under the limit, then fails
    res = subprocess.run(spec3c_command("export", store, "-o", out, "--workers", str(workers), *small_first),
                         capture_output=True, text=True, timeout=600, check=False, preexec_fn=_limit_file_size)
    print(res.stderr[-2000:])
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert "File too large" in res.stderr and "export again" in res.stderr
    failed = [line for line in res.stderr.splitlines() if line.startswith("  ") and ": " in line]
    assert failed and all("File too large" in line for line in failed), res.stderr  # each one clear
    assert sum(line.startswith("Error:") for line in res.stderr.splitlines()) == 1
    written = product_data(out)
    assert written, "the products under the limit are written"
    assert all(p.stat().st_size <= FSIZE_LIMIT for p in out.glob("*.fits"))
    assert len(written) < len(fs_baseline.data), "the products over the limit are not"
    assert not [d for d in data_differences(written, fs_baseline.data) if not d.startswith("missing ")]
    assert temporaries(out) == []
    run_spec3c("export", store, "-o", out, "--workers", str(workers))  # the limit lifted: completes
    assert data_differences(product_data(out), fs_baseline.data) == []
    assert check_store(store).ok


def _a_product(fs_output: Path):  # type: ignore[no-untyped-def]
    from stdatamodels.jwst import datamodels

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return datamodels.open(next(fs_output.glob("*_x1d.fits")))


def test_disk_full_leaves_no_partial_product(fs_output, tmp_path, monkeypatch):
    """ENOSPC half-way through a write: an error naming the product; the old file is kept."""
    model = _a_product(fs_output)
    target = tmp_path / "product_x1d.fits"
    target.write_bytes(b"the earlier, complete product")

    def full_disk(self, f):  # type: ignore[no-untyped-def]
        f.write(b"SIMPLE  =" + b" " * 5000)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(type(model), "to_fits", full_disk)
    with pytest.raises(Spec3cError, match="product_x1d.fits: the product could not be written: No space left"):
        atomic_save(model, target)
    assert target.read_bytes() == b"the earlier, complete product"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["product_x1d.fits"]


def test_products_synced_in_the_background_are_in_place_when_the_block_ends(fs_output, tmp_path, monkeypatch):
    """finished_in_background: the sync and rename of each product go on (in another thread) while
    the next is written; by the block's end every product is at its name, with the usual mode, and
    nothing else is left."""
    model = _a_product(fs_output)
    real_fsync, threads = os.fsync, []

    def fsync(fd: int) -> None:
        threads.append(threading.current_thread())
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with finished_in_background():
        for name in ("a_x1d.fits", "b_x1d.fits", "c_x1d.fits"):
            atomic_save(model, tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_x1d.fits", "b_x1d.fits", "c_x1d.fits"]
    mask = os.umask(0o022)
    os.umask(mask)
    expected = (tmp_path / "a_x1d.fits").read_bytes()
    for path in tmp_path.iterdir():
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask
        assert len(path.read_bytes()) == len(expected) > 2880
    assert len(threads) == 3 and threading.main_thread() not in threads


def test_a_failed_sync_in_the_background_is_raised_at_the_block_end(fs_output, tmp_path, monkeypatch):
    """ENOSPC from the sync of the second of three products: the block ends with an error naming it,
    the other two are in place, the failed one is not, and no temporary is left."""
    model = _a_product(fs_output)
    real_fsync, calls = os.fsync, []

    def fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(Spec3cError, match="b_x1d.fits: the product could not be written: No space left"):
        with finished_in_background():
            for name in ("a_x1d.fits", "b_x1d.fits", "c_x1d.fits"):
                atomic_save(model, tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_x1d.fits", "c_x1d.fits"]


def test_temporaries_of_dead_writers_are_removed(tmp_path):
    host = socket.gethostname().replace(".", "-")
    stale = tmp_path / f".a_x1d.fits.{host}.999999999.abc123.tmp"  # no such pid
    alive = tmp_path / f".a_x1d.fits.{host}.{os.getpid()}.abc123.tmp"
    other_host = tmp_path / ".a_x1d.fits.elsewhere.999999999.abc123.tmp"
    for p in (stale, alive, other_host):
        p.write_bytes(b"partial")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert alive.exists() and other_host.exists()


def test_temporaries_of_zombie_writers_and_reused_pids_are_removed(tmp_path):
    """A killed worker whose parent died stays a zombie until reaped; a live pid may be a later process."""
    host = socket.gethostname().replace(".", "-")
    exited = subprocess.Popen(["true"])  # exits at once and is not reaped until wait(): a zombie
    child = exited.pid
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child}/stat").read_text().rsplit(") ", 1)[1][0] != "Z":
            assert time.monotonic() < deadline, "the child did not become a zombie"
            time.sleep(0.01)
        zombie = tmp_path / f".a_x1d.fits.{host}.{child}.abc123.tmp"
        reused = tmp_path / f".b_x1d.fits.{host}.{os.getpid()}.abc123.tmp"  # written before this process began
        live = tmp_path / f".c_x1d.fits.{host}.{os.getpid()}.abc123.tmp"
        for p in (zombie, reused, live):
            p.write_bytes(b"partial")
        os.utime(reused, (0, 0))
        assert sorted(remove_stale_temporaries(tmp_path)) == sorted([zombie, reused])
        assert live.exists()
    finally:
        exited.wait()


# -- Ctrl-C -------------------------------------------------------------------------------------

def _wait_for(path: Path, pattern: str, proc: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not list(path.glob(pattern)):
        assert proc.poll() is None, "finished before it could be interrupted"
        assert time.monotonic() < deadline, f"no {pattern} in {path} after {timeout} s"
        time.sleep(0.01)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_stops_quickly_and_rerun_completes(fs_input, fs_baseline, tmp_path, workers):
    """SIGINT to the whole process group, as a terminal's Ctrl-C, while export writes products."""
    out = tmp_path / "out"
    cmd = spec3c_command("run", asn_of(fs_input), "-o", out, "--workers", str(workers), FS_APERTURES)
    # a terminal's foreground command: SIGINT handled the default way, even when this suite runs where it
    # is ignored (started with & from a script: spec3c then rightly leaves Ctrl-C alone)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_default_sigint)
    _wait_for(out, "*.fits", proc, timeout=600)  # the first product is out: export is under way
    sent = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    stopped = time.monotonic() - sent
    print(f"workers {workers}: stopped {stopped:.2f} s after SIGINT")
    assert proc.returncode == 130, stderr
    assert stopped < 2.0
    assert "Error: interrupted" in stderr and "Traceback" not in stderr
    assert not [d for d in data_differences(product_data(out), fs_baseline.data) if not d.startswith("missing ")]
    run_spec3c("run", asn_of(fs_input), "-o", out, "--workers", str(workers), FS_APERTURES)
    assert data_differences(product_data(out), fs_baseline.data) == []
    assert temporaries(out) == []
    assert check_store(out / "spec3c.store").ok


# -- a read-only output folder ----------------------------------------------------------------------

def _as_a_user(cmd: list[str]) -> list[str]:
    """``cmd`` without root's power to write anywhere (CAP_DAC_OVERRIDE dropped), when run as root."""
    if os.geteuid() != 0:
        return cmd
    if not shutil.which("capsh"):
        pytest.skip("running as root without capsh: a read-only folder is writable")
    return ["capsh", "--drop=cap_dac_override", "--", "-c", shlex.join(cmd)]


def test_read_only_output_folder(fs_input, tmp_path):
    """A clear error before any work: nothing is read, nothing written."""
    out = tmp_path / "ro"
    out.mkdir(mode=0o555)
    cmd = [str(c) for c in spec3c_command("run", asn_of(fs_input), "-o", out, "--workers", "1", FS_APERTURES)]
    res = subprocess.run(_as_a_user(cmd), capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 1, res.stderr
    assert f"Error: {out}: the output folder cannot be written there (Permission denied); nothing was done" \
        in res.stderr
    assert "Traceback" not in res.stderr and "ingest" not in res.stdout + res.stderr
    assert list(out.iterdir()) == []
    store = tmp_path / "ro_store"
    store.mkdir(mode=0o555)
    cmd = [str(c) for c in spec3c_command("ingest", asn_of(fs_input), "--store", store)]
    res = subprocess.run(_as_a_user(cmd), capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 1 and f"Error: {store}: the store cannot be written there" in res.stderr
    assert "Traceback" not in res.stderr
