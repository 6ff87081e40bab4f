"""extract_1d of IFU cubes (ALGORITHMS.md §12.6): the aperture/annulus arithmetic on hand-made
cubes with a known Gaussian, the step on small synthetic MIRI MRS / NIRSpec IFU sets against
their truth, the ``_x1d`` products, and (slow) the MIRI MRS simulator's emission lines.

The agreement with jwst 3.0.0's Extract1dStep on the same cubes is in
``tests/oracle/test_ifu_x1d_reference.py``.
"""

from __future__ import annotations

import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from ifu_inputs import DEC0, RA0, Scene, ingested_set
from line_flux import line_flux
from scipy.special import erf
from stdatamodels.jwst import datamodels as dm

from spec3c import dqflags
from spec3c.algorithms.apcorr import ApcorrSpec, radial_correction, read_apcorr
from spec3c.algorithms.cube_wcs import CubeWcs
from spec3c.algorithms.ifu_extract import (
    CubeExtraction,
    PointAperture,
    clipped_range,
    clipped_stats,
    nearest_spaxel,
    spectrum_columns,
)
from spec3c.config import resolve_config
from spec3c.errors import Spec3cError
from spec3c.modes.registry import mode_of_store
from spec3c.naming import ProductNaming
from spec3c.products.ifu_x1d import write_cube_x1ds
from spec3c.products.s3d import write_s3d
from spec3c.results import IfuCube, Spectrum1D, load_association, x1d_cube_key
from spec3c.single_step.run import run_step
from spec3c.steps import cube_build, extract_1d, extract_1d_ifu
from spec3c.steps.context import StepContext, science_inputs
from spec3c.steps.extract_1d_ifu import APCORR_MISSING, RFCORR_MISSING
from spec3c.store import open_store

#: a point source at the target position on a flat 5 MJy/sr sky (flux in MJy/sr x arcsec^2)
SCENE = Scene(flat=5.0, point_flux=50.0)
#: Jy of the scene's point source: MJy/sr x arcsec^2 -> Jy
POINT_JY = SCENE.point_flux * 2.3504e-11 * 1e6


# -- reference files ---------------------------------------------------------------------------


def write_extract1d(path: Path, radius: float, inner: float, outer: float, *, subtract: bool = True,
                    method: str = "exact") -> Path:
    """An EXTRACT1D IFU file with radii (arcsec) constant over 1-30 micron."""
    lam = np.linspace(1.0, 30.0, 8).astype(np.float32)
    model = dm.Extract1dIFUModel()
    model.meta.subtract_background = subtract
    model.meta.method = method
    model.meta.subpixels = 10
    model.data = {"wavelength": lam, "radius": np.full(8, radius, np.float32),
                  "inner_bkg": np.full(8, inner, np.float32), "outer_bkg": np.full(8, outer, np.float32)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(path, all_array_storage="inline")
    return path


def write_apcorr(path: Path, kind: str, factor: np.ndarray, radii=(0.5, 1.5, 3.0)) -> Path:
    """A radial APCORR file: ``factor`` (per radius) at every wavelength, radii in arcsec."""
    lam = np.linspace(1.0, 30.0, 6).astype(np.float32)
    corr = np.repeat(np.asarray(factor, np.float32)[:, None], lam.size, axis=1)
    radius = np.repeat(np.asarray(radii, np.float32)[:, None], lam.size, axis=1)
    model = dm.MirMrsApcorrModel() if kind == "miri" else dm.NrsIfuApcorrModel()
    model.apcorr_table = {"wavelength": lam, "wavelength_units": "micron", "radius": radius,
                          "radius_units": "arcsec", "apcorr": corr, "apcorr_err": np.zeros_like(corr)}
    if kind == "miri":
        model.apcorr_table.channel, model.apcorr_table.band = "ANY", "ANY"
    else:
        model.apcorr_table.grating, model.apcorr_table.filter = "G395H", "F290LP"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(path, all_array_storage="inline")
    return path


# -- the arithmetic on hand-made cubes ----------------------------------------------------------


def gaussian_cube(nz: int, ny: int, nx: int, x0: float, y0: float, sigma: float, total: float,
                  sky: float) -> np.ndarray:
    """Pixel-mean surface brightness of a Gaussian of ``total`` (per pixel area) on a flat ``sky``."""
    def box(n: int, c: float) -> np.ndarray:
        edges = np.arange(n + 1) - 0.5
        return np.diff(0.5 * erf((edges - c) / (sigma * math.sqrt(2))))

    plane = total * np.outer(box(ny, y0), box(nx, x0)) + sky
    return np.repeat(plane[None], nz, axis=0).astype(np.float32)


def encircled(r: float, sigma: float) -> float:
    return 1.0 - math.exp(-r * r / (2 * sigma * sigma))


def _aperture(nz: int, x: float, y: float, r: float, inner: float, outer: float, subtract: bool = True,
              method: str = "exact") -> PointAperture:
    full = np.full(nz, 1.0)
    return PointAperture(x, y, full * r, full * inner, full * outer, subtract, method, 10)


@pytest.mark.parametrize("method", ["exact", "subpixel", "center"])
def test_point_source_flux_and_annulus_background(method):
    nz, ny, nx, sigma, total, sky = 4, 41, 45, 1.6, 1000.0, 3.0
    sci = gaussian_cube(nz, ny, nx, 22.3, 19.6, sigma, total, sky)
    err, wmap = np.full_like(sci, 0.5), np.ones_like(sci)
    ex = CubeExtraction(nz, (ny, nx), 3.0, _aperture(nz, 22.3, 19.6, 7.0, 10.0, 15.0, method=method))
    ex.add(0, sci, err, wmap)
    s = ex.sums
    # the annulus background is the flat sky: the point source alone remains (EE(7 px) ~ 1 - 5e-5)
    tolerance = 2e-3 if method == "center" else 2e-4
    np.testing.assert_allclose(s.flux, total * encircled(7.0, sigma), rtol=tolerance)
    np.testing.assert_allclose(s.npixels, math.pi * 49, rtol=0.02 if method == "center" else 1e-3)
    cols = spectrum_columns(s, np.linspace(5, 6, nz), pixar_sr=2e-13)
    np.testing.assert_allclose(cols["BACKGROUND"], sky, rtol=1e-5)  # per-spaxel MJy/sr
    np.testing.assert_allclose(cols["FLUX"], s.flux * 2e-13 * 1e6)
    np.testing.assert_allclose(cols["SURF_BRIGHT"], s.flux / s.npixels)
    # errors: variance = sum of ERR^2 x weight in the aperture, plus the annulus's x (A_ap/A_ann)^2
    ratio = s.npixels / s.npixels_bkg
    expected = np.sqrt(0.25 * s.npixels + 0.25 * s.npixels_bkg * ratio**2) * 2e-13 * 1e6
    np.testing.assert_allclose(cols["FLUX_ERROR"], expected, rtol=1e-6)
    assert not cols["FLUX_VAR_POISSON"].any() and not cols["SB_VAR_POISSON"].any()  # as the reference
    assert not cols["DQ"].any()


def test_weighted_sums_match_an_independent_sum():
    """The flux is sum(SCI x overlap) over covered spaxels, overlaps from a 400x400 sub-pixel count."""
    rng = np.random.default_rng(4)
    ny, nx, x0, y0, r = 21, 23, 10.37, 9.81, 5.3
    sci = rng.normal(10, 1, (1, ny, nx)).astype(np.float32)
    wmap = np.ones_like(sci)
    wmap[0, 3:6, 12:18] = 0  # a hole: masked
    ex = CubeExtraction(1, (ny, nx), 3.0, _aperture(1, x0, y0, r, 1.0, 2.0, subtract=False))
    ex.add(0, sci, np.ones_like(sci), wmap)
    sub = (np.arange(400) + 0.5) / 400 - 0.5
    yy = np.arange(ny)[:, None] + sub[None, :] - y0
    xx = np.arange(nx)[:, None] + sub[None, :] - x0
    inside = (xx[None, :, None, :] ** 2 + yy[:, None, :, None] ** 2) < r * r  # (ny, nx, sub, sub)
    overlap = inside.mean(axis=(2, 3))
    good = wmap[0] > 0
    assert ex.sums.flux[0] == pytest.approx(float((sci[0] * overlap)[good].sum()), rel=1e-4)
    assert ex.sums.npixels[0] == pytest.approx(float(overlap[good].sum()), rel=1e-4)
    assert ex.sums.npixels_bkg[0] == 0.0 and ex.sums.background[0] == 0.0


def test_sigma_clipping_keeps_outliers_out_of_the_background():
    nz, ny, nx = 1, 41, 41
    sci = gaussian_cube(nz, ny, nx, 20.0, 20.0, 1.5, 500.0, 2.0)
    sci[0, 20, 32] = 1e4  # a hot spaxel in the annulus
    clean = CubeExtraction(nz, (ny, nx), 3.0, _aperture(nz, 20.0, 20.0, 6.0, 9.0, 14.0))
    clean.add(0, sci, np.ones_like(sci), np.ones_like(sci))
    loose = CubeExtraction(nz, (ny, nx), 1e6, _aperture(nz, 20.0, 20.0, 6.0, 9.0, 14.0))
    loose.add(0, sci, np.ones_like(sci), np.ones_like(sci))
    per_spaxel = clean.sums.background[0] / clean.sums.npixels_bkg[0]
    # the clipped sum leaves the outlier out but is divided by the whole annulus (as the reference)
    assert per_spaxel == pytest.approx(2.0 * (1 - 1 / clean.sums.npixels_bkg[0]), rel=1e-3)
    assert loose.sums.background[0] > clean.sums.background[0] + 9000


def test_clipped_range_is_astropy_sigma_clipped_stats():
    from astropy.stats import sigma_clipped_stats

    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(3, 1, 500), [40.0, 55.0, -30.0]]).astype(np.float32)
    mean, _, std = sigma_clipped_stats(values, sigma=2.5, maxiters=5)
    low, high = clipped_range(values, 2.5)
    assert (low, high) == (mean - 2.5 * std, mean + 2.5 * std)


def _numpy_clipped_stats(values, sigma, maxiters=5):
    """The plain numpy loop (median and std of the kept values, clip, repeat) clipped_stats replaces."""
    kept = values[np.isfinite(values)]
    for _ in range(maxiters):
        centre, spread = np.median(kept), np.std(kept)
        inside = kept[(kept >= centre - spread * sigma) & (kept <= centre + spread * sigma)]
        changed, kept = kept.size - inside.size, inside
        if changed == 0:
            break
    return np.mean(kept), np.median(kept), np.std(kept)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clipped_stats_equal_the_numpy_loop_bit_for_bit(dtype):
    from astropy.stats import sigma_clipped_stats

    rng = np.random.default_rng(7)
    for trial in range(200):
        n = int(rng.integers(1, 400))
        values = rng.standard_t(3, n) * 10 ** rng.uniform(-3, 3)
        values[rng.random(n) < 0.05] = np.nan
        if trial % 3 == 0:
            values = np.round(values, 1)  # ties at the clip limits
        values = values.astype(dtype)
        sigma = float(rng.uniform(1.0, 4.0))
        ours = clipped_stats(values, sigma)
        np.testing.assert_array_equal(ours, _numpy_clipped_stats(values, sigma), err_msg=f"trial {trial}")
        if trial % 20 == 0:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # astropy warns of the NaNs it masks
                reference = sigma_clipped_stats(values, sigma=sigma, maxiters=5)
            np.testing.assert_allclose(ours, reference, rtol=1e-5)


def test_empty_planes_and_background_switched_off_for_good():
    nz, ny, nx = 5, 31, 31
    sci = gaussian_cube(nz, ny, nx, 15.0, 15.0, 1.2, 100.0, 1.0)
    wmap = np.ones_like(sci)
    wmap[1] = 0  # no data in plane 1
    aperture = _aperture(nz, 15.0, 15.0, 4.0, 6.0, 9.0)
    inner = aperture.inner.copy()
    inner[3] = 10.0  # inner >= outer at plane 3: background off from there on, as the reference
    aperture = PointAperture(15.0, 15.0, aperture.radius, inner, aperture.outer, True)
    ex = CubeExtraction(nz, (ny, nx), 3.0, aperture)
    ex.add(0, sci[:2], np.ones_like(sci[:2]), wmap[:2])  # planes arrive tile by tile
    ex.add(2, sci[2:], np.ones_like(sci[2:]), wmap[2:])
    s = ex.sums
    assert s.dq.tolist() == [0, dqflags.DO_NOT_USE, 0, 0, 0]
    assert s.npixels[1] == pytest.approx(math.pi * 16)  # the geometric area
    assert s.background[2] > 0 and s.background[3] == s.background[4] == 0.0
    assert s.npixels_bkg[3] == s.npixels_bkg[4] == 0.0
    assert s.flux[4] == pytest.approx(100.0 * encircled(4.0, 1.2) + s.npixels[4] * 1.0, rel=5e-3)  # + the sky


def test_extended_source_is_the_whole_plane():
    nz, ny, nx = 2, 12, 14
    sci = np.full((nz, ny, nx), 2.0, np.float32)
    wmap = np.ones_like(sci)
    wmap[:, 0, :] = 0
    sci[:, 0, :] = np.nan  # outside the field: masked
    ex = CubeExtraction(nz, (ny, nx), 3.0, None)
    ex.add(0, sci, np.full_like(sci, 0.1), wmap)
    covered = (ny - 1) * nx
    np.testing.assert_allclose(ex.sums.flux, 2.0 * covered)
    np.testing.assert_allclose(ex.sums.npixels, covered)
    np.testing.assert_allclose(ex.sums.background, 2.0 * covered)  # reported, not subtracted
    cols = spectrum_columns(ex.sums, np.array([5.0, 5.1]), pixar_sr=1e-12, covar_scale=2.0)
    np.testing.assert_allclose(cols["SURF_BRIGHT"], 2.0)
    np.testing.assert_allclose(cols["FLUX_ERROR"], 2.0 * np.sqrt(0.01 * covered) * 1e-12 * 1e6, rtol=1e-6)


def test_nan_wavelengths_are_trimmed_and_flagged():
    sums = CubeExtraction(4, (3, 3), 3.0, None).sums
    cols = spectrum_columns(sums, np.array([np.nan, 5.0, np.nan, 5.2]), pixar_sr=1.0)
    assert cols["WAVELENGTH"].size == 3
    assert cols["DQ"].tolist() == [0, dqflags.DO_NOT_USE, 0]


def test_radial_aperture_correction_interpolates_and_extrapolates(tmp_path):
    path = write_apcorr(tmp_path / "apcorr.asdf", "miri", np.array([1.3, 1.1, 1.02]))
    table = read_apcorr(path, ApcorrSpec("MirMrsApcorrModel", "radial"))
    lam = np.array([5.0, 6.0])
    # radii 0.5/1.5/3 arcsec at 0.1 arcsec per spaxel: 5, 15, 30 spaxels
    corr = radial_correction(table, lam, np.array([10.0, 35.0]), pixel_scale=0.1)
    np.testing.assert_allclose(corr, [1.2, 1.02 + (1.02 - 1.1) * 5 / 15], rtol=1e-6)


def test_nearest_spaxel_and_edges():
    info = {"crpix1": 8.0, "crpix2": 6.0, "crval1": RA0, "crval2": DEC0, "cdelt1": 0.1 / 3600,
            "cdelt2": 0.1 / 3600, "pc1_1": -1.0, "pc1_2": 0.0, "pc2_1": 0.0, "pc2_2": 1.0}
    wcs = CubeWcs.from_wcsinfo(info)
    assert nearest_spaxel(wcs, (11, 15), RA0, DEC0) == (7, 5)
    ra, dec = wcs.pixel_to_world(3.2, 8.9)
    assert nearest_spaxel(wcs, (11, 15), float(ra), float(dec)) == (3, 9)
    ra, dec = wcs.pixel_to_world(0.1, 5.0)
    assert nearest_spaxel(wcs, (11, 15), float(ra), float(dec)) is None  # on the edge
    assert nearest_spaxel(wcs, (11, 15), None, DEC0) is None


# -- the step on small synthetic sets -----------------------------------------------------------


@pytest.fixture
def context(tmp_path):
    """``context(ingested, **extract_1d_params)``: cubes built on a fresh copy of the set's store."""
    opened = []

    def make(ingested, cube_params=None, **params):
        copy = tmp_path / f"store{len(opened)}"
        shutil.copytree(ingested.store, copy)
        store = open_store(copy, mode="a")
        opened.append(store)
        overrides = {"cube_build": {"override_cubepar": str(ingested.cubepar), **(cube_params or {})},
                     "extract_1d": params}
        ctx = StepContext(store, "1", mode_of_store(store), science_inputs(store, "1"),
                          resolve_config(overrides=overrides))
        assert cube_build.run(ctx).status == "COMPLETE"
        return ctx

    yield make
    for store in opened:
        store.close()


def _spectra(ctx) -> dict[str, Spectrum1D]:
    return {name: Spectrum1D.load(ctx.store, ctx.source, x1d_cube_key(name))
            for name in IfuCube.names(ctx.store, ctx.source)}


@pytest.mark.parametrize("kind", ["miri", "nirspec"])
def test_point_source_flux_matches_the_scene(tmp_path_factory, tmp_path, context, kind):
    ref = write_extract1d(tmp_path / "x1d.asdf", 1.2, 1.4, 1.8)
    ctx = context(ingested_set(tmp_path_factory, kind, SCENE), override_extract1d=str(ref))
    outcome = extract_1d.run(ctx)
    assert outcome.status == "COMPLETE", outcome.message
    assert "TARG_RA/TARG_DEC" in outcome.message
    # (no APCORR file; MIRI band cubes: the residual fringe correction ifu_rfcorr asks for is not in spec3c)
    assert set(outcome.notes) == {APCORR_MISSING, *([RFCORR_MISSING] if kind == "miri" else [])}
    spectra = _spectra(ctx)
    assert len(spectra) == (2 if kind == "miri" else 1)
    for name, spec in spectra.items():
        c = spec.columns
        assert ("RF_FLUX" in c) == (kind == "miri")
        inner = slice(2, -2)  # the cube's end planes are partly covered
        np.testing.assert_allclose(c["FLUX"][inner], POINT_JY, rtol=0.015, err_msg=name)
        np.testing.assert_allclose(c["BACKGROUND"][inner], SCENE.flat, rtol=1e-3, err_msg=name)
        assert spec.meta["source_type"] == "POINT" and isinstance(spec.meta["extraction_x"], int)


def test_cubes_read_ahead_or_a_slab_at_a_time_give_the_same_spectra(tmp_path_factory, tmp_path, context,
                                                                     monkeypatch):
    """The next cube is read by a thread while one is extracted when it is small; a large one is
    read a slab at a time as the extraction goes: the spectra are the same bits."""
    ref = write_extract1d(tmp_path / "x1d.asdf", 1.2, 1.4, 1.8)
    ingested = ingested_set(tmp_path_factory, "miri", SCENE)
    read: list[str] = []
    in_memory = extract_1d_ifu._in_memory
    monkeypatch.setattr(extract_1d_ifu, "_in_memory", lambda cube: read.append(cube.name) or in_memory(cube))
    ahead = _spectra(_run(context(ingested, override_extract1d=str(ref))))
    assert sorted(read) == sorted(ahead) and len(ahead) == 2
    read.clear()
    monkeypatch.setattr(extract_1d_ifu, "READ_AHEAD_BYTES", 0)
    streamed = _spectra(_run(context(ingested, override_extract1d=str(ref))))
    assert read == [] and ahead.keys() == streamed.keys()
    for name, spec in ahead.items():
        for column, values in spec.columns.items():
            np.testing.assert_array_equal(values, streamed[name].columns[column], err_msg=f"{name} {column}")


def test_parameters_move_scale_and_retype_the_extraction(tmp_path_factory, tmp_path, context):
    ingested = ingested_set(tmp_path_factory, "miri", SCENE)
    ref = str(write_extract1d(tmp_path / "x1d.asdf", 0.5, 1.4, 1.8))
    base = _spectra(_run(context(ingested, override_extract1d=ref)))
    cube = next(iter(base))
    c0 = base[cube]
    # ifu_rscale 4 x (rscale / 2) = a radius of 1": more of the source
    wider = _spectra(_run(context(ingested, override_extract1d=ref, ifu_rscale="3.0")))[cube]
    assert np.median(wider.columns["NPIXELS"] / c0.columns["NPIXELS"]) == pytest.approx(2.25, rel=0.02)
    # ifu_rfcorr=false: the RF_* columns NaN as the reference writes them, and nothing to note
    ctx = context(ingested, override_extract1d=ref, ifu_rfcorr="false", apply_apcorr="false")
    assert extract_1d.run(ctx).notes == ()
    assert np.isnan(_spectra(ctx)[cube].columns["RF_FLUX"]).all()
    # ifu_covar_scale multiplies the errors only
    scaled = _spectra(_run(context(ingested, override_extract1d=ref, ifu_covar_scale="1.5")))[cube]
    np.testing.assert_allclose(scaled.columns["FLUX_ERROR"], 1.5 * c0.columns["FLUX_ERROR"], rtol=1e-12)
    np.testing.assert_array_equal(scaled.columns["FLUX"], c0.columns["FLUX"])
    # center_xy: the aperture sits where it is told
    moved = _spectra(_run(context(ingested, override_extract1d=ref, center_xy="3.0 4.0")))[cube]
    assert (moved.meta["extraction_x"], moved.meta["extraction_y"]) == (3.0, 4.0)
    # ifu_set_srctype EXTENDED: the whole plane, no background subtraction
    ctx = _run(context(ingested, override_extract1d=ref, ifu_set_srctype="EXTENDED"))
    ext = _spectra(ctx)[cube]
    assert ext.meta["source_type"] == "EXTENDED"
    pixar = IfuCube.load(ctx.store, "1", cube).meta["photometry"]["pixelarea_steradians"]
    c = ext.columns
    expected = (SCENE.flat * c["NPIXELS"] * pixar) * 1e6 + POINT_JY  # the sky of the covered spaxels + the source
    np.testing.assert_allclose(c["FLUX"][2:-2], expected[2:-2], rtol=0.01)
    np.testing.assert_allclose(c["SURF_BRIGHT"], c["FLUX"] / (c["NPIXELS"] * pixar * 1e6), rtol=1e-12)


def _run(ctx):
    outcome = extract_1d.run(ctx)
    assert outcome.status == "COMPLETE", outcome.message
    return ctx


def test_autocen_finds_the_source_off_the_target(tmp_path_factory, tmp_path, context):
    """ifu_autocen centres on the brightest DAOFIND source, wherever TARG_RA/TARG_DEC points."""
    off = Scene(flat=5.0, point_flux=50.0, point_ra=RA0 + 0.45 / 3600, point_dec=DEC0 - 0.3 / 3600)
    ref = str(write_extract1d(tmp_path / "x1d.asdf", 1.0, 1.4, 1.8))
    ctx = _run(context(ingested_set(tmp_path_factory, "miri", off), override_extract1d=ref, ifu_autocen="true"))
    for name, spec in _spectra(ctx).items():
        cube = IfuCube.load(ctx.store, "1", name)
        wcs = CubeWcs.from_wcsinfo(cube.meta["wcsinfo"])
        x, y = wcs.world_to_pixel(off.point_ra, off.point_dec)
        assert spec.meta["centre_from"] == "ifu_autocen"
        assert abs(spec.meta["extraction_x"] - x) < 0.15 and abs(spec.meta["extraction_y"] - y) < 0.15, name
        np.testing.assert_allclose(spec.columns["FLUX"][2:-2], POINT_JY, rtol=0.02, err_msg=name)
    # nothing to find in a flat scene: a note, and the target position
    flat = Scene(flat=5.0)
    ctx = context(ingested_set(tmp_path_factory, "miri", flat), override_extract1d=ref, ifu_autocen="true",
                  ifu_set_srctype="POINT")
    outcome = extract_1d.run(ctx)
    assert outcome.status == "COMPLETE" and any("ifu_autocen found no source" in n for n in outcome.notes)


def test_aperture_correction_multiplies_the_fluxes(tmp_path_factory, tmp_path, context):
    ingested = ingested_set(tmp_path_factory, "nirspec", SCENE)
    ref = str(write_extract1d(tmp_path / "x1d.asdf", 1.0, 1.4, 1.8))
    apcorr = str(write_apcorr(tmp_path / "apcorr.asdf", "nirspec", np.array([1.25, 1.25, 1.25])))
    plain = next(iter(_spectra(_run(context(ingested, override_extract1d=ref, apply_apcorr="false"))).values()))
    ctx = context(ingested, override_extract1d=ref, override_apcorr=apcorr)
    outcome = extract_1d.run(ctx)
    assert outcome.notes == ()  # corrected; NIRSpec has no residual fringe columns
    corrected = next(iter(_spectra(ctx).values()))
    for col in ("FLUX", "FLUX_ERROR", "SURF_BRIGHT", "SB_ERROR"):
        np.testing.assert_allclose(corrected.columns[col], 1.25 * plain.columns[col], rtol=1e-6)
    np.testing.assert_array_equal(corrected.columns["BACKGROUND"], plain.columns["BACKGROUND"])
    assert corrected.meta["apcorr"] == apcorr


def test_point_source_without_extract1d_file_is_skipped(tmp_path_factory, context):
    outcome = extract_1d.run(context(ingested_set(tmp_path_factory, "nirspec", SCENE)))
    assert outcome.status == "SKIPPED" and outcome.warn
    assert "override_extract1d" in outcome.message
    # an extended source needs no radii (the whole plane); ifu_set_srctype is for MIRI MRS only
    ctx = context(ingested_set(tmp_path_factory, "miri", SCENE), ifu_set_srctype="EXTENDED")
    assert extract_1d.run(ctx).status == "COMPLETE"
    assert all(s.meta["source_type"] == "EXTENDED" for s in _spectra(ctx).values())
    ctx = context(ingested_set(tmp_path_factory, "nirspec", SCENE), ifu_set_srctype="EXTENDED")
    assert extract_1d.run(ctx).status == "SKIPPED"


def test_bad_parameters_are_refused():
    with pytest.raises(Spec3cError, match="ifu_rscale"):
        resolve_config(overrides={"extract_1d": {"ifu_rscale": "5"}})
    with pytest.raises(Spec3cError, match="center_xy"):
        resolve_config(overrides={"extract_1d": {"center_xy": "1 2 3"}})
    with pytest.raises(Spec3cError, match="ifu_set_srctype"):
        resolve_config(overrides={"extract_1d": {"ifu_set_srctype": "point"}})


# -- the x1d products ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["miri", "nirspec"])
def test_x1d_products_are_named_as_the_cubes_and_read_by_specutils(tmp_path_factory, tmp_path, context, kind):
    from specutils import Spectrum

    ref = write_extract1d(tmp_path / "x1d.asdf", 1.2, 1.4, 1.8)
    ctx = _run(context(ingested_set(tmp_path_factory, kind, SCENE), override_extract1d=str(ref)))
    asn = load_association(ctx.store)
    naming = ProductNaming(asn["product_name"], asn["asn_id"], None, asn["table_name"])
    paths = write_cube_x1ds(ctx.store, "1", naming, tmp_path / "out")
    cubes = write_s3d(ctx.store, "1", naming, tmp_path / "out")
    assert [p.name for p in paths] == [p.name.replace("_s3d.fits", "_x1d.fits") for p in cubes]
    if kind == "miri":
        assert [p.name for p in paths] == ["jw01234-o001_t001_miri_ch1-short_x1d.fits",
                                           "jw01234-o001_t001_miri_ch2-short_x1d.fits"]
    cls = dm.MRSMultiSpecModel if kind == "miri" else dm.MultiSpecModel
    for path in paths:
        with dm.open(path) as model:
            assert type(model) is cls
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                model.validate()
            spec = model.spec[0]
            assert spec.source_type == "POINT" and spec.name == ("MIR_MRS" if kind == "miri" else "NRS_IFU")
            assert model.meta.cal_step.extract_1d == "COMPLETE" and model.meta.cal_step.cube_build == "COMPLETE"
            table = spec.spec_table
            assert table.columns["SB_VAR_POISSON"].unit == "(MJy/sr)^2"
            assert ("RF_FLUX" in table.dtype.names) == (kind == "miri")
            flux = np.asarray(table["FLUX"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            read = Spectrum.read(path, format="JWST x1d")
        assert read.flux.unit == "Jy"
        np.testing.assert_allclose(read.flux.value, flux)
    # the written cubes through `spec3c step extract_1d`: the same spectra, the cube's primary header
    done = run_step("extract_1d", cubes, tmp_path / "step",
                    resolve_config(overrides={"extract_1d": {"override_extract1d": str(ref)}}))
    assert [p.name for p in done.written] == [p.name.replace("_s3d", "_extract1dstep") for p in cubes]
    for path, standalone in zip(paths, done.written, strict=True):
        with dm.open(path) as a, dm.open(standalone) as b:
            assert type(a) is type(b) and b.meta.cal_step.cube_build == "COMPLETE"
            for col in ("WAVELENGTH", "FLUX", "FLUX_ERROR", "BACKGROUND", "NPIXELS", "DQ"):
                np.testing.assert_array_equal(a.spec[0].spec_table[col], b.spec[0].spec_table[col])


# -- the MIRI MRS simulator's truth (slow) -------------------------------------------------------


@pytest.mark.slow
def test_mrs_simulator_emission_lines_within_two_percent(tmp_path):
    from click.testing import CliRunner

    from spec3c.cli import main
    from spec3c.simulate import SimOptions, load_truth, simulate
    from spec3c.simulate.miri.mrs import load_mrs_truth, reference_file_paths
    from spec3c.simulate.miri.mrs.instrument import channel_spec

    res = simulate("miri-mrs", tmp_path / "sim", SimOptions(seed=3, n_exposures=2, channels=(1,), bands=("SHORT",)))
    refs = reference_file_paths(res.asn_path)
    out = tmp_path / "out"
    args = ["run", str(res.asn_path), "--output-dir", str(out), "--workers", "1",
            f"--steps.cube_build.override_cubepar={refs.cubepar}", "--steps.cube_build.channel=1",
            f"--steps.extract_1d.override_extract1d={refs.extract1d}",
            f"--steps.extract_1d.override_apcorr={refs.apcorr}"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    path = out / "jw01050-o003_t001_miri_ch1-short_x1d.fits"
    with dm.open(path) as model:
        table = model.spec[0].spec_table
        lam, flux = np.array(table["WAVELENGTH"], float), np.array(table["FLUX"], float)
    truth, mrs = load_truth(res.truth_path), load_mrs_truth(res.truth_path)
    ok = np.isfinite(flux)
    assert np.median(flux[ok] / truth.flux_at("1", lam[ok])) == pytest.approx(1.0, abs=0.01)
    band = channel_spec(1).bands["SHORT"]
    src = mrs.sources["1"]
    measured = 0
    for (centre, width, _), true in zip(src.spectrum.lines, src.line_fluxes(), strict=True):
        if band.wavelength[0] < centre < band.wavelength[1]:
            sigma = float(np.hypot(width, band.lsf_sigma(centre)))
            assert line_flux(lam, flux, centre, sigma) == pytest.approx(true, rel=0.02), centre
            measured += 1
    assert measured >= 2


def _numpy_range(values, sigma, maxiters=5):
    import warnings

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's means of empty slices (NaN)
        mean, _, std = clipped_stats(values, sigma, maxiters)
    return mean - sigma * std, mean + sigma * std


def _cases(rng):
    """float32 planes of many sizes (numpy's pairwise-sum blocks: 8, 128 and halves above), with
    outliers, NaN and inf, constant, sorted and reversed values."""
    for trial in range(1500):
        n = int(rng.choice([1, 2, 3, 7, 8, 9, 16, 17, 127, 128, 129, 255, 256, 257, 300, 513, 1000, 2200]))
        v = rng.normal(rng.uniform(-5, 5), 10 ** rng.uniform(-3, 2), n).astype(np.float32)
        kind = trial % 7
        if kind == 1:
            v[rng.integers(0, n, max(1, n // 10))] *= 50
        elif kind == 2:
            v[rng.integers(0, n, max(1, n // 5))] = np.nan
        elif kind == 3:
            v[:] = v[0]
        elif kind == 4:
            v[rng.integers(0, n, 1)] = np.inf
            v.sort()
        elif kind == 5:
            v = np.ascontiguousarray(np.sort(v)[::-1])
        elif kind == 6:
            v[:] = np.nan
        yield v, float(rng.choice([0.5, 1.1, 2.0, 2.5, 3.0]))


def test_compiled_clipped_range_is_the_numpy_range_bit_for_bit():
    """The kernel's (low, high) are the numpy path's values and types, NaN where nothing is left."""
    from spec3c._core.clipstats import clipped_range_f32

    for values, sigma in _cases(np.random.default_rng(17)):
        want = _numpy_range(values, sigma)
        got = clipped_range_f32(values, sigma, 5)
        for g, w in zip(got, want, strict=True):
            assert isinstance(g, np.float32)
            assert (np.isnan(g) and np.isnan(w)) or (g == w and isinstance(w, np.float32)), (values.size, sigma, got, want)
    assert clipped_range(np.array([1.0, 2.0, 30.0], np.float32), 2.0)[0].dtype == np.float32  # the kernel's
    values = np.arange(20.0)
    assert clipped_range(values, 2.0) == _numpy_range(values, 2.0)  # float64: numpy


def test_compiled_clipped_range_refuses_other_dtypes_and_takes_any_layout():
    from spec3c._core.clipstats import clipped_range_f32

    with pytest.raises(TypeError, match="float32"):
        clipped_range_f32(np.arange(5.0), 2.0, 5)
    with pytest.raises(ValueError, match="maxiters"):
        clipped_range_f32(np.zeros(3, np.float32), 2.0, -1)
    plane = np.random.default_rng(2).normal(0, 1, (40, 30)).astype(np.float32)
    want = _numpy_range(plane[:, ::2].ravel(), 3.0)
    assert clipped_range_f32(plane[:, ::2], 3.0, 5) == want  # strided 2-D: flattened as ravel does
    assert clipped_range_f32(plane[:, ::2].ravel().astype(">f4"), 3.0, 5) == want  # big-endian
    assert all(np.isnan(clipped_range_f32(np.zeros(0, np.float32), 3.0, 5)))
