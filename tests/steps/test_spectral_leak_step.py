"""spectral_leak on a simulated MIRI MRS observation (channels 1 and 3, sub-bands SHORT and MEDIUM).

``spec3c run`` corrects the channel 3A spectrum; re-extracting the stored cubes gives the
uncorrected one: the exported ch3-short FLUX must be that minus
``interp(λ; 2 λ_1B, F_1B) × interp(λ; MRSPTCORR)`` computed here from the exported ch1-medium x1d
and the simulator's MRSPTCORR file, and nothing else may change.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from mrs_runs import spectral_leak_run
from stdatamodels.jwst import datamodels as dm

from spec3c.config import resolve_config
from spec3c.modes.registry import mode_of_store
from spec3c.naming import ProductNaming
from spec3c.products.ifu_x1d import write_cube_x1ds
from spec3c.results import STATUS, Spectrum1D, load_association, x1d_cube_key
from spec3c.simulate.miri.reffiles import reference_file_paths
from spec3c.steps import extract_1d, spectral_leak
from spec3c.steps.context import StepContext, science_inputs
from spec3c.store import open_store

CH1B, CH3A = "jw01050-o003_t001_miri_ch1-medium", "jw01050-o003_t001_miri_ch3-short"


@pytest.fixture(scope="module")
def corrected(tmp_path_factory):
    return spectral_leak_run(tmp_path_factory)


def _context(store, asn: Path, **overrides) -> StepContext:
    """The source's step context with the simulator's reference files (``overrides`` on top)."""
    params = reference_file_paths(asn).jwst_overrides()
    for step, values in overrides.items():
        params[step].update(values)
    return StepContext(store, "1", mode_of_store(store), science_inputs(store, "1"), resolve_config(overrides=params))


def _copy(out: Path, tmp_path: Path):
    shutil.copytree(out / "spec3c.store", tmp_path / "store")
    return open_store(tmp_path / "store", mode="a")


def test_corrected_flux_changes_by_the_leak(corrected, tmp_path):
    asn, out = corrected
    mrsptcorr = reference_file_paths(asn).mrsptcorr
    with _copy(out, tmp_path) as store:
        ctx = _context(store, asn)
        assert mode_of_store(store).plan[-1] == "spectral_leak"
        assert extract_1d.run(ctx).status == "COMPLETE"
        raw = Spectrum1D.load(store, "1", x1d_cube_key(CH3A))
    with fits.open(out / f"{CH1B}_x1d.fits") as h1b, fits.open(out / f"{CH3A}_x1d.fits") as h3a, \
            dm.MirMrsPtCorrModel(str(mrsptcorr)) as ref:
        t1b, t3a = h1b["EXTRACT1D"].data, h3a["EXTRACT1D"].data
        leak = (np.interp(t3a["WAVELENGTH"], 2 * t1b["WAVELENGTH"], t1b["FLUX"])
                * np.interp(t3a["WAVELENGTH"], ref.leakcor_table["wavelength"], ref.leakcor_table["frac_leak"]))
        assert np.nanmax(leak) > 1e-3 * np.nanmax(np.abs(raw.columns["FLUX"]))  # the correction is not nothing
        np.testing.assert_allclose(t3a["FLUX"], raw.columns["FLUX"] - leak, rtol=1e-14, atol=0)
        for name in ("WAVELENGTH", "FLUX_ERROR", "SURF_BRIGHT", "SB_ERROR", "BACKGROUND"):
            np.testing.assert_array_equal(t3a[name], raw.columns[name], err_msg=name)
        assert np.isnan(t3a["RF_FLUX"]).all()  # spec3c's RF_FLUX is NaN: NaN minus the leak
        assert h3a[0].header["S_SPLEAK"] == "COMPLETE"
        assert "S_SPLEAK" not in h1b[0].header  # the reference marks the corrected spectrum only


def test_skip_reasons(corrected, tmp_path):
    asn, out = corrected
    with _copy(out, tmp_path) as store:
        ctx = _context(store, asn)
        again = spectral_leak.run(ctx)  # the stored 3A spectrum is the corrected one: not corrected twice
        assert (again.status, again.message) == ("COMPLETE", f"{CH3A}: already corrected")
        assert extract_1d.run(ctx).status == "COMPLETE"
        missing = spectral_leak.run(_context(store, asn, spectral_leak={"override_mrsptcorr": None}))
        assert (missing.status, missing.warn) == ("SKIPPED", True)
        assert "override_mrsptcorr" in missing.message
        ch1b = Spectrum1D.load(store, "1", x1d_cube_key(CH1B))
        Spectrum1D(ch1b.columns, {**ch1b.meta, "source_type": "EXTENDED"}).save(store, "1", x1d_cube_key(CH1B))
        assert spectral_leak.run(ctx).message == spectral_leak.EXTENDED_REASON
        store.delete_result("1", x1d_cube_key(CH1B))
        skipped = spectral_leak.run(ctx)
        assert (skipped.status, skipped.message) == ("SKIPPED", spectral_leak.MISSING_REASON)


def test_skipped_step_marks_every_x1d(corrected, tmp_path):
    _, out = corrected
    with _copy(out, tmp_path) as store:
        status = store.get_result("1", STATUS)[1]
        status["steps"]["spectral_leak"] = {"status": "SKIPPED", "message": spectral_leak.MISSING_REASON}
        store.put_result("1", STATUS, {}, status)
        asn = load_association(store)
        naming = ProductNaming(asn["product_name"], asn["asn_id"], None, asn["table_name"])
        paths = write_cube_x1ds(store, "1", naming, tmp_path / "products")
    assert len(paths) == 8
    for path in paths:
        assert fits.getheader(path)["S_SPLEAK"] == "SKIPPED", path.name


def test_no_crf_when_outlier_detection_is_skipped_by_parameter(corrected):
    """The reference saves nothing of a step skipped by ``skip`` (stpipe): no ``_crf`` files."""
    _, out = corrected
    assert sorted(p.name for p in out.glob("*_crf.fits")) == []
    assert len(list(out.glob("*_s3d.fits"))) == 8
