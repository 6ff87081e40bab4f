"""Cube parameters, sky geometry and the NIRSpec field-of-view lines (``cube_build`` algorithms)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.modeling import models as am

from spec3c._core.tangent import corners_to_tangent, sky_to_tangent
from spec3c.algorithms.cube_fov import nirspec_fov, slice_lines
from spec3c.algorithms.cube_setup import (
    BandPars,
    CubeRequest,
    WaveTable,
    cube_setup,
    radec_to_std,
    sky_geometry,
    slicer_geometry,
    wrap_ra,
)


def _c_line(x1: int, y1: int, x2: int, y2: int) -> list[tuple[int, int]]:
    """A literal port of jwst 3.0.0 ``overlap_slice_with_spaxels`` (its assignments included)."""
    dx, dy = x2 - x1, y2 - y1
    steep = abs(dy) > abs(dx)
    if steep:
        x1 = y1
        y1 = x1
        x2 = y2
        y2 = x2
    if x1 > x2:
        x1 = x2
        x2 = x1
        y1 = y2
        y2 = y1
    dx, dy = x2 - x1, y2 - y1
    error = int(dx / 2.0)
    ystep = 1 if y1 < y2 else -1
    y = y1
    out = []
    for x in range(x1, x2 + 1):
        out.append((y, x) if steep else (x, y))
        error -= abs(dy)
        if error < 0:
            y += ystep
            error += dx
    return out


def _points(line: np.ndarray, xs: np.ndarray, ys: np.ndarray, n: int) -> list[list[tuple[int, int]]]:
    starts = np.searchsorted(line, np.arange(n + 1))
    return [list(zip(xs[a:b].tolist(), ys[a:b].tolist(), strict=True)) for a, b in zip(starts, starts[1:], strict=False)]


def test_slice_line_is_the_reference_line():
    rng = np.random.default_rng(3)
    x1, y1 = rng.integers(0, 40, 500), rng.integers(0, 40, 500)
    x2, y2 = x1 + rng.integers(0, 30, 500), y1 + rng.integers(0, 30, 500)
    for i, points in enumerate(_points(*slice_lines(x1, y1, x2, y2), x1.size)):
        assert points == _c_line(int(x1[i]), int(y1[i]), int(x2[i]), int(y2[i]))


def test_slice_lines_are_each_slice_line():
    """The lines made together (as nirspec_fov makes every slice's of a tile) are each the reference's
    line: steep, flat, vertical, horizontal, single points and lines leaving the plane."""
    rng = np.random.default_rng(4)
    x1, y1 = rng.integers(-5, 40, 2000), rng.integers(-5, 40, 2000)
    x2, y2 = x1 + rng.integers(0, 30, 2000), y1 + rng.integers(0, 30, 2000)
    x2[:200], y2[200:400], x2[400:450], y2[400:450] = x1[:200], y1[200:400], x1[400:450], y1[400:450]
    for i, points in enumerate(_points(*slice_lines(x1, y1, x2, y2), x1.size)):
        assert points == _c_line(int(x1[i]), int(y1[i]), int(x2[i]), int(y2[i]))


def test_marked_slice_lines_are_the_slice_lines_points():
    """The compiled marking ORs the flag on exactly the points slice_lines lists (their flat index in
    the plane, the others dropped), each line in its own plane, leaving other bits alone."""
    from spec3c._core.cube import mark_slice_lines

    rng = np.random.default_rng(5)
    n, planes, ny, nx = 3000, 4, 23, 31
    x1, y1 = rng.integers(-8, 40, n), rng.integers(-8, 30, n)
    x2, y2 = x1 + rng.integers(0, 30, n), y1 + rng.integers(0, 30, n)
    x2[:300], y2[300:600], x2[600:650], y2[600:650] = x1[:300], y1[300:600], x1[600:650], y1[600:650]
    plane = rng.integers(0, planes, n)
    got = np.full((planes, ny, nx), 8, np.uint32)
    mark_slice_lines(got, plane, x1, y1, x2, y2, 4)
    line, xs, ys = slice_lines(x1, y1, x2, y2)
    index = ys * nx + xs
    inside = (index >= 0) & (index < ny * nx)
    expected = np.full((planes, ny * nx), 8, np.uint32)
    expected[plane[line[inside]], index[inside]] |= np.uint32(4)
    np.testing.assert_array_equal(got.reshape(planes, -1), expected)
    assert (got == 12).sum() > 1000
    with pytest.raises(ValueError, match="minima to their maxima"):
        mark_slice_lines(got, plane[:1], x2[:1] + 1, y1[:1], x1[:1], y2[:1], 4)
    with pytest.raises(ValueError, match="within the 4 planes"):
        mark_slice_lines(got, np.array([4]), x1[:1], y1[:1], x2[:1], y2[:1], 4)


def test_slice_extents_are_the_min_and_max_over_each_plane_and_slice():
    """The kernel's extents equal numpy's minimum/maximum.at over every (pixel, plane within roiw)
    pair: NaN coordinates win, non-finite waves and slices outside 1-30 are skipped, the planes are
    those of the tile."""
    from spec3c._core.cube import slice_extents

    rng = np.random.default_rng(11)
    z = np.linspace(1.0, 2.0, 120)
    n, roiw, p0, p1 = 2000, 0.02, 17, 95
    wave, xi, eta = rng.uniform(0.95, 2.05, n), rng.normal(0, 1, n), rng.normal(0, 1, n)
    sl = rng.integers(-2, 33, n)
    wave[:20] = np.nan
    wave[20:25], sl[20:25], xi[20:25] = z[50], 5, np.nan  # in the tile: their NaN wins
    got = slice_extents(z, (p0, p1), xi, eta, wave, sl, roiw, (1e4, -1e4))
    pix, plane = np.nonzero(np.abs(z[None, :] - wave[:, None]) < roiw)
    ok = (plane >= p0) & (plane < p1) & (sl[pix] >= 1) & (sl[pix] <= 30)
    key = (plane[ok] - p0) * 30 + sl[pix[ok]] - 1
    expected = [np.full((p1 - p0) * 30, v) for v in (1e4, 1e4, -1e4, -1e4)]
    with np.errstate(invalid="ignore"):
        np.minimum.at(expected[0], key, xi[pix[ok]])
        np.minimum.at(expected[1], key, eta[pix[ok]])
        np.maximum.at(expected[2], key, xi[pix[ok]])
        np.maximum.at(expected[3], key, eta[pix[ok]])
    for mine, theirs in zip(got, expected, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert np.isnan(got.c1min).any() and (got.c1min == 1e4).any()


def test_nirspec_fov_flags_the_slice_lines():
    from spec3c._core.cube import FOV_PARTIAL, CubeGrid

    xc = np.arange(-5, 6) * 0.1
    grid = CubeGrid(xc, xc, np.array([1.0, 1.1, 1.2]), 0.1, 0.1)
    out = np.zeros((3, 11, 11), np.uint32)
    # one slice: pixels along a line at plane 1 only (roiw 0.04 keeps the other planes out)
    xi = np.linspace(-0.31, 0.29, 20)
    nirspec_fov(grid, (0, 3), xi, xi * 0.5, np.full(20, 1.1), np.full(20, 7), 0.04, out)
    assert out[0].sum() == 0 and out[2].sum() == 0
    ys, xs = np.nonzero(out[1])
    assert set(np.unique(out[1])) == {0, FOV_PARTIAL}
    assert (xs.min(), xs.max()) == (int((np.float32(-0.31) - np.float32(-0.5)) / 0.1), int((np.float32(0.29) + 0.5) / 0.1))


def _band(spaxel=0.13, step=0.001, rois=0.1, **kw):
    values = {"wavemin": 4.9, "wavemax": 5.7, "rois": rois, "roiw": 0.002, "power": 2.0, "softrad": 0.01,
              "scalerad": 0.1, **kw}
    return BandPars(spaxel, step, **values)


def test_cube_setup_rules():
    one = cube_setup([_band()], CubeRequest(weighting="msm"), n_files=4)
    assert (one.spatial_size, one.spectral_size, one.rois, one.weight_power) == (0.13, 0.001, 0.1, 2.0)
    few = cube_setup([_band()], CubeRequest(weighting="msm"), n_files=2)
    assert few.rois == pytest.approx(0.15)  # ROIs assume 4 dithers
    assert cube_setup([_band()], CubeRequest(weighting="emsm"), n_files=2).rois == 0.1  # not for EMSM
    two = cube_setup([_band(0.17, wavemin=7.5, wavemax=8.7), _band()], CubeRequest(scalew=0.002), n_files=8)
    assert (two.spatial_size, two.spectral_size, two.wavemin, two.wavemax) == (0.13, 0.002, 4.9, 8.7)
    user = cube_setup([_band()], CubeRequest(scalexy=0.2, wavemin=5.0, wavemax=5.1, weight_power=0), n_files=4)
    assert (user.spatial_size, user.wavemin, user.wavemax, user.weight_power) == (0.2, 5.0, 5.1, 2.0)
    with pytest.raises(ValueError, match="different CUBEPAR spectral steps"):
        cube_setup([_band(step=0.001), _band(step=0.002)], CubeRequest(), n_files=4)
    with pytest.raises(ValueError, match="softrad"):
        cube_setup([_band(softrad=float("nan"))], CubeRequest(weighting="msm"), n_files=4)


def test_non_linear_cube_takes_the_table():
    wave = np.linspace(4.0, 6.0, 21)
    table = WaveTable(wave, np.full(21, 0.1), np.full(21, 0.003), np.full(21, 2.0), np.full(21, 0.01), np.full(21, 0.1))
    setup = cube_setup([_band(wavemin=4.97, wavemax=5.63)], CubeRequest(linear_wave=False, weighting="msm"),
                       n_files=2, table=table)
    assert not setup.linear and setup.spectral_size is None
    np.testing.assert_allclose(setup.table.wavelength, wave[9:18])  # nearest entries, widened past the limits
    np.testing.assert_allclose(setup.rois, 0.15)  # table ROIs x 1.5 below 4 files


def test_tangent_plane_matches_a_gnomonic_projection():
    ra0, dec0 = 80.5, -69.5
    ra = ra0 + np.array([0.0, 1e-3, -2e-3])
    dec = dec0 + np.array([0.0, 5e-4, 1e-3])
    xi, eta = radec_to_std(ra0, dec0, ra, dec)
    x, y = (am.RotateCelestial2Native(ra0, dec0, 180.0) | am.Sky2Pix_TAN())(ra, dec)
    np.testing.assert_allclose(xi, -x * 3600, atol=1e-9)
    np.testing.assert_allclose(eta, y * 3600, atol=1e-9)
    rxi, reta = radec_to_std(ra0, dec0, ra, dec, 30.0)
    np.testing.assert_allclose(np.hypot(rxi, reta), np.hypot(xi, eta), atol=1e-12)


def test_tangent_plane_keeps_the_input_shape():
    xi, eta = sky_to_tangent(np.float64(80.501), np.float64(-69.5), 80.5, -69.5)
    assert np.shape(xi) == np.shape(eta) == ()
    xi2, _ = sky_to_tangent(np.full((2, 3), 80.501), np.full((2, 3), -69.5), 80.5, -69.5)
    assert xi2.shape == (2, 3) and np.all(xi2 == xi)


@pytest.mark.parametrize("rot_angle", [None, 37.5])
def test_corners_projected_from_offsets_have_the_bits_of_the_corners_projected(rot_angle):
    rng = np.random.default_rng(4)
    shape = (6, 7)
    offsets = [rng.normal(0.0, 0.1, shape).astype(np.float32) for _ in range(8)]
    index = np.array([3, 0, 41, 17, 17, 8])
    ra = 80.5 + rng.normal(0.0, 1e-3, index.size)
    dec = -69.5 + rng.normal(0.0, 1e-3, index.size)
    reach = np.array([True, True, False, True, True, False])
    xi, eta = corners_to_tangent(ra, dec, index, offsets, 80.5, -69.5, rot_angle, reach)
    assert xi.shape == eta.shape == (6, 4)
    for c in range(4):
        cra = ra + offsets[2 * c].reshape(-1)[index].astype(np.float64) / 3600.0
        cdec = dec + offsets[2 * c + 1].reshape(-1)[index].astype(np.float64) / 3600.0
        want_xi, want_eta = sky_to_tangent(cra, cdec, 80.5, -69.5, rot_angle)
        assert np.array_equal(xi[reach, c], want_xi[reach]) and np.array_equal(eta[reach, c], want_eta[reach])
    assert np.isnan(xi[~reach]).all() and np.isnan(eta[~reach]).all()
    every, _ = corners_to_tangent(ra, dec, index, offsets, 80.5, -69.5, rot_angle)
    assert np.array_equal(every[reach], xi[reach]) and np.isfinite(every).all()


def test_corners_to_tangent_rejects_bad_offsets():
    offsets = [np.zeros((2, 2), np.float32)] * 8
    with pytest.raises(ValueError, match="8 planes"):
        corners_to_tangent(np.zeros(1), np.zeros(1), np.zeros(1, int), offsets[:6], 0.0, 0.0)
    with pytest.raises(ValueError, match="float32"):
        corners_to_tangent(np.zeros(1), np.zeros(1), np.zeros(1, int), [np.zeros((2, 2))] * 8, 0.0, 0.0)
    with pytest.raises(ValueError, match="index out"):
        corners_to_tangent(np.zeros(1), np.zeros(1), np.array([4]), offsets, 0.0, 0.0)


def test_sky_geometry_and_wrap():
    assert wrap_ra(np.array([359.9, 359.8, 0.1, np.nan])).tolist() == pytest.approx([359.9, 359.8, 360.1])
    corners_ra = np.array([80.499, 80.501, 80.499, 80.501])
    corners_dec = np.array([-69.5005, -69.5005, -69.4995, -69.4995])
    setup = cube_setup([_band(step=0.01)], CubeRequest(), n_files=4)
    frame = sky_geometry(corners_ra, corners_dec, setup)
    assert frame.crval1 == pytest.approx(80.5) and frame.crval2 == pytest.approx(-69.5)
    nz, ny, nx = frame.geometry.grid.shape
    assert nx % 2 == ny % 2 == 1 and nz == 80
    half = 0.001 * math.cos(math.radians(69.5)) * 3600
    assert (nx // 2 - 1) * 0.13 <= half + 0.13 and nx // 2 == math.ceil(half / 0.13) + 1


def test_slicer_geometry_one_column_per_slice():
    frame = slicer_geometry([-1.5e-3, 1.4e-3, 0.0, 0.0], [-14.5e-3, 14.5e-3, 0.0, 0.0], 3.0, 3.1, 0.002, 30)
    nz, ny, nx = frame.grid.shape
    assert nx in (30, 31) and frame.grid.cdelt2 == pytest.approx(frame.grid.cdelt1 / 2) and nz in (50, 51)
    assert frame.crval1 == pytest.approx(-14.5e-3)  # 30 columns of 29/30 pitch centred on the slices
