"""NIRISS SOSS: box extraction per integration against the simulated truth, and its pieces."""

from __future__ import annotations

import asdf
import numpy as np
import pytest
from soss_runs import run_spec3c
from stdatamodels.jwst import datamodels as dm

from spec3c.config import resolve_config
from spec3c.dqflags import DO_NOT_USE
from spec3c.errors import Spec3cError
from spec3c.ingest import ingest
from spec3c.modes.soss.box import box_weights, extract_box, infill
from spec3c.modes.soss.photom import calibrate, read_soss_photom, response
from spec3c.process import process_store
from spec3c.simulate import SimOptions, simulate

N_INT = 4


@pytest.fixture(scope="module")
def soss256(tmp_path_factory):
    root = tmp_path_factory.mktemp("soss256")
    sim = simulate("niriss-soss", root / "input", SimOptions(seed=11, n_integrations=N_INT))
    return sim, run_spec3c(sim, root)


def _clean_columns(truth, order, n_rows=256, width=40.0):
    """Columns of ``order`` whose box is on the array, free of the other orders' light (< 1e-4) and of
    pixels dead in every integration."""
    t = truth["orders"][order]
    y = np.asarray(t["y"])
    x = np.asarray(t["x"])
    ok = (np.asarray(t["contamination"]) < 1e-4) & (y - width / 2 > 0) & (y + width / 2 < n_rows - 5)
    ok &= (x >= 4) & (x < 2044)
    for row, col in np.asarray(truth["dead_pixels"]):
        if col < len(y) and abs(row - y[col]) <= width / 2 + 1:
            ok[col] = False
    return ok


def test_products(soss256):
    sim, out = soss256
    names = sorted(p.name for p in out.glob("*.fits"))
    assert names == ["jw01091-o002_t001_niriss_clear-gr700xd-substrip256_c1d.fits",
                     "jw01091-o002_t001_niriss_clear-gr700xd-substrip256_x1d.fits"]
    with dm.open(out / names[1]) as x1d:
        assert isinstance(x1d, dm.TSOMultiSpecModel)
        x1d.validate()
        assert [s.spectral_order for s in x1d.spec] == [1, 2, 3]
        assert len(x1d.int_times) == N_INT
        table = x1d.spec[0].spec_table
        assert list(table["INT_NUM"]) == list(range(1, N_INT + 1))
        assert np.all(np.isfinite(table["MJD-AVG"]))
        assert x1d.meta.soss_extract1d.width == 40.0
    with dm.open(out / names[0]) as c1d:
        assert isinstance(c1d, dm.MultiCombinedSpecModel)
        c1d.validate()
        assert np.all(c1d.spec[0].spec_table["N_INPUT"] == N_INT)


def test_flux_against_truth(soss256):
    """Per integration, every uncontaminated column within 5 sigma of the true flux and, where its S/N is
    >= 500 (orders 1 and 2; order 3 is ~20 times fainter), within 1 %; the median error far below 1 %."""
    sim, out = soss256
    with asdf.open(sim.truth_path) as af, \
            dm.open(out / "jw01091-o002_t001_niriss_clear-gr700xd-substrip256_x1d.fits") as x1d:
        truth = {"orders": {o: {k: np.asarray(v) for k, v in d.items()} for o, d in af["orders"].items()},
                 "dead_pixels": np.asarray(af["dead_pixels"])}
        for spec in x1d.spec:
            order = spec.spectral_order
            ok = _clean_columns(truth, order)
            true = truth["orders"][order]["flux"][:, ok]
            flux = spec.spec_table["FLUX"][:, ok]
            err = spec.spec_table["FLUX_ERROR"][:, ok]
            rel = flux / true - 1
            assert ok.sum() > 500
            assert np.median(np.abs(flux - true) / err) < 0.8, order  # 0.67 for Gaussian noise
            if order < 3:
                assert np.median(np.abs(rel)) < 2e-3, order
            assert np.abs(flux - true).max() < 5 * err.max()
            assert (np.abs(flux - true) < 5 * err).all(), order
            bright = true / err >= 500
            if order < 3:
                assert bright.sum() > 200
            assert np.abs(rel[bright]).max(initial=0.0) < 0.01, order
            assert np.allclose(spec.spec_table["WAVELENGTH"][0], truth["orders"][order]["wavelength"], atol=1e-6)


def test_transit_depth(soss256):
    """The simulated 1 % transit is seen in the white-light curve of order 1."""
    _, out = soss256
    with dm.open(out / "jw01091-o002_t001_niriss_clear-gr700xd-substrip256_x1d.fits") as x1d:
        white = np.nansum(x1d.spec[0].spec_table["FLUX"], axis=1)
    depth = 1 - white[1:3].mean() / white[[0, 3]].mean()
    assert depth == pytest.approx(0.01, abs=5e-4)


def test_box_weights_cover_the_width():
    center = np.array([10.3, 20.0, 30.75])
    w = box_weights(center, 7.0, (50, 3), np.arange(3))
    assert np.allclose(w.sum(0), 7.0)
    assert np.allclose((w * np.arange(50)[:, None]).sum(0) / 7.0, center)
    assert w.max() == 1.0 and w.min() == 0.0


def test_extract_box_masks_and_empty_columns():
    data = np.ones((6, 3))
    err = np.full((6, 3), 2.0)
    w = np.zeros((6, 3))
    w[1:4, :2] = 1.0
    mask = np.zeros((6, 3), bool)
    mask[2, 0] = True
    s = extract_box(data, err, mask, w)
    assert s.flux[0] == 2.0 and s.flux[1] == 3.0 and np.isnan(s.flux[2])
    assert s.flux_error[1] == pytest.approx(np.sqrt(3 * 4.0))  # sqrt(sum w err^2), as the reference
    assert list(s.npixels) == [2.0, 3.0, 0.0]


def test_infill_single_integration_bad_pixels():
    rng = np.random.default_rng(0)
    data = 100 + rng.normal(0, 1, (5, 4, 4)).astype(np.float32)
    err = np.ones_like(data)
    dq = np.zeros(data.shape, np.uint32)
    data[2, 1, 1] = np.nan
    err[2, 1, 1] = np.nan
    dq[2, 1, 1] = DO_NOT_USE
    data[:, 3, 3] = np.nan
    err[:, 3, 3] = np.nan
    dq[:, 3, 3] = DO_NOT_USE
    cube = infill(data, err, dq)
    assert cube.data[2, 1, 1] == pytest.approx(np.median(data[[0, 1, 3, 4], 1, 1]), abs=2)
    assert cube.scimask[3, 3] and not cube.scimask[1, 1]
    assert cube.error(2)[1, 1] == pytest.approx(10.0)
    assert np.isinf(cube.mederr[3, 3])


def test_missing_reference_files_are_named(soss256, tmp_path):
    sim, _ = soss256
    store = tmp_path / "s.store"
    ingest(sim.asn_path, store)
    with pytest.raises(Spec3cError, match="override_pastasoss"):
        process_store(store, config=resolve_config(overrides={"extract_1d": {"soss_atoca": False}}), workers=1)


def test_photom_response_and_missing_rows(soss256):
    sim, _ = soss256
    rows = read_soss_photom(str(sim.reference_files["photom"]), "CLEAR", "GR700XD", [1, 2, 3], True)
    row = rows[1]
    inside = row.wavelength[[0, len(row.wavelength) // 2, -1]]
    assert np.allclose(response(row, inside), row.photmj * row.relresponse[[0, len(row.wavelength) // 2, -1]])
    assert list(response(row, np.array([row.wavelength[0] - 0.1, np.nan]))) == [0.0, 0.0]  # jwst 3.0.0: 0
    assert read_soss_photom(str(sim.reference_files["photom"]), "F277W", "GR700XD", [1], True) == {1: None}
    flux = {o: np.ones((2, 3)) for o in (1, 2)}
    done = calibrate({1: None, 2: rows[2]}, {1: np.ones(3), 2: np.ones(3)}, {o: {"FLUX": f} for o, f in flux.items()})
    assert done == [] and np.all(flux[2] == 1.0)  # the reference stops at the first order without a row


def test_uncalibrated_units(soss256):
    _, out = soss256
    with dm.open(out / "jw01091-o002_t001_niriss_clear-gr700xd-substrip256_x1d.fits") as x1d:
        assert x1d.spec[0].spec_table.columns["FLUX"].unit == "DN/s"
        assert x1d.meta.cal_step.photom == "SKIPPED"
