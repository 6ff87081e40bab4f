"""spec3c.products.blend: combined keywords, HDRTAB rows and S_REGION of a resampled product."""

from __future__ import annotations

import numpy as np
from astropy import coordinates as coord
from astropy import units as u
from astropy.modeling import models as am
from gwcs import WCS
from gwcs import coordinate_frames as cf

from spec3c.algorithms.footprint import s_region_spectral
from spec3c.products.blend import blended_values, hdrtab_columns, hdrtab_table


def _meta(start: float, detector: str, filename: str, **extra) -> dict:
    return {"filename": filename, "instrument": {"detector": detector},
            "exposure": {"start_time": start, "end_time": start + 0.01, "exposure_time": 100.0,
                         "mid_time": start + 0.005, **extra}}


def test_blended_values_follow_the_schema_rules():
    metas = [_meta(60310.0, "NRS1", "a_cal.fits"), _meta(60310.5, "NRS2", "b_cal.fits")]
    out = blended_values(metas)
    assert out["instrument.detector"] == "MULTIPLE"  # "multi"
    assert out["exposure.start_time"] == 60310.0  # "min"
    assert out["exposure.end_time"] == 60310.51  # "max"
    assert out["exposure.exposure_time"] == 200.0  # "sum"
    assert np.isclose(out["exposure.mid_time"], 60310.255)  # "mean"
    assert "filename" not in out  # "first": the first model's, not blended
    same = blended_values([_meta(1.0, "NRS1", "a"), _meta(2.0, "NRS1", "b")])
    assert same["instrument.detector"] == "NRS1"


def test_hdrtab_rows_columns_and_missing_values():
    metas = [_meta(60310.0, "NRS1", "a_cal.fits", duration=5.0), _meta(60310.5, "NRS2", "b_cal.fits")]
    table = hdrtab_table(metas)
    assert table is not None
    names = list(table.dtype.names)
    order = [column for _, column in hdrtab_columns()]
    assert names == [c for c in order if c in names]  # the schema's order
    assert "FILENAME" in names and "EXPSTART" in names and "DETECTOR" in names
    assert "TARGNAME" not in names  # no input has it: no column
    assert list(table["FILENAME"]) == ["a_cal.fits", "b_cal.fits"]
    assert table["DURATION"][0] == 5.0 and np.isnan(table["DURATION"][1])  # missing in one input -> NaN
    assert hdrtab_table([{}]) is None


def test_s_region_is_the_world_box_of_the_pixels():
    # pixel -> (RA, Dec, wavelength): RA along x, Dec along y, a constant wavelength
    forward = (am.Mapping((0, 1, 0)) | (am.Shift(10.0) | am.Scale(1e-3)) & (am.Shift(-5.0) | am.Scale(2e-3))
               & am.Const1D(2.0))
    forward = forward | (am.Shift(150.0) & am.Shift(2.0) & am.Identity(1))
    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    sky = cf.CelestialFrame(name="sky", axes_order=(0, 1), reference_frame=coord.ICRS())
    spec = cf.SpectralFrame(name="spectral", axes_order=(2,), unit=(u.micron,))
    wcs = WCS([(detector, forward), (cf.CompositeFrame([sky, spec], name="world"), None)])
    region = s_region_spectral(wcs, (4, 6))  # ny=4, nx=6: x in 0..5, y in 0..3
    values = [float(v) for v in region.split()[2:]]
    ra_lo, ra_hi = 150.0 + 10.0 * 1e-3, 150.0 + 15.0 * 1e-3
    dec_lo, dec_hi = 2.0 - 5.0 * 2e-3, 2.0 - 2.0 * 2e-3
    np.testing.assert_allclose(values, [ra_lo, dec_lo, ra_hi, dec_lo, ra_hi, dec_hi, ra_lo, dec_hi], atol=1e-9)
    assert region.startswith("POLYGON ICRS  ")
