"""``create_store`` / ``open_store``: the backend comes from the store's manifest."""

from __future__ import annotations

from pathlib import Path

import pytest

from spec3c.errors import StoreError
from spec3c.store import create_store, open_store


def test_open_store_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a spec3c store"):
        open_store(tmp_path / "nothing")
    create_store(tmp_path / "t", "tiledb")
    with pytest.raises(StoreError, match="existing tiledb store"):
        create_store(tmp_path / "t", "hdf5")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(StoreError, match="not empty"):
        create_store(tmp_path / "busy", "hdf5")


def test_unknown_backend(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unknown store backend 'zarr'"):
        create_store(tmp_path / "z", "zarr")
