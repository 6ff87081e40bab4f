"""IFU master_background against jwst 3.0.0 and the truth (MIRI MRS, 2 dithers + 1 background member).

Both pipelines run calwebb_spec3 on the same simulated association (the
science exposures keep their sky; one blank-sky ``_x1d`` background member,
``save_background``): the same products, the master spectrum, the expanded
backgrounds and the background-subtracted ``_crf`` frames to float32
rounding, cubes and spectra to 1e-6, the cubes' HDRTAB the same table; and
the subtracted background is the simulated sky, leaving the point source's
flux within 2 % of the truth.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from stdatamodels.jwst import datamodels as dm

from spec3c.simulate import load_truth
from spec3c.simulate.miri.mrs import load_mrs_truth
from spec3c.simulate.miri.mrs.instrument import detector_spec
from spec3c.simulate.miri.mrs.render import channel_sky
from spec3c.simulate.miri.mrs.scene import MrsScene

pytestmark = [pytest.mark.oracle, pytest.mark.slow]

#: HDRTAB values that differ by construction: the time of writing and the software that wrote it
_OWN_COLUMNS = ("DATE", "CAL_VER", "CAL_VCS")


@pytest.fixture(scope="module")
def case(tmp_path_factory, oracle, jwst_py):
    from shared_runs import mrs_background_case

    return mrs_background_case(tmp_path_factory, oracle, jwst_py)


def _pairs(case, suffix: str):
    _, ref_dir, ours_dir = case
    refs = sorted(ref_dir.glob(f"*_{suffix}.fits"))
    assert refs, suffix
    return [(r, ours_dir / r.name) for r in refs]


def test_same_products(case):
    _, ref_dir, ours_dir = case
    wanted = ("s3d", "x1d", "crf", "masterbg1d", "masterbg2d")
    ref = sorted(p.name for p in ref_dir.glob("*.fits") if p.stem.rsplit("_", 1)[1] in wanted)
    ours = sorted(p.name for p in ours_dir.glob("*.fits") if p.stem.rsplit("_", 1)[1] in wanted)
    assert ref == ours
    assert sum(n.endswith("_masterbg2d.fits") for n in ref) == 2 and sum(n.endswith("_masterbg1d.fits") for n in ref) == 1


def test_background_and_crf_frames_identical(case):
    """The expanded master background and the background-subtracted, outlier-flagged frames."""
    for suffix in ("masterbg2d", "crf"):
        for ref, ours in _pairs(case, suffix):
            with fits.open(ref) as a, fits.open(ours) as b:
                assert a[0].header["DATAMODL"] == b[0].header["DATAMODL"] == "IFUImageModel"
                sa, sb = a["SCI"].data, b["SCI"].data
                np.testing.assert_array_equal(np.isnan(sa), np.isnan(sb))
                np.testing.assert_allclose(sb, sa, rtol=1e-6, atol=1e-7, equal_nan=True)
                np.testing.assert_array_equal(a["DQ"].data, b["DQ"].data)
    ((ref, ours),) = _pairs(case, "masterbg1d")
    with dm.open(ref) as a, dm.open(ours) as b:
        ta, tb = a.spec[0].spec_table, b.spec[0].spec_table
        for column in ("WAVELENGTH", "SURF_BRIGHT", "FLUX", "N_INPUT"):
            np.testing.assert_allclose(tb[column], ta[column], rtol=1e-7, err_msg=column)


def test_cubes_spectra_and_hdrtab(case):
    for ref, ours in _pairs(case, "s3d"):
        with dm.open(ref) as a, dm.open(ours) as b:
            assert a.data.shape == b.data.shape
            assert a.meta.cal_step.master_background == b.meta.cal_step.master_background == "COMPLETE"
            good = (a.weightmap > 0) & np.isfinite(a.data) & np.isfinite(b.data) & (np.abs(a.data) > 5 * a.err)
            rel = np.abs(b.data[good] - a.data[good]) / np.abs(a.data[good])
            assert np.median(rel) <= 1e-6, (ref.name, np.median(rel))
            assert a.hdrtab.dtype.names == b.hdrtab.dtype.names and len(a.hdrtab) == len(b.hdrtab) == 2
            for name in a.hdrtab.dtype.names:
                if name not in _OWN_COLUMNS:
                    assert [str(v) for v in a.hdrtab[name]] == [str(v) for v in b.hdrtab[name]], name
    for ref, ours in _pairs(case, "x1d"):
        with dm.open(ref) as a, dm.open(ours) as b:
            ta, tb = a.spec[0].spec_table, b.spec[0].spec_table
            for column in ("FLUX", "SURF_BRIGHT", "BACKGROUND"):
                ok = np.isfinite(ta[column]) & np.isfinite(tb[column]) & (ta[column] != 0)
                rel = np.abs(tb[column][ok] - ta[column][ok]) / np.abs(ta[column][ok])
                assert np.median(rel) <= 1e-6, (ref.name, column, np.median(rel))


def test_truth(case):
    """The subtracted background is the simulated sky (< 0.5 %) and the source flux stays within 2 %."""
    res, _, ours_dir = case
    truth, mt = load_truth(res.truth_path), load_mrs_truth(res.truth_path)
    sky_only = MrsScene((), mt.sky, mt.psf, mt.leak)  # the noiseless sky (and leak) of the truth
    det = detector_spec("MIRIFUSHORT")
    background = sorted(ours_dir.glob("*_masterbg2d.fits"))[0]
    with dm.open(background) as model:
        for ch in det.channels:
            y, x, _, sky, _ = channel_sky(det, "SHORT", sky_only, ch)
            got = model.data[y, x]
            ok = got > 0
            assert abs(np.median(got[ok] / sky[ok]) - 1.0) < 0.005, ch.number
    for path in sorted(ours_dir.glob("*_x1d.fits")):
        with dm.open(path) as model:
            table = model.spec[0].spec_table
            ok = np.isfinite(table["FLUX"])
            ratio = np.median(table["FLUX"][ok] / truth.flux_at("1", table["WAVELENGTH"][ok]))
            assert ratio == pytest.approx(1.0, abs=0.02), (path.name, ratio)

