"""c1d product: stdatamodels class and validation, specutils reading."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from specutils import Spectrum
from stdatamodels.jwst import datamodels as dm
from stdatamodels.validate import ValidationWarning

from spec3c.algorithms.combine1d import InputSpectrum, combine
from spec3c.products.c1d import write_c1d

META = {"instrument": "NIRSPEC", "exp_type": "NRS_FIXEDSLIT", "source_id": 12, "source_type": "POINT",
        "dispersion_direction": 1, "source_ra": 53.1, "source_dec": -27.8}  # fmt: skip


def spectra(order=1, offset=0.0):
    wl = 1.0 + offset + 0.002 * np.arange(30)
    n = wl.size
    return [InputSpectrum(wl + d, np.full(n, f), np.full(n, 0.1), np.full(n, 2.0), np.full(n, 0.2),
                          np.zeros(n, np.uint32), t, order)
            for d, f, t in ((0.0, 1.0, 100.0), (3e-4, 2.0, 50.0))]  # fmt: skip


@pytest.fixture
def combined():
    return combine(spectra(1) + spectra(2, offset=1.0))


def test_c1d_opens_as_multicombinedspec_and_validates(tmp_path, combined):
    path = write_c1d(combined, META, tmp_path / "jw00001-o001_s00012_nirspec_clear-prism_c1d.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ValidationWarning)
        with dm.open(path) as model:
            assert isinstance(model, dm.MultiCombinedSpecModel)
            model.validate()
            assert model.meta.telescope == "JWST"
            assert model.meta.instrument.name == "NIRSPEC"
            assert model.meta.exposure.type == "NRS_FIXEDSLIT"
            assert model.meta.cal_step.combine_1d == "COMPLETE"
            assert model.meta.wcs is not None
            assert [s.spectral_order for s in model.spec] == [1, 2]
            for spec, order in zip(model.spec, (1, 2), strict=True):
                assert spec.source_id == 12 and spec.source_type == "POINT"
                assert spec.dispersion_direction == 1
                assert spec.source_ra == 53.1 and spec.source_dec == -27.8
                np.testing.assert_array_equal(spec.spec_table["FLUX"], combined[order].flux)
                np.testing.assert_array_equal(spec.spec_table["N_INPUT"], combined[order].n_input)
    with fits.open(path) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "COMBINE1D", "COMBINE1D", "ASDF"]
        hdr = hdul["COMBINE1D", 2].header
        assert (hdr["SPORDER"], hdr["SOURCEID"], hdr["SRCTYPE"]) == (2, 12, "POINT")
        assert hdul[0].header["TELESCOP"] == "JWST" and hdul[0].header["DATAMODL"] == "MultiCombinedSpecModel"
        units = {hdr[f"TTYPE{i}"]: hdr.get(f"TUNIT{i}") for i in range(1, 9)}
        assert units == {"WAVELENGTH": "um", "FLUX": "Jy", "ERROR": "Jy", "SURF_BRIGHT": "MJy/sr",
                         "SB_ERROR": "MJy/sr", "DQ": None, "WEIGHT": None, "N_INPUT": None}  # fmt: skip


def test_specutils_reads_flux_in_jy(tmp_path):
    combined = combine(spectra(1))
    path = write_c1d(combined, META, tmp_path / "x_c1d.fits")
    for kwargs in ({}, {"format": "JWST c1d"}):
        spec = Spectrum.read(path, **kwargs)
        assert spec.flux.unit == u.Jy
        np.testing.assert_allclose(spec.flux.value, combined[1].flux)
        np.testing.assert_allclose(spec.spectral_axis.to_value(u.um), combined[1].wavelength)


def test_per_order_meta_and_units_override(tmp_path):
    combined = combine(spectra(1))
    meta = {**META, "spec": {1: {"source_type": "EXTENDED", "flux_unit": "DN/s", "sb_unit": "DN/s"}}}
    path = write_c1d(combined, meta, tmp_path / "y_c1d.fits")
    with fits.open(path) as hdul:
        hdr = hdul["COMBINE1D"].header
        assert hdr["SRCTYPE"] == "EXTENDED" and hdr["TUNIT2"] == "DN/s"


def test_write_c1d_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="nothing to write"):
        write_c1d({}, META, tmp_path / "z_c1d.fits")
    with pytest.raises(ValueError, match="source_type"):
        write_c1d(combine(spectra(1)), {**META, "source_type": "GALAXY"}, tmp_path / "z_c1d.fits")
    assert not (tmp_path / "z_c1d.fits").exists()
