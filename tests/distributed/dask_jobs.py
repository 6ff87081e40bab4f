"""Job functions the distributed tests send to workers (importable there: the test puts this folder
on the workers' PYTHONPATH)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from spec3c._core._openmp import max_threads


def square(item: str, offset: int) -> int:
    return int(item) ** 2 + offset


def die_once(item: str, marks: str, victims: str) -> str:
    """For items in ``victims``: kill the worker process the first time the item runs (as the OOM
    killer would); then succeed."""
    mark = Path(marks) / item
    if item in victims and not mark.exists():
        mark.write_text(str(os.getpid()))
        os._exit(17)
    return f"{item} done by {os.getpid()}"


def fail(item: str) -> str:
    raise ValueError(f"bad item {item}")


def always_die(item: str) -> str:
    """``bad`` kills its worker every time (after a second, so that ``good`` is never caught running)."""
    if item == "bad":
        time.sleep(1.0)
        os._exit(17)
    return item


def where_imported(item: str, marks: str = "", victims: str = "") -> tuple[int, int]:
    """(this worker's pid, the pid of the process that imported :mod:`import_marker` in it); a worker
    whose item is in ``victims`` dies first, once (see :func:`die_once`)."""
    import import_marker

    if victims:
        die_once(item, marks, victims)
    return os.getpid(), import_marker.IMPORTED_IN


def log_handlers(item: str) -> list[str]:
    """The classes of the root logger's handlers in this worker."""
    import logging

    return [type(h).__name__ for h in logging.getLogger().handlers]


def freeze_count(item: str) -> int:
    """Objects this worker froze before the job (:func:`spec3c.heap.freeze_long_lived_objects`)."""
    import gc

    return gc.get_freeze_count()


def openmp_threads(item: str) -> int:
    """The OpenMP threads a kernel of this job would use (libgomp is loaded with this module, as a
    job's kernels are with its module: before the job's thread cap is set)."""
    return max_threads()
