"""The WFSS modes end to end: ingest, process, export, against the simulator's truth."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits
from stdatamodels.jwst import datamodels as dm

from spec3c.config import resolve_config
from spec3c.errors import InputError
from spec3c.ingest import ingest
from spec3c.modes.registry import mode_for
from spec3c.modes.wfss.reader import read_grism_slits, read_wfss_file
from spec3c.process import process_store
from spec3c.products import ProductNaming, export_store
from spec3c.results import load_association
from spec3c.simulate import SimOptions, load_truth, simulate
from spec3c.store import create_store, open_store
from spec3c.store.memory import MemoryStore

PRODUCT = "jw02079-o004_t001_niriss_f150w-gr150c"


def _run(asn, root, name, **overrides):
    store = root / f"{name}.store"
    ingest(asn, store)
    report = process_store(store, config=resolve_config(overrides=overrides), workers=1)
    assert not report.failed, [r.error for r in report.failed]
    with open_store(store) as s:
        a = load_association(s)
    naming = ProductNaming(a["product_name"], a["asn_id"], a["exp_type"], a["table_name"])
    export_store(store, root / name, naming, workers=1)
    return store, root / name


@pytest.fixture(scope="module")
def niriss(tmp_path_factory):
    root = tmp_path_factory.mktemp("wfss")
    sim = simulate("niriss-wfss", root / "input", SimOptions(seed=21, n_sources=16, n_exposures=3))
    store, out = _run(sim.asn_path, root, "ours")
    return sim, store, out


def _table(path, order):
    with dm.open(path) as model:
        return next(s.spec_table.copy() for s in model.spec if s.spectral_order == order)


def test_products_have_the_reference_names_and_layout(niriss):
    sim, store, out = niriss
    assert sorted(p.name for p in out.glob("*.fits")) == [f"{PRODUCT}_c1d.fits", f"{PRODUCT}_x1d.fits"]
    truth = load_truth(sim.truth_path)
    with dm.open(out / f"{PRODUCT}_x1d.fits") as x1d:
        assert isinstance(x1d, dm.WFSSMultiSpecModel)
        groups = [(s.group_id, s.spectral_order) for s in x1d.spec]
        assert len(groups) == 3 * 2  # one table per exposure and order
        assert all(g.endswith(f"_{o}") for g, o in groups)
        ids = sorted(int(k) for k in truth.sources if any(k == v["source_key"] for e in truth.exposures.values()
                                                          for v in e.values()))
        for table, (gid, order) in zip(x1d.spec, groups, strict=True):
            t = table.spec_table
            assert list(t["SOURCE_ID"]) == ids  # every table: one row per source
            exposure = next(e for e in truth.exposures if e.startswith(gid.rsplit("_", 1)[0]))
            present = {int(v["source_key"]) for k, v in truth.exposures[exposure].items() if k.endswith(f":{order}")}
            for row in t:
                assert (row["N_ALONGDISP"] > 0) == (row["SOURCE_ID"] in present)
                if row["N_ALONGDISP"] == 0:  # absent here: the schema's defaults
                    assert np.all(np.isnan(row["FLUX"])) and np.all(row["DQ"] == 1)
        assert x1d.spec[0].s_region.startswith("POLYGON ICRS")
        assert x1d.meta.cal_step.extract_1d == "COMPLETE"
    with dm.open(out / f"{PRODUCT}_c1d.fits") as c1d:
        assert isinstance(c1d, dm.WFSSMultiCombinedSpecModel)
        assert [s.spectral_order for s in c1d.spec] == [1, 2]
        for spec in c1d.spec:
            sid = list(spec.spec_table["SOURCE_ID"])
            assert sid == sorted(sid) and len(sid) == len(ids)  # sources without this order keep -999
            assert set(sid) - {-999} <= set(ids)
        assert c1d.spec[0].spec_table.columns["FLUX"].unit == "Jy"


def test_point_source_c1d_within_2_percent_of_truth(niriss):
    """Clean point sources (no neighbour's light in any of their cutouts): the c1d flux where S/N > 20
    is the true flux density within 2 % (median ratio and summed), and scatters as its errors say."""
    sim, _, out = niriss
    truth = load_truth(sim.truth_path)
    table = _table(out / f"{PRODUCT}_c1d.fits", 1)
    contamination: dict[str, float] = {}
    for cutouts in truth.exposures.values():
        for v in cutouts.values():
            contamination[v["source_key"]] = max(contamination.get(v["source_key"], 0.0), v["contamination"])
    checked = []
    for row in table:
        key = str(row["SOURCE_ID"])
        src = truth.sources.get(key)
        if src is None or src.source_type != "POINT" or src.kind != "science" or contamination[key] > 1e-3:
            continue
        n = int(row["N_ALONGDISP"])
        lam, flux, err = row["WAVELENGTH"][:n], row["FLUX"][:n], row["ERROR"][:n]
        strong = (flux / err > 20) & (row["DQ"][:n] == 0)
        if strong.sum() < 10:
            continue
        true = truth.flux_at(key, lam[strong])
        assert abs(np.median(flux[strong] / true) - 1) < 0.02, key
        assert abs(flux[strong].sum() / true.sum() - 1) < 0.02, key
        assert np.median(np.abs(flux[strong] - true) / err[strong]) < 1.0, key  # the errors describe the scatter
        checked.append(key)
    assert len(checked) >= 3


def test_spectra_are_grouped_per_source_through_the_store(niriss):
    sim, store, _ = niriss
    with open_store(store) as s:
        sources = s.sources()
        infos = s.list_cutouts()
        records = {r.name: r for r in s.list_exposures()}
        status = s.get_result(sources[0], "status")[1]
        keys = {k for _, k in s.list_results(sources[0])}
    assert all(i.slit == f"{i.meta['name']}:{i.meta['meta.wcsinfo.spectral_order']}" for i in infos)
    assert all(not any(k.startswith("meta.") and "exposure" in k for k in i.meta) for i in infos)  # no copy
    assert all(r.model_type == "MultiSlitModel" for r in records.values())
    assert set(status["steps"]) == {"exp_to_source", "pixel_replace", "extract_1d", "combine_1d"}
    assert status["steps"]["pixel_replace"]["status"] == "SKIPPED"
    n = sum(1 for i in infos if i.source == sources[0])
    assert len([k for k in keys if k.startswith("x1d/")]) == n and "c1d" in keys


def test_extract1d_reference_files_are_not_read(niriss, tmp_path):
    """WFSS extraction is the whole cutout, as the reference's: an aperture file changes nothing."""
    sim, _, out = niriss
    aperture = tmp_path / "ap.json"
    aperture.write_text(json.dumps({"apertures": [{"id": "ANY", "ystart": 3, "ystop": 4}]}))
    _, other = _run(sim.asn_path, tmp_path, "with_ap", extract_1d={"override_extract1d": str(aperture)})
    a, b = _table(out / f"{PRODUCT}_x1d.fits", 1), _table(other / f"{PRODUCT}_x1d.fits", 1)
    np.testing.assert_array_equal(a["FLUX"], b["FLUX"])


def test_fast_reader_equals_the_datamodel_reader(niriss):
    sim, _, _ = niriss
    path = sim.cal_paths[0]
    fast = read_wfss_file(path, path.stem)
    with dm.open(path) as model:
        slow = read_grism_slits(model, path.stem, path)
    assert fast.model_type == "MultiSlitModel" and fast.meta["meta.exposure.type"] == "NIS_WFSS"
    assert [c.key for c in fast.cutouts] == [c.key for c in slow]
    for a, b in zip(fast.cutouts, slow, strict=True):
        for plane in a.planes:
            np.testing.assert_array_equal(a.planes[plane], b.planes[plane])
        assert {k: v for k, v in a.meta.items() if k in b.meta and not k.startswith("meta.photometry")} == \
            {k: v for k, v in b.meta.items() if k in a.meta and not k.startswith("meta.photometry")}


def _copy_with(src, dst, change):
    with fits.open(src) as hdul:
        change(hdul)
        hdul.writeto(dst)
    return dst


def test_reader_refuses_broken_files(niriss, tmp_path):
    sim, _, _ = niriss
    cal = sim.cal_paths[0]

    def infinite(hdul):
        hdul["SCI", 2].data[0, 0] = np.inf

    def unit(hdul):
        hdul["SCI", 1].header["BUNIT"] = "furlongs"

    def no_var(hdul):
        del hdul["VAR_FLAT", 3]

    for change, message in ((infinite, "slit 1 .*infinite"), (unit, "slit 0 .*BUNIT"), (no_var, "slit 2 .*VAR_FLAT")):
        path = _copy_with(cal, tmp_path / f"{change.__name__}_cal.fits", change)
        with pytest.raises(InputError, match=message) as err:
            read_wfss_file(path, path.stem)
        assert str(path) in str(err.value)


def test_store_batch_methods_on_every_backend(tmp_path, niriss):
    sim, tiledb_store, _ = niriss
    with open_store(tiledb_store) as s:
        wanted = s.sources()[:3]
        one_by_one = {src: s.read_cutouts(src) for src in wanted}
        together = s.read_cutouts_of(wanted)
        assert list(together) == wanted
        for src in wanted:
            assert [c.key for c in together[src]] == [c.key for c in one_by_one[src]]
            for a, b in zip(together[src], one_by_one[src], strict=True):
                np.testing.assert_array_equal(a.planes["sci"], b.planes["sci"])
    for store in (MemoryStore(), create_store(tmp_path / "h.h5", "hdf5"), create_store(tmp_path / "t", "tiledb")):
        with store:
            store.put_results([("1", "x1d/a", {"f": np.arange(3.0)}, {"m": 1}), ("2", "x1d/b", {}, {"m": 2}),
                               ("1", "c1d", {"w": np.ones(2, ">f4")}, {}), ("1", "x1d0", {}, {})])
            found = store.get_results("x1d")
            assert sorted(found) == [("1", "x1d/a"), ("2", "x1d/b")]
            np.testing.assert_array_equal(found[("1", "x1d/a")][0]["f"], np.arange(3.0))
            assert found[("2", "x1d/b")][1] == {"m": 2}
            assert store.get_result("1", "c1d")[0]["w"].dtype == np.dtype(">f4")


@pytest.mark.slow
def test_x1d_inputs_give_the_same_products(niriss, tmp_path):
    sim, _, out = niriss
    store, other = _run(sim.x1d_asn_path, tmp_path, "from_x1d")
    with open_store(store) as s:
        assert s.list_cutouts() == []
        assert {r.model_type for r in s.list_exposures()} == {"WFSSMultiSpecModel"}
    for suffix in ("x1d", "c1d"):
        with dm.open(out / f"{PRODUCT}_{suffix}.fits") as a, dm.open(other / f"{PRODUCT}_{suffix}.fits") as b:
            # the tables of the same exposure group and order hold the same spectra (their order may differ:
            # from x1d inputs, the reference takes the tables file by file)
            key = (lambda s: (getattr(s, "group_id", None), s.spectral_order))  # noqa: E731
            tables_a, tables_b = {key(s): s for s in a.spec}, {key(s): s for s in b.spec}
            assert tables_a.keys() == tables_b.keys()
            for k, sa in tables_a.items():
                for col in ("SOURCE_ID", "WAVELENGTH", "FLUX", "DQ", "N_ALONGDISP"):
                    np.testing.assert_array_equal(sa.spec_table[col], tables_b[k].spec_table[col],
                                                  err_msg=f"{suffix} {k} {col}")


@pytest.mark.slow
def test_nircam_both_modules(tmp_path):
    sim = simulate("nircam-wfss", tmp_path / "input", SimOptions(seed=7, n_sources=12, n_exposures=4))
    _, out = _run(sim.asn_path, tmp_path, "nrc")
    name = "jw01895-o002_t001_nircam_f410m-grismr"
    assert mode_for("NRC_WFSS").name == "nircam-wfss"
    truth = load_truth(sim.truth_path)
    with dm.open(out / f"{name}_x1d.fits") as x1d:
        # modules A and B of one exposure number share the exposure group, as in jwst 3.0.0
        assert [s.group_id for s in x1d.spec] == ["jw01895002001_02101_00001_1", "jw01895002001_02101_00002_1"]
    table = _table(out / f"{name}_c1d.fits", 1)
    for row in table:
        n = int(row["N_ALONGDISP"])
        assert np.all(np.diff(row["WAVELENGTH"][:n]) > 0)  # module B's reversed traces combined too
        src = truth.sources[str(row["SOURCE_ID"])]
        strong = row["FLUX"][:n] / row["ERROR"][:n] > 20
        if src.source_type == "POINT" and src.kind == "science" and strong.sum() > 50:
            ratio = row["FLUX"][:n][strong] / truth.flux_at(str(row["SOURCE_ID"]), row["WAVELENGTH"][:n][strong])
            assert abs(np.median(ratio) - 1) < 0.03


def test_plain_fits_reader_matches_astropy(tmp_path):
    from spec3c.ingest.fitsraw import Unsupported, read_fits

    primary = fits.PrimaryHDU()
    primary.header["DATAMODL"] = "MultiSlitModel"
    primary.header["LONGSTR"] = "x" * 150 + "'quoted'"
    sci = fits.ImageHDU(np.arange(12, dtype=">f4").reshape(3, 4), name="SCI", ver=2)
    sci.header.update(SRCXPOS=1.5e-3, SOURCEID=7, FLAG=True, TXT="a'b")
    dq = fits.ImageHDU(np.array([[0, 1, 2**31 + 5]], dtype=np.uint32), name="DQ")
    path = tmp_path / "t.fits"
    fits.HDUList([primary, sci, dq, fits.BinTableHDU.from_columns([fits.Column("A", "D", array=[1.0])])]).writeto(path)
    hdus = read_fits(path)
    assert [(h.name, h.ver) for h in hdus[:3]] == [("PRIMARY", 1), ("SCI", 2), ("DQ", 1)]
    assert hdus[0].header["LONGSTR"] == "x" * 150 + "'quoted'"
    assert {k: hdus[1].header[k] for k in ("SRCXPOS", "SOURCEID", "FLAG", "TXT")} == \
        {"SRCXPOS": 1.5e-3, "SOURCEID": 7, "FLAG": True, "TXT": "a'b"}
    np.testing.assert_array_equal(hdus[1].data, np.arange(12).reshape(3, 4))
    assert hdus[2].data.dtype.kind == "u" and hdus[2].data.tolist() == [[0, 1, 2**31 + 5]]
    assert hdus[3].data is None  # tables are not read
    scaled = fits.ImageHDU(np.ones((2, 2), np.int16), name="SCI")
    scaled.header["BSCALE"] = 2.0
    fits.HDUList([fits.PrimaryHDU(), scaled]).writeto(tmp_path / "s.fits")
    with pytest.raises(Unsupported):
        read_fits(tmp_path / "s.fits")
