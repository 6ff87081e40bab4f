"""Tests for spec3c._core.cube (IFU cube accumulation) against slow numpy references.

The references restate jwst 3.0.0 ``cube_build`` (``cube_match_sky_pointcloud.c``,
``cube_match_sky_driz.c``, ``ifu_cube.py``) in plain numpy / Python loops.  An
``oracle`` test also runs the reference's own C extensions from the jwst venv.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from polygon_reference import rect_overlap

from spec3c._core import CubeAccumulator, CubeGrid, CubeParams, CubePlanes
from spec3c._core.cube import (
    good_spaxel_counts,
    plane_widths,
    spectral_tear_planes,
    wipe_planes,
)
from spec3c.algorithms.cube_grid import (
    cube_geometry,
    linear_wavelengths,
    spatial_axis,
    table_range,
)

DTYPES = [">f4", "<f4", ">f8", "<f8"]
PARAM_NAMES = ("rois", "roiw", "weight_power", "softrad", "scalerad")
C1, C2 = 0.2, 0.25  # spaxel sizes (arcsec), deliberately unequal


# --------------------------------------------------------------------- inputs
def make_grid(nz: int = 12, *, linear: bool = True, nx: int = 9, ny: int = 7) -> CubeGrid:
    xc = (np.arange(nx) - nx // 2) * C1
    yc = (np.arange(ny) - ny // 2) * C2
    if linear:
        z = 5.0 + (np.arange(nz) + 0.5) * 0.01
    else:  # strongly varying widths: plane intervals overlap or leave gaps
        dz = 0.01 * (1.0 + 0.6 * np.sin(np.arange(nz) * 1.3))
        z = 5.0 + np.cumsum(dz)
    return CubeGrid(xc, yc, z, C1, C2, linear=linear)


def point_inputs(grid: CubeGrid, n: int, seed: int) -> dict[str, np.ndarray]:
    """Random pixel centres around (and a little beyond) the cube, with some bad pixels."""
    rng = np.random.default_rng(seed)
    z = grid.zcoord
    span_x = grid.xcoord[-1] + C1
    span_y = grid.ycoord[-1] + C2
    d = {
        "x": rng.uniform(-span_x, span_x, n),
        "y": rng.uniform(-span_y, span_y, n),
        "wavelength": rng.uniform(z[0] - 0.03, z[-1] + 0.03, n),
        "flux": rng.normal(10.0, 3.0, n),
        "err": rng.uniform(0.1, 1.0, n),
        "dq": rng.choice([0, 0, 0, 0, 0, 0, 1, 4, 512], n).astype(np.uint32),
    }
    d["flux"][rng.choice(n, n // 20, replace=False)] = np.nan
    return d


def footprint_inputs(grid: CubeGrid, n: int, seed: int) -> dict[str, np.ndarray]:
    """Random rotated-rectangle pixel footprints (corners in polygon order)."""
    rng = np.random.default_rng(seed)
    d = point_inputs(grid, n, seed)
    cx, cy = d.pop("x"), d.pop("y")
    half_w = rng.uniform(0.3, 0.8, n) * C1 / 2
    half_h = rng.uniform(0.6, 1.6, n) * C2 / 2
    th = rng.uniform(-0.4, 0.4, n)
    u = np.array([-1.0, 1.0, 1.0, -1.0])
    v = np.array([-1.0, -1.0, 1.0, 1.0])
    du, dv = u[None] * half_w[:, None], v[None] * half_h[:, None]
    d["x"] = cx[:, None] + du * np.cos(th)[:, None] - dv * np.sin(th)[:, None]
    d["y"] = cy[:, None] + du * np.sin(th)[:, None] + dv * np.cos(th)[:, None]
    d["dwave"] = rng.uniform(0.3, 1.5, n) * float(np.median(grid.cdelt3))
    d["dwave"][rng.choice(n, 2, replace=False)] = np.nan
    return d


def cast(d: dict[str, np.ndarray], dtype: str) -> dict[str, np.ndarray]:
    return {k: (v if k == "dq" else v.astype(dtype)) for k, v in d.items()}


def msm_params(nz: int, *, tables: bool = False) -> CubeParams:
    if not tables:
        return CubeParams("msm", rois=0.31, roiw=0.012, weight_power=2.0, softrad=0.01)
    j = np.arange(nz)
    return CubeParams(
        "msm", rois=0.25 + 0.01 * j, roiw=0.01 + 0.0005 * j, weight_power=1.5 + 0.1 * (j % 3),
        softrad=0.01 + 0.001 * j,
    )


def emsm_params(nz: int, *, tables: bool = False) -> CubeParams:
    if not tables:
        return CubeParams("emsm", rois=0.31, roiw=0.012, scalerad=0.1)
    j = np.arange(nz)
    return CubeParams("emsm", rois=0.25 + 0.01 * j, roiw=0.01 + 0.0005 * j, scalerad=0.08 + 0.002 * j)


def build(grid, params, inputs, *, planes=None, workers=1, fov=None):
    acc = CubeAccumulator(grid, params, planes=planes, workers=workers)
    for d in inputs:
        acc.add(d["x"], d["y"], d["wavelength"], d["flux"], d["err"], dq=d.get("dq"),
                dwave=d.get("dwave"))
    return acc, acc.finalize(fov)


def sums_of(acc: CubeAccumulator) -> tuple[np.ndarray, ...]:
    return acc.sum_flux, acc.sum_weight, acc.sum_var, acc.count


# ----------------------------------------------------------------- references
def ref_tables(params: CubeParams, nz: int) -> dict[str, np.ndarray]:
    return {k: np.broadcast_to(np.asarray(getattr(params, k), float), (nz,)) for k in PARAM_NAMES}


def ref_pointcloud(grid: CubeGrid, params: CubeParams, inputs, sums=None):
    """msm/emsm sums (``match_point_msm``/``match_point_emsm`` + pixel selection)."""
    nz, ny, nx = grid.shape
    xc, yc, z, dz = grid.xcoord, grid.ycoord, grid.zcoord, grid.cdelt3
    t = ref_tables(params, nz)
    sf, sw, sv, sc = sums if sums is not None else [np.zeros(grid.shape) for _ in range(4)]
    tol = t["roiw"].max()
    for d in inputs:
        for k in range(d["wavelength"].size):
            wk, fk, ek = (float(d[n][k]) for n in ("wavelength", "flux", "err"))
            xk, yk = float(d["x"][k]), float(d["y"][k])
            if not (z[0] - tol <= wk <= z[-1] + tol) or d["dq"][k] & 513 or not np.isfinite(fk):
                continue
            q = int(np.argmin(np.abs(z - wk)))
            rois, roiw = t["rois"][q], t["roiw"][q]
            xd, yd = np.abs(xc - xk)[None, :], np.abs(yc - yk)[:, None]
            inxy = (xd <= rois) & (yd <= rois) & (np.sqrt(xd**2 + yd**2) <= rois)
            inz = np.abs(z - wk) <= roiw
            r2 = ((wk - z) / dz)[:, None, None] ** 2 + ((xd / C1) ** 2 + (yd / C2) ** 2)[None]
            if params.weighting == "emsm":
                ww = np.exp(-r2 / (t["scalerad"][q] / C1))
            else:
                ww = 1.0 / np.maximum(np.sqrt(r2) ** t["weight_power"][q], t["softrad"][q])
            m = inz[:, None, None] & inxy[None]
            sf[m] += fk * ww[m]
            sw[m] += ww[m]
            sv[m] += (ek * ww[m]) ** 2
            sc[m] += 1
    return sf, sw, sv, sc


def ref_drizzle(grid: CubeGrid, inputs, sums=None):
    """3-D drizzle sums (``match_driz`` + ``map_detector_to_outputframe`` selection)."""
    xc, yc, z, dz = grid.xcoord, grid.ycoord, grid.zcoord, grid.cdelt3
    sf, sw, sv, sc = sums if sums is not None else [np.zeros(grid.shape) for _ in range(4)]
    for d in inputs:
        if grid.linear:
            tol = dz[0] + np.nanmax(d["dwave"])
            lo, hi = z[0] - tol, z[-1] + tol
        else:
            lo, hi = z[0] - dz[0], z[-1] + dz[-1]
        for k in range(d["wavelength"].size):
            wk, fk, ek, dwk = (float(d[n][k]) for n in ("wavelength", "flux", "err", "dwave"))
            if not (lo <= wk <= hi) or d["dq"][k] & 513 or not np.isfinite(fk) or np.isnan(dwk):
                continue
            poly = [(float(a), float(b)) for a, b in zip(d["x"][k], d["y"][k], strict=True)]
            px, py = d["x"][k].astype(float), d["y"][k].astype(float)
            for ix in np.flatnonzero((xc - C1 / 2 < px.max()) & (xc + C1 / 2 > px.min())):
                for iy in np.flatnonzero((yc - C2 / 2 < py.max()) & (yc + C2 / 2 > py.min())):
                    area = rect_overlap(poly, xc[ix] - C1 / 2, xc[ix] + C1 / 2,
                                        yc[iy] - C2 / 2, yc[iy] + C2 / 2)
                    for j in range(z.size):
                        if not abs(z[j] - wk) < dwk + dz[j]:
                            continue
                        ov = min(wk + dwk / 2, z[j] + dz[j] / 2) - max(wk - dwk / 2, z[j] - dz[j] / 2)
                        aw = area * max(ov, 0.0)
                        if aw > 0:
                            sf[j, iy, ix] += fk * aw
                            sw[j, iy, ix] += aw
                            sv[j, iy, ix] += (ek * aw) ** 2
                            sc[j, iy, ix] += 1
    return sf, sw, sv, sc


def ref_finalize(sums, fov=None) -> CubePlanes:
    """``find_spaxel_flux`` + ``set_final_dq_flags`` + NaN/sqrt of the product."""
    sf, sw, sv, sc = (np.array(a, dtype=float) for a in sums)
    nz, ny, nx = sf.shape
    good = sc > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        sf[good] = sf[good] / sw[good]
        sv[good] = sv[good] / (sw[good] * sw[good])
    dq = np.zeros(sf.shape, np.uint32) if fov is None else np.asarray(fov, np.uint32) & 6
    dq[sw > 0] = 4
    dq[dq == 0] = 513
    dq[(dq & 2) != 0] = 0
    dq[(dq & 4) != 0] = 0
    dq[(dq == 0) & (sw == 0)] = 1
    flat = dq.reshape(-1)
    for idx in np.flatnonzero(flat == 1):
        iw, rem = divmod(int(idx), ny * nx)
        yr, xr = divmod(rem, nx)
        if yr in (0, ny - 1) or xr in (0, nx - 1):
            flat[idx] = 513
            continue
        for xn, yn in ((xr - 1, yr), (xr + 1, yr), (xr, yr - 1), (xr, yr + 1)):
            if 0 < xn < nx and 0 < yn < ny and flat[iw * ny * nx + yn * nx + xn] & 512:
                flat[idx] = 513
                break
    dnu = (dq & 1) != 0
    sf[dnu] = np.nan
    sv[dnu] = np.nan
    with np.errstate(invalid="ignore"):
        err = np.sqrt(sv)
    return CubePlanes(sf.astype(np.float32), err.astype(np.float32), dq, sc.astype(np.float32))


def assert_planes_equal(a: CubePlanes, b: CubePlanes, rtol: float = 0.0) -> None:
    np.testing.assert_array_equal(a.dq, b.dq)
    np.testing.assert_array_equal(a.wmap, b.wmap)
    if rtol == 0.0:
        np.testing.assert_array_equal(a.flux, b.flux)
        np.testing.assert_array_equal(a.err, b.err)
    else:
        np.testing.assert_allclose(a.flux, b.flux, rtol=rtol, equal_nan=True)
        np.testing.assert_allclose(a.err, b.err, rtol=rtol, equal_nan=True)


def assert_sums_close(got, want, rtol: float, atol_frac: float | None = None) -> None:
    """Sums agree to ``rtol`` (plus ``atol_frac`` × the largest value); counts exactly."""
    names = ("sum_flux", "sum_weight", "sum_var", "count")
    frac = rtol * 1e-3 if atol_frac is None else atol_frac
    for name, g, w in zip(names, got, want, strict=True):
        scale = float(np.max(np.abs(w))) or 1.0
        np.testing.assert_allclose(g, w, rtol=rtol, atol=frac * scale, err_msg=name)
    np.testing.assert_array_equal(got[3], want[3])


# ----------------------------------------------------------- point cloud
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make_params", [msm_params, emsm_params], ids=["msm", "emsm"])
def test_pointcloud_matches_reference(dtype, make_params):
    grid = make_grid()
    params = make_params(grid.shape[0])
    inputs = [cast(point_inputs(grid, 150, seed), dtype) for seed in (1, 2)]
    acc, cube = build(grid, params, inputs)
    want = ref_pointcloud(grid, params, inputs)
    assert_sums_close(sums_of(acc), want, rtol=1e-12)
    assert want[3].sum() > 500  # the test exercises real overlaps
    assert_planes_equal(cube, ref_finalize(sums_of(acc)))
    assert_planes_equal(cube, ref_finalize(want), rtol=1e-6)


@pytest.mark.parametrize("make_params", [msm_params, emsm_params], ids=["msm", "emsm"])
def test_pointcloud_nonlinear_tables(make_params):
    """Per-plane ROI/power tables: each pixel takes its nearest plane's values."""
    grid = make_grid(15, linear=False)
    params = make_params(15, tables=True)
    inputs = [point_inputs(grid, 200, 7)]
    acc, _ = build(grid, params, inputs)
    assert_sums_close(sums_of(acc), ref_pointcloud(grid, params, inputs), rtol=1e-12)


def test_msm_weight_values():
    """One pixel on a spaxel centre: w = 1/max(r**p, softrad) with scaled distances."""
    grid = make_grid(4)
    params = CubeParams("msm", rois=0.3, roiw=0.015, weight_power=2.0, softrad=0.01)
    x, y, w = grid.xcoord[4], grid.ycoord[3], grid.zcoord[1]
    acc = CubeAccumulator(grid, params)
    acc.add([x], [y], [w], [2.0], [0.5])
    assert acc.sum_weight[1, 3, 4] == pytest.approx(1 / 0.01)  # r = 0 -> softrad
    r2 = (C1 / C1) ** 2  # neighbour along x, same plane
    assert acc.sum_weight[1, 3, 5] == pytest.approx(1 / r2)
    r2 = 1.0 + (0.01 / grid.cdelt3[2]) ** 2  # neighbour along x, next plane
    assert acc.sum_weight[2, 3, 5] == pytest.approx(1 / r2)
    assert acc.sum_weight[1, 3, 6] == 0  # 0.4 arcsec > rois
    assert acc.sum_weight[3].sum() == 0  # 0.02 um > roiw
    cube = acc.finalize()
    assert np.nanmax(cube.flux) == pytest.approx(2.0) and np.nanmin(cube.flux) == pytest.approx(2.0)
    assert cube.err[1, 3, 4] == pytest.approx(0.5)


def test_emsm_weight_values():
    grid = make_grid(4)
    params = CubeParams("emsm", rois=0.3, roiw=0.015, scalerad=0.1)
    acc = CubeAccumulator(grid, params)
    acc.add([grid.xcoord[4]], [grid.ycoord[3]], [grid.zcoord[1]], [1.0], [1.0])
    assert acc.sum_weight[1, 3, 4] == pytest.approx(1.0)
    assert acc.sum_weight[1, 3, 5] == pytest.approx(np.exp(-1.0 / (0.1 / C1)))
    assert acc.sum_weight[1, 4, 4] == pytest.approx(np.exp(-1.0 / (0.1 / C1)))


# ----------------------------------------------------------------- drizzle
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("linear", [True, False], ids=["linear", "table"])
def test_drizzle_matches_reference(dtype, linear):
    grid = make_grid(12, linear=linear)
    inputs = [cast(footprint_inputs(grid, 120, seed), dtype) for seed in (3, 4)]
    acc, cube = build(grid, CubeParams("drizzle"), inputs)
    want = ref_drizzle(grid, inputs)
    assert_sums_close(sums_of(acc), want, rtol=1e-10)
    assert want[3].sum() > 500
    assert_planes_equal(cube, ref_finalize(sums_of(acc)))


def polygon_area(px: np.ndarray, py: np.ndarray) -> np.ndarray:
    return 0.5 * np.abs(np.sum(px * np.roll(py, -1, axis=1) - np.roll(px, -1, axis=1) * py, axis=1))


def test_drizzle_conserves_flux():
    """Footprints fully inside the cube: Σ voxel f·w = Σ_k f_k · area_k · dλ_k.

    (Linear axis only: a table's planes ``z_j ± dz_j/2`` overlap or leave gaps.)
    """
    grid = make_grid(20)
    d = footprint_inputs(grid, 300, 11)
    rng = np.random.default_rng(5)
    z = grid.zcoord
    inner = (np.abs(d["x"]).max(axis=1) < 0.6) & (np.abs(d["y"]).max(axis=1) < 0.5)
    d = {k: v[inner] for k, v in d.items()}
    n = d["flux"].size
    d["wavelength"] = rng.uniform(z[2], z[-3], n)
    d["flux"] = rng.normal(5.0, 1.0, n)
    d["dwave"] = rng.uniform(0.2, 0.9, n) * grid.cdelt3.min()
    d["dq"] = np.zeros(n, np.uint32)
    acc, _ = build(grid, CubeParams("drizzle"), [d])
    w = polygon_area(d["x"], d["y"]) * d["dwave"]
    assert acc.sum_weight.sum() == pytest.approx(w.sum(), rel=1e-9)
    assert acc.sum_flux.sum() == pytest.approx((d["flux"] * w).sum(), rel=1e-9)
    # a flat field stays flat
    d["flux"] = np.full(n, 3.5)
    _, flat = build(grid, CubeParams("drizzle"), [d])
    good = flat.dq == 0
    assert good.sum() > 100
    np.testing.assert_allclose(flat.flux[good], 3.5, rtol=1e-6)


def test_drizzle_nonlinear_window_drops_edge_pixels():
    """Table cubes drop pixels beyond one plane width of the ends, even if they overlap."""
    corners_x = np.array([[-0.05, 0.05, 0.05, -0.05]])
    corners_y = np.array([[-0.05, -0.05, 0.05, 0.05]])
    for linear, expect in ((True, 1), (False, 0)):
        grid = make_grid(6, linear=linear)
        z0, dz0 = grid.zcoord[0], grid.cdelt3[0]
        acc = CubeAccumulator(grid, CubeParams("drizzle"))
        n = acc.add(corners_x, corners_y, [z0 - 1.2 * dz0], [1.0], [1.0], dwave=[2 * dz0])
        assert n == expect
        assert (acc.count.sum() > 0) == bool(expect)


# ------------------------------------------------------- tiles and threads
def all_cases():
    grid_l, grid_t = make_grid(31), make_grid(31, linear=False)
    yield "msm", grid_l, msm_params(31), [point_inputs(grid_l, 300, s) for s in (1, 2)]
    yield "emsm", grid_t, emsm_params(31, tables=True), [point_inputs(grid_t, 300, 3)]
    yield "drizzle", grid_l, CubeParams("drizzle"), [footprint_inputs(grid_l, 300, s) for s in (4, 5)]
    yield "drizzle-table", grid_t, CubeParams("drizzle"), [footprint_inputs(grid_t, 300, 6)]


CASES = {name: (g, p, i) for name, g, p, i in all_cases()}


def random_fov(shape, seed=0):
    return np.random.default_rng(seed).choice([0, 2, 4, 6], size=shape).astype(np.uint32)


@pytest.mark.parametrize("case", sorted(CASES))
def test_tiles_equal_whole_cube(case):
    grid, params, inputs = CASES[case]
    fov = random_fov(grid.shape)
    whole, cube = build(grid, params, inputs, workers=2, fov=fov)
    edges = [0, 1, 9, 10, 22, grid.shape[0]]
    parts = []
    for p0, p1 in zip(edges[:-1], edges[1:], strict=True):
        acc = CubeAccumulator(grid, params, planes=(p0, p1), workers=2)
        for d in inputs:  # only the pixels that can reach the tile
            keep = acc.touches(d["wavelength"], d.get("dwave"))
            acc.add(d["x"][keep], d["y"][keep], d["wavelength"][keep], d["flux"][keep],
                    d["err"][keep], dq=d["dq"][keep],
                    dwave=None if "dwave" not in d else d["dwave"][keep])
        for a, b in zip(sums_of(acc), sums_of(whole), strict=True):
            np.testing.assert_array_equal(a, b[p0:p1])
        parts.append(acc.finalize(fov[p0:p1]))
    tiled = CubePlanes(*(np.concatenate(x) for x in zip(*parts, strict=True)))
    assert_planes_equal(tiled, cube)


@pytest.mark.parametrize("case", sorted(CASES))
def test_threads_identical(case):
    grid, params, inputs = CASES[case]
    one, cube1 = build(grid, params, inputs, workers=1)
    two, cube2 = build(grid, params, inputs, workers=2)
    for a, b in zip(sums_of(one), sums_of(two), strict=True):
        np.testing.assert_array_equal(a, b)
    assert_planes_equal(cube1, cube2)
    assert one.count.sum() > 1000


@pytest.mark.parametrize("weighting", ["msm", "drizzle"])
def test_blocked_serial_equals_plane_by_plane(weighting):
    """A wide cube is processed in cache-sized plane blocks even on one thread;
    one-plane tiles run unblocked: both give the same bits."""
    grid = make_grid(24, nx=41, ny=41)  # 41*41*32 B per plane: several planes per block
    if weighting == "msm":
        params, inputs = msm_params(24), [point_inputs(grid, 4000, 8)]
    else:
        params, inputs = CubeParams("drizzle"), [footprint_inputs(grid, 4000, 8)]
    whole, _ = build(grid, params, inputs, workers=1)
    for p0 in range(grid.shape[0]):
        tile, _ = build(grid, params, inputs, planes=(p0, p0 + 1), workers=1)
        for a, b in zip(sums_of(tile), sums_of(whole), strict=True):
            np.testing.assert_array_equal(a, b[p0:p0 + 1])
    assert whole.count.sum() > 5000


def test_concurrent_python_threads():
    """Kernels release the GIL and keep no global state."""
    jobs = [CASES[name] for name in sorted(CASES)] * 2

    def run(job):
        grid, params, inputs = job
        return build(grid, params, inputs, workers=2)[1]

    serial = [run(j) for j in jobs]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(run, jobs))
    for a, b in zip(serial, threaded, strict=True):
        assert_planes_equal(a, b)


def test_accumulates_across_adds():
    """Several add() calls sum like one call with all pixels (up to rounding)."""
    grid, params, inputs = CASES["drizzle"]
    acc, _ = build(grid, params, inputs)
    merged = {k: np.concatenate([d[k] for d in inputs]) for k in inputs[0]}
    one, _ = build(grid, params, [merged])
    np.testing.assert_array_equal(acc.count, one.count)
    np.testing.assert_allclose(acc.sum_flux, one.sum_flux, rtol=1e-12)
    assert acc.n_inputs == 2


# ----------------------------------------------------------------- DQ
def test_finalize_dq_matches_reference():
    """Holes, edges and the in-place neighbour rule on random sums and FOV flags."""
    grid = make_grid(6, nx=11, ny=9)
    acc = CubeAccumulator(grid, CubeParams("drizzle"))
    rng = np.random.default_rng(9)
    shape = grid.shape
    hit = rng.random(shape) < 0.5
    acc.count[hit] = rng.integers(1, 5, hit.sum())
    acc.sum_weight[hit] = rng.uniform(0.1, 2.0, hit.sum())
    acc.sum_flux[hit] = rng.normal(0, 3, hit.sum())
    acc.sum_var[hit] = rng.uniform(0.0, 1.0, hit.sum())
    acc.sum_weight[hit & (rng.random(shape) < 0.05)] = 0.0  # EMSM underflow: count > 0, w = 0
    fov = random_fov(shape, 1)
    fov[rng.random(shape) < 0.25] = 0
    for f in (None, fov):
        got = acc.finalize(f)
        want = ref_finalize(sums_of(acc), f)
        assert_planes_equal(got, want)
    assert (got.dq == 1).sum() > 5 and (got.dq == 513).sum() > 5  # both kinds occur


def test_finalize_empty_cube():
    grid = make_grid(3)
    cube = CubeAccumulator(grid, CubeParams("msm", rois=0.3, roiw=0.01, softrad=0.01)).finalize()
    assert cube.flux.dtype == np.float32 and cube.dq.dtype == np.uint32
    assert np.all(cube.dq == 513) and np.all(np.isnan(cube.flux)) and np.all(cube.wmap == 0)


def test_dq_input_and_bad_pixels_are_skipped():
    grid = make_grid(4)
    acc = CubeAccumulator(grid, CubeParams("msm", rois=0.3, roiw=0.015, softrad=0.01))
    x, y, w = np.zeros(4), np.zeros(4), np.full(4, grid.zcoord[1])
    n = acc.add(x, y, w, [1.0, np.nan, 1.0, 1.0], np.ones(4), dq=[0, 0, 1, 512])
    assert n == 1
    x[0] = np.nan
    assert acc.add(x, y, w, np.ones(4), np.ones(4)) == 3
    empty = np.zeros(0)
    assert acc.add(empty, empty, empty, empty, empty) == 0
    driz = CubeAccumulator(grid, CubeParams("drizzle"))
    assert driz.add(np.zeros((0, 4)), np.zeros((0, 4)), empty, empty, empty, dwave=empty) == 0
    assert driz.n_inputs == 1 and driz.count.sum() == 0


def test_spectral_tear_helpers():
    dq = np.zeros((40, 3, 3), np.uint32)
    dq[5, :2] = 513  # 3 good spaxels left
    dq[7] = 513  # empty plane: not a tear
    ngood = good_spaxel_counts(dq)
    assert ngood[5] == 3 and ngood[7] == 0 and ngood[0] == 9
    tears = spectral_tear_planes(ngood)
    np.testing.assert_array_equal(tears, [5])
    cube = CubePlanes(np.ones(dq.shape, np.float32), np.ones(dq.shape, np.float32), dq,
                      np.ones(dq.shape, np.float32))
    wipe_planes(cube, tears + 10, offset=10)
    assert np.all(cube.dq[5] == 513) and np.all(np.isnan(cube.flux[5])) and np.all(cube.wmap[5] == 0)
    assert np.all(cube.flux[4] == 1)
    assert spectral_tear_planes(np.zeros(4)).size == 0


# ----------------------------------------------------------------- grid helper
def test_spatial_axis():
    xc = spatial_axis(0.95, 0.2)
    assert xc.size == 13 and xc[6] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(np.diff(xc), 0.2)
    assert spatial_axis(0.95, 0.2, nspax=7).size == 7


def test_linear_wavelengths_and_widths():
    z = linear_wavelengths(5.0, 5.5, 0.125)
    np.testing.assert_allclose(z, [5.0625, 5.1875, 5.3125, 5.4375])
    np.testing.assert_allclose(plane_widths(z), 0.125)
    np.testing.assert_allclose(plane_widths([1.0, 2.0, 4.0]), [1.0, 2.0, 2.0])


def test_table_range():
    t = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert table_range(t, 3.2, 4.7) == slice(2, 5)
    assert table_range(t, 2.6, 5.0) == slice(1, 5)  # nearest 3.0 (index 2) is above 2.6
    assert table_range(t, 1.6, 9.0) == slice(1, 6)  # index 1 is not widened (reference rule)


def test_cube_geometry():
    geo = cube_geometry(0.55, 0.3, 0.2, 0.25, lambda_range=(5.0, 5.5), cdelt3=0.125)
    assert geo.grid.shape == (4, 7, 9)  # n = ceil(limit / cdelt) + 1 each side
    assert (geo.crpix1, geo.crpix2, geo.crpix3) == (5.0, 4.0, 1.0)
    assert geo.crval3 == pytest.approx(5.0625) and geo.cdelt3 == 0.125
    table = cube_geometry(0.55, 0.3, 0.2, 0.25, wavelength_table=[5.0, 5.1, 5.3])
    assert table.grid.shape == (3, 7, 9) and not table.grid.linear and table.cdelt3 is None
    with pytest.raises(ValueError, match="lambda_range"):
        cube_geometry(0.5, 0.5, 0.2, 0.2)


# ----------------------------------------------------------------- bad input
def test_bad_grid():
    x, y, z = np.arange(3) * 0.2, np.arange(3) * 0.2, np.array([1.0, 1.1, 1.2])
    with pytest.raises(ValueError, match="zcoord must be strictly increasing"):
        CubeGrid(x, y, z[::-1], 0.2, 0.2)
    with pytest.raises(ValueError, match="xcoord must be uniformly spaced by cdelt1"):
        CubeGrid([0.0, 0.2, 0.5], y, z, 0.2, 0.2)
    with pytest.raises(ValueError, match="cdelt2"):
        CubeGrid(x, y, z, 0.2, 0.0)
    with pytest.raises(ValueError, match="at least 2 planes"):
        CubeGrid(x, y, [1.0], 0.2, 0.2)
    with pytest.raises(ValueError, match="cdelt3"):
        CubeGrid(x, y, z, 0.2, 0.2, cdelt3=[0.1, 0.1])
    with pytest.raises(ValueError, match="ycoord must be finite"):
        CubeGrid(x, [0.0, np.nan], z, 0.2, 0.2)
    assert CubeGrid(x, y, [1.0], 0.2, 0.2, cdelt3=[0.1]).shape == (1, 3, 3)


def test_bad_params():
    with pytest.raises(ValueError, match="weighting"):
        CubeParams("area")
    with pytest.raises(ValueError, match="rois must be finite and > 0"):
        CubeParams("msm", rois=0.0, roiw=0.1, softrad=0.01)
    with pytest.raises(ValueError, match="scalerad"):
        CubeParams("emsm", rois=0.3, roiw=0.1, scalerad=np.nan)
    with pytest.raises(ValueError, match="1-D per-plane table"):
        CubeParams("msm", rois=np.ones((2, 2)), roiw=0.1, softrad=0.01)
    CubeParams("drizzle", rois=np.nan)  # unused parameters are not checked
    with pytest.raises(ValueError, match="one value per plane"):
        CubeAccumulator(make_grid(5), CubeParams("msm", rois=[0.3] * 4, roiw=0.1, softrad=0.01))


def test_bad_accumulator_arguments():
    grid = make_grid(5)
    params = CubeParams("drizzle")
    with pytest.raises(ValueError, match="planes"):
        CubeAccumulator(grid, params, planes=(3, 3))
    with pytest.raises(ValueError, match="planes"):
        CubeAccumulator(grid, params, planes=(0, 6))
    with pytest.raises(TypeError, match="grid must be a CubeGrid"):
        CubeAccumulator("grid", params)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="workers"):
        CubeAccumulator(grid, params, workers=-1)


def test_bad_add_arguments():
    grid = make_grid(5)
    driz = CubeAccumulator(grid, CubeParams("drizzle"))
    pc = CubeAccumulator(grid, CubeParams("msm", rois=0.3, roiw=0.01, softrad=0.01))
    c4, one = np.zeros((2, 4)), np.ones(2)
    with pytest.raises(ValueError, match="dwave is required"):
        driz.add(c4, c4, one, one, one)
    with pytest.raises(ValueError, match=r"x must have shape \(2, 4\)"):
        driz.add(one, one, one, one, one, dwave=one)
    with pytest.raises(ValueError, match="dwave must be >= 0"):
        driz.add(c4, c4, one, one, one, dwave=-one)
    with pytest.raises(ValueError, match=r"flux must have shape \(2,\)"):
        pc.add(one, one, one, np.ones(3), one)
    with pytest.raises(ValueError, match="wavelength must be 1-D"):
        pc.add(one, one, c4, one, one)
    with pytest.raises(TypeError, match="err must be a real-number array"):
        pc.add(one, one, one, one, one.astype(complex))
    with pytest.raises(TypeError, match="dq must be an integer array"):
        pc.add(one, one, one, one, one, dq=one)
    with pytest.raises(ValueError, match="fov must have shape"):
        pc.finalize(np.zeros((1, 2, 3), np.uint32))
    with pytest.raises(TypeError, match="fov must be an integer array"):
        pc.finalize(np.zeros(grid.shape))


# ----------------------------------------------------------------- oracle
ORACLE_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from jwst.cube_build.cube_match_sky_driz import cube_wrapper_driz
    from jwst.cube_build.cube_match_sky_pointcloud import cube_wrapper

    d = dict(np.load(sys.argv[1]))
    n = d["wave"].size
    zero = np.zeros(n)
    out = {}
    for wt, name in ((0, "emsm"), (1, "msm")):
        r = cube_wrapper(0, 0, wt, 0, 0, 4, 2, d["xc"], d["yc"], d["zc"], d["x"], d["y"],
                         d["wave"], d["flux"], d["err"], zero, d[name + "_rois"],
                         d[name + "_roiw"], d[name + "_scalerad"], d[name + "_power"],
                         d[name + "_softrad"], d["dz"], 0.0, d["c1"], d["c2"])
        for i, k in enumerate(("flux", "weight", "var", "count")):
            out[name + "_" + k] = r[i]
    r = cube_wrapper_driz(0, 0, 0, 0, 4, 2, d["xc"], d["yc"], d["zc"], d["x"], d["y"],
                          d["wave"], d["flux"], d["err"], zero,
                          *[d["cx"][:, i // 2] if i % 2 == 0 else d["cy"][:, i // 2]
                            for i in range(8)],
                          d["dwave"], d["dz"], d["c1"], d["c2"], 0.0, 1, zero, zero, -1)
    for i, k in enumerate(("flux", "weight", "var", "count")):
        out["drizzle_" + k] = r[i]
    np.savez(sys.argv[2], **out)
    """
)


def jwst_python() -> Path | None:
    """The jwst venv's python, located by ``benchmarks/oracle.py``."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "oracle.py"
    spec = importlib.util.spec_from_file_location("spec3c_benchmarks_oracle", path)
    if spec is None or spec.loader is None:
        return None
    mod = sys.modules.get("spec3c_benchmarks_oracle")
    if mod is None:
        mod = importlib.util.module_from_spec(spec)
        sys.modules["spec3c_benchmarks_oracle"] = mod
        spec.loader.exec_module(mod)
    return mod.jwst_python()


@pytest.mark.oracle
def test_against_jwst_c_extensions(tmp_path):
    """One exposure of valid pixels: spec3c sums vs jwst's own C kernels."""
    py = jwst_python()
    if py is None:
        pytest.skip("no jwst venv (set SPEC3C_JWST_PYTHON or create .venv-jwst)")
    grid = make_grid(25, linear=False)
    nz = grid.shape[0]
    pts = point_inputs(grid, 400, 21)
    driz = footprint_inputs(grid, 400, 21)
    ok = np.isfinite(pts["flux"]) & (pts["dq"] == 0) & np.isfinite(driz["dwave"])
    z, dz = grid.zcoord, grid.cdelt3
    ok &= (pts["wavelength"] > z[0] - dz[0]) & (pts["wavelength"] < z[-1] + dz[-1])
    pts = {k: v[ok] for k, v in pts.items()}
    driz = {k: v[ok] for k, v in driz.items()}
    payload = {"xc": grid.xcoord, "yc": grid.ycoord, "zc": z, "dz": dz, "c1": C1, "c2": C2,
               "x": pts["x"], "y": pts["y"], "wave": pts["wavelength"], "flux": pts["flux"],
               "err": pts["err"], "cx": driz["x"], "cy": driz["y"], "dwave": driz["dwave"]}
    q = np.abs(z[None, :] - pts["wavelength"][:, None]).argmin(axis=1)
    params = {"msm": msm_params(nz, tables=True), "emsm": emsm_params(nz, tables=True)}
    for name, p in params.items():
        for k in PARAM_NAMES:
            payload[f"{name}_{k.replace('weight_', '')}"] = ref_tables(p, nz)[k][q]
    np.savez(tmp_path / "in.npz", **payload)
    (tmp_path / "run.py").write_text(ORACLE_SCRIPT)
    subprocess.run([str(py), str(tmp_path / "run.py"), str(tmp_path / "in.npz"),
                    str(tmp_path / "out.npz")], check=True, timeout=300)
    ref = np.load(tmp_path / "out.npz")
    for name in ("msm", "emsm"):  # same arithmetic in the same order (bit-identical here)
        acc, _ = build(grid, params[name], [pts])
        want = [ref[f"{name}_{k}"].reshape(grid.shape) for k in ("flux", "weight", "var", "count")]
        assert want[3].sum() > 500
        assert_sums_close(sums_of(acc), want, rtol=1e-13)
    # jwst clips polygons with a single-precision slope (cube_utils.c solveIntersection):
    # its overlaps carry ~1e-8 of the largest weight; ours match the exact reference
    acc, _ = build(grid, CubeParams("drizzle"), [driz])
    want = [ref[f"drizzle_{k}"].reshape(grid.shape) for k in ("flux", "weight", "var", "count")]
    assert want[3].sum() > 500
    assert_sums_close(sums_of(acc), want, rtol=1e-5, atol_frac=1e-6)
