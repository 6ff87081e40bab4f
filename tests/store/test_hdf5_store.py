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


def test_a_result_removed_while_it_is_opened_is_missing_not_an_error(tmp_path, monkeypatch):
    """``process --force`` removes a result between a reader's listing and its open: HDF5's open
    then fails on the file's name (OSError "can't retrieve stat info"); the reader sees a KeyError,
    as for a result that was never there.  A failed open of a file still there is tried again."""
    import numpy as np
    import pytest

    store = create_store(tmp_path / "store.h5", "hdf5")
    store.put_result("1", "x1d", {"flux": np.arange(3.0)}, {"n": 1})
    path = store._result_file("1", "x1d")
    real_open, failures = HDF5Store._open, []

    def removed_during_open(p):
        path.unlink()
        raise OSError("Unable to synchronously open file (can't retrieve stat info for file)")

    monkeypatch.setattr(HDF5Store, "_open", staticmethod(removed_during_open))
    with pytest.raises(KeyError, match="no result 'x1d'"):
        store.get_result("1", "x1d")

    store.put_result("1", "x1d", {"flux": np.arange(3.0)}, {"n": 2})

    def replaced_during_open(p):
        if not failures:
            failures.append(p)
            raise OSError("Unable to synchronously open file (can't retrieve stat info for file)")
        return real_open(p)

    monkeypatch.setattr(HDF5Store, "_open", staticmethod(replaced_during_open))
    arrays, meta = store.get_result("1", "x1d")
    assert failures == [path] and meta == {"n": 2} and np.array_equal(arrays["flux"], np.arange(3.0))
