"""MIRI LRS end to end on simulated data with known truth (fixed slit and slitless).

FS: 2-point nod (nod-subtracted) and, separately, sky left in with 2
background exposures (master_background).  Slitless: 3 exposures, extracted
without resampling and combined (c1d).  Fluxes are compared with the truth
spectrum; every exported product must open with stdatamodels, validate and
(1-D products) read with specutils.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from stdatamodels.jwst import datamodels as dm

from spec3c.config import resolve_config
from spec3c.ingest import ingest
from spec3c.process import process_store
from spec3c.products import ProductNaming, export_store
from spec3c.results import CombinedResult, Resampled2D, Spectrum1D, load_association
from spec3c.simulate import SimOptions, load_truth, simulate
from spec3c.simulate.miri import slitless_aperture
from spec3c.store import open_store

FS_AP = {"id": "MIR_LRS-FIXEDSLIT", "disp_axis": 2, "extract_width": 9, "use_source_posn": True}


def _run(root, mode, **sim_kw):
    sim = simulate(mode, root / "in", SimOptions(seed=41, **sim_kw))
    truth = load_truth(sim.truth_path)
    ap = slitless_aperture(truth) if mode == "miri-lrs-slitless" else FS_AP
    ap_path = root / "extract1d.json"
    ap_path.write_text(json.dumps({"apertures": [ap]}))
    ingest(sim.asn_path, root / "store")
    config = resolve_config(overrides={"extract_1d": {"override_extract1d": str(ap_path)}})
    report = process_store(root / "store", config=config, workers=1)
    assert not report.failed, [r.error for r in report.failed]
    store = open_store(root / "store")
    asn = load_association(store)
    naming = ProductNaming(asn["product_name"], asn["asn_id"], asn["exp_type"], asn["table_name"])
    paths = export_store(root / "store", root / "out", naming, workers=1)
    return store, truth, paths


@pytest.fixture(scope="module")
def lrs_fs(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("lrs_fs"), "miri-lrs-fs", n_exposures=2)


@pytest.fixture(scope="module")
def lrs_fs_bkg(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("lrs_fs_bkg"), "miri-lrs-fs", n_exposures=2, with_background=2)


@pytest.fixture(scope="module")
def lrs_slitless(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("lrs_sl"), "miri-lrs-slitless", n_exposures=3)


def _median_ratio(wavelength, flux, error, truth):
    expected = truth.flux_at("1", wavelength)
    ok = np.isfinite(flux) & np.isfinite(expected) & (expected > 0) & (flux > 20 * error)
    assert ok.sum() > 100
    return float(np.median(flux[ok] / expected[ok]))


@pytest.mark.parametrize("dataset", ["lrs_fs", "lrs_fs_bkg"])
def test_fs_flux_within_two_percent(dataset, request):
    store, truth, _ = request.getfixturevalue(dataset)
    c = Spectrum1D.load(store, "1").columns
    ratio = _median_ratio(c["WAVELENGTH"], c["FLUX"], c["FLUX_ERROR"], truth)
    assert abs(ratio - 1) < 0.02, f"median FLUX/truth = {ratio:.4f}"


def test_fs_background_sky_removed(lrs_fs_bkg):
    """Sky in the s2d away from the trace: below 1 % of the sky level after master_background."""
    store, truth, _ = lrs_fs_bkg
    steps = store.get_result("1", "status")[1]["steps"]
    assert steps["master_background"]["status"] == "COMPLETE"
    s2d = Resampled2D.load(store, "1")
    column = s2d.meta["source_location"]
    far = np.abs(np.arange(s2d.sci.shape[1]) - column) > 8
    residual = np.nanmedian(s2d.sci[:, far])
    level = np.mean(list(truth.sky.values()))
    assert abs(residual) < 0.01 * level, f"residual sky {residual:.4g} MJy/sr vs level {level:.4g}"


def test_s2d_dispersion_along_y(lrs_fs):
    store, _, _ = lrs_fs
    s2d = Resampled2D.load(store, "1")
    lam = np.nanmedian(s2d.wavelength, axis=1)
    assert np.all(np.diff(lam[np.isfinite(lam)]) < 0)  # descending down the rows, as the detector
    assert s2d.meta["dispersion_direction"] == 2


def test_slitless_c1d_within_two_percent(lrs_slitless):
    store, truth, _ = lrs_slitless
    steps = store.get_result("1", "status")[1]["steps"]
    assert "resample_spec" not in steps and steps["combine_1d"]["status"] == "COMPLETE"
    combined = CombinedResult.load(store, "1").orders[1]
    ratio = _median_ratio(combined.wavelength, combined.flux, combined.error, truth)
    assert abs(ratio - 1) < 0.02, f"median c1d FLUX/truth = {ratio:.4f}"


@pytest.mark.parametrize("dataset", ["lrs_fs", "lrs_fs_bkg", "lrs_slitless"])
def test_products_validate_and_read(dataset, request):
    from specutils import Spectrum

    _, _, paths = request.getfixturevalue(dataset)
    suffixes = {p.name.rsplit("_", 1)[1] for p in paths}
    expected = {"crf.fits", "x1d.fits", "c1d.fits"} if dataset == "lrs_slitless" else {"crf.fits", "s2d.fits",
                                                                                         "x1d.fits"}
    assert suffixes == expected
    for path in paths:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with dm.open(path) as model:
                model.validate()
            if path.name.endswith(("_x1d.fits", "_c1d.fits")):
                spectrum = Spectrum.read(path)
                assert spectrum.spectral_axis.unit == "um" and np.isfinite(spectrum.flux.value).sum() > 100
