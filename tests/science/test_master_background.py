"""master_background end to end on simulated data with dedicated background exposures.

NIRSpec FS (3 slits, 3 exposures with the sky left in) plus 2 background
exposures whose spec2 x1d are the ASN's background members.  The truth knows
the sky level and the source spectra.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from stdatamodels.jwst import datamodels as dm

from spec3c import dqflags
from spec3c.config import resolve_config
from spec3c.ingest import ingest
from spec3c.process import process_store
from spec3c.products import ProductNaming, export_store
from spec3c.results import Resampled2D, Spectrum1D, load_association
from spec3c.simulate import SimOptions, load_truth, simulate
from spec3c.simulate.x1d import write_spec2_x1d
from spec3c.store import open_store

SEED = 21


def _process(root, asn, overrides=None, skip=()):
    ap = root / "extract1d.json"
    ap.write_text(json.dumps({"apertures": [  # surface brightness: 1 px on the extended source's peak
        {"id": "S400A1", "extract_width": 1, "use_source_posn": True},
        {"id": "ANY", "extract_width": 9, "use_source_posn": True}]}))
    store = root / "store"
    if not store.exists():
        ingest(asn, store)
    overrides = {"extract_1d": {"override_extract1d": str(ap)}, **(overrides or {})}
    report = process_store(store, config=resolve_config(overrides=overrides, skip=list(skip)), workers=1, force=True)
    assert not report.failed, [r.error for r in report.failed]
    return open_store(store)


@pytest.fixture(scope="module")
def fs_bkg(tmp_path_factory):
    root = tmp_path_factory.mktemp("fs_bkg")
    sim = simulate(
        "nirspec-fs",
        root / "in",
        SimOptions(seed=SEED, n_exposures=3, n_columns=400, with_background=2),
    )
    store = _process(root, sim.asn_path, {"master_background": {"save_background": True}})
    return root, sim, store, load_truth(sim.truth_path)


def _sky_in_s2d(store, truth, source):
    """(median residual, sky level) over s2d rows away from the source trace, in s2d units."""
    s2d = Resampled2D.load(store, source)
    row = Spectrum1D.load(store, source).meta["source_location"]
    far = np.abs(np.arange(s2d.sci.shape[0]) - row) > 6
    level = np.mean([truth.sky[e] for e in truth.sky]) * s2d.meta["pixelarea_steradians"]
    cutouts = store.read_cutouts(source)
    ratio = np.nanmedian(np.concatenate([(c.planes["pathloss_uniform"] / c.planes["pathloss_point"]).ravel()
                                         for c in cutouts]))
    return float(np.nanmedian(s2d.sci[far])), float(level * ratio)


def test_background_members_ingested_and_step_complete(fs_bkg):
    _, sim, store, _ = fs_bkg
    roles = [r.role for r in store.list_exposures()]
    assert roles.count("background") == 2 and roles.count("science") == 3
    for source in store.sources():
        steps = store.get_result(source, "status")[1]["steps"]
        assert steps["master_background"]["status"] == "COMPLETE", steps["master_background"]


def test_sky_removed_within_one_percent(fs_bkg):
    _, _, store, truth = fs_bkg
    for source in store.sources():
        if truth.sources[source].source_type != "POINT":
            continue
        residual, level = _sky_in_s2d(store, truth, source)
        assert abs(residual) < 0.01 * level, f"source {source}: residual sky {residual:.3g} vs level {level:.3g}"


def test_flux_within_two_percent_of_truth(fs_bkg):
    _, _, store, truth = fs_bkg
    for source in store.sources():
        ts = truth.sources[source]
        x1d = Spectrum1D.load(store, source).columns
        column = "FLUX" if ts.source_type == "POINT" else "SURF_BRIGHT"
        expected = truth.flux_at(source, x1d["WAVELENGTH"])
        ok = np.isfinite(x1d[column]) & np.isfinite(expected) & (expected > 0)
        ratio = np.median(x1d[column][ok] / expected[ok])
        assert abs(ratio - 1) < 0.02, f"source {source} ({ts.source_type}): median {column}/truth = {ratio:.4f}"


def test_without_master_background_the_sky_stays(fs_bkg, tmp_path):
    """Control: the same data with the step skipped keep the full sky."""
    _, sim, _, truth = fs_bkg
    store = _process(tmp_path, sim.asn_path, skip=["master_background"])
    for source in store.sources():
        if truth.sources[source].source_type == "POINT":
            residual, level = _sky_in_s2d(store, truth, source)
            assert residual == pytest.approx(level, rel=0.05)


def test_products_and_masterbg_files(fs_bkg):
    root, sim, _, _ = fs_bkg
    with open_store(root / "store") as store:
        asn = load_association(store)
    naming = ProductNaming(asn["product_name"], asn["asn_id"], asn["exp_type"], asn["table_name"])
    paths = export_store(root / "store", root / "out", naming, workers=1)
    names = [p.name for p in paths]
    assert sum(n.endswith("_masterbg2d.fits") for n in names) == 3
    assert sum(n.endswith("_masterbg1d.fits") for n in names) == 1
    for path in paths:
        with dm.open(path) as model:
            model.validate()
    cal = next(p for p in paths if p.name.endswith("s200a1_cal.fits"))
    with dm.open(cal) as model:
        assert model.meta.cal_step.master_background == "COMPLETE"
    bg2d = next(p for p in paths if p.name.endswith("_masterbg2d.fits"))
    with dm.open(bg2d) as model:
        assert [s.name for s in model.slits] == ["S200A1", "S200A2", "S400A1"]
        assert np.nanmedian(model.slits[2].data) > 0


def test_skipped_when_stage2_subtracted(tmp_path):
    """Nod-subtracted science (bkg_subtract COMPLETE) is left alone unless force_subtract."""
    sim = simulate(
        "nirspec-fs",
        tmp_path / "in",
        SimOptions(seed=SEED, n_exposures=2, n_columns=200, n_sources=1, with_background=1),
    )
    for path in sim.cal_paths:
        with dm.open(path) as model:
            model.meta.cal_step.bkg_subtract = "COMPLETE"
            model.save(path)
    store = _process(tmp_path, sim.asn_path)
    steps = store.get_result(store.sources()[0], "status")[1]["steps"]
    assert steps["master_background"]["status"] == "SKIPPED"
    # the reference counts the background members too: 2 of the 3 inputs were subtracted
    assert "2 of 3" in steps["master_background"]["message"]
    store = _process(tmp_path, sim.asn_path, {"master_background": {"force_subtract": True}})
    steps = store.get_result(store.sources()[0], "status")[1]["steps"]
    assert steps["master_background"]["status"] == "COMPLETE"


def test_user_background_is_subtracted(tmp_path):
    sim = simulate(
        "nirspec-fs",
        tmp_path / "in",
        SimOptions(seed=SEED, n_exposures=2, n_columns=200, n_sources=3, with_background=1),
    )
    user = tmp_path / "user_bkg_x1d.fits"
    wl = np.linspace(2.0, 6.0, 50)
    write_spec2_x1d(user, {"exposure": {"type": "NRS_FIXEDSLIT"}},
                    [{"columns": {"WAVELENGTH": wl, "SURF_BRIGHT": np.full(50, 7.0), "FLUX": np.ones(50)}}])
    ingest(sim.asn_path, tmp_path / "store")
    before = {(c.exposure, c.slit): c.planes["sci"] for c in open_store(tmp_path / "store").read_cutouts("3")}
    store = _process(tmp_path, sim.asn_path, {"master_background": {"user_background": str(user)}})
    from spec3c.steps.replay import replay_input_steps

    status = store.get_result("3", "status")[1]
    for c in replay_input_steps(store, "3", store.read_cutouts("3"), status):  # the extended slit: MJy/sr
        good = (c.planes["dq"] & dqflags.DO_NOT_USE) == 0
        diff = before[(c.exposure, c.slit)][good] - c.planes["sci"][good]
        np.testing.assert_allclose(diff, 7.0, rtol=1e-5)


def test_mos_background_is_zero(tmp_path):
    """NIRSpec MOS in spec3: the reference sets the 2-D background to 0."""
    sim = simulate(
        "nirspec-mos",
        tmp_path / "in",
        SimOptions(seed=SEED, n_exposures=2, n_columns=200, n_sources=3, with_background=1),
    )
    ingest(sim.asn_path, tmp_path / "store")
    source = open_store(tmp_path / "store").sources()[0]
    before = [c.planes["sci"].copy() for c in open_store(tmp_path / "store").read_cutouts(source)]
    store = _process(tmp_path, sim.asn_path)
    status = store.get_result(source, "status")[1]
    assert status["steps"]["master_background"]["status"] == "COMPLETE"
    from spec3c.steps.replay import replay_input_steps

    after = replay_input_steps(store, source, store.read_cutouts(source), status)
    for b, c in zip(before, after, strict=True):
        np.testing.assert_array_equal(b, c.planes["sci"])
