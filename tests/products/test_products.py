"""Exported products: names, datamodel classes, schema validity, specutils, atomic writes."""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS
from stdatamodels.jwst import datamodels as dm
from stdatamodels.validate import ValidationWarning

from spec3c import dqflags
from spec3c.algorithms.slit_grid import GridInput, build_slit_grid
from spec3c.asn import read_association
from spec3c.errors import Spec3cError
from spec3c.gwcs_asdf import wcs_from_asdf, wcs_to_asdf
from spec3c.ingest import ingest
from spec3c.modes.registry import mode_for
from spec3c.products import (
    ProductNaming,
    export_source,
    export_store,
    product_path,
    write_s2d,
    write_source_cal,
    write_source_crf,
    write_x1d,
)
from spec3c.products.meta import flat_to_tree, step_params, step_statuses
from spec3c.results import STATUS, X1D_COLUMNS, Resampled2D, Spectrum1D, crf_key
from spec3c.simulate import SimOptions, simulate
from spec3c.store import create_store, open_store

FLAGGED = (slice(5, 6), slice(10, 13))  # pixels the fabricated outlier step flags


def _fabricate(store, source: str, source_type: str | None = None) -> None:
    """Hand-made process results for one source: crf dq, s2d, x1d, status."""
    cutouts = store.read_cutouts(source)
    for c in cutouts:
        dq = c.planes["dq"].copy()
        dq[FLAGGED] |= dqflags.DO_NOT_USE | dqflags.OUTLIER
        store.put_result(source, crf_key(c.exposure, c.slit), {"dq": dq}, {"n_flagged": 3})
    inputs = [
        GridInput(
            c.planes["sci"],
            c.planes["dq"],
            c.planes["wavelength"],
            c.planes["ra"],
            c.planes["dec"],
            c.planes["slit_y"],
        )
        for c in cutouts
    ]
    with warnings.catch_warnings():
        # the weighted fiducial sigma-clips data with NaNs (off-slit pixels)
        warnings.filterwarnings("ignore", "Input data contains invalid values", AstropyUserWarning)
        grid = build_slit_grid(inputs, lambda k: wcs_from_asdf(cutouts[k].wcs_asdf))
    _, _, lam = grid.world()
    ny, nx = grid.shape
    sci = np.arange(ny * nx, dtype=np.float32).reshape(ny, nx)
    last = cutouts[-1].meta
    meta = {
        k: last[k]
        for k in ("name", "source_id", "source_name", "source_type", "source_xpos", "source_ypos")
    }
    meta.update(
        bunit_data=last["meta.bunit_data"],
        bunit_err=last["meta.bunit_err"],
        pixel_scale_ratio=1.0,
        pixelarea_steradians=2.35e-13,
        pixelarea_arcsecsq=0.01,
        spatial_scale=grid.spatial_scale,
        slit_y=grid.slit_y.tolist(),
        inputs=[c.exposure for c in cutouts],
        s_region="POLYGON ICRS 53.1 -27.8 53.2 -27.8 53.2 -27.7 53.1 -27.7",
    )
    ones = np.ones((ny, nx), np.float32)
    Resampled2D(
        sci,
        0.1 * ones,
        ones,
        np.ones((1, ny, nx), np.int32),
        0.01 * ones,
        0.02 * ones,
        0.03 * ones,
        lam,
        wcs_to_asdf(grid.to_gwcs()),
        meta,
    ).save(store, source)
    cols = {k: np.linspace(1.0, 2.0, nx) for k in X1D_COLUMNS}
    cols["WAVELENGTH"] = grid.wavelengths.copy()
    cols["DQ"] = np.zeros(nx, np.uint32)
    smeta = {k: v for k, v in meta.items() if k not in ("slit_y", "inputs")}
    smeta.update(
        slit_ra=53.15,
        slit_dec=-27.8,
        spectral_order=1,
        dispersion_direction=1,
        extraction_xstart=1,
        extraction_xstop=nx,
        extraction_ystart=3.0,
        extraction_ystop=8.0,
    )
    if source_type is not None:
        smeta["source_type"] = source_type
    Spectrum1D(cols, smeta).save(store, source)
    status = {
        "steps": {
            "master_background": {"status": "SKIPPED", "message": "", "seconds": 0.0},
            "outlier_detection": {"status": "COMPLETE", "message": "", "seconds": 0.1},
            "resample_spec": {"status": "COMPLETE", "message": "", "seconds": 0.1},
            "extract_1d": {"status": "COMPLETE", "message": "", "seconds": 0.1},
        },
        "params": {
            "resample_spec": {
                "pixfrac": 0.8,
                "kernel": "square",
                "fillval": "NAN",
                "weight_type": "ivm",
            }
        },
    }
    store.put_result(source, STATUS, {}, status)


@pytest.fixture(scope="module")
def mos(tmp_path_factory):
    root = tmp_path_factory.mktemp("mos")
    sim = simulate("nirspec-mos", root / "sim", SimOptions(n_sources=3, n_columns=200))
    store_path = root / "store"
    ingest(sim.asn_path, store_path)
    store = create_store(store_path)
    sources = store.sources()
    _fabricate(store, sources[0])  # a POINT source
    _fabricate(store, sources[1], source_type="EXTENDED")
    store.close()
    asn = read_association(sim.asn_path)
    naming = ProductNaming.from_association(asn)
    out = root / "out"
    with open_store(store_path) as store:
        paths = {s: export_source(store, s, naming, out) for s in sources}
    return {"store": store_path, "naming": naming, "sources": sources, "paths": paths, "out": out}


@pytest.fixture(scope="module")
def fs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fs")
    sim = simulate("nirspec-fs", root / "sim", SimOptions(n_exposures=2, n_columns=120))
    ingest(sim.asn_path, root / "store")
    return {
        "store": root / "store",
        "naming": ProductNaming.from_association(read_association(sim.asn_path)),
    }


def _by_suffix(paths):
    return {Path(p).name.rsplit("_", 1)[1].removesuffix(".fits"): Path(p) for p in paths}


def _open(path):
    return dm.open(path)


# -- names --------------------------------------------------------------------


def _base(naming, source, cutouts):
    """The product base name, with the naming rules of the mode of ``naming.exp_type``."""
    rules = mode_for(naming.exp_type).naming
    return dataclasses.replace(naming, source_naming=rules).source_base(source, [c.meta for c in cutouts])


def test_mos_names_follow_reference(mos):
    with open_store(mos["store"]) as store:
        names = {
            s: _base(mos["naming"], s, store.list_cutouts(s)) for s in mos["sources"]
        }
        metas = {s: store.list_cutouts(s)[0].meta for s in mos["sources"]}
    for source, name in names.items():
        sid, sname = metas[source]["source_id"], metas[source]["source_name"]
        letter = "b" if "BKG" in sname else ("v" if sid < 0 else "s")
        assert name == f"jw01345-o066_{letter}{abs(sid):09d}_nirspec_f170lp-g235m"
    assert {n.split("_")[1][0] for n in names.values()} == {
        "s",
        "v",
        "b",
    }  # the simulator makes one of each
    files = [p.name for p in mos["paths"][mos["sources"][0]]]
    assert all(
        re.fullmatch(r"jw01345-o066_s\d{9}_nirspec_f170lp-g235m_(cal|crf|s2d|x1d)\.fits", f)
        for f in files
    )


def test_fs_names_carry_slit_names(fs):
    with open_store(fs["store"]) as store:
        assert fs["naming"].exp_type == "NRS_FIXEDSLIT"
        got = {
            s: _base(fs["naming"], s, store.list_cutouts(s)) for s in store.sources()
        }
        slits = {s: store.list_cutouts(s)[0].slit.lower() for s in store.sources()}
    for source, name in got.items():
        assert name == f"jw01309-o022_t001-s{int(source):09d}_nirspec_f290lp-g395h-{slits[source]}"


def test_exp_type_taken_from_store_when_unset(mos):
    naming = ProductNaming(mos["naming"].template)
    with open_store(mos["store"]) as store:
        source = mos["sources"][2]
        assert product_path(store, source, naming, "x", "x1d").name.startswith("jw01345-o066_b")


# -- every product opens as its class and validates ----------------------------

_CLASSES = {
    "cal": dm.MultiExposureModel,
    "crf": dm.MultiExposureModel,
    "s2d": dm.SlitModel,
    "x1d": dm.MultiSpecModel,
}


@pytest.mark.parametrize("suffix", sorted(_CLASSES))
def test_product_opens_as_class_and_validates(mos, suffix):
    path = _by_suffix(mos["paths"][mos["sources"][0]])[suffix]
    with _open(path) as model:
        assert type(model) is _CLASSES[suffix]
        with warnings.catch_warnings():
            warnings.simplefilter("error", ValidationWarning)
            model.validate()
        assert model.meta.filename == path.name
        assert model.meta.telescope == "JWST"
        assert model.meta.instrument.name == "NIRSPEC"
        assert model.meta.exposure.type == "NRS_MSASPEC"
        assert model.meta.asn.table_name == "jw01345-o066_spec3_00001_asn.json"
    with fits.open(path) as hdul:
        assert "ASDF" in hdul
        assert hdul[0].header["TELESCOP"] == "JWST"
        assert hdul[0].header["DATAMODL"] == _CLASSES[suffix].__name__


def test_sources_without_results_get_cal_only(mos):
    paths = mos["paths"][mos["sources"][2]]
    assert [p.name.rsplit("_", 1)[1] for p in paths] == ["cal.fits"]


# -- cal / crf ------------------------------------------------------------------


def test_cal_holds_every_cutout_with_merged_meta(mos):
    source = mos["sources"][0]
    path = _by_suffix(mos["paths"][source])["cal"]
    with open_store(mos["store"]) as store:
        cutouts = store.read_cutouts(source)
        records = {r.name: r for r in store.list_exposures()}
    with _open(path) as model:
        assert len(model.exposures) == len(cutouts)
        for exp, c in zip(model.exposures, cutouts, strict=True):
            np.testing.assert_array_equal(exp.data, c.planes["sci"])
            np.testing.assert_array_equal(exp.dq, c.planes["dq"])
            np.testing.assert_array_equal(exp.var_rnoise, c.planes["var_rnoise"])
            np.testing.assert_array_equal(exp.pathloss_point, c.planes["pathloss_point"])
            assert exp.name == c.meta["name"] and exp.source_id == c.meta["source_id"]
            assert (
                exp.source_name == c.meta["source_name"]
                and exp.shutter_state == c.meta["shutter_state"]
            )
            # exposure meta merged under the slit meta; slit BUNIT/model_type/wcsinfo kept
            assert exp.meta.filename == Path(records[c.exposure].filename).name
            assert (
                exp.meta.exposure.start_time == records[c.exposure].meta["meta.exposure.start_time"]
            )
            assert exp.meta.bunit_data == c.meta["meta.bunit_data"]
            assert exp.meta.model_type == "SlitModel"
            assert exp.meta.wcsinfo.dispersion_direction == 1
            # the slit gwcs is restored
            y, x = np.indices(c.shape)
            lam = exp.meta.wcs(x, y, with_bounding_box=True)[2]
            np.testing.assert_allclose(lam, c.planes["wavelength"], equal_nan=True)
        assert model.meta.cal_step.master_background == "SKIPPED"
        assert model.meta.cal_step.outlier_detection is None


def test_crf_nan_where_flagged(mos):
    source = mos["sources"][0]
    path = _by_suffix(mos["paths"][source])["crf"]
    with open_store(mos["store"]) as store:
        cutouts = store.read_cutouts(source)
        stored = [store.get_result(source, crf_key(c.exposure, c.slit))[0]["dq"] for c in cutouts]
    with _open(path) as model:
        # as jwst 3.0.0: the source-based crf is saved before S_OUTLIR reaches its primary header
        assert model.meta.cal_step.outlier_detection is None
        for exp, c, dq in zip(model.exposures, cutouts, stored, strict=True):
            assert exp.meta.cal_step.outlier_detection == "COMPLETE"
            assert np.all(exp.dq[FLAGGED] & dqflags.OUTLIER)
            bad = (exp.dq & dqflags.DO_NOT_USE) > 0
            np.testing.assert_array_equal(
                exp.dq & ~np.uint32(dqflags.DO_NOT_USE), dq & ~np.uint32(dqflags.DO_NOT_USE)
            )
            for name in ("data", "err", "var_poisson", "var_rnoise", "var_flat"):
                arr = getattr(exp, name)
                assert np.all(np.isnan(arr[bad])), name
            finite_in = np.isfinite(c.planes["sci"]) & ((dq & dqflags.DO_NOT_USE) == 0)
            np.testing.assert_array_equal(exp.data[finite_in], c.planes["sci"][finite_in])
            assert np.array_equal(np.isnan(exp.data), bad)


# -- s2d ------------------------------------------------------------------------


def test_s2d_content_and_fits_wcs(mos):
    source = mos["sources"][0]
    path = _by_suffix(mos["paths"][source])["s2d"]
    with open_store(mos["store"]) as store:
        s2d = Resampled2D.load(store, source)
    with _open(path) as model:
        np.testing.assert_array_equal(model.data, s2d.sci)
        np.testing.assert_array_equal(model.con, s2d.con)
        np.testing.assert_allclose(model.wavelength, s2d.wavelength, rtol=1e-6)
        assert model.meta.bunit_data == "MJy"
        assert model.source_id == s2d.meta["source_id"] and model.name == s2d.meta["name"]
        assert model.meta.wcsinfo.dispersion_direction == 1
        assert model.meta.photometry.pixelarea_steradians == pytest.approx(2.35e-13)
        assert model.meta.resample.pixfrac == 0.8 and model.meta.resample.weight_type == "ivm"
        assert model.meta.resample.pointings == 3
        assert model.meta.cal_step.resample == "COMPLETE"
        assert model.meta.cal_step.outlier_detection == "COMPLETE"
        assert model.meta.exposure.exposure_time == pytest.approx(3 * 2900.0)
        assert model.meta.wcsinfo.s_region.startswith("POLYGON ICRS")
        ny, nx = model.data.shape
        _, _, lam = model.meta.wcs(*np.meshgrid(np.arange(nx), np.arange(ny)))
        np.testing.assert_allclose(lam, s2d.wavelength)
    with fits.open(path) as hdul:
        sci = hdul["SCI"].header
        assert (sci["CTYPE1"], sci["PS1_0"], sci["PS1_1"], sci["DISPAXIS"]) == (
            "WAVE-TAB",
            "WCS-TABLE",
            "wavelength",
            1,
        )
        assert sci["CTYPE2"] == "SPATIAL" and sci["CUNIT2"] == "arcsec"
        assert sci["CDELT2"] == pytest.approx(s2d.meta["spatial_scale"])
        assert sci["BUNIT"] == "MJy" and sci["PIXAR_SR"] == pytest.approx(2.35e-13)
        table = hdul["WCS-TABLE"].data["wavelength"]
        assert table.shape == (1, nx, 1)
        wcs = WCS(sci, fobj=hdul)
        got, _ = wcs.pixel_to_world_values(np.arange(nx), np.zeros(nx))
        np.testing.assert_allclose(got, s2d.wavelength[ny // 2], rtol=1e-12)


def test_specutils_reads_s2d(mos):
    from specutils import Spectrum, SpectrumList

    path = _by_suffix(mos["paths"][mos["sources"][0]])["s2d"]
    with open_store(mos["store"]) as store:
        s2d = Resampled2D.load(store, mos["sources"][0])
    spec = Spectrum.read(path)
    assert spec.flux.unit == "MJy" and spec.flux.shape == s2d.sci.shape
    np.testing.assert_allclose(spec.spectral_axis.to_value("um"), s2d.wavelength[0])
    assert len(SpectrumList.read(path)) == 1


# -- x1d ------------------------------------------------------------------------


def test_x1d_table_layout(mos):
    path = _by_suffix(mos["paths"][mos["sources"][0]])["x1d"]
    with fits.open(path) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "EXTRACT1D", "PROVENANCE", "ASDF"]  # no empty SCI
        hdr = hdul["EXTRACT1D"].header
        cols = hdul["EXTRACT1D"].columns
        assert cols.names == list(X1D_COLUMNS)
        units = dict(zip(cols.names, cols.units, strict=True))
        assert (units["WAVELENGTH"], units["FLUX"], units["FLUX_VAR_POISSON"]) == (
            "um",
            "Jy",
            "Jy^2",
        )
        assert (units["SURF_BRIGHT"], units["SB_VAR_FLAT"], units["BACKGROUND"]) == (
            "MJy/sr",
            "MJy^2 / sr^2",
            "MJy/sr",
        )
        assert hdul["EXTRACT1D"].data["DQ"].dtype == np.uint32
        for key in (
            "SLTNAME",
            "SOURCEID",
            "SRCNAME",
            "SRCTYPE",
            "SRCXPOS",
            "SRCYPOS",
            "SRCRA",
            "SRCDEC",
            "EXTRXSTR",
            "EXTRYSTP",
            "SPORDER",
            "DISPAXIS",
            "SLIT_RA",
            "SLIT_DEC",
            "DETECTOR",
        ):
            assert key in hdr, key
        assert hdr["SRCTYPE"] == "POINT" and hdr["SLIT_RA"] == 53.15
        primary = hdul[0].header
        assert (primary["INSTRUME"], primary["EXP_TYPE"], primary["S_EXTR1D"]) == (
            "NIRSPEC",
            "NRS_MSASPEC",
            "COMPLETE",
        )
    with _open(path) as model:
        spec = model.spec[0]
        lam = spec.spec_table["WAVELENGTH"]
        _, _, got = spec.meta.wcs(np.arange(len(lam)))
        np.testing.assert_allclose(got, lam)
        assert spec.meta.wcs.backward_transform(0.0, 0.0, lam[3]) == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("index", "unit", "column"), [(0, "Jy", "FLUX"), (1, "MJy / sr", "SURF_BRIGHT")]
)
def test_specutils_reads_x1d_by_srctype(mos, index, unit, column):
    from specutils import Spectrum, SpectrumList

    path = _by_suffix(mos["paths"][mos["sources"][index]])["x1d"]
    spec = Spectrum.read(path)
    assert spec.flux.unit == unit
    with fits.open(path) as hdul:
        data = hdul["EXTRACT1D"].data
        np.testing.assert_allclose(spec.flux.value, data[column])
        np.testing.assert_allclose(spec.spectral_axis.to_value("um"), data["WAVELENGTH"])
    # specutils' "JWST x1d multi" identifier matches every EXTRACT1D table (as with
    # the reference's files), so SpectrumList needs the format named
    specs = SpectrumList.read(path, format="JWST x1d multi")
    assert len(specs) == 1 and specs[0].flux.unit == unit


# -- atomic writes and export -----------------------------------------------------


def _failing_writeto(self, init, *args, **kwargs):
    init.write(b"SIMPLE  =                    T" + b" " * 100)  # half a file
    raise OSError("disk full")


@pytest.mark.parametrize("writer", [write_source_cal, write_source_crf, write_s2d, write_x1d])
def test_failed_write_leaves_no_file(mos, tmp_path, monkeypatch, writer):
    monkeypatch.setattr(fits.HDUList, "writeto", _failing_writeto)
    with open_store(mos["store"]) as store, pytest.raises(Spec3cError, match="disk full"):
        writer(store, mos["sources"][0], mos["naming"], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_previous_product(mos, tmp_path, monkeypatch):
    with open_store(mos["store"]) as store:
        path = write_x1d(store, mos["sources"][0], mos["naming"], tmp_path)
        before = path.read_bytes()
        monkeypatch.setattr(fits.HDUList, "writeto", _failing_writeto)
        with pytest.raises(Spec3cError, match="could not be written"):
            write_x1d(store, mos["sources"][0], mos["naming"], tmp_path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_export_store_selection_and_progress(mos, fs, tmp_path):
    calls = []
    paths = export_store(
        fs["store"],
        tmp_path,
        fs["naming"],
        suffixes=("cal", "x1d"),
        progress=lambda s, i, n: calls.append((s, i, n)),
    )
    assert [c[1:] for c in calls] == [(1, 3), (2, 3), (3, 3)]
    assert len(paths) == 3 and all(p.name.endswith("_cal.fits") for p in paths)
    for path in paths:
        with _open(path) as model:
            assert type(model) is dm.MultiExposureModel and len(model.exposures) == 2
            assert model.meta.exposure.type == "NRS_FIXEDSLIT"
    only = export_store(
        mos["store"],
        tmp_path / "one",
        mos["naming"],
        sources=[mos["sources"][0]],
        suffixes=("x1d",),
    )
    assert [p.name.rsplit("_", 1)[1] for p in only] == ["x1d.fits"]
    with pytest.raises(KeyError, match="nope"):
        export_store(mos["store"], tmp_path, mos["naming"], sources=["nope"])
    with open_store(mos["store"]) as store, pytest.raises(ValueError, match="suffix"):
        export_source(store, mos["sources"][0], mos["naming"], tmp_path, suffixes=("s4d",))


# -- metadata helpers -------------------------------------------------------------


def test_flat_to_tree_and_status_forms():
    assert flat_to_tree({"meta.a.b": 1, "meta.a.c": None, "meta.d": "x", "name": 3}) == {
        "a": {"b": 1},
        "d": "x",
    }
    status = {"steps": {"outlier_detection": {"status": "COMPLETE"}, "resample_spec": {"status": "skipped"},
                        "extract_1d": {"status": "FAILED"}, "other": 3},
              "params": {"resample_spec": {"pixfrac": 0.5}}}
    assert step_statuses(status) == {"outlier_detection": "COMPLETE", "resample_spec": "SKIPPED",
                                     "extract_1d": "FAILED"}
    assert step_params(status, "resample_spec") == {"pixfrac": 0.5}
    assert step_params(status, "extract_1d") == {}
