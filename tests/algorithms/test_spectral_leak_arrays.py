"""The MIRI MRS spectral leak arithmetic and band choice against hand computations."""

from __future__ import annotations

import numpy as np
import pytest
from stdatamodels.jwst import datamodels as dm

from spec3c.algorithms.spectral_leak import (
    LeakTable,
    SpectrumBand,
    leak_bands,
    leak_flux,
    read_mrsptcorr,
)
from spec3c.errors import InputError


def test_leak_by_hand():
    table = LeakTable(np.array([11.0, 12.0, 13.0]), np.array([0.0, 0.02, 0.04]))
    wave1b = np.array([5.5, 6.0, 6.5])  # second order at 11, 12, 13 micron
    flux1b = np.array([10.0, 20.0, 40.0])
    wave3a = np.array([11.5, 12.0, 12.25, 14.0, 10.0])
    # flux at 2*wave1b: 15, 20, 25, 40 (end), 10 (end); fraction: 0.01, 0.02, 0.025, 0.04 (end), 0 (end)
    expected = np.array([15.0 * 0.01, 20.0 * 0.02, 25.0 * 0.025, 40.0 * 0.04, 0.0])
    np.testing.assert_allclose(leak_flux(wave3a, wave1b, flux1b, table), expected, rtol=0, atol=1e-15)
    flux1b[1] = np.nan
    assert np.isnan(leak_flux(np.array([12.0]), wave1b, flux1b, table)[0])


def test_big_endian_inputs_and_float64_result():
    table = LeakTable(np.array([11.0, 13.0]), np.array([0.01, 0.01]))
    out = leak_flux(np.array([12.0], ">f4"), np.array([5.0, 7.0], ">f8"), np.array([1.0, 3.0], ">f4"), table)
    assert out.dtype == np.float64
    assert out[0] == pytest.approx(0.02)


def _band(channel: str, band: str, lo: float = 0.0, hi: float = 1.0) -> SpectrumBand:
    return SpectrumBand(channel, band, np.linspace(lo, hi, 5))


def test_band_choice():
    spectra = [_band("1", "SHORT"), _band("1", "MEDIUM"), _band("3", "SHORT"), _band("3", "MEDIUM")]
    assert leak_bands(spectra) == (1, 2)
    assert leak_bands(spectra[2:]) == (None, 0)
    assert leak_bands(spectra[:2]) == (1, None)
    # MULTIPLE bands count when their wavelengths span 6 / 12 micron; the last of each wins
    multi = [_band("1", "MULTIPLE", 4.9, 7.6), _band("3", "MULTIPLE", 11.5, 17.9), _band("1", "MEDIUM")]
    assert leak_bands(multi) == (2, 1)
    assert leak_bands([_band("1", "MULTIPLE", 6.5, 7.6), _band("3", "MULTIPLE", 12.5, 17.9)]) == (None, None)
    # one all-channel cube is both
    assert leak_bands([_band("1234", "MULTIPLE", 4.9, 27.9)]) == (0, 0)


def test_read_mrsptcorr(tmp_path):
    from spec3c.simulate.miri.reffiles import write_mrsptcorr

    path = write_mrsptcorr(tmp_path / "leak_mrsptcorr.fits")
    table = read_mrsptcorr(path)
    with dm.MirMrsPtCorrModel(str(path)) as model:
        np.testing.assert_array_equal(table.wavelength, model.leakcor_table["wavelength"])
        np.testing.assert_array_equal(table.frac_leak, model.leakcor_table["frac_leak"])
    assert table.frac_leak.max() > 0
    empty = tmp_path / "empty_mrsptcorr.fits"
    with dm.MirMrsPtCorrModel() as model:
        model.meta.reftype = "MRSPTCORR"
        model.save(empty)
    with pytest.raises(InputError, match="LEAKCOR"):
        read_mrsptcorr(empty)
