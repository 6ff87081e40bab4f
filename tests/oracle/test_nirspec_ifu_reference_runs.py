"""jwst 3.0.0 calwebb_spec3 on simulated NIRSpec IFU data (nirspec-ifu), against the simulator's truth.

The simulator writes the three reference files spec3 needs for this mode
(CUBEPAR, EXTRACT1D, APCORR); every other reference type is "N/A" (ORACLE.md).
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from shared_runs import NIRSPEC_IFU_OPTIONS
from stdatamodels.jwst import datamodels as dm

from spec3c import dqflags
from spec3c.simulate import load_truth
from spec3c.simulate.nirspec.ifu import load_ifu_truth
from spec3c.simulate.nirspec.ifu_layout import build_ifu

pytestmark = [pytest.mark.oracle, pytest.mark.slow]

SEED, NCOL = NIRSPEC_IFU_OPTIONS.seed, NIRSPEC_IFU_OPTIONS.n_columns
PRODUCT = "jw01249-o005_t001_nirspec_g395h-f290lp"


@pytest.fixture(scope="module")
def ifu_run(nirspec_ifu_reference):
    res, run, _ = nirspec_ifu_reference
    return res, run


def test_products(ifu_run):
    res, run = ifu_run
    assert run.returncode == 0, run.log_path.read_text()[-3000:]
    assert [p.name for p in run.products["s3d"]] == [f"{PRODUCT}_s3d.fits"]
    assert [p.name for p in run.products["x1d"]] == [f"{PRODUCT}_x1d.fits"]
    assert sorted(p.name for p in run.products["crf"]) == sorted(
        p.name.replace("_cal.fits", "_o005_crf.fits") for p in res.cal_paths)
    assert fits.getval(run.products["s3d"][0], "DATAMODL") == "IFUCubeModel"
    assert fits.getval(run.products["x1d"][0], "DATAMODL") == "MultiSpecModel"
    assert {"outlier_detection", "cube_build", "extract_1d"} <= set(run.step_seconds)
    print(f"jwst: {run.wall_seconds:.1f} s wall, {run.peak_rss_mb:.0f} MiB peak, steps {run.step_seconds}")


def test_x1d_matches_truth(ifu_run):
    """Aperture + annulus extraction with APCORR recovers the point source's spectrum and line fluxes."""
    res, run = ifu_run
    truth = load_truth(res.truth_path)
    with dm.open(run.products["x1d"][0]) as x1d:
        tab = x1d.spec[0].spec_table
        lam, flux, dq = np.array(tab["WAVELENGTH"]), np.array(tab["FLUX"]), np.array(tab["DQ"])
    ok = np.isfinite(flux) & (dq == 0) & np.isfinite(truth.flux_at("1", lam))
    assert ok.sum() > 1.5 * NCOL
    ratio = flux[ok] / truth.flux_at("1", lam[ok])
    assert abs(np.median(ratio) - 1.0) < 0.01, np.median(ratio)
    # emission lines: flux above a linear continuum fitted on both sides, same recipe on both spectra
    layout = build_ifu(np.random.default_rng(np.random.SeedSequence(SEED).spawn(3)[0]), 4, 1, NCOL)
    n_lines = 0
    for centre, sigma, amp in layout.target.spectrum.lines:
        if amp < 0.5:
            continue
        core = ok & (np.abs(lam - centre) < 4 * sigma)
        side = ok & (np.abs(lam - centre) > 5 * sigma) & (np.abs(lam - centre) < 10 * sigma)
        if core.sum() < 5 or side.sum() < 4:
            continue

        def line_flux(values: np.ndarray, core: np.ndarray = core, side: np.ndarray = side) -> float:
            cont = np.polyval(np.polyfit(lam[side], values[side], 1), lam[core])
            return float(np.trapezoid(values[core] - cont, lam[core]))

        measured, true = line_flux(flux), line_flux(truth.flux_at("1", lam))
        assert abs(measured / true - 1.0) < 0.02, (centre, measured, true)
        n_lines += 1
    assert n_lines >= 1


def test_cube_position_matches_truth(ifu_run):
    res, run = ifu_run
    truth = load_truth(res.truth_path)
    src = truth.sources["1"]
    with dm.open(run.products["s3d"][0]) as cube:
        w = cube.meta.wcs
        nz, ny, nx = cube.data.shape
        yy, xx = np.mgrid[0:ny, 0:nx]
        offsets = []
        for k in range(nz // 10, nz, nz // 5):
            lam = float(w(0.0, 0.0, float(k))[2])
            xt, yt, _ = w.invert(src.ra, src.dec, lam)
            plane = np.nan_to_num(cube.data[k])
            near = np.hypot(xx - xt, yy - yt) < 3
            cx = (plane * xx)[near].sum() / plane[near].sum()
            cy = (plane * yy)[near].sum() / plane[near].sum()
            offsets.append(np.hypot(cx - xt, cy - yt))
    assert max(offsets) < 0.1, offsets


def test_outlier_detection_finds_the_warm_pixels(ifu_run):
    """jwst's ifu mode flags pixels deviant in every exposure (warm pixels), not one-exposure cosmic rays."""
    res, run = ifu_run
    truth = load_truth(res.truth_path)
    ifu = load_ifu_truth(res.truth_path)
    found = total = cr_found = cr_total = 0
    for cal in res.cal_paths:
        crf_path = run.products["crf"][0].parent / cal.name.replace("_cal.fits", "_o005_crf.fits")
        with dm.open(crf_path) as crf:
            flagged = (crf.dq & dqflags.OUTLIER) != 0
        wp = ifu.warm_pixels[cal.stem.split("_")[3].upper()]
        found += flagged[wp[:, 0], wp[:, 1]].sum()
        total += len(wp)
        crs = truth.exposures[cal.stem]["NRS_IFU"]["cosmic_rays"]
        cr_found += flagged[crs[:, 0], crs[:, 1]].sum()
        cr_total += len(crs)
    assert found / total > 0.9, (found, total)
    print(f"jwst ifu outlier_detection: warm pixels {found}/{total}, cosmic-ray pixels {cr_found}/{cr_total}")
