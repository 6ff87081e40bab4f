"""Logging: the ``spec3c`` logger hierarchy, one configuration per command, worker records forwarded.

Every module logs to a logger under ``spec3c`` (:func:`logger`):
``spec3c.ingest``, ``spec3c.process``, ``spec3c.export``, ``spec3c.step.<step>``
(one line per step and source, :func:`log_step`) ...  Nothing here prints;
the command line calls :func:`configure` once, from its global options
(``--log-level``, ``--log-file``, ``--quiet``), and :func:`reset` when the
command ends.  Used as a library, spec3c logs to whatever the caller
configured (nothing is shown below WARNING by default).

Worker processes send their records to the process that started them: a
local pool's workers (:mod:`spec3c.parallel`) connect to a
:class:`LogForwarder` of the parent over a private Unix socket (each worker
its own connection, so a killed worker cannot block the others), and the
parent hands each record to its own handlers, the log file and the progress
bar included.  Dask workers, possibly on other hosts, write the same format
themselves (:func:`configure_worker`): to their stderr and to the log file
when its path is visible there.

This module is a leaf: it imports only the standard library.
"""

from __future__ import annotations

import contextlib
import hmac  # noqa: F401 - the handshake imports it: done here, not in a thread another may fork under
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

__all__ = ["FILE_ONLY", "FORMAT", "LEVELS", "ROOT", "TRACEBACK", "LogForwarder", "LogSettings", "WorkerLogging", "configure",
           "configure_worker", "current", "forget_parent_logging", "log_step", "logger", "reset", "step_logger", "worker_logging"]

#: the package's logger; every spec3c logger is below it
ROOT = "spec3c"
#: time, level, logger name, message (the layout of the reference's stpipe log)
FORMAT = "%(asctime)s - %(levelname)s - %(name)s - %(message)s"
#: the choices of ``--log-level``
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
#: ``extra=FILE_ONLY``: the record goes to the log file, not to the terminal (e.g. what the terminal
#: already shows another way, as the error message of a failed command)
FILE_ONLY = {"spec3c_file_only": True}
#: ``extra=TRACEBACK`` (a DEBUG record with ``exc_info``): the terminal shows it only with ``--debug``
TRACEBACK = {"spec3c_traceback": True}

#: a record attribute marking the handlers :func:`configure` installed (to remove exactly those)
_OURS = "_spec3c_handler"


def logger(name: str = "") -> logging.Logger:
    """The logger ``spec3c.<name>`` (``name`` may already start with ``spec3c``; empty: ``spec3c``)."""
    if not name or name == ROOT:
        return logging.getLogger(ROOT)
    return logging.getLogger(name if name.startswith(ROOT + ".") else f"{ROOT}.{name}")


def step_logger(step: str) -> logging.Logger:
    """The logger of one pipeline step, ``spec3c.step.<step>``."""
    return logger(f"step.{step}")


# -- the configuration of one command --------------------------------------------------------

@dataclass(frozen=True)
class LogSettings:
    """What the global options asked for.

    Attributes
    ----------
    level : int
        The ``spec3c`` loggers' level; the log file gets every record at or above it.
    log_file : str or None
        Absolute path of the log file (appended to), or None.
    quiet : bool
        The terminal (stderr) shows warnings and errors only.
    debug : bool
        The terminal shows tracebacks (``--debug``).
    """

    level: int = logging.INFO
    log_file: str | None = None
    quiet: bool = False
    debug: bool = False

    @property
    def console_level(self) -> int:
        return max(self.level, logging.WARNING) if self.quiet else self.level


_CURRENT: LogSettings | None = None


def current() -> LogSettings | None:
    """The settings of :func:`configure`, None when spec3c is used as a library."""
    return _CURRENT


class _ForTerminal(logging.Filter):
    """Drops what only the log file gets, and tracebacks unless ``--debug``."""

    def __init__(self, debug: bool) -> None:
        super().__init__()
        self.debug = debug

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "spec3c_file_only", False):
            return False
        return self.debug or not getattr(record, "spec3c_traceback", False)


class _ConsoleHandler(logging.StreamHandler):
    """stderr; while a tqdm progress bar is shown, lines are written above it (the bar stays whole)."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm_module = sys.modules.get("tqdm")
        bars = getattr(getattr(tqdm_module, "tqdm", None), "_instances", None)
        if not bars:
            super().emit(record)
            return
        try:
            tqdm_module.tqdm.write(self.format(record), file=self.stream)  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def _level(value: int | str) -> int:
    if isinstance(value, int):
        return value
    if value.upper() not in LEVELS:
        raise ValueError(f"log level {value!r}: expected one of {', '.join(LEVELS)}")
    return int(logging.getLevelName(value.upper()))


def _ours_or_warning(record: logging.LogRecord) -> bool:
    """spec3c's records, and other packages' warnings and errors (not their chatter, e.g. Dask's INFO)."""
    return record.name == ROOT or record.name.startswith(ROOT + ".") or record.levelno >= logging.WARNING


def _install(handler: logging.Handler, level: int) -> None:
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(_ours_or_warning)
    setattr(handler, _OURS, True)
    logging.getLogger().addHandler(handler)


def _remove_ours() -> None:
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(handler)
        handler.close()


def configure(level: int | str = logging.INFO, log_file: str | os.PathLike[str] | None = None,
              quiet: bool = False, debug: bool = False) -> LogSettings:
    """Send spec3c's records at ``level`` and above to stderr (``quiet``: warnings and errors only;
    tracebacks only with ``debug``) and to ``log_file`` (appended to); Python warnings too.

    Replaces what an earlier call installed.  Other packages' loggers keep
    their own level (WARNING unless configured): their warnings reach the same
    handlers, their chatter does not.
    """
    global _CURRENT
    path = None if log_file is None else str(Path(log_file).resolve())
    settings = LogSettings(_level(level), path, quiet, debug)
    file = None if path is None else logging.FileHandler(path, mode="a", encoding="utf-8")  # OSError: nothing changed
    _remove_ours()
    console = _ConsoleHandler(sys.stderr)
    console.addFilter(_ForTerminal(debug))
    _install(console, settings.console_level)
    if file is not None:
        _install(file, settings.level)
    logger().setLevel(settings.level)
    logging.captureWarnings(True)
    _CURRENT = settings
    return settings


def reset() -> None:
    """Undo :func:`configure`: remove (and close) its handlers, stop capturing warnings."""
    global _CURRENT
    _remove_ours()
    if _CURRENT is not None:
        logger().setLevel(logging.NOTSET)
        logging.captureWarnings(False)
    _CURRENT = None


# -- one line per step and source ------------------------------------------------------------

#: keys of a step's status record that are not its details
_RECORD_KEYS = ("status", "message", "seconds", "notes")


def log_step(step: str, source: str, record: Mapping[str, Any], *, warn: bool = False) -> None:
    """Log one step's outcome for one source from its status record (``StepOutcome.record``).

    INFO for a completed or skipped step (WARNING with ``warn``: a skip that
    the user should know of), ERROR for a failed one; each note a WARNING;
    the details at DEBUG.
    """
    log = step_logger(step)
    status = str(record.get("status", ""))
    level = logging.ERROR if status == "FAILED" else logging.WARNING if warn else logging.INFO
    message = str(record.get("message") or "")
    seconds = record.get("seconds")
    took = f" ({seconds:.2f} s)" if isinstance(seconds, int | float) else ""
    log.log(level, "source %s: %s%s%s", source, status, f": {message}" if message else "", took)
    for note in record.get("notes") or ():
        log.warning("source %s: %s", source, note)
    details = {k: v for k, v in record.items() if k not in _RECORD_KEYS}
    if details:
        log.debug("source %s: details %s", source, details)


# -- worker processes --------------------------------------------------------------------------

@dataclass(frozen=True)
class WorkerLogging:
    """What a worker process needs to log as its parent does.

    ``forward``: ``(address, authkey)`` of the parent's :class:`LogForwarder`
    (local pools); else the records are written by the worker itself, to its
    stderr and to ``log_file`` (Dask workers).
    """

    level: int
    forward: tuple[str, bytes] | None = None
    log_file: str | None = None
    quiet: bool = False
    debug: bool = False
    capture_warnings: bool = False


def worker_logging(forwarder: LogForwarder | None = None) -> WorkerLogging:
    """This process's logging, as a worker should reproduce it."""
    settings = _CURRENT
    level = settings.level if settings is not None else logger().getEffectiveLevel()
    address = (forwarder.address, forwarder.authkey) if forwarder is not None else None
    if settings is None:
        return WorkerLogging(level, address)
    return WorkerLogging(level, address, settings.log_file, settings.quiet, settings.debug, capture_warnings=True)


class _ForwardingHandler(logging.Handler):
    """Sends each record (message formatted, traceback as text) to the parent's :class:`LogForwarder`."""

    def __init__(self, address: str, authkey: bytes) -> None:
        from multiprocessing.connection import Client

        super().__init__()
        self._conn: Connection | None = Client(address, family="AF_UNIX", authkey=authkey)

    def emit(self, record: logging.LogRecord) -> None:
        if self._conn is None:
            return
        try:
            self._conn.send(_picklable(record))
        except (OSError, EOFError):  # the parent stopped listening: nothing more to send
            self._conn = None
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        super().close()


def _picklable(record: logging.LogRecord) -> dict[str, Any]:
    """The record as a dict of plain values (:func:`logging.makeLogRecord` rebuilds it)."""
    data = dict(record.__dict__)
    data["msg"] = record.getMessage()
    data["args"] = None
    if record.exc_info:
        data["exc_text"] = logging.Formatter().formatException(record.exc_info)
    data["exc_info"] = None
    data.pop("message", None)
    return {k: v for k, v in data.items() if v is None or isinstance(v, str | int | float | bool | tuple)}


_WORKER: WorkerLogging | None = None


def forget_parent_logging() -> None:
    """In a worker forked from a configured ``spec3c`` process: drop the parent's handlers and settings
    (:func:`configure_worker` then sets up the worker's own)."""
    global _CURRENT
    _remove_ours()
    _CURRENT = None


def configure_worker(settings: WorkerLogging) -> None:
    """Set up a worker process's logging (once per process and settings)."""
    global _WORKER
    if settings == _WORKER or _CURRENT is not None:  # done already, or this is the configured parent itself
        return
    from multiprocessing import AuthenticationError

    _remove_ours()
    forwarding = None
    if settings.forward is not None:
        try:
            forwarding = _ForwardingHandler(*settings.forward)
        except (OSError, EOFError, AuthenticationError):  # the parent is gone: log as a Dask worker does
            forwarding = None
    if forwarding is not None:
        _install(forwarding, settings.level)
    else:
        quiet = max(settings.level, logging.WARNING) if settings.quiet else settings.level
        console = logging.StreamHandler(sys.stderr)
        console.addFilter(_ForTerminal(settings.debug))
        _install(console, quiet)
        if settings.log_file is not None and Path(settings.log_file).parent.is_dir():
            _install(logging.FileHandler(settings.log_file, mode="a", encoding="utf-8"), settings.level)
    logger().setLevel(settings.level)
    logging.captureWarnings(settings.capture_warnings)
    _WORKER = settings


class LogForwarder:
    """Receives the records of worker processes and hands them to this process's handlers.

    A private Unix socket (in a folder only this user can enter, with an
    authentication key); each worker process connects once and is read by its
    own thread, so a worker killed in the middle of a record blocks nobody.

    ``accept=False`` listens without accepting until :meth:`start`: a pool
    that forks its workers starts accepting after the last fork, so that no
    thread of this process is in the middle of a handshake (an import, a lock)
    that a forked worker would inherit half done.  The workers' connections
    wait in the socket's backlog meanwhile.
    """

    def __init__(self, accept: bool = True) -> None:
        from multiprocessing.connection import Listener

        self.authkey = os.urandom(32)
        self._listener = Listener(family="AF_UNIX", authkey=self.authkey)
        self.address = str(self._listener.address)
        self._closed = False
        self._readers: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, name="spec3c-log-accept", daemon=True)
        if accept:
            self.start()

    def start(self) -> None:
        """Start accepting the workers' connections (once)."""
        if self._accepting.ident is None and not self._closed:
            self._accepting.start()

    def _accept(self) -> None:
        from multiprocessing import AuthenticationError

        while not self._closed:
            try:
                conn = self._listener.accept()
            except (OSError, EOFError, AuthenticationError):  # a failed handshake, or the listener was closed
                time.sleep(0.01)  # (not a busy loop if accepting keeps failing, e.g. out of file descriptors)
                continue
            # every connection is read to its end (the one :meth:`close` makes sends nothing)
            reader = threading.Thread(target=self._read, args=(conn,), name="spec3c-log-read", daemon=True)
            self._readers.append(reader)
            reader.start()

    @staticmethod
    def _read(conn: Connection) -> None:
        with conn:
            while True:
                try:
                    data = conn.recv()
                except (EOFError, OSError):  # the worker exited (or died)
                    return
                record = logging.makeLogRecord(data)
                logging.getLogger(record.name).handle(record)

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting; wait (at most ``timeout`` s) for the records of exited workers."""
        if self._closed:
            return
        self._closed = True
        if self._accepting.ident is None:  # never started: nobody was accepted
            self._listener.close()
            return
        # accept() does not return when the listener is closed under it: a last connection wakes it.  A bare
        # socket, not a Client: a Client waits for the handshake, forever if the accepting thread saw
        # ``_closed`` and ended before this connection (the handshake fails on the bare socket, as meant).
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as wake:
            wake.settimeout(timeout)
            wake.connect(self.address)
        deadline = time.monotonic() + timeout
        self._accepting.join(timeout)
        self._listener.close()
        for reader in self._readers:
            reader.join(max(0.0, deadline - time.monotonic()))
