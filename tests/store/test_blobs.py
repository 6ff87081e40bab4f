"""Packed result blobs (spec3c.store.base.pack_arrays / unpack_arrays)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from spec3c.store.base import _RAW_MAGIC, pack_arrays, unpack_arrays

ARRAYS = {"mask": np.arange(5, dtype=np.uint8), "flux": np.linspace(0.0, 1.0, 7), "none": np.zeros((0, 3)),
          "scalar": np.float32(3.5), "dq": np.array([[1, 2], [3, 4]], dtype=np.uint32)}


def _same(out: dict[str, np.ndarray]) -> bool:
    return out.keys() == ARRAYS.keys() and all(
        np.array_equal(out[k], v) and out[k].dtype == np.asarray(v).dtype and out[k].shape == np.shape(v)
        for k, v in ARRAYS.items())


@pytest.mark.parametrize("form", ["bytes", "owned", "read-only"])
def test_blobs_round_trip_as_writable_arrays(form):
    blob = pack_arrays(ARRAYS)
    given = {"bytes": blob, "owned": np.frombuffer(blob, np.uint8).copy(),
             "read-only": np.frombuffer(blob, np.uint8)}[form]
    out = unpack_arrays(given)
    assert _same(out)
    assert all(a.flags.writeable and a.flags.aligned for a in out.values())
    # an owned query buffer is not copied: its arrays are views of it
    assert all(a.base is not None for a in out.values()) == (form == "owned")


def test_every_array_of_a_blob_starts_aligned():
    blob = pack_arrays(ARRAYS)
    (size,) = struct.unpack("<I", blob[4:8])
    assert (8 + size) % 64 == 0
    assert all(offset % 64 == 0 for _, _, _, offset, _ in json.loads(blob[8:8 + size]))


def test_blobs_packed_without_padding_still_read():
    """Blobs of stores written before the arrays were aligned: a view would be misaligned, so copies."""
    parts, directory, offset = [], [], 0
    for name, a in ARRAYS.items():
        data = np.ascontiguousarray(a).tobytes()
        directory.append([name, np.asarray(a).dtype.str, list(np.shape(a)), offset, len(data)])
        parts.append(data)
        offset += len(data)
    header = json.dumps(directory).encode()
    blob = b"".join([_RAW_MAGIC, struct.pack("<I", len(header)), header, *parts])
    out = unpack_arrays(np.frombuffer(blob, np.uint8).copy())
    assert _same(out) and all(a.flags.aligned and a.flags.writeable for a in out.values())
