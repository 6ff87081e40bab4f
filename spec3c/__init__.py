"""spec3c: a fast, store-backed reimplementation of JWST calwebb_spec3.

``spec3c ingest`` reads an association once into an array store,
``spec3c process`` runs the stage-3 steps per source against it and
``spec3c export`` writes the standard FITS products.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store


def open_store(path: str, mode: str = "r") -> Store:
    """Open an existing store (TileDB group or HDF5 folder); see :mod:`spec3c.store`."""
    from .store import open_store as _open

    return _open(path, mode=mode)


__all__ = ["__version__", "open_store"]
