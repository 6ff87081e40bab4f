"""The slits' gwcs written from the file's tagged tree (spec3c.ingest.tagged_wcs) are wcs_to_asdf's bytes."""

from __future__ import annotations

import zlib

import asdf
import numpy as np
import pytest
from asdf.tagged import TaggedDict

from spec3c.gwcs_asdf import wcs_from_asdf, wcs_to_asdf
from spec3c.ingest import tagged_wcs
from spec3c.ingest.asdftree import asdf_tree, converted, extension_blob
from spec3c.ingest.fitsraw import read_fits
from spec3c.ingest.tagged_wcs import TaggedWcsWriter
from spec3c.simulate import SimOptions, simulate


@pytest.fixture(scope="module")
def mos_file(tmp_path_factory):
    """A simulated MOS cal file: its ASDF extension, tagged tree and opened blocks."""
    out = tmp_path_factory.mktemp("mos")
    path = simulate("nirspec-mos", out, SimOptions(seed=11, n_sources=5, n_exposures=1, n_columns=120)).cal_paths[0]
    hdus = read_fits(path)
    af, tree = asdf_tree(hdus)
    return extension_blob(hdus), tree, af


def _slits(tree, af):
    return [(slit["meta"]["wcs"], converted(slit["meta"]["wcs"], af)) for slit in tree["slits"]]


def test_every_slit_as_wcs_to_asdf_writes_it(mos_file, monkeypatch):
    blob, tree, af = mos_file
    writer = TaggedWcsWriter(blob)
    slits = _slits(tree, af)
    calls = []
    real = tagged_wcs.wcs_to_asdf
    monkeypatch.setattr(tagged_wcs, "wcs_to_asdf", lambda wcs: calls.append(1) or real(wcs))
    written = [writer.wcs_bytes(node, wcs) for node, wcs in slits]
    assert len(calls) == 1  # the first slit, to verify the tagged way; the others are written from their trees
    assert written == [wcs_to_asdf(wcs) for _, wcs in slits]
    y, x = np.mgrid[0:20, 0:100].astype(float)
    for data, (_, wcs) in zip(written, slits, strict=True):
        assert np.array_equal(wcs_from_asdf(data)(x, y)[-1], wcs(x, y)[-1], equal_nan=True)


def test_a_tree_the_converters_would_not_write_takes_the_objects_way(mos_file):
    """A file whose tree says more than the converters write (here a key they drop): the bytes
    differ on the first slit, and the whole file is written from its objects."""
    blob, tree, af = mos_file
    writer = TaggedWcsWriter(blob)
    slits = _slits(tree, af)
    node, wcs = slits[0]
    odd = TaggedDict({**node, "spec3c_extra": 1}, node._tag)
    assert writer.wcs_bytes(odd, wcs) == wcs_to_asdf(wcs)
    assert [writer.wcs_bytes(n, w) for n, w in slits[1:]] == [wcs_to_asdf(w) for _, w in slits[1:]]
    assert writer._differs


def test_unusual_arrays_take_the_objects_way(mos_file):
    """An inline array, or one in a block the file does not have: written from the objects."""
    blob, tree, af = mos_file
    node, wcs = _slits(tree, af)[0]
    inline = TaggedDict({"data": [1.0, 2.0], "datatype": "float64", "shape": [2]}, "tag:stsci.edu:asdf/core/ndarray-1.1.0")
    with pytest.raises(tagged_wcs._Unusual):
        tagged_wcs._renumbered({"a": inline})
    writer = TaggedWcsWriter(blob)
    writer.wcs_bytes(node, wcs)  # verified
    missing = TaggedDict({"source": 999, "datatype": "float64", "byteorder": "little", "shape": [2]},
                         "tag:stsci.edu:asdf/core/ndarray-1.1.0")
    assert writer.wcs_bytes({**node, "x": missing}, wcs) == wcs_to_asdf(wcs)


def test_compressed_and_plain_blocks_read_back(tmp_path):
    """The file's blocks are read whether they are stored plain or zlib-compressed, and written as
    asdf writes them (the bytes asdf.open reads back)."""
    arrays = [np.arange(7.0), np.arange(12, dtype=np.int32).reshape(3, 4)]
    for compression in (None, "zlib"):
        buffer = tmp_path / f"{compression}.asdf"
        asdf.AsdfFile({"a": arrays[0], "b": arrays[1]}).write_to(buffer, all_array_compression=compression)
        data = tagged_wcs.read_blocks(buffer.read_bytes())
        assert data == [a.tobytes() for a in arrays]
    written = tagged_wcs.written_blocks(data, 100)
    assert zlib.decompress(written[6 + 48:6 + 48 + int.from_bytes(written[14:22], "big")]) == arrays[0].tobytes()
    assert written.count(b"\xd3BLK") == 2 and written.endswith(b"...\n")
