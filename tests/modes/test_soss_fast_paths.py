"""NIRISS SOSS fast paths give exactly what the plain numpy expressions give."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from spec3c.modes.soss import atoca_kernel
from spec3c.modes.soss.atoca_kernel import ResolutionKernel
from spec3c.modes.soss.box import median_over_time


@pytest.mark.parametrize("nints", [1, 2, 7, 100])
def test_median_over_time_is_nanmedian(nints):
    rng = np.random.default_rng(nints)
    cube = rng.normal(size=(nints, 24, 40)).astype(np.float32)
    cube[rng.random(cube.shape) < 0.02] = np.nan
    cube[:, 3, 4] = np.nan  # bad in every integration
    cube[:, 5, 6] = np.inf
    cube[0, 7, 8], cube[-1, 7, 8] = -np.inf, np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmedian(cube, axis=0)
    got = median_over_time(cube)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def _widened_one_offset_at_a_time(fct, grid, i_a, i_b, thresh):
    """The reference's widening loop: one offset per call, rows [left_h .. centre .. right_h]."""
    centres = np.arange(i_a, i_b)

    def wing(offset):
        nodes = centres + offset
        inside = (nodes >= 0) & (nodes < grid.size)
        out = np.zeros(centres.size)
        out[inside] = fct(grid[nodes[inside]], grid[centres[inside]])
        return out

    rows, half = [fct(grid, grid)[i_a:i_b]], 0
    while True:
        half += 1
        left, right = wing(-half), wing(half)
        if (left < thresh).all() and (right < thresh).all():
            return np.vstack(rows)
        left[left < thresh] = 0.0
        right[right < thresh] = 0.0
        rows = [left, *rows, right]


@pytest.mark.parametrize("width", [0.004, 0.02, 0.05])
@pytest.mark.parametrize("batch", [1, 5, 32])
def test_kernel_widened_in_batches_of_offsets_is_widened_one_at_a_time(monkeypatch, width, batch):
    """Wings evaluated a batch of offsets per call: the same rows, bit for bit, stopping at the same
    width (kernels narrower and wider than a batch, and one reaching the grid's end)."""
    grid = np.cumsum(np.random.default_rng(4).uniform(0.0005, 0.0015, 400)) + 1.0

    def fct(wave, wave_c):
        return np.exp(-0.5 * ((wave - wave_c) / (width * wave_c)) ** 2)

    monkeypatch.setattr(atoca_kernel, "_OFFSET_BATCH", batch)
    expected = _widened_one_offset_at_a_time(fct, grid, 20, 380, 1e-5)
    got = atoca_kernel._compact_kernel(fct, grid, 20, 380, 1e-5)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got.view(np.int64), expected.view(np.int64))


def test_kernel_is_zero_beyond_its_pixels_and_the_spline_inside():
    """Evaluated only within its pixels, the kernel equals the spline (clipped) there and 0 elsewhere."""
    n_pix, n_sub = 11, 45
    trace = np.linspace(0.9, 2.1, 601)
    centres = trace[50:551:50]  # on the trace: each kernel's nearest trace wavelength is its centre
    pixels = np.linspace(-(n_pix // 2), n_pix // 2, n_sub)
    kernels = np.exp(-0.5 * (pixels[:, None] / (1.0 + centres[None, :])) ** 2)
    wave_kernels = np.vstack([centres, np.tile(pixels[1:, None], (1, centres.size))])
    kernel = ResolutionKernel(wave_kernels, kernels, trace, n_pix)
    rng = np.random.default_rng(3)
    wave_c = rng.uniform(1.05, 1.95, 5000)
    wave = wave_c + rng.normal(0, 0.03, wave_c.size)
    got = kernel(wave, wave_c)
    i = np.clip(np.searchsorted(kernel.wave_center, wave_c) - 1, 0, len(kernel.wave_center) - 2)
    step = kernel.wave_center[i + 1] - kernel.wave_center[i]
    a_c, b_c = (kernel.wave_center[i + 1] - wave_c) / step, (wave_c - kernel.wave_center[i]) / step
    pix = (wave - (a_c * kernel.poly[i, 1] + b_c * kernel.poly[i + 1, 1])) / (
        a_c * kernel.poly[i, 0] + b_c * kernel.poly[i + 1, 0])
    expected = np.clip(kernel._spline(pix, wave_c, grid=False), kernel.min_value, None)
    expected[np.abs(pix) > n_pix // 2] = 0
    outside = np.abs(pix) > n_pix // 2
    assert outside.any() and (~outside).any()
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("backend", ["tiledb", "hdf5"])
def test_cube_read_from_stacked_and_from_per_integration_planes(tmp_path, backend):
    """SOSS cubes are stored as (nints, ny, nx) images; a store written before that layout (one
    image per plane and integration) gives the same cubes."""
    from spec3c.modes.soss.process import _cube  # noqa: PLC0415
    from spec3c.modes.soss.reader import PLANES, plane_name  # noqa: PLC0415
    from spec3c.store import create_store  # noqa: PLC0415
    from spec3c.testing.store import make_record  # noqa: PLC0415

    rng = np.random.default_rng(1)
    cubes = {p: (rng.normal(size=(4, 8, 32)) * 50).astype(dt) for p, dt in PLANES.items()}
    per_integration = {plane_name(p, i): cubes[p][i] for p in PLANES for i in range(4)}
    with create_store(tmp_path / "store", backend) as store:
        store.commit_exposure(make_record("new"), [], images=cubes)
        store.commit_exposure(make_record("old"), [], images=per_integration)
        for name in ("new", "old"):
            got = _cube(store, store.get_exposure(name))
            assert sorted(got) == sorted(PLANES)
            for p in PLANES:
                np.testing.assert_array_equal(got[p], cubes[p])
                assert got[p].dtype == np.dtype(PLANES[p]) and got[p].shape == (4, 8, 32)
