"""The HDF5 store passes the store contract."""

from __future__ import annotations

from pathlib import Path

from spec3c.store import Store, create_store
from spec3c.store.hdf5_store import HDF5Store
from spec3c.testing.store import StoreContract


class TestHDF5Store(StoreContract):
    store_cls = HDF5Store
    capabilities = {"supports_images": True, "supports_concurrent_writes": True}

    def make_store(self, tmp_path: Path) -> Store:
        return create_store(tmp_path / "store.h5", "hdf5")
