"""The in-memory store passes the store contract."""

from __future__ import annotations

from pathlib import Path

from spec3c.store import Store
from spec3c.store.memory import MemoryStore
from spec3c.testing.store import StoreContract


class TestMemoryStore(StoreContract):
    store_cls = MemoryStore
    capabilities = {"supports_images": True, "supports_concurrent_writes": False}

    def make_store(self, tmp_path: Path) -> Store:
        return MemoryStore()

    def reopen(self, store: Store, mode: str = "r") -> Store:
        return store  # one process's memory: every reader sees the same object
