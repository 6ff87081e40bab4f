"""Pointing-independent pixel coordinates, evaluated once for the exposures of a dither pattern.

Of the gwcs evaluations an IFU exposure's coordinates take (ALGORITHMS.md
§11.4), only the last step -- ``v2v3 -> world`` -- holds the pointing.  The
detector-to-``v2v3`` part (slices, distortion, wavelengths, footprint corners
in v2/v3) is the same for every exposure of one detector set-up, which is
what a dither or nod pattern is.  The first such exposure ingest reads saves
those arrays in a folder the reading processes share (the ingest's staging
folder); the others load them and only map v2/v3 to the sky.  The values are
the ones the whole chain gives: a gwcs chain evaluated step by step is the
same arithmetic as evaluated at once (checked bit for bit in the tests).

Whether two exposures share a set-up is decided from the exposures, not from
their headers: the key is a hash of the slice map and of the outputs of every
pointing-independent transform on a sample of pixels of every slice.  Another
band, grating, GWA tilt or distortion file gives another key.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..log import logger

__all__ = ["SAMPLE_PIXELS", "chunks_of", "fingerprint", "load_or_make", "sample_of", "shared_in"]

#: about this many labelled pixels of an exposure are evaluated for its key
SAMPLE_PIXELS = 8192

_folder: Path | None = None
_log = logger("ingest")


@contextlib.contextmanager
def shared_in(folder: str | os.PathLike[str] | None) -> Iterator[None]:
    """Within the block, pointing-independent arrays are saved to and loaded from ``folder``
    (None: made for each exposure, nothing saved)."""
    global _folder  # noqa: PLW0603 - one reading process reads one member at a time
    before = _folder
    _folder = None if folder is None else Path(folder)
    try:
        yield
    finally:
        _folder = before


def sample_of(index: np.ndarray, size: int = SAMPLE_PIXELS) -> np.ndarray:
    """About ``size`` of the flat pixel ``index``, evenly spread (so every slice has some)."""
    step = max(1, index.size // max(size, 1))
    return index[::step]


def fingerprint(*parts: np.ndarray | str) -> str:
    """Hex digest of ``parts`` (arrays by dtype, shape and bytes)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, str):
            digest.update(b"s" + part.encode())
            continue
        value = np.ascontiguousarray(part)
        digest.update(f"a{value.dtype.str}{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def load_or_make(key: str, make: Callable[[], tuple[dict[str, np.ndarray], bool]]) -> dict[str, np.ndarray]:
    """The arrays saved under ``key`` by an earlier exposure, else ``make()``'s: ``(arrays,
    shareable)``, saved for the next exposures if ``shareable`` (free of the pointing).  Saved arrays
    are returned mapped from their files (read-only): a caller that drops each array once used holds
    only the pages of those in use."""
    where = None if _folder is None else _folder / f"coords-{key}"
    if where is None or not where.is_dir():
        arrays, shareable = make()
        if where is None or not shareable or not _save(where, arrays):
            return arrays
        del arrays
    return {p.stem: np.asarray(np.load(p, mmap_mode="r")) for p in sorted(where.glob("*.npy"))}


def _save(where: Path, arrays: dict[str, np.ndarray]) -> bool:
    """Written under a temporary name, then renamed: a reader sees all the arrays or none.  Whether
    they are there: not when the folder's disk refused them (nothing is then shared; the exposure
    is read all the same).  Another process that saved the same arrays meanwhile keeps its copy."""
    writing = where.with_name(f".{where.name}.{os.getpid()}")
    try:
        if _write(writing, arrays):
            with contextlib.suppress(OSError):  # (the other process's copy is there)
                writing.rename(where)
    finally:
        shutil.rmtree(writing, ignore_errors=True)
    return where.is_dir()


def chunks_of(key: str, n_chunks: int,
              make: Callable[[int], tuple[dict[str, np.ndarray], bool]]) -> Iterator[dict[str, np.ndarray]]:
    """Chunk by chunk (``0 .. n_chunks - 1``), the arrays saved under ``key`` by an earlier exposure,
    else ``make(k)``'s: ``(arrays, shareable)``, saved for the next exposures if every chunk is
    shareable.  One chunk's arrays are held at a time: a whole detector's would not be bounded."""
    where = None if _folder is None else _folder / f"chunks-{key}"
    if where is not None and where.is_dir():
        for k in range(n_chunks):
            yield {p.name.split("-", 1)[1][:-4]: np.load(p) for p in sorted(where.glob(f"{k:06d}-*.npy"))}
        return
    writing = None if where is None else where.with_name(f".{where.name}.{os.getpid()}")
    try:
        for k in range(n_chunks):
            arrays, shareable = make(k)
            if writing is not None and not (shareable and _write(writing, arrays, prefix=f"{k:06d}-")):
                shutil.rmtree(writing, ignore_errors=True)
                writing = None
            yield arrays
        if writing is not None and where is not None:
            with contextlib.suppress(OSError):  # another process saved the same chunks meanwhile
                writing.rename(where)
    finally:
        if writing is not None:
            shutil.rmtree(writing, ignore_errors=True)


def _write(folder: Path, arrays: dict[str, np.ndarray], prefix: str = "") -> bool:
    """``arrays`` saved in ``folder`` as ``<prefix><name>.npy``; False if the disk refused them."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, value in arrays.items():
            np.save(folder / f"{prefix}{name}.npy", value, allow_pickle=False)
    except OSError as exc:
        _log.debug("coordinates not shared (%s): %s", folder.name, exc)
        return False
    return True
