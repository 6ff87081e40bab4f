"""spec3c vs the reference (jwst 3.0.0) for master_background, moving targets and MIRI LRS.

Each case simulates a small dataset, runs jwst's calwebb_spec3 offline and
spec3c (ingest, process, export) on it with the same aperture file, and
compares every product the reference wrote: the same file names, identical
outlier flags, and SCI / FLUX values equal to float32 precision.
"""

from __future__ import annotations

import numpy as np
import pytest
from shared_runs import SLIT_CASES, slit_case
from stdatamodels.jwst import datamodels

from spec3c import dqflags

pytestmark = pytest.mark.oracle

@pytest.fixture(scope="module", params=list(SLIT_CASES))
def both(request, tmp_path_factory, oracle, jwst_py):
    return slit_case(request.param, tmp_path_factory, oracle, jwst_py)


def _products(folder):
    return {p.name for p in folder.glob("*.fits")}


def test_same_products(both):
    ref_dir, ours_dir = both
    assert _products(ref_dir) == _products(ours_dir)


def test_outlier_flags_identical(both):
    ref_dir, ours_dir = both
    for ref in sorted(ref_dir.glob("*_crf.fits")):
        with datamodels.open(ref) as r, datamodels.open(ours_dir / ref.name) as m:
            pairs = zip(r.exposures, m.exposures, strict=True) if hasattr(r, "exposures") else [(r, m)]
            for a, b in pairs:
                np.testing.assert_array_equal((b.dq & dqflags.OUTLIER) != 0, (a.dq & dqflags.OUTLIER) != 0)


def _close(mine, ref, what):
    ok = np.isfinite(ref) & (ref != 0)
    np.testing.assert_array_equal(np.isfinite(mine[ok]), True, err_msg=what)
    scale = np.nanmax(np.abs(ref))
    np.testing.assert_allclose(mine[ok], ref[ok], rtol=1e-4, atol=1e-5 * scale, err_msg=what)


def test_images_agree(both):
    """cal, crf, s2d and masterbg2d SCI (background subtracted where it applies)."""
    ref_dir, ours_dir = both
    for ref in sorted(ref_dir.glob("*.fits")):
        if not ref.name.endswith(("_cal.fits", "_crf.fits", "_s2d.fits", "_masterbg2d.fits")):
            continue
        with datamodels.open(ref) as r, datamodels.open(ours_dir / ref.name) as m:
            for attr in ("exposures", "slits"):
                if hasattr(r, attr):
                    for a, b in zip(getattr(r, attr), getattr(m, attr), strict=True):
                        _close(b.data, a.data, ref.name)
                    break
            else:
                assert r.data.shape == m.data.shape, ref.name
                _close(m.data, r.data, ref.name)


def test_spectra_agree(both):
    ref_dir, ours_dir = both
    for ref in sorted(ref_dir.glob("*.fits")):
        if not ref.name.endswith(("_x1d.fits", "_c1d.fits", "_masterbg1d.fits")):
            continue
        with datamodels.open(ref) as r, datamodels.open(ours_dir / ref.name) as m:
            assert len(r.spec) == len(m.spec)
            for a, b in zip(r.spec, m.spec, strict=True):
                ta, tb = a.spec_table, b.spec_table
                np.testing.assert_allclose(tb["WAVELENGTH"], ta["WAVELENGTH"], rtol=1e-6)
                for col in ("FLUX", "SURF_BRIGHT"):
                    _close(np.asarray(tb[col]), np.asarray(ta[col]), f"{ref.name} {col}")


def test_exported_wcs_agree(both):
    """cal/crf gwcs: the same frames (``moving_target`` for a moving target) and world coordinates."""
    ref_dir, ours_dir = both
    for ref in sorted(ref_dir.glob("*.fits")):
        if not ref.name.endswith(("_cal.fits", "_crf.fits")):
            continue
        with datamodels.open(ref) as r, datamodels.open(ours_dir / ref.name) as m:
            pairs = zip(r.exposures, m.exposures, strict=True) if hasattr(r, "exposures") else [(r, m)]
            for a, b in pairs:
                assert a.meta.wcs.available_frames == b.meta.wcs.available_frames, ref.name
                y, x = np.mgrid[0:a.data.shape[0], 0:a.data.shape[1]]
                for va, vb in zip(a.meta.wcs(x, y), b.meta.wcs(x, y), strict=True):
                    np.testing.assert_allclose(vb, va, rtol=0, atol=1e-9, equal_nan=True, err_msg=ref.name)
