"""An IFU exposure's gwcs copied verbatim from its file's ASDF extension for the store: the same
transforms as the file's objects, spliced into products as any stored WCS, and the objects
serialised instead whenever the copy could not be faithful."""

from __future__ import annotations

import numpy as np
import pytest
import stdatamodels.jwst.datamodels as dm
from ifu_inputs import Scene, miri_file, nirspec_file

from spec3c.gwcs_asdf import StoredWcs, splice_stored_wcs, wcs_from_asdf, wcs_to_asdf
from spec3c.ingest import file_wcs
from spec3c.ingest.file_wcs import file_wcs_bytes, stored_wcs_bytes


@pytest.fixture(scope="module")
def cal_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cal")
    scene = Scene(flat=1.0, point_flux=2.0)
    return [miri_file(folder / "mrs_cal.fits", scene, pa=20.0), nirspec_file(folder / "nrs_cal.fits", scene, nx=60)]


def _grid(shape):
    y, x = np.indices(shape, dtype=np.float64)
    return x.ravel(), y.ravel()


@pytest.mark.parametrize("which", [0, 1], ids=["miri", "nirspec"])
def test_the_copied_wcs_is_the_files(cal_files, which):
    path = cal_files[which]
    copied = file_wcs_bytes(path)
    assert copied is not None and copied.startswith(b"#ASDF ")
    with dm.open(path) as model:
        wcs, shape = model.meta.wcs, model.data.shape
        stored = wcs_from_asdf(copied)
        assert stored.available_frames == wcs.available_frames
        for got, want in zip(stored(*_grid(shape)), wcs(*_grid(shape)), strict=True):
            np.testing.assert_array_equal(got, want)
        parts = StoredWcs(copied).parts
        assert parts is not None and parts.wcs.startswith("!<tag:stsci.edu:gwcs/wcs-")
        # the blocks are zlib-compressed, as the serialised WCS's
        assert len(copied) < 3 * len(wcs_to_asdf(wcs)) + 4096


def test_a_product_with_the_copied_wcs_reads_back_the_same_transforms(cal_files, tmp_path):
    import asdf

    path = cal_files[1]
    copied = file_wcs_bytes(path)

    def dump(tree):
        import io

        buffer = io.BytesIO()
        asdf.AsdfFile(tree).write_to(buffer)
        return buffer.getvalue()

    product = splice_stored_wcs({"meta": {"filename": "x_crf.fits", "wcs": StoredWcs(copied)}}, dump)
    (tmp_path / "p.asdf").write_bytes(product)
    with asdf.open(tmp_path / "p.asdf") as af, dm.open(path) as model:
        shape = model.data.shape
        for got, want in zip(af.tree["meta"]["wcs"](*_grid(shape)), model.meta.wcs(*_grid(shape)), strict=True):
            np.testing.assert_array_equal(got, want)


def test_what_cannot_be_copied_faithfully_is_refused():
    node = "!<tag:stsci.edu:gwcs/wcs-1.4.0>\n  a: !core/ndarray-1.1.0\n    source: 7\n  b: {source: 3}\n  c: {source: 7}\n"
    renumbered, order = file_wcs._renumbered_sources(node)
    assert order == [7, 3] and "source: 0" in renumbered and "{source: 1}" in renumbered
    assert file_wcs._renumbered_sources(node.replace("source: 3", "source: fits:SCI,1")) is None
    text = "meta:\n  x: &id001 [1]\n  wcs: !<tag:stsci.edu:gwcs/wcs-1.4.0>\n    y: *id001\n"
    assert not file_wcs._anchors_inside("!<t>\n  y: *id001\n", text)  # an anchor of the rest of the tree
    inside = "!<t>\n  x: &id002 [1]\n  y: *id002\n"
    assert file_wcs._anchors_inside(inside, f"meta:\n  wcs: {inside}")
    assert not file_wcs._anchors_inside(inside, f"meta:\n  q: &id002 2\n  wcs: {inside}")  # defined twice
    assert file_wcs._node_text("!<t>\n  a: 1\n b: 2\n") is None  # a line less indented than a child


def test_a_file_without_an_asdf_extension_is_not_copied(tmp_path):
    from astropy.io import fits

    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((3, 3)), name="SCI")]).writeto(tmp_path / "x.fits")
    assert file_wcs_bytes(tmp_path / "x.fits") is None


def test_a_copy_that_differs_from_the_objects_turns_copying_off(cal_files, monkeypatch):
    monkeypatch.setattr(file_wcs, "_verified", None)
    monkeypatch.setattr(file_wcs, "_same_forward", lambda *a: False)
    path = cal_files[0]
    with dm.open(path) as model:
        assert stored_wcs_bytes(model, path, model.data.shape) == wcs_to_asdf(model.meta.wcs)
        assert file_wcs._verified is False
        assert stored_wcs_bytes(model, path, model.data.shape) == wcs_to_asdf(model.meta.wcs)
    monkeypatch.setattr(file_wcs, "_verified", None)
    monkeypatch.undo()
    monkeypatch.setattr(file_wcs, "_verified", None)
    with dm.open(path) as model:
        assert stored_wcs_bytes(model, path, model.data.shape) == file_wcs_bytes(path)
        assert file_wcs._verified is True


def test_anchors_are_named_as_pyyaml_names_them():
    """pyyaml names anchors id001, id002... in the order their first aliases come."""
    node = "!<t>\n  a: &id007 [1]\n  b: &id003 {x: 1}\n  c: *id003\n  d: [*id007, *id003]\n"
    assert file_wcs._renumbered_anchors(node) == "!<t>\n  a: &id002 [1]\n  b: &id001 {x: 1}\n  c: *id001\n  d: [*id002, *id001]\n"
    assert file_wcs._renumbered_anchors("!<t>\n  a: &id001 [1]\n") is None  # aliased only outside the node
