"""Full garbage collections that skip the process's long-lived objects.

tiledb-py frees a query's buffers only in the cycle collector, so the store
runs a full collection after every large read.  A full pass visits every
tracked object: ~75 ms in a process holding astropy, asdf and stdatamodels,
1.7 s of exporting one MIRI MRS association's 24 exposure ``_crf`` frames.
Work that reads many frames runs in :func:`long_lived_objects_frozen`.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["freeze_long_lived_objects", "long_lived_objects_frozen"]


@contextmanager
def long_lived_objects_frozen() -> Iterator[None]:
    """Collect, then leave the surviving objects out of the collector's passes until the block ends
    (``gc.freeze``): the block's collections visit only the objects made since.

    The collection first matters: a cycle frozen while it is garbage, or while it is still in use
    (a query result the caller holds), would stay until the block ends.  A process whose objects are
    already frozen (a worker forked from a frozen parent) is left as it is.
    """
    if gc.get_freeze_count():
        yield
        return
    freeze_long_lived_objects()
    try:
        yield
    finally:
        gc.unfreeze()


def freeze_long_lived_objects() -> None:
    """Collect, then leave every object alive now out of the collector's passes for good
    (``gc.freeze``), once per process: for a pool worker whose first job imported what the next ones
    use (modules, schemas, caches).  An ingest worker's automatic full collections otherwise visit those
    250 000 objects a few times per exposure: 0.2 s of reading a MIRI MRS file.  Objects made later are
    collected as usual.  A process whose objects are frozen already is left as it is."""
    if gc.get_freeze_count():
        return
    gc.collect()
    gc.freeze()
