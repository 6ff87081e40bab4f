"""Stored slit WCSs written into products as the store keeps them (spec3c.gwcs_asdf.splice_stored_wcs).

The products' equality with stdatamodels' own files is tested in tests/products/test_direct_fits.py;
here the splice itself: block numbers, anchors, indentation, and the fallbacks to gwcs objects.
"""

from __future__ import annotations

import io

import asdf
import numpy as np
import pytest
from astropy.modeling import models
from gwcs import coordinate_frames as cf
from gwcs import wcs as gwcs_wcs

from spec3c.fitsio import asdf_write_unvalidated
from spec3c.gwcs_asdf import StoredWcs, materialised, splice_stored_wcs, wcs_from_asdf, wcs_to_asdf

PIXELS = (np.array([0.0, 3.5, 17.0]), np.array([1.0, 2.0, 9.0]))


def _wcs(shift: float, slope: float):  # type: ignore[no-untyped-def]
    """A WCS whose array blocks (the lookup tables) differ per WCS, with one transform in two
    steps (asdf writes it once, with an anchor, and then an alias)."""
    table = np.linspace(0.0, slope * 19, 20)
    step = models.Shift(shift) & models.Tabular1D(points=np.arange(20.0), lookup_table=table,
                                                  bounds_error=False)
    frames = [cf.Frame2D(name=name) for name in ("detector", "middle", "world")]
    return gwcs_wcs.WCS([(frames[0], step), (frames[1], step), (frames[2], None)])


def _dump(tree):  # type: ignore[no-untyped-def]
    """An ASDF file as the products' is written (no validation on write)."""
    buffer = io.BytesIO()
    with asdf_write_unvalidated():
        asdf.AsdfFile(tree).write_to(buffer)
    return buffer.getvalue()


def _read(raw: bytes):  # type: ignore[no-untyped-def]
    with asdf.open(io.BytesIO(raw), lazy_load=False, memmap=False) as af:
        return af.tree


def test_stored_wcs_spliced_with_their_blocks_anchors_and_history():
    wcs = [_wcs(1.0, 2.0), _wcs(-4.0, 0.5)]
    stored = [StoredWcs(wcs_to_asdf(w)) for w in wcs]
    assert all(s.parts is not None and len(s.parts.blocks) == 2 for s in stored)
    assert "&id" in stored[0].parts.wcs and "*id" in stored[0].parts.wcs  # the repeated step
    tree = {"exposures": [{"meta": {"name": "a", "wcs": stored[0]}}, {"meta": {"name": "b", "wcs": stored[1]}}],
            "top": {"value": 3}}
    raw = splice_stored_wcs(tree, _dump)
    assert raw.count(b"zlib") == 4  # the stored (compressed) blocks, not the objects written again
    assert raw.count(b"&id001") == raw.count(b"&id002") == 1  # each WCS's anchor, numbered on
    read = _read(raw)
    assert read["top"] == {"value": 3} and [e["meta"]["name"] for e in read["exposures"]] == ["a", "b"]
    for exposure, expected in zip(read["exposures"], wcs, strict=True):
        np.testing.assert_array_equal(exposure["meta"]["wcs"](*PIXELS), expected(*PIXELS))
    uris = {e["extension_uri"] for e in read["history"]["extensions"]}
    assert any("gwcs" in u for u in uris) and any("transform" in u for u in uris)
    assert isinstance(tree["exposures"][0]["meta"]["wcs"], StoredWcs)  # the caller's tree is untouched


def test_spliced_file_equals_the_objects_file_but_for_the_blocks():
    """The YAML is byte for byte that of the objects, anchor numbers included."""
    w = [_wcs(2.0, 3.0), _wcs(5.0, 1.0)]
    tree = {"meta": {"a": {"wcs": StoredWcs(wcs_to_asdf(w[0]))}, "b": {"n": 1, "wcs": StoredWcs(wcs_to_asdf(w[1]))}}}
    objects = _dump({"meta": {"a": {"wcs": w[0]}, "b": {"n": 1, "wcs": w[1]}}})
    spliced = splice_stored_wcs(tree, _dump)
    assert b"zlib" in spliced and b"&id002" in spliced

    def yaml(raw: bytes) -> str:
        text = raw[:raw.index(b"\n...\n")].decode()
        start = text.index("\nmeta:")
        return text[start:]

    assert yaml(spliced) == yaml(objects)


def test_product_with_its_own_blocks_falls_back_to_objects():
    w = _wcs(1.0, 2.0)
    tree = {"meta": {"wcs": StoredWcs(wcs_to_asdf(w))}, "array": np.arange(5.0)}
    raw = splice_stored_wcs(tree, _dump)
    assert b"zlib" not in raw  # written from the objects
    read = _read(raw)
    np.testing.assert_array_equal(read["meta"]["wcs"](*PIXELS), w(*PIXELS))
    np.testing.assert_array_equal(read["array"], np.arange(5.0))


@pytest.mark.parametrize("layout", ["wcs_not_last", "no_history"])
def test_other_layouts_are_written_from_objects(layout):
    w = _wcs(1.0, 2.0)
    buffer = io.BytesIO()
    if layout == "wcs_not_last":
        asdf.AsdfFile({"wcs": w, "zzz": 1}).write_to(buffer)
    else:
        asdf.AsdfFile({"wcs": w}).write_to(buffer)
    blob = buffer.getvalue()
    if layout == "no_history":
        start, end = blob.index(b"\nhistory:"), blob.index(b"\nwcs: ")
        blob = blob[:start] + blob[end:]
    stored = StoredWcs(blob)
    assert stored.parts is None
    raw = splice_stored_wcs({"meta": {"wcs": stored}}, _dump)
    np.testing.assert_array_equal(_read(raw)["meta"]["wcs"](*PIXELS), w(*PIXELS))


def test_materialised_keeps_container_types_and_the_input():
    from asdf.tagged import TaggedDict

    w = _wcs(1.0, 2.0)
    blob = wcs_to_asdf(w)
    node = TaggedDict({"wcs": StoredWcs(blob), "n": 1}, "tag:example.org/thing-1.0.0")
    tree = {"a": [node, 2], "b": {"c": 3}}
    out = materialised(tree)
    assert out["b"] is tree["b"]  # nothing stored below: not copied
    assert isinstance(out["a"][0], TaggedDict) and out["a"][0]._tag == "tag:example.org/thing-1.0.0"
    assert out["a"][0]["wcs"] is wcs_from_asdf(blob) and out["a"][0]["n"] == 1
    assert isinstance(tree["a"][0]["wcs"], StoredWcs)


def _yaml_from(raw: bytes, start: str) -> str:
    text = raw[:raw.index(b"\n...\n")].decode()
    return text[text.index(start):]


def _exposure_meta(index: int) -> dict:
    """A plain exposure ``meta``: nested mappings, flow lists long enough to wrap, values YAML writes apart."""
    return {"exposure": {"type": "NRS_MSASPEC", "number": index, "start": 60310.25, "zero": -0.0, "one": 1.0},
            "flags": [True, 1, 1.0, None, "yes", "1"], "long": [f"item-{i:03d}" for i in range(20)],
            "nested": {"deeper": {"deepest": {"values": list(range(30)), "name": "x" * 70}}}}


@pytest.mark.parametrize(("depth", "sibling"), [(0, "name"), (1, "name"), (2, "name"), (1, "alias")])
def test_mappings_holding_a_wcs_dumped_once_and_written_as_the_objects_are(depth, sibling):
    """An exposure meta (plain values and a stored WCS) is dumped once per content and its text reused;
    the product's YAML is byte for byte that of the objects, at any depth (line breaks depend on it),
    and as a sequence item's first key (``- meta:``) or not."""
    from spec3c import gwcs_asdf

    w = [_wcs(1.0, 2.0), _wcs(3.0, 0.5)]
    stored = [StoredWcs(wcs_to_asdf(x)) for x in w]

    def tree(wcs):  # type: ignore[no-untyped-def]
        exposures = [{sibling: f"s{i}", "meta": {**_exposure_meta(i % 2), "wcs": wcs[i % 2]}} for i in range(4)]
        node = {"exposures": exposures}
        for _ in range(depth):
            node = {"level": node}
        return {"top": 1, **node}

    gwcs_asdf._RENDERED.clear()
    spliced = splice_stored_wcs(tree(stored), _dump)
    assert len(gwcs_asdf._RENDERED) == 2  # two distinct metas, each dumped once
    assert all(text is not None for text in gwcs_asdf._RENDERED.values())
    assert splice_stored_wcs(tree(stored), _dump) == spliced  # from the cache
    objects = _dump(tree(w))
    assert _yaml_from(spliced, "\ntop:") == _yaml_from(objects, "\ntop:")


def test_holders_sharing_a_container_are_dumped_with_the_tree():
    """A container in two holders (pyyaml writes an anchor and an alias): no holder is cached."""
    from spec3c import gwcs_asdf

    w = _wcs(1.0, 2.0)
    shared = {"a": [1, 2, 3]}
    exposures = [{"meta": {"shared": shared, "n": i, "wcs": StoredWcs(wcs_to_asdf(w))}} for i in range(2)]
    holders: list = []
    gwcs_asdf._holders_replaced({"exposures": exposures}, holders)
    assert holders == []
    not_plain = {"exposures": [{"meta": {"n": np.float32(1.0), "wcs": {"spec3c-stored-wcs": 0}}}]}
    gwcs_asdf._holders_replaced(not_plain, holders)
    assert holders == []  # a numpy scalar is converted by asdf, not written as plain YAML
    raw = splice_stored_wcs({"exposures": exposures}, _dump)
    read = _read(raw)
    assert [e["meta"]["shared"] for e in read["exposures"]] == [shared, shared]
