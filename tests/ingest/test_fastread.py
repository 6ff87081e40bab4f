"""The fast slit-mode reader (spec3c.ingest.fastread) gives ingest exactly what the datamodel reader gives."""

from __future__ import annotations

import numpy as np
import pytest

from spec3c.gwcs_asdf import wcs_from_asdf
from spec3c.ingest import fastread
from spec3c.ingest.reader import exposure_name, read_exposure
from spec3c.simulate import SimOptions, simulate

CASES = {
    "nirspec-mos": SimOptions(seed=5, n_sources=4, n_exposures=1, n_columns=160),
    "nirspec-fs": SimOptions(seed=6, n_exposures=1, n_columns=160),
    "miri-lrs-fs": SimOptions(seed=7, n_exposures=1),
    "miri-lrs-slitless": SimOptions(seed=8, n_exposures=1),
}


@pytest.fixture(scope="module", params=[*sorted(CASES), "slitmodel"])
def cal_path(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    if request.param != "slitmodel":
        return simulate(request.param, out, CASES[request.param]).cal_paths[0]
    # a one-slit SlitModel cal file (as some stage-2 tools write them), from a simulated MOS slit
    from stdatamodels.jwst import datamodels

    cal = simulate("nirspec-mos", out, CASES["nirspec-mos"]).cal_paths[0]
    path = out / cal.name.replace("_cal", "_s01_cal")
    with datamodels.open(cal) as model, model[1] as slit:
        slit.meta.bunit_data = slit.meta.bunit_err = model.slits[1].meta.bunit_data
        slit.save(path)
    return path


def _datamodel_read(path, monkeypatch):
    def refuse(*_args):
        raise fastread.NotFast("test: the datamodel reader")

    with monkeypatch.context() as patch:
        patch.setattr(fastread, "read_fast", refuse)
        return read_exposure(path, "science", "0" * 64)


def test_fast_read_equals_datamodel_read(cal_path, monkeypatch):
    model_type, meta, cutouts = fastread.read_fast(cal_path, exposure_name(cal_path))
    slow = _datamodel_read(cal_path, monkeypatch)
    assert model_type == slow.record.model_type
    assert meta == slow.record.meta
    assert len(cutouts) == len(slow.cutouts) > 0
    for fast_cut, slow_cut in zip(cutouts, slow.cutouts, strict=True):
        assert (fast_cut.source, fast_cut.exposure, fast_cut.slit) == (slow_cut.source, slow_cut.exposure,
                                                                      slow_cut.slit)
        assert fast_cut.meta == slow_cut.meta
        assert fast_cut.planes.keys() == slow_cut.planes.keys()
        for plane, value in fast_cut.planes.items():
            # in this machine's byte order (the store's), where the datamodel keeps the file's
            assert value.dtype.isnative and value.dtype == slow_cut.planes[plane].dtype.newbyteorder("="), plane
            assert np.array_equal(value, slow_cut.planes[plane], equal_nan=True), plane
        assert fast_cut.wcs_asdf == slow_cut.wcs_asdf
        wcs = wcs_from_asdf(fast_cut.wcs_asdf)
        y, x = np.indices(fast_cut.planes["sci"].shape, dtype=np.float64)
        assert np.array_equal(wcs(x, y, with_bounding_box=True)[-1], fast_cut.planes["wavelength"], equal_nan=True)


def test_changed_header_falls_back(cal_path, tmp_path, monkeypatch):
    """A header edited after the tree was written: stdatamodels reads the headers, so the fast reader
    leaves the file to it (and ingest still reads it)."""
    from astropy.io import fits

    edited = tmp_path / cal_path.name
    with fits.open(cal_path) as hdul:
        hdul[0].header["OBSERVTN"] = "999"
        hdul.writeto(edited)
    with pytest.raises(fastread.NotFast, match="headers changed"):
        fastread.read_fast(edited, exposure_name(edited))
    assert read_exposure(edited, "science").record.meta["meta.observation.observation_number"] == "999"


@pytest.mark.parametrize("writable", [True, False])
def test_native_data_is_the_files_values_in_this_machines_byte_order(tmp_path, writable):
    from astropy.io import fits

    from spec3c.ingest.fitsraw import read_fits

    values = {"F": np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4),
              "D": np.arange(12, dtype=np.float64).reshape(3, 4) / 7,
              "U": np.array([[0, 1, 2**31, 2**32 - 1]] * 3, dtype=np.uint32)}
    fits.HDUList([fits.PrimaryHDU(), *(fits.ImageHDU(v, name=k) for k, v in values.items())]).writeto(tmp_path / "x.fits")
    hdus = {h.name: h for h in read_fits(tmp_path / "x.fits", writable=writable)}
    for name, expected in values.items():
        first = hdus[name].native_data()
        assert first.dtype.isnative and first.flags.writeable and first.dtype == expected.dtype
        np.testing.assert_array_equal(first, expected)
        again = hdus[name].native_data()
        np.testing.assert_array_equal(again, expected)  # swapped once, not back
        if writable:
            assert again is first  # swapped in place and kept
        elif name != "U":  # (unsigned arrays are made by this reader: theirs to swap)
            assert again is not first and not hdus[name].data.dtype.isnative  # a copy; the file's view kept


def _equal_cutouts(a, b):
    assert [c.key for c in a] == [c.key for c in b]
    for x, y in zip(a, b, strict=True):
        assert x.meta == y.meta and x.wcs_asdf == y.wcs_asdf and x.planes.keys() == y.planes.keys()
        for plane, value in x.planes.items():
            assert value.dtype.newbyteorder("=") == y.planes[plane].dtype.newbyteorder("=")  # the datamodel's: the file's
            assert np.array_equal(value, y.planes[plane], equal_nan=True), plane


def test_read_into_a_staging_file_equals_the_read(cal_path, tmp_path):
    """A worker's streamed read (each slit written to the staging file as it is laid out) gives what
    the whole read gives, cutout for cutout, loaded back one at a time."""
    from spec3c.ingest.staging import StagedFile, load_staged

    whole = read_exposure(cal_path, "science", "0" * 64)
    staged = StagedFile(tmp_path / "member.pickle")
    data = read_exposure(cal_path, "science", "0" * 64, staged)
    assert (data.cutouts == []) == (whole.record.model_type == "MultiSlitModel")  # streamed: none returned
    staged.finish(data)
    back = load_staged(staged.path)
    assert not staged.path.exists()  # removed; its cutouts read through the open file
    assert back.record == whole.record
    assert len(back.cutouts) == len(whole.cutouts) and back.cutouts.keys == [c.key for c in whole.cutouts]
    _equal_cutouts(list(back.cutouts), whole.cutouts)
    _equal_cutouts([back.cutouts[-1]], [whole.cutouts[-1]])  # any one, in any order
    back.cutouts.close()


def test_a_file_found_not_fast_half_way_restarts_its_staging_file(cal_path, tmp_path, monkeypatch):
    """The fast reader gives up after a slit was staged: the file is reset and the datamodel reader's
    cutouts are staged instead, once each."""
    from spec3c.ingest import cutouts as layouts
    from spec3c.ingest.staging import StagedFile, load_staged

    whole = read_exposure(cal_path, "science", "0" * 64)
    if len(whole.cutouts) < 2:
        pytest.skip("one cutout: nothing is staged before the last is laid out")
    real = layouts._slit_cutout
    calls = {"n": 0}

    def fail_on_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("test: the second slit fails in the fast reader")
        return real(*args, **kwargs)

    monkeypatch.setattr(layouts, "_slit_cutout", fail_on_second)
    staged = StagedFile(tmp_path / "member.pickle")
    staged.finish(read_exposure(cal_path, "science", "0" * 64, staged))
    back = load_staged(staged.path)
    _equal_cutouts(list(back.cutouts), whole.cutouts)
    back.cutouts.close()


@pytest.fixture(scope="module")
def background_x1ds(tmp_path_factory):
    """The spec2 _x1d background members of a simulated NIRSpec FS association (3 spectra each)."""
    import json

    sim = simulate("nirspec-fs", tmp_path_factory.mktemp("fs-bkg"),
                   SimOptions(seed=9, n_exposures=1, n_columns=160, with_background=2))
    members = json.loads(sim.asn_path.read_text())["products"][0]["members"]
    paths = [sim.asn_path.parent / m["expname"] for m in members if m["exptype"] == "background"]
    assert len(paths) == 2 and all(p.name.endswith("_x1d.fits") for p in paths)
    return paths


def _left_to_the_datamodel(*_args):
    raise fastread.NotFast("test: the datamodel reader")


def test_fast_spectra_read_equals_datamodel_read(background_x1ds, monkeypatch):
    """A background _x1d read without a datamodel gives the record and columns the datamodel does
    (columns in this machine's byte order, as the datamodel converts them)."""
    for path in background_x1ds:
        fast = read_exposure(path, "background", "0" * 64)
        with monkeypatch.context() as patch:
            patch.setattr(fastread, "read_fast_spectra", _left_to_the_datamodel)
            slow = read_exposure(path, "background", "0" * 64)
        assert fast.record == slow.record and fast.cutouts == slow.cutouts == []
        assert fast.images.keys() == slow.images.keys() and any(k.startswith("spec2.") for k in fast.images)
        for key, value in fast.images.items():
            assert value.dtype.isnative and value.dtype == slow.images[key].dtype, key
            assert np.array_equal(value, slow.images[key], equal_nan=True), key


def test_an_x1d_with_changed_headers_or_no_spectra_is_left_to_the_datamodel(background_x1ds, tmp_path):
    from astropy.io import fits

    changed = tmp_path / background_x1ds[0].name
    with fits.open(background_x1ds[0]) as hdul:
        hdul[0].header["TARGNAME"] = "edited"  # the ASDF tree's hash no longer matches the headers
        hdul.writeto(changed)
    with pytest.raises(fastread.NotFast, match="headers changed"):
        fastread.read_fast_spectra(changed)
    assert read_exposure(changed, "background", "0" * 64).record.meta["meta.target.catalog_name"] == "edited"
    with pytest.raises(fastread.NotFast):
        fastread.read_fast_spectra(_science(background_x1ds[0]))


def _science(x1d):
    """The science cal file beside a simulated background x1d (not spectra)."""
    return next(x1d.parent.glob("*_cal.fits"))
