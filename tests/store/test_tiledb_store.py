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


def test_creation_killed_mid_array_is_redone(tmp_path, monkeypatch):
    """A kill while TileDB writes an array's schema (found by ``make soak``) must not leave a
    half-written array under its name: the next open creates it whole."""
    import tiledb

    real_create = tiledb.Array.create

    def dies_on_images(uri, schema, **kwargs):
        real_create(uri, schema, **kwargs)
        if "images" in str(uri):  # the schema is on disk, the process dies before anything else
            for f in (p for p in Path(uri, "__schema").iterdir() if p.is_file()):
                f.write_bytes(f.read_bytes()[:52])  # what the soak trial left: a truncated schema
            raise KeyboardInterrupt

    monkeypatch.setattr(tiledb.Array, "create", dies_on_images)
    path = tmp_path / "store.tdb"
    try:
        create_store(path, "tiledb")
    except KeyboardInterrupt:
        pass
    assert not (path / "images").exists()
    monkeypatch.setattr(tiledb.Array, "create", real_create)
    with TileDBStore(path, "w") as store:
        assert store.read_images("nothing") == {}
    assert not list(path.glob(".*.creating"))
