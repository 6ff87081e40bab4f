"""The ``_s3d`` product: IFUCubeModel files named as the reference names them, valid for
stdatamodels, readable by specutils, with the WCS keywords Cubeviz uses, and written by
streaming the stored tiles (the same file as stdatamodels writes from the whole cube)."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
from astropy.io import fits
from ifu_inputs import DEC0, RA0, Scene, ingested_set
from stdatamodels.jwst import datamodels as dm

from spec3c.config import resolve_config
from spec3c.errors import Spec3cWarning
from spec3c.modes.registry import mode_of_store
from spec3c.naming import ProductNaming
from spec3c.products import s3d
from spec3c.results import IfuCube, load_association
from spec3c.steps import cube_build
from spec3c.steps.context import StepContext, science_inputs
from spec3c.store import open_store

SCENE = Scene(flat=2.0, point_flux=20.0, point_ra=RA0 + 0.2 / 3600, point_dec=DEC0)


def _built(ingested, folder, **params):
    """A copy of the set's store with its cubes built; returns the open store."""
    shutil.copytree(ingested.store, folder)
    store = open_store(folder, mode="a")
    overrides = {"cube_build": {"override_cubepar": str(ingested.cubepar), **params}}
    ctx = StepContext(store, "1", mode_of_store(store), science_inputs(store, "1"), resolve_config(overrides=overrides))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "cube .*max_memory", Spec3cWarning)  # tiny budget on purpose
        assert cube_build.run(ctx).status == "COMPLETE"
    return store


def _naming(store) -> ProductNaming:
    asn = load_association(store)
    return ProductNaming(asn["product_name"], asn["asn_id"], None, asn["table_name"])


@pytest.fixture(scope="module")
def miri_products(tmp_path_factory):
    root = tmp_path_factory.mktemp("s3d_miri")
    store = _built(ingested_set(tmp_path_factory, "miri", SCENE, n_dithers=2), root / "store")
    with store:
        return s3d.write_s3d(store, "1", _naming(store), root / "out"), root


def test_names_and_validation(miri_products):
    paths, _ = miri_products
    assert [p.name for p in paths] == ["jw01234-o001_t001_miri_ch1-short_s3d.fits",
                                       "jw01234-o001_t001_miri_ch2-short_s3d.fits"]
    for path in paths:
        with dm.open(path) as model:
            assert isinstance(model, dm.IFUCubeModel)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                model.validate()
            assert model.meta.cal_step.cube_build == "COMPLETE"
            assert model.meta.instrument.channel == path.name.split("_ch")[1][0]
            assert model.meta.asn.table_name.endswith("_asn.json")
            assert model.data.shape == model.dq.shape == model.err.shape == model.weightmap.shape
            assert model.wavetable["wavelength"].shape == (1, model.data.shape[0], 1)


def test_fits_keywords_cubeviz_reads(miri_products):
    paths, _ = miri_products
    with fits.open(paths[0]) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "SCI", "ERR", "DQ", "WMAP", "WCS-TABLE", "HDRTAB", "ASDF"]
        sci = hdul["SCI"].header
        assert (sci["CTYPE1"], sci["CTYPE2"], sci["CTYPE3"], sci["CUNIT3"]) == ("RA---TAN", "DEC--TAN", "WAVE", "um")
        assert sci["BUNIT"] == "MJy/sr" and sci["PIXAR_SR"] == pytest.approx(sci["PIXAR_A2"] * 2.3504e-11)
        assert sci["S_REGION"].startswith("POLYGON ICRS")
        assert sci["PC1_1"] == pytest.approx(-1.0) and sci["PC2_2"] == pytest.approx(1.0)
        assert hdul["DQ"].data.dtype.kind == "u" or hdul["DQ"].header["BZERO"] == 2**31
        ny, nx = hdul["SCI"].data.shape[1:]
        from astropy.wcs import WCS

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits_wcs = WCS(sci)
        ra, dec, lam = fits_wcs.wcs_pix2world([[nx // 2, ny // 2, 3]], 0)[0]
    with dm.open(paths[0]) as model:
        gra, gdec, glam = model.meta.wcs(nx // 2, ny // 2, 3)
    assert (ra, dec) == pytest.approx((gra, gdec), abs=1e-9)
    assert lam * 1e6 == pytest.approx(glam, rel=1e-9)  # FITS WCS in metres, the gwcs in micron


def test_specutils_reads_the_cube(miri_products):
    from specutils import Spectrum

    paths, _ = miri_products
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spectrum = Spectrum.read(paths[0], format="JWST s3d")
        with dm.open(paths[0]) as model:
            nz = model.data.shape[0]
            wave = model.wavetable["wavelength"][0, :, 0]
    assert spectrum.flux.unit == "MJy / sr" and spectrum.spectral_axis.size == nz
    np.testing.assert_allclose(spectrum.spectral_axis.to_value("um"), wave, rtol=1e-6)


def test_hdrtab_one_row_per_input(miri_products):
    """As the reference's blender: a row of the inputs' IFUImageModel ``blend_table`` keywords per
    (band, file) input of the cube, kept through stdatamodels; specutils reads the cube beside it."""
    paths, root = miri_products
    with open_store(root / "store") as store:
        records = {r.name: r for r in store.list_exposures()}
    with dm.open(paths[0]) as model:
        table = model.hdrtab
        assert len(table) == 2
        names = set(table.dtype.names)
        assert {"EXPSTART", "EFFEXPTM", "DETECTOR"} <= names and "SLTNAME" not in names  # not the slit schema
        files = sorted(r.meta["meta.filename"] for r in records.values())
        assert sorted(str(f) for f in table["FILENAME"]) == files
        np.testing.assert_allclose(table["EFFEXPTM"], [r.meta["meta.exposure.exposure_time"] for r in
                                                      sorted(records.values(), key=lambda r: r.meta["meta.filename"])])
    with fits.open(paths[0]) as hdul:
        assert hdul["HDRTAB"].header["XTENSION"] == "BINTABLE" and hdul["HDRTAB"].data.size == 2


def test_streamed_file_equals_the_stdatamodels_file(miri_products, tmp_path):
    """The tiles streamed into the file give what stdatamodels writes from the whole cube."""
    paths, root = miri_products
    with open_store(root / "store") as store:
        name = IfuCube.names(store, "1")[0]
        cube = IfuCube.load(store, "1", name)
        planes = {k: np.concatenate([cube.read_tile(store, "1", p0)[k] for p0, _ in cube.tiles]) for k in IfuCube.PLANES}
        meta = s3d._cube_meta(store, "1", s3d._resolved(store, _naming(store)), cube)
        table = s3d._hdrtab(store, "1", s3d._resolved(store, _naming(store)), cube)
    model = s3d._model(cube, meta, planes)
    s3d.attach_hdrtab(model, table)
    model.meta.filename = paths[0].name
    whole = tmp_path / paths[0].name
    model.to_fits(whole)
    with fits.open(paths[0]) as a, fits.open(whole) as b:
        assert [h.name for h in a] == [h.name for h in b]
        for ha, hb in zip(a, b, strict=True):
            if ha.name == "ASDF":
                continue
            cards_a = [c for c in ha.header.cards if c.keyword != "DATE"]  # DATE is the time of writing
            cards_b = [c for c in hb.header.cards if c.keyword != "DATE"]
            assert [str(c) for c in cards_a] == [str(c) for c in cards_b], ha.name
            if ha.data is not None:
                np.testing.assert_array_equal(ha.data, hb.data)


def test_tiled_cube_gives_the_same_product(tmp_path_factory, miri_products, tmp_path):
    paths, _ = miri_products
    store = _built(ingested_set(tmp_path_factory, "miri", SCENE, n_dithers=2), tmp_path / "store", max_memory="4MB")
    with store:
        cube = IfuCube.load(store, "1", IfuCube.names(store, "1")[0])
        assert len(cube.tiles) > 2
        tiled = s3d.write_s3d(store, "1", _naming(store), tmp_path / "out")
    for a, b in zip(paths, tiled, strict=True):
        with fits.open(a) as ha, fits.open(b) as hb:
            for ext in ("SCI", "ERR", "DQ", "WMAP"):
                np.testing.assert_array_equal(ha[ext].data, hb[ext].data)


@pytest.mark.parametrize("params", [{"output_type": "multi"}, {"coord_system": "internal_cal"}])
def test_nirspec_table_and_internal_cubes(tmp_path_factory, tmp_path, params):
    n = 1 if params.get("coord_system") == "internal_cal" else 2
    store = _built(ingested_set(tmp_path_factory, "nirspec", SCENE, n_dithers=n), tmp_path / "store", **params)
    with store:
        (path,) = s3d.write_s3d(store, "1", _naming(store), tmp_path / "out")
    with dm.open(path) as model:
        model.validate()
        info = model.meta.wcsinfo
        if "output_type" in params:
            assert path.name == "jw01234-o002_t001_nirspec_g395h-f290lp_g395h-f290lp_s3d.fits"
            assert (info.ctype3, info.ps3_0, info.ps3_1) == ("WAVE-TAB", "WCS-TABLE", "wavelength")
            assert model.meta.wcs(0, 0, 5)[2] == pytest.approx(model.wavetable["wavelength"][0, 5, 0])
        else:
            assert path.name.endswith("_g395h-f290lp_internal_s3d.fits")
            assert (info.ctype1, info.cunit1) == ("NRSSLICERX", "meter")


def test_metadata_blended_over_the_cube_inputs():
    """NRS1 + NRS2 of one exposure: DETECTOR MULTIPLE and the exposure times summed over both files
    (jwst's model_blender over the cube's inputs); a MIRI file counts once per band of the cube;
    one input in the association: the first input's values stand."""
    from types import SimpleNamespace

    def record(detector: str, start: float) -> SimpleNamespace:
        return SimpleNamespace(meta={"meta.instrument.detector": detector, "meta.exposure.exposure_time": 2334.0,
                                     "meta.exposure.effective_exposure_time": 2334.0,
                                     "meta.exposure.duration": 2400.0, "meta.exposure.start_time": start,
                                     "meta.exposure.end_time": start + 0.03, "meta.exposure.mid_time": start + 0.015})

    records = {"a_nrs1": record("NRS1", 60000.0), "a_nrs2": record("NRS2", 60000.0),
               "b_nrs1": record("NRS1", 60001.0)}
    both = SimpleNamespace(meta={"inputs": ["a_nrs1", "a_nrs2"], "blend_inputs": ["a_nrs1", "a_nrs2"]})
    out = s3d._blended(records, both)
    assert out["instrument.detector"] == "MULTIPLE"
    assert out["exposure.effective_exposure_time"] == out["exposure.exposure_time"] == 4668.0
    assert out["exposure.duration"] == 4800.0
    one_band = SimpleNamespace(meta={"inputs": ["a_nrs1", "b_nrs1"], "blend_inputs": ["a_nrs1", "b_nrs1"]})
    out = s3d._blended(records, one_band)
    assert out["instrument.detector"] == "NRS1"
    assert (out["exposure.start_time"], out["exposure.end_time"]) == (60000.0, 60001.03)
    assert out["exposure.mid_time"] == pytest.approx(60000.515)
    twice = SimpleNamespace(meta={"inputs": ["a_nrs1"], "blend_inputs": ["a_nrs1", "a_nrs1"]})
    assert s3d._blended(records, twice)["exposure.exposure_time"] == 4668.0
    assert s3d._blended(records, SimpleNamespace(meta={"inputs": ["a_nrs1"], "blend_inputs": []})) == {}


def test_miri_multi_cube_counts_a_file_once_per_band(tmp_path_factory, tmp_path):
    store = _built(ingested_set(tmp_path_factory, "miri", SCENE, n_dithers=2), tmp_path / "store",
                   output_type="multi")
    with store:
        (path,) = s3d.write_s3d(store, "1", _naming(store), tmp_path / "out")
    with fits.open(path) as hdul:
        header = hdul[0].header
        assert header["DETECTOR"] == "MIRIFUSHORT"
        assert header["CHANNEL"] == "12"
        # two dithers x two channels of each MIRIFUSHORT file (1000 s each)
        assert header["EFFEXPTM"] == header["TMEASURE"] == 4000.0
        assert header["DURATION"] == 4200.0
