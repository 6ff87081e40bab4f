"""Results built once per test session and shared by the modules (and pytest-xdist workers) that need them.

The first caller builds the result under a file lock in the session's common
temporary folder; the others wait and load it (:func:`shared`).
"""

from __future__ import annotations

import fcntl
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["shared"]


def shared(tmp_path_factory: Any, name: str, build: Callable[[Path], Any]) -> Any:
    """``build(folder)`` once per session (across xdist workers); its picklable result, loaded by every caller."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the folder all workers of this session share
    root = base / f"shared-{name}"
    root.mkdir(exist_ok=True)
    result = root / "result.pickle"
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not result.exists():  # a failed build leaves none: the next caller tries again
            work = root / "run"
            if work.exists():
                import shutil

                shutil.rmtree(work)
            work.mkdir()
            value = build(work)
            partial = root / "result.pickle.part"
            partial.write_bytes(pickle.dumps(value))
            partial.replace(result)
    return pickle.loads(result.read_bytes())
