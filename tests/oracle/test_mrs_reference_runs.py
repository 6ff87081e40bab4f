"""Run the reference pipeline (jwst calwebb_spec3) on simulated MIRI MRS data: 4 dithers x 2 channels.

jwst builds its own cubes from the simulator's cal files with the simulator's
CUBEPAR/EXTRACT1D/APCORR/MRSPTCORR files; its x1d continuum and emission-line
fluxes must match the truth, which shows the simulated data are realistic
enough for the reference's IFU chain (cube_build drizzle, aperture + annulus
extraction, aperture correction).
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from line_flux import line_flux
from stdatamodels.jwst import datamodels as dm

from spec3c.simulate import load_truth
from spec3c.simulate.miri.mrs import load_mrs_truth
from spec3c.simulate.miri.mrs.instrument import channel_spec

pytestmark = [pytest.mark.oracle, pytest.mark.slow]

PRODUCT = "jw01050-o003_t001_miri"


@pytest.fixture(scope="module")
def mrs_run(mrs_reference):
    res, run, _ = mrs_reference
    return res, run


def test_reference_products(mrs_run):
    res, run = mrs_run
    assert run.returncode == 0, run.log_path.read_text()[-3000:]
    assert [p.name for p in run.products["s3d"]] == [f"{PRODUCT}_ch1-short_s3d.fits", f"{PRODUCT}_ch2-short_s3d.fits"]
    assert [p.name for p in run.products["x1d"]] == [f"{PRODUCT}_ch1-short_x1d.fits", f"{PRODUCT}_ch2-short_x1d.fits"]
    assert len(run.products["crf"]) == 4
    for p, ch in zip(run.products["s3d"], (1, 2), strict=True):
        with fits.open(p) as h:
            assert h[0].header["DATAMODL"] == "IFUCubeModel"
            nz, ny, nx = h["SCI"].data.shape
            lo, hi = channel_spec(ch).bands["SHORT"].wavelength
            assert nz == pytest.approx((hi - lo) / channel_spec(ch).spectral_step, abs=2)
            assert h["SCI"].header["CDELT1"] * 3600 == pytest.approx(channel_spec(ch).spaxel)
            assert (h["WMAP"].data > 0).sum() > 0.35 * nz * ny * nx  # a rotated field in a sky-aligned cube
    log = run.log_path.read_text()
    assert " - ERROR - " not in log
    assert "Applying Aperture correction" in log
    assert {"outlier_detection", "cube_build", "extract_1d"} <= set(run.step_seconds)


def test_reference_fluxes_match_truth(mrs_run):
    res, run = mrs_run
    truth, mt = load_truth(res.truth_path), load_mrs_truth(res.truth_path)
    src = mt.sources["1"]
    n_lines = 0
    for p in run.products["x1d"]:
        with fits.open(p) as h:
            ch, band = int(h[0].header["CHANNEL"]), h[0].header["BAND"]
            tab = h["EXTRACT1D"].data
            assert h["EXTRACT1D"].header["SRCTYPE"] == "POINT"
        lam, flux = np.asarray(tab["WAVELENGTH"], float), np.asarray(tab["FLUX"], float)
        b = channel_spec(ch).bands[band]
        ok = np.isfinite(flux)
        ratio = np.median(flux[ok] / truth.flux_at("1", lam[ok]))
        assert ratio == pytest.approx(1.0, abs=0.01), (p.name, ratio)
        for (c, w, _), true in zip(src.spectrum.lines, src.line_fluxes(), strict=True):
            if not b.wavelength[0] < c < b.wavelength[1]:
                continue
            sigma = float(np.hypot(w, b.lsf_sigma(c)))
            measured = line_flux(lam, flux, c, sigma)
            assert measured == pytest.approx(true, rel=0.02), (p.name, c, measured / true)
            n_lines += 1
    assert n_lines == 4


def test_reference_cube_position_matches_truth(mrs_run):
    """The point source sits where the truth puts it in jwst's cubes (< 0.05 spaxel)."""
    res, run = mrs_run
    src = load_truth(res.truth_path).sources["1"]
    for p in run.products["s3d"]:
        with dm.open(p) as cube:
            sci = np.asarray(cube.data, dtype=np.float64)
            good = np.isfinite(sci)
            img = np.where(good, sci, 0.0).sum(axis=0) / np.maximum(good.sum(axis=0), 1)
            ny, nx = img.shape
            lam = cube.meta.wcs(nx / 2, ny / 2, sci.shape[0] / 2)[2]
            x0, y0, _ = cube.meta.wcs.invert(src.ra, src.dec, lam)
        yy, xx = np.mgrid[:ny, :nx]
        near = np.hypot(xx - x0, yy - y0) < 4
        peak = np.where(near, img - np.median(img[good.any(axis=0)]), 0.0)
        cx, cy = (peak * xx).sum() / peak.sum(), (peak * yy).sum() / peak.sum()
        assert np.hypot(cx - x0, cy - y0) < 0.05, (p.name, cx - x0, cy - y0)
