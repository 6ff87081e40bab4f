"""Array store behind one interface: TileDB (default), HDF5, in-memory.

>>> store = create_store("prog.store", backend="tiledb")   # doctest: +SKIP
>>> store = open_store("prog.store")                       # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import StoreError
from .base import (
    ALL_PLANES,
    COORDINATE_PLANES,
    CUTOUT_PLANES,
    OPTIONAL_PLANES,
    SCHEMA_VERSION,
    Cutout,
    CutoutInfo,
    ExposureRecord,
    Store,
)
from .layout import detect_backend
from .records import SourceStack

if TYPE_CHECKING:
    from .hdf5_store import HDF5Store
    from .tiledb_store import TileDBStore

BACKENDS = ("tiledb", "hdf5")


def _backend_class(name: str) -> type[TileDBStore | HDF5Store]:
    if name == "tiledb":
        from .tiledb_store import TileDBStore

        return TileDBStore
    if name == "hdf5":
        from .hdf5_store import HDF5Store

        return HDF5Store
    raise StoreError(f"unknown store backend {name!r}; choose one of {BACKENDS}")


def create_store(path: str | os.PathLike[str], backend: str = "tiledb") -> Store:
    """Open the store at ``path`` for writing, creating it if needed.

    An existing store keeps its backend; asking for another one is an error.
    """
    path = Path(path)
    if (path / "spec3c-store.json").exists():
        found = detect_backend(path)
        if found != backend:
            raise StoreError(f"{path}: existing {found} store; cannot use it as {backend}")
    return _backend_class(backend)(path, mode="w")


def open_store(path: str | os.PathLike[str], mode: str = "r") -> Store:
    """Open an existing store; the backend is read from its manifest."""
    path = Path(path)
    cls = _backend_class(detect_backend(path))
    return cls(path, mode="a" if mode != "r" else "r")


__all__ = [
    "ALL_PLANES",
    "BACKENDS",
    "COORDINATE_PLANES",
    "CUTOUT_PLANES",
    "OPTIONAL_PLANES",
    "SCHEMA_VERSION",
    "Cutout",
    "CutoutInfo",
    "ExposureRecord",
    "SourceStack",
    "Store",
    "create_store",
    "open_store",
]
