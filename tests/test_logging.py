"""Logging: per-step loggers, --log-level, --log-file, --quiet, --debug, progress without a terminal."""

from __future__ import annotations

import io
import logging
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from astropy.io import fits
from click.testing import CliRunner

from spec3c import log as logs
from spec3c.cli import _Bar, main
from spec3c.parallel import INLINE_BYTES_ENV
from spec3c.products.meta import read_provenance
from spec3c.simulate import SimOptions, simulate
from spec3c.steps.context import StepOutcome
from spec3c.steps.extract_1d import APCORR_MISSING
from spec3c.store import open_store

APERTURES = Path(__file__).resolve().parents[1] / "examples" / "extract1d_nirspec_fs.json"
STEPS = ("exp_to_source", "outlier_detection", "resample_spec", "extract_1d")


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    """``spec3c --log-file LOG run`` of a small NIRSpec FS dataset (3 sources, 2 exposures; apply_apcorr
    is on by default and no APCORR file is given)."""
    root = tmp_path_factory.mktemp("logging")
    sim = simulate("nirspec-fs", root / "in", SimOptions(seed=2, n_exposures=2, n_columns=200))
    log_file = root / "run.log"
    res = CliRunner().invoke(main, ["--log-file", str(log_file), "run", str(sim.asn_path), "-o", str(root / "out"),
                                    "--workers", "1", f"--steps.extract_1d.override_extract1d={APERTURES}"])
    assert res.exit_code == 0, res.output
    return root, res, log_file.read_text()


def _lines(text: str, level: str) -> list[str]:
    return [line for line in text.splitlines() if f" - {level} - " in line]


def test_log_file_has_every_stage_and_step(logged_run):
    root, res, text = logged_run
    names = {line.split(" - ")[2] for line in text.splitlines() if line.count(" - ") >= 3}
    assert {"spec3c.ingest", "spec3c.process", "spec3c.export", "spec3c.cli"} <= names
    assert {f"spec3c.step.{step}" for step in STEPS} <= names
    source = open_store(root / "out" / "spec3c.store").sources()[0]
    info = _lines(text, "INFO")
    for step in STEPS:
        assert any(f"spec3c.step.{step} - source {source}: COMPLETE" in line for line in info), step
    assert any("spec3c.step.pixel_replace" in line and "SKIPPED: skipped by parameter" in line for line in info)
    assert any("pixels flagged in 2 inputs" in line for line in info)  # outlier_detection's substance
    assert any("cross-dispersion aperture" in line for line in info)  # extract_1d's aperture
    assert not _lines(text, "DEBUG")  # the default level is INFO


def test_terminal_gets_the_same_lines_without_carriage_returns(logged_run):
    _, res, text = logged_run
    assert "\r" not in res.stderr and "\r" not in res.stdout
    assert "source(s) done (100 %)" in res.stderr  # progress as log lines, not a bar
    assert _lines(res.stderr, "INFO") and not any("spec3c.cli" in line for line in _lines(res.stderr, "INFO"))
    assert "wrote 12 products" in res.stdout and " - INFO - " not in res.stdout  # results stay on stdout
    assert set(_lines(res.stderr, "INFO")) <= set(_lines(text, "INFO"))


def test_apcorr_without_a_file_is_logged_and_recorded(logged_run):
    root, res, text = logged_run
    warnings = [line for line in _lines(text, "WARNING") if "spec3c.step.extract_1d" in line]
    assert warnings and all(APCORR_MISSING in line for line in warnings)
    assert any(APCORR_MISSING in line for line in _lines(res.stderr, "WARNING"))
    store = open_store(root / "out" / "spec3c.store")
    noted = {}
    for source in store.sources():
        step = store.get_result(source, "status")[1]["steps"]["extract_1d"]
        noted[source] = step.get("notes", [])
    assert any(noted.values()) and not all(noted.values())  # the point sources, not the extended one
    for path in sorted((root / "out").glob("*_x1d.fits")):
        with fits.open(path) as hdul:
            provenance = read_provenance(hdul)
        assert provenance is not None
        assert provenance.notes() == ({"extract_1d": [APCORR_MISSING]} if noted[provenance.source] else {})


def test_quiet_shows_only_warnings_and_the_log_file_keeps_the_rest(logged_run, tmp_path):
    root, _, _ = logged_run
    store = open_store(root / "out" / "spec3c.store")
    source = store.sources()[0]
    log_file = tmp_path / "quiet.log"
    res = CliRunner().invoke(main, ["--quiet", "--log-file", str(log_file), "process", str(root / "out" / "spec3c.store"),
                                    "--sources", source, "--force", "--workers", "1",
                                    f"--steps.extract_1d.override_extract1d={APERTURES}"])
    assert res.exit_code == 0, res.output
    assert "processed 1 sources" in res.stdout
    assert not _lines(res.stderr, "INFO") and "done (" not in res.stderr
    assert all(" - WARNING - " in line or " - ERROR - " in line for line in res.stderr.splitlines())
    assert any(f"spec3c.step.resample_spec - source {source}: COMPLETE" in line
               for line in _lines(log_file.read_text(), "INFO"))


def test_debug_level_adds_details_and_forwards_worker_records(logged_run, tmp_path, monkeypatch):
    """Two worker processes: their records reach this process's handlers (stderr and the file)."""
    monkeypatch.setenv(INLINE_BYTES_ENV, "0")  # worker processes even for this small store
    root, _, _ = logged_run
    log_file = tmp_path / "debug.log"
    res = CliRunner().invoke(main, ["--log-level", "debug", "--log-file", str(log_file), "process",
                                    str(root / "out" / "spec3c.store"), "--force", "--workers", "2",
                                    f"--steps.extract_1d.override_extract1d={APERTURES}"])
    assert res.exit_code == 0, res.output
    sources = open_store(root / "out" / "spec3c.store").sources()
    for text in (res.stderr, log_file.read_text()):
        debug = _lines(text, "DEBUG")
        assert any("spec3c.step.outlier_detection" in line and "n_flagged" in line for line in debug)
        assert any("computed because forced" in line for line in debug)
        for source in sources:
            assert any(f"spec3c.step.extract_1d - source {source}: COMPLETE" in line for line in _lines(text, "INFO"))


def _spec3c(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spec3c.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, check=False, env=env)


def test_forked_workers_log_each_record_once(logged_run, tmp_path):
    """The spec3c program forks its workers, which have its handlers: each of their records still
    reaches stderr and the log file once, through this process."""
    root, _, _ = logged_run
    log_file = tmp_path / "forked.log"
    res = _spec3c("--log-file", log_file, "process", root / "out" / "spec3c.store", "--force", "--workers", "2",
                  f"--steps.extract_1d.override_extract1d={APERTURES}", env={**os.environ, INLINE_BYTES_ENV: "0"})
    assert res.returncode == 0, res.stderr[-3000:]
    for source in open_store(root / "out" / "spec3c.store").sources():
        done = f"spec3c.step.extract_1d - source {source}: COMPLETE"
        assert [done in line for line in res.stderr.splitlines()].count(True) == 1
        assert [done in line for line in log_file.read_text().splitlines()].count(True) == 1


def test_an_error_has_a_traceback_only_with_debug(tmp_path):
    asn = tmp_path / "broken_asn.json"
    asn.write_text("{not json")
    log_file = tmp_path / "error.log"
    res = _spec3c("--log-file", log_file, "ingest", asn, "--store", tmp_path / "s")
    assert res.returncode == 1
    assert "Traceback" not in res.stderr and "Error: " in res.stderr
    text = log_file.read_text()
    assert _lines(text, "ERROR") and "Traceback" not in text
    debug = _spec3c("--debug", "--log-file", log_file, "ingest", asn, "--store", tmp_path / "s")
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert "Traceback" in log_file.read_text()  # --debug logs at DEBUG: the traceback goes to the file too


def test_a_bad_log_file_is_a_clean_error(tmp_path):
    res = CliRunner().invoke(main, ["--log-file", str(tmp_path / "missing" / "x.log"), "modes"])
    assert res.exit_code == 1 and "the log file cannot be written" in res.output


# -- the pieces ---------------------------------------------------------------------------------

class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_only_on_a_terminal(monkeypatch, caplog):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    caplog.set_level(logging.INFO, logger="spec3c")
    bar = _Bar("process", "source")
    for done in range(1, 101):
        bar(f"s{done}", done, 100)
    bar.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "spec3c.process"]
    assert 10 <= len(lines) <= 11 and lines[-1] == "100/100 source(s) done (100 %), last: s100"
    assert sys.stderr.getvalue() == ""  # no bar
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    caplog.clear()
    bar = _Bar("process", "source")
    for done in range(1, 4):
        bar(f"s{done}", done, 3)
    bar.close()
    assert "\r" in terminal.getvalue() and "3/3" in terminal.getvalue()
    assert not [r for r in caplog.records if r.name == "spec3c.process"]


@pytest.mark.parametrize(
    ("outcome", "level"),
    [
        (StepOutcome("COMPLETE", "done"), logging.INFO),
        (StepOutcome("SKIPPED", "routine"), logging.INFO),
        (StepOutcome("SKIPPED", "could not", warn=True), logging.WARNING),
        (StepOutcome("FAILED", "broken"), logging.ERROR),
    ],
)
def test_one_line_per_step_outcome(caplog, outcome, level):
    caplog.set_level(logging.DEBUG, logger="spec3c")
    outcome.log("resample_spec", "12_3", 0.5)
    (record,) = caplog.records
    assert record.name == "spec3c.step.resample_spec" and record.levelno == level
    assert record.getMessage() == f"source 12_3: {outcome.status}: {outcome.message} (0.50 s)"


def test_notes_are_warnings_and_recorded(caplog):
    caplog.set_level(logging.DEBUG, logger="spec3c")
    outcome = StepOutcome("COMPLETE", "ok", notes=("not corrected",))
    assert outcome.record(1.0)["notes"] == ["not corrected"]
    assert "notes" not in StepOutcome("COMPLETE", "ok").record(1.0)
    outcome.log("extract_1d", "7", 1.0)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "source 7: COMPLETE: ok (1.00 s)"), (logging.WARNING, "source 7: not corrected")]


def test_configure_installs_once_and_reset_removes(tmp_path):
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        logs.configure("WARNING", tmp_path / "a.log", quiet=True)
        settings = logs.configure("INFO", tmp_path / "b.log")
        ours = [h for h in root.handlers if h not in before]
        assert len(ours) == 2 and settings.level == logging.INFO and settings.log_file == str(tmp_path / "b.log")
        logs.logger("test").info("hello")
        assert "spec3c.test - hello" in (tmp_path / "b.log").read_text()
        assert not (tmp_path / "a.log").read_text()
    finally:
        logs.reset()
    assert root.handlers == before and logs.current() is None


def test_a_worker_forwards_its_records(tmp_path, caplog):
    """A :class:`LogForwarder` hands a connected worker's records to this process's loggers."""
    caplog.set_level(logging.DEBUG, logger="spec3c")
    forwarder = logs.LogForwarder()
    try:
        handler = logs._ForwardingHandler(forwarder.address, forwarder.authkey)
        record = logging.LogRecord("spec3c.step.x", logging.WARNING, __file__, 1, "a %s", ("b",), None)
        try:
            raise ValueError("boom")
        except ValueError:
            failed = logging.LogRecord("spec3c.process", logging.DEBUG, __file__, 2, "tb", (), sys.exc_info())
        handler.emit(record)
        handler.emit(failed)
        handler.close()
    finally:
        forwarder.close()
    got = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert ("spec3c.step.x", logging.WARNING, "a b") in got and ("spec3c.process", logging.DEBUG, "tb") in got
    assert any("ValueError: boom" in (r.exc_text or "") for r in caplog.records)


def test_close_returns_when_the_accepting_thread_has_already_ended():
    """close() must not wait on a handshake nobody answers (it once hung CI this way)."""
    forwarder = logs.LogForwarder()
    forwarder._closed = True  # the accepting thread sees this after its next connection ...
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as nudge:
        nudge.connect(forwarder.address)
    forwarder._accepting.join(10)
    assert not forwarder._accepting.is_alive()
    forwarder._closed = False  # ... and ended: close() is now called with nobody accepting
    closing = threading.Thread(target=forwarder.close, daemon=True)
    closing.start()
    closing.join(20)
    assert not closing.is_alive(), "LogForwarder.close() hangs when the accepting thread has ended"
