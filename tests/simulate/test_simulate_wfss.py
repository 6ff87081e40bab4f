"""The WFSS simulators: cal files as extract_2d writes them, their spec2 x1d files, truth."""

from __future__ import annotations

import json

import numpy as np
import pytest
from stdatamodels.jwst import datamodels as dm

from spec3c.fitsio import indexed_hdus
from spec3c.simulate import SimOptions, load_truth, simulate
from spec3c.simulate.wfss.layout import build_layout, wfss_config
from spec3c.simulate.wfss.wcs import TraceSolution

FRAMES = ["grism_slit", "grism_detector", "detector", "v2v3", "v2v3vacorr", "world"]


@pytest.fixture(scope="module")
def niriss(tmp_path_factory):
    return simulate("niriss-wfss", tmp_path_factory.mktemp("niriss"), SimOptions(seed=11, n_sources=14, n_exposures=2))


@pytest.fixture(scope="module")
def nircam(tmp_path_factory):
    return simulate("nircam-wfss", tmp_path_factory.mktemp("nircam"), SimOptions(seed=12, n_sources=10, n_exposures=4))


def _open(path):
    with indexed_hdus():
        return dm.open(path)


def test_cal_files_are_extract_2d_cutouts(niriss):
    truth = load_truth(niriss.truth_path)
    for path in niriss.cal_paths:
        with _open(path) as model:
            assert isinstance(model, dm.MultiSlitModel)
            assert model.meta.exposure.type == "NIS_WFSS"
            assert (model.meta.instrument.filter, model.meta.instrument.pupil) == ("GR150C", "F150W")
            keys = [f"{s.source_id}:{s.meta.wcsinfo.spectral_order}" for s in model.slits]
            assert len(set(keys)) == len(keys)
            assert set(keys) == set(truth.exposures[path.stem])
            names = [s.name for s in model.slits]
            assert names == [str(s.source_id) for s in model.slits]  # extract_2d names a slit by its source
            # a source's orders are adjacent (extract_2d loops over objects, then orders)
            first = {n: names.index(n) for n in names}
            assert all(names[first[n] + k] == n for n in set(names) for k in range(names.count(n)))
            assert model.slits[0].meta.wcsinfo.s_region.startswith("POLYGON ICRS")
            for slit in model.slits:
                assert slit.meta.wcsinfo.dispersion_direction == 1
                assert slit.meta.bunit_data == "MJy/sr"
                assert (slit.xsize, slit.ysize) == slit.data.shape[::-1]


def test_slit_gwcs_gives_the_wavelength_plane_and_the_source_position(niriss, nircam):
    for result in (niriss, nircam):
        with _open(result.cal_paths[-1]) as model:
            for slit in model.slits[::3]:
                wcs = slit.meta.wcs
                assert wcs.available_frames == FRAMES
                ny, nx = slit.data.shape
                x = np.array([0, nx // 2, nx - 1], dtype=float)
                y = np.array([0, ny - 1, ny // 2], dtype=float)
                ra, dec, lam, order = wcs(x, y)  # point by point, as extract_1d evaluates it
                np.testing.assert_allclose(lam, slit.wavelength[y.astype(int), x.astype(int)], rtol=2e-7)
                assert np.all(order == slit.meta.wcsinfo.spectral_order)
                np.testing.assert_allclose(ra, slit.source_ra, atol=1e-9)
                np.testing.assert_allclose(dec, slit.source_dec, atol=1e-9)
                assert wcs.bounding_box.bounding_box(order="F") == ((-0.5, nx - 0.5), (-0.5, ny - 0.5))


def test_trace_solution_is_the_grism_model():
    rng = np.random.default_rng(3)
    for mode, grisms in (("niriss-wfss", "RC"), ("nircam-wfss", "RC")):
        for grism in grisms:
            layout = build_layout(mode, rng, 4, 2, grism)
            for exp in layout.exposures:
                sol: TraceSolution = exp.wcs.trace
                for order in layout.orders:
                    x0, y0 = rng.uniform(200, 1800, 2)
                    lam = np.linspace(*layout.filter_cfg["wavelength_range_um"], 5)
                    back = exp.wcs.det2det.inverse(np.full(5, x0), np.full(5, y0), lam, np.full(5, order))
                    np.testing.assert_allclose(sol.position(x0, y0, lam, order), back[:2], atol=1e-8)
                    fwd = exp.wcs.det2det(back[0], back[1], np.full(5, x0), np.full(5, y0), np.full(5, order))
                    np.testing.assert_allclose(sol.wavelength(back[0], back[1], x0, y0, order), fwd[2], rtol=1e-12)


def test_point_source_columns_sum_to_the_true_flux(niriss):
    """Sum a clean cutout's column and multiply by PIXAR_SR x 1e6: the flux density at its wavelength."""
    truth = load_truth(niriss.truth_path)
    ratios = []
    with _open(niriss.cal_paths[0]) as model:
        for slit in model.slits:
            info = truth.exposures[niriss.cal_paths[0].stem][f"{slit.source_id}:{slit.meta.wcsinfo.spectral_order}"]
            src = truth.sources[str(slit.source_id)]
            if src.source_type != "POINT" or info["contamination"] > 1e-3 or info["snr"] < 30:
                continue
            good = np.all(np.isfinite(slit.data), axis=0)
            flux = np.nansum(slit.data, axis=0) * slit.meta.photometry.pixelarea_steradians * 1e6
            lam = np.nanmean(slit.wavelength, axis=0)
            true = truth.flux_at(str(slit.source_id), lam)
            band = (lam > 1.36) & (lam < 1.64) & good
            ratios.append(np.median(flux[band] / true[band]))
    assert len(ratios) >= 3
    np.testing.assert_allclose(ratios, 1.0, atol=0.03)


def test_spec2_x1d_is_the_extraction_of_the_cal(niriss):
    with open(niriss.x1d_asn_path) as f:
        members = [m["expname"] for m in json.load(f)["products"][0]["members"]]
    with open(niriss.asn_path) as f:
        asn = json.load(f)
    assert asn["asn_rule"] == "Asn_Lv3WFSSNIS"
    assert asn["products"][0]["name"] == "jw02079-o004_t001_niriss_f150w-gr150c"
    assert [m.replace("_x1d", "_cal") for m in members] == [p.name for p in niriss.cal_paths]
    cal, x1d = niriss.cal_paths[0], niriss.cal_paths[0].parent / members[0]
    with _open(cal) as model, _open(x1d) as spec:
        assert isinstance(spec, dm.WFSSMultiSpecModel)
        orders = [t.spectral_order for t in spec.spec]
        assert sorted(orders) == [1, 2]
        for table in spec.spec:
            ids = list(table.spec_table["SOURCE_ID"])
            assert ids == sorted(ids)
            assert table.group_id.endswith(f"_{table.spectral_order}")
        for slit in model.slits[:6]:
            table = spec.spec[orders.index(slit.meta.wcsinfo.spectral_order)].spec_table
            row = table[list(table["SOURCE_ID"]).index(slit.source_id)]
            n = int(row["N_ALONGDISP"])
            assert n == slit.data.shape[1]
            data = np.asarray(slit.data, dtype=np.float64)
            flux = np.nansum(data, axis=0) * slit.meta.photometry.pixelarea_steradians * 1e6
            finite = np.isfinite(data).any(axis=0)
            np.testing.assert_allclose(row["FLUX"][:n][finite], flux[finite], rtol=1e-9,
                                       atol=1e-12 * np.abs(flux[finite]).max())
            assert row["EXTRACT2D_XSTART"] == slit.xstart and row["EXTRACT2D_XSTOP"] == slit.xstart + slit.xsize


def test_nircam_modules_alternate_and_module_b_disperses_backwards(nircam):
    detectors, slopes = [], {}
    truth = load_truth(nircam.truth_path)
    for path in nircam.cal_paths:
        with _open(path) as model:
            detectors.append(model.meta.instrument.detector)
            assert model.meta.instrument.pupil == "GRISMR"
            module = model.meta.instrument.module
            slopes[module] = np.sign(np.nanmedian(np.diff(model.slits[0].wavelength, axis=1)))
            ids = {s.source_id for s in model.slits}
            others = {e for e in truth.exposures if (e.endswith("nrcblong_cal") if module == "A" else
                                                     e.endswith("nrcalong_cal"))}
            elsewhere = {int(v["source_key"]) for e in others for v in truth.exposures[e].values()}
            assert not ids & elsewhere  # a module sees its own half of the field
    assert detectors == ["NRCALONG", "NRCBLONG", "NRCALONG", "NRCBLONG"]
    assert slopes == {"A": 1.0, "B": -1.0}


def test_fields_have_blends_and_sources_cut_by_the_edges(tmp_path):
    layout = build_layout("niriss-wfss", np.random.default_rng(5), 120, 2)
    kinds = [s.kind for s in layout.sources]
    assert kinds.count("blended") >= 4
    result = simulate("niriss-wfss", tmp_path, SimOptions(seed=5, n_sources=30, n_exposures=2, grism="R"))
    truth = load_truth(result.truth_path)
    blended = [k for k, s in truth.sources.items() if s.kind == "blended"]
    contaminated = {v["source_key"] for e in truth.exposures.values() for v in e.values() if v["contamination"] > 0.05}
    pairs = [blended[i:i + 2] for i in range(0, len(blended), 2)]  # partners are numbered together
    assert all(set(pair) & contaminated for pair in pairs)  # the fainter one sees its neighbour
    present = [{v["source_key"] for v in e.values()} for e in truth.exposures.values()]
    everywhere = set.intersection(*present)
    assert set(truth.sources) != everywhere  # some sources (or their orders) fall off an exposure
    with _open(result.cal_paths[0]) as model:
        assert model.meta.instrument.filter == "GR150R"
        assert model.slits[0].meta.wcsinfo.dispersion_direction == 2


def test_options_are_checked(tmp_path):
    with pytest.raises(ValueError, match="grism"):
        simulate("niriss-wfss", tmp_path, SimOptions(n_sources=2, grism="X"))
    with pytest.raises(ValueError, match="module"):
        simulate("niriss-wfss", tmp_path, SimOptions(n_sources=2, module="B"))
    with pytest.raises(ValueError, match="with_background"):
        simulate("nircam-wfss", tmp_path, SimOptions(n_sources=2, with_background=1))
    assert set(wfss_config()) >= {"niriss-wfss", "nircam-wfss"}
