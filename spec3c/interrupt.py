"""Ctrl-C for a command that runs worker processes: stop everything within a second or two.

A terminal's Ctrl-C sends SIGINT to every process of the foreground group,
pool workers included; each would die in the middle of a job with its own
traceback, and a pool may even restart them.  Inside :func:`interruptible`
SIGINT is instead *blocked* in this process, so every worker started in the
block inherits the block (a signal mask survives ``exec``) and ignores it.
A watcher thread takes the signal (and is woken by SIGUSR2 when the block
ends, so leaving the block costs no wait): it terminates the worker processes this
process started, then interrupts the main thread (a real signal, SIGUSR1,
so a blocking wait returns), where it surfaces as ``KeyboardInterrupt``.
Threads that libraries started before the block (BLAS pools) still accept
SIGINT; when one takes it, the Python handler does the same in the main thread.
Writes are atomic, so what a terminated worker was writing never appears.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["interruptible", "interrupted", "stop_children"]

#: set once SIGINT arrived in an :func:`interruptible` block (a pool must not restart its workers then)
_INTERRUPTED = threading.Event()
#: sent to the watcher thread alone when the block ends (blocked there, so it only wakes the watcher)
_WAKE = signal.SIGUSR2


def interrupted() -> bool:
    """Whether Ctrl-C arrived in this process's :func:`interruptible` block."""
    return _INTERRUPTED.is_set()


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _stop_and_raise(signum: int, frame: FrameType | None) -> None:
    """SIGINT reached a thread started before the block (a library's pool): the same, in the main thread."""
    _INTERRUPTED.set()
    stop_children()
    raise KeyboardInterrupt


def stop_children() -> None:
    """Terminate the worker processes this process started."""
    for child in multiprocessing.active_children():
        child.terminate()


def _watch(main_ident: int, done: threading.Event) -> None:
    while not done.is_set():
        received = signal.sigtimedwait({signal.SIGINT, _WAKE}, 1.0)
        if received is None or received.si_signo != signal.SIGINT:
            continue
        _INTERRUPTED.set()
        stop_children()
        if not done.is_set():
            signal.pthread_kill(main_ident, signal.SIGUSR1)


def _wake(watcher: threading.Thread) -> None:
    """End the watcher's wait now (it polls ``done`` every second otherwise)."""
    if watcher.ident is not None and watcher.is_alive():
        try:
            signal.pthread_kill(watcher.ident, _WAKE)
        except ProcessLookupError:  # it has just ended
            pass


@contextmanager
def interruptible() -> Iterator[None]:
    """Run the block with Ctrl-C stopping its worker processes and raising ``KeyboardInterrupt``.

    Only in the main thread of a process whose SIGINT is handled the usual
    way (not ignored, as it is for a background job); otherwise the block runs
    unchanged.
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is signal.SIG_IGN):
        yield
        return
    previous_usr1 = signal.signal(signal.SIGUSR1, _raise_interrupt)
    previous_int = signal.signal(signal.SIGINT, _stop_and_raise)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, _WAKE})  # the watcher inherits both
    done = threading.Event()
    watcher = threading.Thread(target=_watch, args=(threading.get_ident(), done), name="spec3c-sigint",
                               daemon=True)
    watcher.start()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {_WAKE})
    try:
        yield
    finally:
        done.set()
        _wake(watcher)
        watcher.join()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGUSR1, previous_usr1)
