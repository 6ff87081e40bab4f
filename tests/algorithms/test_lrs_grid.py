"""MIRI LRS (interpolated) output grid on synthetic LRS-like inputs."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.coordinates import angular_separation

from spec3c._core import Drizzle
from spec3c.algorithms.lrs_grid import LrsGrid, build_lrs_grid, centre_row, wrap_ra
from spec3c.algorithms.slit_grid import GridInput, GridOptions, SlitGrid

# Source of the synthetic gwcs, shared with tests/oracle/test_lrs_grid_reference.py (which runs
# it in the jwst venv): numpy/astropy/gwcs only.
SYNTHETIC_WCS = r'''
import numpy as np
from astropy import coordinates as coord
from astropy import units as u
from astropy.modeling import models as am
from gwcs import WCS
from gwcs import coordinate_frames as cf


def lrs_wcs(ra0=10.0, dec0=-30.0, pa=30.0, nod=0.0, bbox=((300.0, 345.0), (5.0, 390.0)), xc=322.5,
            yc=200.0, scale=0.11, tilt=0.01, dy=0.0, lam_range=None):
    """MIRI-LRS-like gwcs: detector (x, y) -> (RA, Dec deg, wavelength um), analytic inverse.

    Slit along x (``scale`` arcsec/pixel, trace tilted by ``tilt`` px/px, position angle
    ``pa`` deg, offset ``nod`` arcsec along the slit about (ra0, dec0)); wavelength a
    decreasing quadratic of ``y - dy``: 12 um at y = 5 + dy, 5 um at y = 390 + dy; NaN
    outside rows ``lam_range`` if given (like the LRS wavelength table).
    """
    s, d = scale / 3600.0, nod / 3600.0
    lam = am.Shift(-5.0 - dy) | am.Scale(1.0 / 385.0) | am.Polynomial1D(2, c0=12.0, c1=-5.5, c2=-1.5)
    # y = 5 + dy + 385 t,  t = (-5.5 + sqrt(5.5**2 + 6 (12 - lam))) / 3
    lam_inv = (am.Polynomial1D(1, c0=5.5**2 + 72.0, c1=-6.0) ** am.Const1D(0.5)) | am.Polynomial1D(
        1, c0=5.0 + dy - 385.0 * 5.5 / 3.0, c1=385.0 / 3.0)
    if lam_range is not None:
        lam = lam + am.Tabular1D(points=np.array(lam_range, dtype=float), lookup_table=np.zeros(2),
                                 bounds_error=False, fill_value=np.nan)
    along = am.Polynomial2D(1, c0_0=d - s * (xc - tilt * yc), c1_0=s, c0_1=-s * tilt)
    across = am.Polynomial2D(1, c0_0=0.2 * s)
    sky = am.Rotation2D(angle=pa) | am.Pix2Sky_TAN() | am.RotateNative2Celestial(ra0, dec0, 180.0)
    forward = am.Mapping((0, 1, 0, 1, 1)) | (along & across | sky) & lam
    to_x = am.Polynomial2D(1, c0_0=xc - tilt * yc - d / s, c1_0=1.0 / s, c0_1=tilt)
    forward.inverse = (sky.inverse & lam_inv) | am.Mapping((0, 2, 2)) | to_x & am.Identity(1)
    det = cf.Frame2D(name="detector", axes_order=(0, 1))
    skyf = cf.CelestialFrame(name="sky", axes_order=(0, 1), reference_frame=coord.ICRS())
    spec = cf.SpectralFrame(name="spectral", axes_order=(2,), unit=(u.micron,),
                            axes_names=("wavelength",))
    wcs = WCS([(det, forward), (cf.CompositeFrame([skyf, spec], name="world"), None)])
    wcs.bounding_box = bbox
    return wcs
'''
exec(SYNTHETIC_WCS)  # defines lrs_wcs

SHAPE = (400, 360)


def grid_input(wcs, shape=SHAPE) -> GridInput:
    """Stored planes of one input, as ingest evaluates them (NaN outside the bounding box)."""
    y, x = np.indices(shape, dtype=np.float64)
    ra, dec, lam = (np.asarray(a, dtype=np.float64) for a in wcs(x, y, with_bounding_box=True))  # noqa: F821
    zeros = np.zeros(shape)
    return GridInput(np.where(np.isfinite(lam), 1.0, np.nan), zeros.astype(np.uint32), lam, ra, dec, zeros)


def make(specs, psr=1.0, pixel_scale=None, **kw):
    wcss = [lrs_wcs(**s) for s in specs]  # noqa: F821
    inputs = [grid_input(w) for w in wcss]
    grid = build_lrs_grid(inputs, GridOptions(psr, pixel_scale), wcss[0], **kw)
    return grid, inputs, wcss


NODS = [{"nod": -1.5}, {"nod": 1.5}]


def sky_sep_deg(ra1, dec1, ra2, dec2):
    r = np.radians
    return np.degrees(angular_separation(r(ra1), r(dec1), r(ra2), r(dec2)))


def test_shape_and_orientation():
    grid, inputs, _ = make(NODS)
    assert isinstance(grid, LrsGrid)
    assert grid.dispersion_axis == 2 and SlitGrid.dispersion_axis == 1
    nlam, nsp = grid.shape
    assert nlam == len(grid.wavelengths) == 386  # one row per input row with a wavelength
    # 5" of slit + 3" of nod at 0.11"/px, slit along PA 30 deg -> ~73 columns
    assert 70 <= nsp <= 80 and grid.slit_y.shape == (nsp,)
    assert np.all(np.diff(grid.wavelengths) < 0)  # descending, like the detector
    assert grid.wavelengths[0] == pytest.approx(12.0, abs=1e-9)
    assert grid.wavelengths[-1] == pytest.approx(5.0, abs=1e-9)
    ra, dec, lam = grid.world()
    assert ra.shape == dec.shape == lam.shape == grid.shape
    assert np.all(lam == grid.wavelengths[:, None])  # wavelength constant along a row
    assert np.all(ra == ra[0]) and np.all(dec == dec[0])  # sky constant along a column
    sep = sky_sep_deg(ra[0, :-1], dec[0, :-1], ra[0, 1:], dec[0, 1:]) * 3600
    np.testing.assert_allclose(sep, 0.11, rtol=2e-3)
    assert grid.spatial_scale == pytest.approx(0.11, rel=2e-3)
    assert not grid.swap_xy


@pytest.mark.parametrize("psr", [1.0, 0.5, 2.0])
def test_pixmap_round_trip(psr):
    grid, inputs, _ = make(NODS, psr=psr)
    ra_out, dec_out, lam_out = grid.world()
    # output pixel centres map to themselves
    pm = grid.pixmap(ra_out, dec_out, lam_out)
    rows, cols = np.indices(grid.shape)
    np.testing.assert_allclose(pm[..., 0], cols, rtol=0, atol=1e-6)
    np.testing.assert_allclose(pm[..., 1], rows, rtol=0, atol=1e-6)
    for inp in inputs:
        pm = grid.pixmap(inp.ra, inp.dec, inp.wavelength)
        ok = np.isfinite(inp.wavelength)
        assert np.array_equal(np.isfinite(pm[..., 1]), ok)
        col, row = pm[..., 0][ok], pm[..., 1][ok]
        # wavelength of the landing row = the input pixel's, and its tangent-plane coordinate
        # along the slit = the landing column's
        np.testing.assert_allclose(grid.row_to_wavelength(row), inp.wavelength[ok], rtol=0, atol=1e-9)
        ra_c, dec_c = grid.column_sky(col)
        xt_in, _ = grid.tangent_offsets(inp.ra[ok], inp.dec[ok])
        xt_out, _ = grid.tangent_offsets(ra_c, dec_c)
        np.testing.assert_allclose(xt_out, xt_in, rtol=0, atol=1e-12)
        # the cross-slit residual is the 0.2 px slit offset plus curvature, not more
        assert np.max(sky_sep_deg(ra_c, dec_c, inp.ra[ok], inp.dec[ok])) * 3600 < 0.05
    # the first input's rows land on whole output rows (its medians are the table)
    pm0 = grid.pixmap(inputs[0].ra, inputs[0].dec, inputs[0].wavelength)
    r0 = pm0[..., 1][np.isfinite(pm0[..., 1])]
    np.testing.assert_allclose(r0, np.round(r0), rtol=0, atol=1e-9)


@pytest.mark.parametrize("psr", [1.0, 0.5])
def test_flux_preserving_geometry(psr):
    grid, inputs, _ = make(NODS, psr=psr)
    for inp in inputs:
        pm = grid.pixmap(inp.ra, inp.dec, inp.wavelength)
        # one input pixel = psr output columns along the slit, one output row along y
        dcol = np.diff(pm[..., 0], axis=1)
        drow = np.diff(pm[..., 1], axis=0)
        np.testing.assert_allclose(np.nanmedian(dcol), psr, rtol=2e-3)
        np.testing.assert_allclose(np.nanmedian(drow), 1.0, rtol=1e-3)
        ok = np.isfinite(pm).all(axis=-1)
        inside = (pm[..., 0] > -0.5) & (pm[..., 0] < grid.shape[1] - 0.5)
        assert np.count_nonzero(inside & ok) >= 0.99 * np.count_nonzero(ok)
        # a flat surface brightness stays flat and the weights add up to the input pixels
        driz = Drizzle(grid.shape, context=False)
        driz.add(inp.sci, pm)
        sci, wht = driz.finalize()
        covered = wht > 0.999 * np.nanmax(wht)
        np.testing.assert_allclose(sci[covered], 1.0, rtol=1e-5)
        n_in = np.count_nonzero(np.isfinite(inp.sci))
        assert 0.9 * n_in <= wht.sum() <= n_in * (1 + 1e-5)


def test_wavelengths_merged_from_later_inputs():
    # later inputs shifted in y: only their wavelengths beyond the current range are added
    grid, inputs, _ = make([{"nod": -1.5}, {"nod": 1.5, "dy": -2.5}, {"nod": 0.0, "dy": 3.25}])
    first = np.sort(np.nanmedian(inputs[0].wavelength[5:391, 300:346], axis=1))[::-1]
    lam = grid.wavelengths
    assert np.all(np.diff(lam) < 0)
    inner = lam[(lam <= first[0]) & (lam >= first[-1])]
    np.testing.assert_array_equal(inner, first)  # nothing inserted inside the first range
    # dy = 3.25: rows 5..8 see lambda(y < 5) > 12 um; dy = -2.5: rows 388..390 lambda < 5 um
    assert np.count_nonzero(lam > first[0]) == 4 and np.count_nonzero(lam < first[-1]) == 3


def test_centre_row_and_nan_rows():
    assert centre_row(((300, 345), (5.0, 390.0))) == 5 + 192
    assert centre_row(((300, 345), (4.5, 390.5))) == 5 + 193  # half-integer box: same pixels, +1
    assert centre_row(((300, 345), (4.6, 390.3))) == 5 + 192
    spec = {"bbox": ((300.0, 345.0), (4.6, 390.3)), "lam_range": (8.0, 385.0)}
    grid, inputs, wcss = make([spec])
    assert len(grid.wavelengths) == 385 - 8 + 1  # rows with NaN wavelength are dropped
    # single input: tangent point = mean of the centre row
    row = inputs[0].ra[197]
    assert grid.fiducial[0] == pytest.approx(np.nanmean(row), abs=1e-12)
    # without the gwcs the box is the finite extent, (4.5, 390.5): centre row 198, not 197
    nogwcs = build_lrs_grid(inputs, GridOptions())
    assert nogwcs.fiducial[0] == pytest.approx(np.nanmean(inputs[0].ra[198]), abs=1e-12)
    np.testing.assert_array_equal(nogwcs.wavelengths, grid.wavelengths)
    # with a half-integer box both agree
    spec["bbox"] = ((299.5, 345.5), (4.5, 390.5))
    grid, inputs, _ = make([spec])
    nogwcs = build_lrs_grid(inputs, GridOptions())
    assert (nogwcs.fiducial, nogwcs.x_line, nogwcs.y_line) == (grid.fiducial, grid.x_line, grid.y_line)
    np.testing.assert_array_equal(nogwcs.wavelengths, grid.wavelengths)


def test_pixel_scale_option_and_swap():
    grid, _, _ = make(NODS, pixel_scale=0.22)
    assert grid.pixel_scale_ratio == pytest.approx(0.5, rel=1e-6)
    assert grid.spatial_scale == 0.22
    base, _, _ = make(NODS, psr=0.5)
    assert base.shape == grid.shape
    swapped, inputs, _ = make([{"nod": -1.5, "pa": 75.0}, {"nod": 1.5, "pa": 75.0}])
    assert swapped.swap_xy
    pm = swapped.pixmap(inputs[0].ra, inputs[0].dec, inputs[0].wavelength)
    ra_c, dec_c = swapped.column_sky(pm[..., 0][np.isfinite(pm[..., 0])])
    _, yt_out = swapped.tangent_offsets(ra_c, dec_c)
    ok = np.isfinite(pm[..., 0])
    _, yt_in = swapped.tangent_offsets(inputs[0].ra[ok], inputs[0].dec[ok])
    np.testing.assert_allclose(yt_out, yt_in, rtol=0, atol=1e-12)


def test_ra_wrap_and_ascending():
    grid, inputs, _ = make([{"ra0": 0.0003, "nod": -1.5}, {"ra0": 0.0003, "nod": 1.5}])
    ra, dec, _ = grid.world()
    assert (ra < 1).any() and (ra > 359).any()  # the slit crosses RA 0
    sep = sky_sep_deg(ra[0, :-1], dec[0, :-1], ra[0, 1:], dec[0, 1:]) * 3600
    np.testing.assert_allclose(sep, 0.11, rtol=2e-3)
    assert abs(grid.fiducial[0]) < 0.01
    np.testing.assert_allclose(wrap_ra([359.9, np.nan, 0.1, 0.2]), [-0.1, 0.1, 0.2], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(wrap_ra([359.9, 0.1]), [359.9, 0.1])  # median exactly 180: no wrap
    up, _, _ = make(NODS, descending=False)
    assert np.all(np.diff(up.wavelengths) > 0)
    pm = up.pixmap(inputs[0].ra, inputs[0].dec, inputs[0].wavelength)
    assert np.nanmedian(np.diff(pm[..., 1], axis=0)) == pytest.approx(-1.0)


def test_extrapolated_wavelength_table():
    grid, _, _ = make(NODS)
    lam = grid.wavelengths
    n = len(lam)
    # beyond the ends the table extrapolates from the end segments (no half-pixel clip)
    assert grid.row_to_wavelength(np.array([-1.0]))[0] == pytest.approx(2 * lam[0] - lam[1])
    assert grid.row_to_wavelength(np.array([n]))[0] == pytest.approx(2 * lam[-1] - lam[-2])
    assert grid.wavelength_to_row(np.array([lam[0] + (lam[0] - lam[1])]))[0] == pytest.approx(-1.0)
    assert np.isnan(grid.wavelength_to_row(np.array([np.nan]))[0])
    col, row = grid.pixmap(grid.world()[0][0, 3], grid.world()[1][0, 3], lam[7])
    assert col == pytest.approx(3, abs=1e-6) and row == pytest.approx(7, abs=1e-9)


def test_gwcs_matches_grid_and_saves(tmp_path):
    from stdatamodels.jwst import datamodels as dm

    grid, inputs, _ = make(NODS, psr=0.5)
    wcs = grid.to_gwcs()
    assert wcs.input_frame.name == "detector" and wcs.output_frame.name == "world"
    assert wcs.array_shape == grid.shape and wcs.pixel_shape == grid.shape[::-1]
    rows, cols = np.indices(grid.shape, dtype=np.float64)
    got = wcs(cols, rows)
    for a, b in zip(got, grid.world(), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    pm = grid.pixmap(inputs[1].ra, inputs[1].dec, inputs[1].wavelength)
    x, y = wcs.backward_transform(inputs[1].ra, inputs[1].dec, inputs[1].wavelength)
    np.testing.assert_allclose(x, pm[..., 0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(y, pm[..., 1], rtol=0, atol=1e-9)
    assert np.isnan(wcs(-1.0, 0.0)[0])  # outside the bounding box
    info = grid.fits_wcsinfo()
    assert info["ctype2"] == "WAVE-TAB" and info["ctype1"] == "SPATIAL"
    assert info["cdelt1"] == grid.spatial_scale and info["crpix1"] == (grid.shape[1] - 1) / 2 + 1
    assert grid.fits_wcsinfo(source_column=10.25)["crpix1"] == 11.25
    model = dm.SlitModel(np.zeros(grid.shape, dtype=np.float32))
    model.meta.wcs = wcs
    path = tmp_path / "lrs_s2d.fits"
    model.save(path)
    with dm.open(path) as back:
        np.testing.assert_allclose(back.meta.wcs(cols, rows)[2], got[2], rtol=0, atol=0)


@pytest.mark.parametrize("n", [2, 7, 64, 387])
@pytest.mark.parametrize("psr", [1.0, 0.5, 1.37])
def test_line_fit_is_astropys_linear_fitter_bit_for_bit(n, psr):
    """The tangent lines are fitted without astropy.modeling.fitting, with the same arithmetic."""
    from astropy.modeling import fitting
    from astropy.modeling import models as am

    from spec3c.algorithms.lrs_grid import _fit_line

    rng = np.random.default_rng(n)
    values = 1e-3 * np.arange(n) * 0.83 + 12.5 + rng.normal(scale=1e-6, size=n)
    idx = np.linspace(0, n * psr, n, endpoint=False)
    fit = fitting.LinearLSQFitter()(am.Linear1D(), idx, values)
    assert _fit_line(values, psr) == (float(fit.slope.value), float(fit.intercept.value))
