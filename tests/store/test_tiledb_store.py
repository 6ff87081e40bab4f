"""The TileDB store passes the store contract."""

from __future__ import annotations

from pathlib import Path

from spec3c.store import Store, create_store
from spec3c.store.tiledb_store import TileDBStore
from spec3c.testing.store import StoreContract


class TestTileDBStore(StoreContract):
    store_cls = TileDBStore
    capabilities = {"supports_images": True, "supports_concurrent_writes": True}

    def make_store(self, tmp_path: Path) -> Store:
        return create_store(tmp_path / "store.tdb", "tiledb")
