"""spec3c vs the reference (jwst 3.0.0 calwebb_spec3) on simulated NIRISS SOSS, box extraction.

Both run with ``soss_atoca=false`` on the same ``_calints`` time series
(SUBSTRIP256, orders 1-3, the pupil wheel off its commanded position, bad
pixels in single integrations and in all) with the simulator's PASTASOSS,
SPECPROFILE, SPECKERNEL and PHOTOM files.  The products must have the same
names, the x1d and c1d spectra the same values (median relative difference
<= 1e-3; they agree to rounding) and the x1d files the same columns, units
and INT_TIMES; the calibrated spectra must give back the simulated star.
"""

from __future__ import annotations

import asdf
import numpy as np
import pytest
from soss_runs import run_spec3c, soss_overrides
from stdatamodels.jwst import datamodels as dm

from spec3c.simulate import SimOptions, simulate
from spec3c.simulate.niriss.soss import source_spectrum
from spec3c.simulate.niriss.soss_reffiles import PHOTOM_SCALE_MJY

pytestmark = [pytest.mark.oracle, pytest.mark.slow]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, oracle, jwst_py):
    root = tmp_path_factory.mktemp("soss-oracle")
    sim = simulate("niriss-soss", root / "input", SimOptions(seed=21, n_integrations=3))
    steps = soss_overrides(sim, photom=True)
    ref = oracle.run_reference(sim.asn_path, root / "reference", steps=steps, timeout=1800, python=jwst_py)
    assert ref.returncode == 0, ref.log_path.read_text()[-3000:]
    return root / "reference", run_spec3c(sim, root, photom=True), sim


def _names(folder):
    return sorted(p.name for p in folder.glob("*.fits"))


def _median_relative(a, b):
    ok = np.isfinite(b) & (b != 0)
    return float(np.median(np.abs(a[ok] / b[ok] - 1)))


def test_same_products(runs):
    ref, ours, _ = runs
    assert _names(ref) == _names(ours)
    assert len(_names(ours)) == 2


def test_x1d(runs):
    ref, ours, _ = runs
    name = next(n for n in _names(ours) if n.endswith("_x1d.fits"))
    with dm.open(ref / name) as r, dm.open(ours / name) as o:
        assert type(o) is type(r)
        assert [s.spectral_order for s in o.spec] == [s.spectral_order for s in r.spec]
        assert np.array_equal(np.asarray(o.int_times), np.asarray(r.int_times))
        assert o.meta.soss_extract1d.width == r.meta.soss_extract1d.width
        for so, sr in zip(o.spec, r.spec, strict=True):
            to, tr = so.spec_table, sr.spec_table
            assert to.dtype.names == tr.dtype.names
            assert [to.columns[c].unit for c in to.dtype.names] == [tr.columns[c].unit for c in tr.dtype.names]
            assert np.array_equal(np.isnan(to["FLUX"]), np.isnan(tr["FLUX"]))
            for column in ("WAVELENGTH", "FLUX", "FLUX_ERROR", "NPIXELS"):
                assert _median_relative(to[column], tr[column]) <= 1e-3, column
                assert np.allclose(to[column], tr[column], rtol=1e-9, equal_nan=True), column
            for column in ("INT_NUM", "N_ALONGDISP", "SEGMENT", "MJD-AVG", "TDB-MID", "DQ"):
                assert np.array_equal(to[column], tr[column]), column
            for column in ("BACKGROUND", "FLUX_VAR_POISSON", "BKGD_ERROR"):
                assert np.array_equal(to[column], tr[column], equal_nan=True), column


def test_c1d(runs):
    ref, ours, _ = runs
    name = next(n for n in _names(ours) if n.endswith("_c1d.fits"))
    with dm.open(ref / name) as r, dm.open(ours / name) as o:
        assert [s.spectral_order for s in o.spec] == [s.spectral_order for s in r.spec]
        for so, sr in zip(o.spec, r.spec, strict=True):
            to, tr = so.spec_table, sr.spec_table
            assert len(to) == len(tr)
            for column in ("WAVELENGTH", "FLUX", "ERROR", "WEIGHT", "N_INPUT"):
                assert _median_relative(to[column], tr[column]) <= 1e-3, column


def test_calibrated_flux_against_truth(runs):
    """photom turns every order back into the simulated star (MJy), the transit included."""
    _, ours, sim = runs
    name = next(n for n in _names(ours) if n.endswith("_x1d.fits"))
    with asdf.open(sim.truth_path) as af, dm.open(ours / name) as x1d:
        light_curve = np.asarray(af["light_curve"])
        for spec in x1d.spec:
            clean = np.asarray(af["orders"][spec.spectral_order]["contamination"]) < 1e-4
            flux = spec.spec_table["FLUX"][:, clean]
            true = source_spectrum(spec.spec_table["WAVELENGTH"][0][clean]) * PHOTOM_SCALE_MJY * light_curve[:, None]
            assert spec.spec_table.columns["FLUX"].unit == "MJy"
            assert np.nanmedian(np.abs(flux / true - 1)) < 3e-3, spec.spectral_order
