"""Tests of the MIRI LRS simulator modes (miri-lrs-fs, miri-lrs-slitless)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from stdatamodels.jwst import datamodels as dm

from spec3c import dqflags
from spec3c.cli import main
from spec3c.simulate import MODES, SimOptions, SimulationResult, load_truth, simulate
from spec3c.simulate.miri.layout import build_lrs
from spec3c.simulate.miri.render import lrs_grid, source_model

NROW = 80
PIXAR_SR = (0.11 / 206264.80624709636) ** 2


@pytest.fixture(scope="module")
def fs(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    return simulate(
        "miri-lrs-fs",
        tmp_path_factory.mktemp("fs"),
        SimOptions(seed=11, n_exposures=2, n_columns=NROW),
    )


@pytest.fixture(scope="module")
def fs_bkg(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    out = tmp_path_factory.mktemp("fs_bkg")
    return simulate("miri-lrs-fs", out, SimOptions(seed=12, n_exposures=2, n_columns=NROW, with_background=2))


@pytest.fixture(scope="module")
def slitless(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    out = tmp_path_factory.mktemp("sl")
    return simulate("miri-lrs-slitless", out, SimOptions(seed=13, n_exposures=2, n_columns=NROW))


@pytest.fixture(scope="module")
def moving(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    out = tmp_path_factory.mktemp("mt")
    return simulate("miri-lrs-fs", out, SimOptions(seed=14, n_exposures=2, n_columns=60, moving_target=True))


@pytest.fixture(params=["fs", "fs_bkg", "slitless"])
def result(request: pytest.FixtureRequest) -> SimulationResult:
    return request.getfixturevalue(request.param)


def _row_lambda(lam: np.ndarray) -> np.ndarray:
    """Mean wavelength of each row (NaN for rows without one), without all-NaN warnings."""
    ok = np.isfinite(lam)
    n = ok.sum(axis=1)
    return np.where(n > 0, np.where(ok, lam, 0.0).sum(axis=1) / np.maximum(n, 1), np.nan)


def _bkg_paths(res: SimulationResult) -> list[Path]:
    asn = json.loads(res.asn_path.read_text())
    members = asn["products"][0]["members"]
    return [res.asn_path.parent / m["expname"] for m in members if m["exptype"] == "background"]


def test_modes_and_arguments(tmp_path: Path) -> None:
    assert {"miri-lrs-fs", "miri-lrs-slitless"} <= set(MODES)
    with pytest.raises(ValueError, match="one source"):
        simulate("miri-lrs-fs", tmp_path, SimOptions(n_sources=2))
    with pytest.raises(ValueError, match="with_background"):
        simulate("miri-lrs-slitless", tmp_path, SimOptions(with_background=1))
    with pytest.raises(ValueError, match="n_columns"):
        simulate("miri-lrs-slitless", tmp_path, SimOptions(n_columns=30))
    with pytest.raises(ValueError, match="n_columns"):
        simulate("miri-lrs-slitless", tmp_path, SimOptions(n_columns=500))  # SLITLESSPRISM has 416 rows


def test_files_validate(result: SimulationResult) -> None:
    assert len(result.cal_paths) == 2
    for path in result.cal_paths:
        with dm.open(path) as model:
            assert isinstance(model, dm.ImageModel)
            model.validate()
            m = model.meta
            assert m.filename == path.name
            assert m.instrument.name == "MIRI" and m.instrument.detector == "MIRIMAGE"
            assert m.instrument.filter == "P750L"
            assert m.exposure.type in ("MIR_LRS-FIXEDSLIT", "MIR_LRS-SLITLESS")
            assert m.exposure.nints == 1 and not m.visit.tsovisit
            assert m.bunit_data == "MJy/sr" and m.bunit_err == "MJy/sr"
            assert m.wcsinfo.dispersion_direction == 2
            assert (m.subarray.ysize, m.subarray.xsize) == model.data.shape
            assert m.photometry.pixelarea_steradians == pytest.approx(PIXAR_SR, rel=1e-9)
            assert m.photometry.pixelarea_arcsecsq == pytest.approx(0.0121, rel=1e-9)
            assert m.target.source_type == "POINT" and m.target.type == "FIXED"
            assert m.observation.program_number == "01530" and not m.observation.bkgdtarg
            assert m.wcsinfo.s_region.startswith("POLYGON ICRS  ")
            assert m.cal_step.photom == "COMPLETE" and m.cal_step.assign_wcs == "COMPLETE"
            bad = (model.dq & dqflags.DO_NOT_USE) != 0
            for plane in (model.data, model.err, model.var_poisson, model.var_rnoise, model.var_flat):
                np.testing.assert_array_equal(np.isnan(plane), bad)
            assert 0 < (~bad).sum() < bad.size


def test_wcs(result: SimulationResult) -> None:
    with dm.open(result.cal_paths[0]) as model:
        wcs = model.meta.wcs
        assert wcs.available_frames == ["detector", "alpha_beta", "world"]
        assert wcs.output_frame.axes_type == ("SPATIAL", "SPATIAL", "SPECTRAL")
        (x0, x1), (y0, y1) = wcs.bounding_box.bounding_box()
        ny, nx = model.data.shape
        assert -0.5 <= x0 < x1 <= nx - 0.5 and -0.5 <= y0 < y1 <= ny - 0.5
        assert y1 - y0 == NROW
        y, x = np.mgrid[0:ny, 0:nx].astype(float)
        ra, dec, lam = wcs(x, y)
        inside = np.isfinite(lam)
        # data only inside the bounding box; wavelength depends on y only and falls with y
        assert not np.isfinite(model.data[~inside]).any()
        rows = _row_lambda(lam)
        good = np.isfinite(rows)
        assert np.all(np.diff(rows[good]) < 0)
        assert rows[good][0] == pytest.approx(12.0) and rows[good][-1] == pytest.approx(5.0)
        assert np.nanmax(np.abs(lam - rows[:, None])) < 1e-9
        # inverse round trip and a 0.11 arcsec spatial scale along x
        xb, yb = wcs.invert(ra[inside], dec[inside], lam[inside])
        np.testing.assert_allclose(xb, x[inside], atol=1e-6)
        np.testing.assert_allclose(yb, y[inside], atol=1e-6)
        r = int(np.flatnonzero(good)[NROW // 2])
        cols = np.flatnonzero(inside[r])
        d = np.hypot(np.diff(ra[r, cols]) * np.cos(np.deg2rad(dec[r, cols[:-1]])), np.diff(dec[r, cols]))
        np.testing.assert_allclose(d * 3600, 0.11, rtol=1e-6)


def test_deterministic(tmp_path: Path) -> None:
    a = simulate("miri-lrs-slitless", tmp_path / "a", SimOptions(seed=7, n_exposures=1, n_columns=50))
    b = simulate("miri-lrs-slitless", tmp_path / "b", SimOptions(seed=7, n_exposures=1, n_columns=50))
    c = simulate("miri-lrs-slitless", tmp_path / "c", SimOptions(seed=8, n_exposures=1, n_columns=50))
    with dm.open(a.cal_paths[0]) as ma, dm.open(b.cal_paths[0]) as mb, dm.open(c.cal_paths[0]) as mc:
        np.testing.assert_array_equal(ma.data, mb.data)
        np.testing.assert_array_equal(ma.dq, mb.dq)
        assert not np.array_equal(ma.data, mc.data, equal_nan=True)


@pytest.mark.parametrize("mode", ["miri-lrs-fs", "miri-lrs-slitless"])
def test_source_integrates_to_truth(mode: str) -> None:
    layout = build_lrs(mode, np.random.default_rng(3), NROW)
    grid = lrs_grid(layout)
    img = source_model(layout, grid, layout.offsets[0])
    rows = np.isfinite(grid.lam[:, 0])
    flux = img.sum(axis=1) * layout.pixel_area_sr * 1.0e6  # extract_1d: MJy/sr -> Jy
    np.testing.assert_allclose(flux[rows], layout.source.spectrum(grid.lam[rows, 0]), rtol=1e-10)
    # the PSF is well inside the illuminated region (normalisation does not hide truncation)
    edge = np.where(grid.inside, img, np.nan)
    first = np.nanargmax(grid.inside, axis=1)
    assert np.all(edge[rows, first[rows]] < 1e-4 * img[rows].sum(axis=1))


def test_file_flux_matches_truth(fs_bkg: SimulationResult) -> None:
    """Sky-included exposures: row sums minus the sky give the truth (noise-limited)."""
    truth = load_truth(fs_bkg.truth_path)
    assert not truth.nod_subtracted
    for path in fs_bkg.cal_paths:
        with dm.open(path) as model:
            assert model.meta.cal_step.bkg_subtract == "SKIPPED"
            y, x = np.mgrid[0 : model.data.shape[0], 0 : model.data.shape[1]]
            lam = _row_lambda(model.meta.wcs(x, y)[2])
            sky = truth.sky[path.stem]
            data = model.data.astype(np.float64) - sky
            crs = truth.exposures[path.stem]["MIR_LRS-FIXEDSLIT"]["cosmic_rays"]
            ok = np.isfinite(lam)
            ok[crs[:, 0]] = False
            flux = np.nansum(data, axis=1) * model.meta.photometry.pixelarea_steradians * 1e6
            ratio = flux[ok] / truth.flux_at("1", lam[ok])
            assert abs(np.median(ratio) - 1) < 0.005


def test_cosmic_rays_recorded(result: SimulationResult) -> None:
    truth = load_truth(result.truth_path)
    n_total = 0
    for path in result.cal_paths:
        (entry,) = truth.exposures[path.stem].values()
        crs = entry["cosmic_rays"]
        assert crs.dtype == np.int64 and crs.shape[1] == 2
        n_total += len(crs)
        with dm.open(path) as model:
            val, err = model.data[crs[:, 0], crs[:, 1]], model.err[crs[:, 0], crs[:, 1]]
            assert np.all(val > 10 * err)
            assert np.all(model.dq[crs[:, 0], crs[:, 1]] == 0)  # unflagged
    assert n_total > 0


def test_nod_subtraction(fs: SimulationResult, slitless: SimulationResult) -> None:
    truth = load_truth(fs.truth_path)
    assert truth.nod_subtracted
    ypos = [truth.exposures[p.stem]["MIR_LRS-FIXEDSLIT"]["source_ypos"] for p in fs.cal_paths]
    assert ypos == [1.1, -1.1]
    with dm.open(fs.cal_paths[0]) as model:
        assert model.meta.cal_step.bkg_subtract == "COMPLETE"
        assert model.meta.dither.primary_type == "ALONG-SLIT-NOD"
        assert model.meta.dither.x_offset == 1.1
        assert abs(np.nanmedian(model.data)) < 0.05 * truth.sky[fs.cal_paths[0].stem]
        assert np.nanmin(model.data) < -100  # negative trace of the other nod
    assert not load_truth(slitless.truth_path).nod_subtracted
    with dm.open(slitless.cal_paths[0]) as model:
        assert model.meta.cal_step.bkg_subtract == "SKIPPED"
        assert model.meta.dither.primary_type == "NONE"
        assert model.meta.subarray.name == "SLITLESSPRISM"
        assert model.data.shape == (416, 72)
        assert model.meta.wcs.bounding_box.bounding_box()[0] == (3.5, 71.5)


def test_source_position(result: SimulationResult) -> None:
    """The truth position maps onto the brightest column; dithered_ra/dec is the commanded offset."""
    truth = load_truth(result.truth_path)
    for path in result.cal_paths:
        (entry,) = truth.exposures[path.stem].values()
        with dm.open(path) as model:
            d = model.meta.dither
            ab2w = model.meta.wcs.get_transform("alpha_beta", "world")
            assert (d.dithered_ra, d.dithered_dec) == pytest.approx(ab2w(d.x_offset, 0.0, 7.0)[:2], abs=1e-12)
            src = ab2w(entry["source_ypos"], 0.0, 7.0)[:2]
            assert src == pytest.approx((entry["source_ra"], entry["source_dec"]), abs=1e-10)
            if result.mode == "miri-lrs-fs":  # no pointing error: the dithered position is the source
                assert d.x_offset == entry["source_ypos"]
            ra, dec = src
            assert (model.meta.target.ra, model.meta.target.dec) == (
                truth.sources["1"].ra,
                truth.sources["1"].dec,
            )
            ny = model.data.shape[0]
            rows = np.arange(ny // 2 - 5, ny // 2 + 5)
            lam = model.meta.wcs(np.full(rows.size, 40.0), rows.astype(float))[2]
            x, y = model.meta.wcs.invert(np.full(rows.size, ra), np.full(rows.size, dec), lam)
            np.testing.assert_allclose(y, rows, atol=1e-6)
            peak = np.nanargmax(np.nan_to_num(model.data[rows], nan=-np.inf), axis=1)
            assert np.all(np.abs(peak - x) < 1.0)


def test_asn(result: SimulationResult) -> None:
    asn = json.loads(result.asn_path.read_text())
    assert asn["asn_type"] == "spec3"
    prod = asn["products"][0]
    assert "{" not in prod["name"]
    science = [m["expname"] for m in prod["members"] if m["exptype"] == "science"]
    assert science == [p.name for p in result.cal_paths]
    if result.mode == "miri-lrs-fs":
        assert prod["name"] == "jw01530-o005_t001_miri_p750l"
        assert asn["asn_id"] == "o005" and asn["asn_rule"] == "Asn_Lv3SpectralTarget"
    else:
        assert prod["name"] == "jw01530-o006_t001_miri_p750l-slitlessprism"
        assert asn["asn_id"] == "o006"
    assert result.truth_path.name == result.asn_path.stem + "_truth.asdf"
    truth = load_truth(result.truth_path)
    assert truth.mode == result.mode and set(truth.sources) == {"1"}
    assert truth.sources["1"].source_type == "POINT"
    assert set(truth.exposures) == {p.stem for p in result.cal_paths}


def test_background_members(fs_bkg: SimulationResult) -> None:
    asn = json.loads(fs_bkg.asn_path.read_text())
    kinds = [m["exptype"] for m in asn["products"][0]["members"]]
    assert kinds == ["science", "science", "background", "background"]
    paths = _bkg_paths(fs_bkg)
    assert all(p.name.endswith("_mirimage_x1d.fits") and p.is_file() for p in paths)
    truth = load_truth(fs_bkg.truth_path)
    with dm.open(fs_bkg.cal_paths[0]) as cal:
        y = np.arange(cal.data.shape[0], dtype=float)
        cal_lam = cal.meta.wcs(np.full_like(y, 40.0), y)[2]
    cal_lam = cal_lam[np.isfinite(cal_lam)]
    for path in paths:
        with dm.open(path) as model:
            assert isinstance(model, dm.MultiSpecModel)
            model.validate()
            assert model.meta.observation.bkgdtarg is True
            assert model.meta.exposure.type == "MIR_LRS-FIXEDSLIT"
            assert model.meta.exposure.exposure_time > 0
            spec = model.spec[0]
            assert spec.source_type == "EXTENDED" and spec.dispersion_direction == 2
            t = spec.spec_table
            sky = truth.sky[path.stem]
            np.testing.assert_allclose(t["WAVELENGTH"], cal_lam)
            assert abs(np.median(t["SURF_BRIGHT"]) / sky - 1) < 0.01
            pull = (t["SURF_BRIGHT"] - sky) / t["SB_ERROR"]
            assert np.all(np.abs(pull) < 6) and 0.5 < np.std(pull) < 1.5
            np.testing.assert_allclose(
                t["FLUX"], t["SURF_BRIGHT"] * t["NPIXELS"] * PIXAR_SR * 1e6, rtol=1e-6
            )
            np.testing.assert_allclose(
                t["SB_ERROR"] ** 2, t["SB_VAR_POISSON"] + t["SB_VAR_RNOISE"] + t["SB_VAR_FLAT"], rtol=1e-6
            )
    assert set(truth.sky) == {p.stem for p in fs_bkg.cal_paths} | {p.stem for p in paths}


def test_moving_target(moving: SimulationResult) -> None:
    truth = load_truth(moving.truth_path)
    assert truth.moving_target
    positions = []
    for path in moving.cal_paths:
        with dm.open(path) as model:
            assert model.meta.target.type == "MOVING"
            w = model.meta.wcsinfo
            assert (w.mt_ra, w.mt_dec) == pytest.approx(truth.ephemeris[path.stem])
            assert (model.meta.dither.dithered_ra, model.meta.dither.dithered_dec) == pytest.approx(
                truth.ephemeris[path.stem]
            )
            positions.append((w.mt_ra, w.mt_dec))
    sep = np.hypot((positions[1][0] - positions[0][0]) * np.cos(np.deg2rad(positions[0][1])),
                   positions[1][1] - positions[0][1]) * 3600
    assert sep == pytest.approx(0.5, rel=1e-3)


def test_cli(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["simulate", "miri-lrs-fs", "-o", str(tmp_path), "--n-exposures", "2",
                                    "--n-columns", "50", "--with-background", "1"])
    assert res.exit_code == 0, res.output
    assert len(list(tmp_path.glob("*_cal.fits"))) == 2 and len(list(tmp_path.glob("*_x1d.fits"))) == 1
