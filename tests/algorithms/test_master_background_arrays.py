"""master_background arrays: combination, expansion, point-source factor, skip logic."""

from __future__ import annotations

import numpy as np
import pytest

from spec3c import dqflags
from spec3c.algorithms.master_background import (
    BackgroundSpectrum,
    expand,
    expand_ifu,
    fs_point_scale,
    ifu_point_scale,
    master_spectrum,
    odd_kernel,
)
from spec3c.results import COMPLETE
from spec3c.steps.master_background import subtraction_wanted
from spec3c.store import ExposureRecord


def _spectrum(sb, wl=None, t=100.0, bkgdtarg=True, background=None):
    wl = np.linspace(1.0, 2.0, len(sb)) if wl is None else wl
    cols = {"WAVELENGTH": wl, "SURF_BRIGHT": np.asarray(sb, float), "SB_ERROR": np.full(len(sb), 0.1),
            "FLUX": np.asarray(sb, float), "FLUX_ERROR": np.full(len(sb), 0.1), "DQ": np.zeros(len(sb), np.uint32)}
    if background is not None:
        cols["BACKGROUND"] = np.asarray(background, float)
        cols["BKGD_ERROR"] = np.full(len(sb), 0.2)
    return BackgroundSpectrum(cols, t, bkgdtarg)


def test_master_is_exposure_time_weighted_mean():
    a, b = _spectrum(np.full(50, 1.0), t=100.0), _spectrum(np.full(50, 4.0), t=300.0)
    master = master_spectrum([a, b])
    np.testing.assert_allclose(master.surf_bright, (1.0 * 100 + 4.0 * 300) / 400)
    np.testing.assert_allclose(master.wavelength, np.linspace(1.0, 2.0, 50))


def test_nodded_background_uses_background_column():
    nod = _spectrum(np.full(20, 50.0), bkgdtarg=False, background=np.full(20, 2.0))
    np.testing.assert_allclose(master_spectrum([nod]).surf_bright, 2.0)
    dedicated = _spectrum(np.full(20, 50.0), bkgdtarg=True, background=np.full(20, 2.0))
    np.testing.assert_allclose(master_spectrum([dedicated]).surf_bright, 50.0)


def test_median_kernel_rounds_even_down_and_removes_spikes():
    assert odd_kernel(4) == 3 and odd_kernel(5) == 5 and odd_kernel(1) == 1
    sb = np.full(41, 3.0)
    sb[20] = 100.0
    smooth = master_spectrum([_spectrum(sb)], median_kernel=4).surf_bright
    assert smooth[20] == 3.0
    assert master_spectrum([_spectrum(sb)], median_kernel=1).surf_bright[20] == 100.0


def test_expand_interpolates_and_flags_outside():
    wl = np.array([[1.0, 1.5, 2.0], [0.5, np.nan, 2.5]])
    bkg, dq = expand(wl, np.array([1.0, 2.0]), np.array([10.0, 20.0]))
    assert bkg.dtype == np.float32
    np.testing.assert_allclose(bkg, [[10.0, 15.0, 20.0], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(dq, [[0, 0, 0], [dqflags.DO_NOT_USE] * 3])


def test_expand_sorts_a_descending_table():
    bkg, _ = expand(np.array([1.25]), np.array([2.0, 1.0]), np.array([20.0, 10.0]))
    np.testing.assert_allclose(bkg, [12.5])


def test_expand_ifu_leaves_zero_outside_and_flags_nothing():
    """IFU frames: 0 off the slices (NaN wavelength) and outside the table, as bkg_for_ifu_image."""
    wl = np.array([[1.0, 1.5, np.nan], [0.5, 2.0, 2.5]])
    bkg = expand_ifu(wl, np.array([1.0, 2.0]), np.array([10.0, 20.0]))
    assert bkg.dtype == np.float32
    np.testing.assert_allclose(bkg, [[10.0, 15.0, 0.0], [0.0, 20.0, 0.0]])
    planes = {"pathloss_point": np.full(2, 0.8, np.float32), "pathloss_uniform": np.full(2, 0.6, np.float32)}
    np.testing.assert_allclose(ifu_point_scale(planes), 0.75, rtol=1e-6)
    assert ifu_point_scale({"pathloss_point": planes["pathloss_point"]}) is None


def test_fs_point_scale():
    planes = {"pathloss_point": np.full(3, 0.8, np.float32), "pathloss_uniform": np.full(3, 0.6, np.float32),
              "flatfield_point": np.ones(3, np.float32), "flatfield_uniform": np.ones(3, np.float32),
              "photom_point": np.full(3, 2.0, np.float32), "photom_uniform": np.full(3, 4.0, np.float32)}
    np.testing.assert_allclose(fs_point_scale(planes), 0.6 / 0.8 * 0.5, rtol=1e-6)
    del planes["photom_uniform"]
    assert fs_point_scale(planes) is None


def _record(name, role="science", **cal_step):
    meta = {f"meta.cal_step.{k}": v for k, v in cal_step.items()}
    return ExposureRecord(name, name, "0", role, "NRS_FIXEDSLIT", "MultiSlitModel", meta)


def test_skip_logic():
    fresh = [_record("a"), _record("b"), _record("bg", "background")]
    assert subtraction_wanted(fresh, False) == (True, "")
    done = [_record("a", bkg_subtract=COMPLETE), _record("b", master_background=COMPLETE)]
    wanted, why = subtraction_wanted(done, False)
    assert not wanted and "already subtracted" in why
    mixed = [_record("a", bkg_subtract=COMPLETE), _record("b")]
    wanted, why = subtraction_wanted(mixed, False)
    assert not wanted and "1 of 2" in why
    assert subtraction_wanted(mixed, True)[0]


def test_no_spectra_is_an_error():
    with pytest.raises(ValueError, match="no background spectra"):
        master_spectrum([])
