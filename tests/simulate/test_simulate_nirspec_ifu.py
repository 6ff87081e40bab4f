"""Tests of the NIRSpec IFU simulator mode (nirspec-ifu): files, WCS, truth, reference files."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.special import erf
from stdatamodels.jwst import datamodels as dm

from spec3c import dqflags
from spec3c.cli import main
from spec3c.simulate import MODES, SimOptions, SimulationResult, load_truth, simulate
from spec3c.simulate.nirspec.ifu import load_ifu_truth, reference_file_paths, simulate_nirspec_ifu
from spec3c.simulate.nirspec.ifu_layout import (
    build_ifu,
    dispersion_um_per_px,
    ifu_config,
    psf_sigma_arcsec,
)
from spec3c.simulate.nirspec.ifu_reffiles import encircled_energy
from spec3c.simulate.nirspec.ifu_render import (
    detector_pixels,
    render_exposure,
    source_image,
    static_defects,
)
from spec3c.simulate.nirspec.ifu_wcs import ideal_to_sky, regions_map, sky_to_ideal
from spec3c.simulate.scene import Spectrum

NCOL = 128
FRAMES = ["coordinates", "detector", "slicer", "msa_frame", "oteip", "oteip_chromcorr", "v2v3", "v2v3vacorr", "world"]


def _open(path: Path) -> dm.IFUImageModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gwcs/asdf version chatter
        return dm.open(path)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    return simulate("nirspec-ifu", tmp_path_factory.mktemp("ifu"),
                    SimOptions(seed=5, n_exposures=2, n_columns=NCOL, with_background=1))


@pytest.fixture(scope="module")
def models(sim: SimulationResult) -> dict[str, dm.IFUImageModel]:
    out = {p.stem: _open(p) for p in sim.cal_paths}
    yield out
    for m in out.values():
        m.close()


def test_mode_is_registered_and_arguments_are_checked(tmp_path: Path) -> None:
    assert "nirspec-ifu" in MODES
    for bad, match in ((SimOptions(n_columns=4096), "n_columns"), (SimOptions(n_columns=60), "n_columns"),
                       (SimOptions(n_columns=64, bands=("SHORT",)), "miri-mrs")):
        with pytest.raises(ValueError, match=match):
            simulate("nirspec-ifu", tmp_path, bad)
    with pytest.raises(ValueError, match="target_type"):
        simulate_nirspec_ifu("nirspec-ifu", tmp_path, SimOptions(n_columns=64), target_type="DIFFUSE")
    with pytest.raises(ValueError, match="detectors"):
        simulate_nirspec_ifu("nirspec-ifu", tmp_path, SimOptions(n_columns=64), detectors=("NRS3",))


def test_files_asn_and_metadata(sim: SimulationResult, models: dict[str, dm.IFUImageModel]) -> None:
    asn = json.loads(sim.asn_path.read_text())
    assert asn["asn_rule"] == "Asn_Lv3NRSIFU"
    assert asn["products"][0]["name"] == "jw01249-o005_t001_nirspec_g395h"
    members = asn["products"][0]["members"]
    science = [m["expname"] for m in members if m["exptype"] == "science"]
    assert science == [p.name for p in sim.cal_paths] and len(science) == 4  # 2 dithers x NRS1/NRS2
    assert [m["exptype"] for m in members].count("background") == 1
    for stem, m in models.items():
        assert isinstance(m, dm.IFUImageModel)
        m.validate()
        assert m.meta.exposure.type == "NRS_IFU" and m.meta.instrument.grating == "G395H"
        assert m.meta.instrument.detector == stem.split("_")[3].upper()
        assert m.meta.bunit_data == "MJy/sr" and m.meta.target.source_type == "POINT"
        assert m.data.shape == m.regions.shape and m.data.shape[1] == NCOL
        off = m.regions == 0
        assert np.all(m.dq[off] == dqflags.DO_NOT_USE | dqflags.NON_SCIENCE) and np.all(np.isnan(m.data[off]))
        assert set(np.unique(m.regions)) == set(range(31))
        bad = (m.dq & dqflags.DO_NOT_USE) != 0
        assert np.all(np.isfinite(m.data[~bad])) and np.all(np.isnan(m.err[bad]))
        np.testing.assert_allclose(m.err[~bad] ** 2, (m.var_poisson + m.var_rnoise + m.var_flat)[~bad], rtol=1e-5)
        assert m.meta.wcsinfo.s_region.startswith("POLYGON ICRS  ")
        lo, hi = m.meta.wcsinfo.spectral_region
        assert 2.87 <= lo < hi <= 5.27


def test_wcs_is_coordinate_based_and_matches_the_renderer(sim: SimulationResult, models: dict) -> None:
    """The file's gwcs, evaluated over the whole detector at once, gives the renderer's coordinates."""
    layout = build_ifu(np.random.default_rng(np.random.SeedSequence(5).spawn(3)[0]), 2, None, NCOL)
    for det in layout.detectors:
        m = models[f"jw01249005001_03101_00002_{det.name.lower()}_cal"]
        wcs = m.meta.wcs
        assert wcs.available_frames == FRAMES
        regions, bboxes = regions_map(det)
        np.testing.assert_array_equal(regions, m.regions)
        sel = wcs.pipeline[1].transform.selector
        assert sorted(sel) == list(range(1, 31))
        for i, box in bboxes.items():
            assert tuple(tuple(iv) for iv in sel[i + 1].bounding_box.bounding_box(order="F")) == box
        px = detector_pixels(det, regions, 0.1)
        ra, dec, lam = wcs(px.ix.astype(float), px.iy.astype(float))
        ra_t, dec_t = ideal_to_sky(layout.optics, layout.pointings[1], px.across, px.along)
        np.testing.assert_allclose(lam, px.lam, rtol=0, atol=1e-10)
        assert np.max(np.abs(ra - ra_t) * np.cos(np.deg2rad(dec)) * 3600) < 1e-6
        assert np.max(np.abs(dec - dec_t) * 3600) < 1e-6
        y, x = np.mgrid[0 : m.data.shape[0], 0 : m.data.shape[1]].astype(float)
        _, _, lam_all = wcs(x, y)
        assert np.array_equal(np.isfinite(lam_all), regions > 0)  # NaN off the slices
        xs, ys, lam_s = wcs.get_transform("detector", "slicer")(px.ix[::97].astype(float), px.iy[::97].astype(float))
        across = np.array([g.across_arcsec for g in det.slices])[px.slice_index[::97]] * 0.005
        np.testing.assert_allclose(xs, across, atol=1e-12)
        np.testing.assert_allclose(lam_s * 1e6, px.lam[::97], atol=1e-10)
        xi, yi = wcs.invert(ra[::211], dec[::211], lam[::211])  # through the inverse label mapper
        np.testing.assert_allclose(xi, px.ix[::211], atol=1e-6)
        np.testing.assert_allclose(yi, px.iy[::211], atol=1e-6)


def test_slices_tile_the_field_and_fractions_add_up() -> None:
    """On every column the 30 x 30 footprints of a point source hold its flux inside the 3" x 3" field."""
    layout = build_ifu(np.random.default_rng(3), 1, 1, NCOL)
    det = layout.detectors[0]
    regions, _ = regions_map(det)
    px = detector_pixels(det, regions, 0.1)
    src = layout.target
    pos = sky_to_ideal(layout.optics, layout.pointings[0], np.array([src.ra]), np.array([src.dec]))
    flat = dataclasses.replace(src, spectrum=Spectrum(1.0, 4.0, 0.0))  # 1 Jy at every wavelength
    frac = source_image(px, flat, (float(pos[0][0]), float(pos[1][0])))
    per_col = np.bincount(px.ix, weights=frac, minlength=NCOL)
    n_col = np.bincount(px.ix, minlength=NCOL)
    full = n_col == 900
    assert full.sum() > 0.8 * NCOL
    lam_col = np.bincount(px.ix, weights=px.lam, minlength=NCOL)[full] / 900
    inside = _in_field((float(pos[0][0]), float(pos[1][0])), psf_sigma_arcsec(lam_col))
    # slices on one column see slightly different wavelengths, hence PSF widths: 2e-4 slack
    np.testing.assert_allclose(per_col[full], inside, rtol=1e-3)
    assert np.all(inside > 0.99)


def _in_field(pos: tuple[float, float], sigma: np.ndarray) -> np.ndarray:
    """Fraction of a circular Gaussian at ideal ``pos`` inside the 3" x 3" field."""
    s = np.sqrt(2.0) * sigma
    half = 1.5
    return 0.25 * (erf((half - pos[0]) / s) + erf((half + pos[0]) / s)) * (erf((half - pos[1]) / s) + erf((half + pos[1]) / s))


def test_data_hold_the_truth(sim: SimulationResult, models: dict) -> None:
    """Per column, the sky-subtracted flux summed over the footprints is the true flux inside the field."""
    truth = load_truth(sim.truth_path)
    ifu = load_ifu_truth(sim.truth_path)
    assert truth.sources["1"].source_type == "POINT" and truth.sources["2"].source_type == "EXTENDED"
    assert ifu.sigma_arcsec["1"] == 0.0 and ifu.sigma_arcsec["2"] > 0.1
    offsets = ifu_config()["dither"]["offsets_arcsec"]
    target_offsets = {tuple(np.round(np.subtract(ifu.positions[stem]["1"], offsets[int(stem.split("_")[2]) - 1]), 9))
                      for stem in models}
    assert len(target_offsets) == 1  # the target sits at its commanded dither position in every exposure
    for stem, m in models.items():
        good = np.isfinite(m.data)
        crs = truth.exposures[stem]["NRS_IFU"]["cosmic_rays"]
        good[crs[:, 0], crs[:, 1]] = False
        wp = ifu.warm_pixels[stem.split("_")[3].upper()]
        good[wp[:, 0], wp[:, 1]] = False
        y, x = np.nonzero(good)
        lam = m.meta.wcs(x.astype(float), y.astype(float))[2]
        n = np.bincount(x, minlength=NCOL)
        used = n > 850  # columns where (nearly) all 30 slices have a wavelength
        flux = np.bincount(x, weights=(m.data[y, x] - truth.sky[stem]) * ifu.pixel_area_sr * 1e6, minlength=NCOL)
        flux = flux[used] * 900 / n[used]  # the few bad pixels of a column: scale up
        col_lam = np.bincount(x, weights=lam, minlength=NCOL)[used] / n[used]
        psf = psf_sigma_arcsec(col_lam)
        expected = sum(truth.flux_at(key, col_lam) * _in_field(ifu.positions[stem][key], np.hypot(psf, ifu.sigma_arcsec[key]))
                       for key in truth.sources)
        assert abs(np.median(flux / expected) - 1.0) < 0.01, stem


def test_cosmic_rays_and_warm_pixels(sim: SimulationResult, models: dict) -> None:
    truth = load_truth(sim.truth_path)
    ifu = load_ifu_truth(sim.truth_path)
    for stem, m in models.items():
        sky = truth.sky[stem]
        crs = truth.exposures[stem]["NRS_IFU"]["cosmic_rays"]
        assert len(crs) > 0
        assert np.all(m.dq[crs[:, 0], crs[:, 1]] == 0)  # unflagged
        assert np.mean(m.data[crs[:, 0], crs[:, 1]] - sky > 10 * m.err[crs[:, 0], crs[:, 1]]) > 0.95
        det = stem.split("_")[3].upper()
        wp, excess = ifu.warm_pixels[det], ifu.warm_excess[det]
        assert len(wp) > 0 and np.all(m.dq[wp[:, 0], wp[:, 1]] == 0)
        assert np.mean(m.data[wp[:, 0], wp[:, 1]] - sky > 0.5 * excess) > 0.9


def test_reference_files(sim: SimulationResult) -> None:
    refs = reference_file_paths(sim.asn_path)
    with dm.NirspecIFUCubeParsModel(refs.cubepar) as cp:
        row = cp.ifucubepars_table[0]
        assert (row["DISPERSER"], row["FILTER"]) == ("G395H", "F290LP")
        np.testing.assert_allclose(row["SPECTRALSTEP"], dispersion_um_per_px(NCOL), rtol=1e-6)
        for kind in ("prism", "med", "high"):
            assert len(getattr(cp, f"ifucubepars_{kind}_driz_wavetable")) > 50
    with dm.Extract1dIFUModel(refs.extract1d) as ex:
        data = ex.data
    radius = np.asarray(data.radius)  # inline arrays: readable after the file is closed (as jwst reads it)
    assert radius.size == 3 and np.all(np.asarray(data.outer_bkg) > np.asarray(data.inner_bkg))
    with dm.NrsIfuApcorrModel(refs.apcorr) as ap:
        tab = ap.apcorr_table
        corr = np.asarray(tab.apcorr)
        assert tab.radius_units == "arcsec" and corr.shape == np.asarray(tab.radius).shape
    assert np.all(corr >= 1.0) and np.all(np.diff(corr, axis=0) <= 0)  # less correction for larger radii
    assert np.all(corr[-1] < 1.001)


def test_encircled_energy_against_monte_carlo() -> None:
    """Gaussian PSF + uniform offsets for the slice width, detector row and spaxel (twice)."""
    rng = np.random.default_rng(0)
    n = 400_000
    lam = 4.0
    sigma = float(psf_sigma_arcsec(np.array([lam]))[0])
    x = rng.normal(0, sigma, n) + rng.uniform(-0.05, 0.05, n) + rng.uniform(-0.05, 0.05, n)
    y = rng.normal(0, sigma, n) + rng.uniform(-0.05, 0.05, n) + rng.uniform(-0.05, 0.05, n)
    r = np.hypot(x, y)
    radii = np.array([0.1, 0.2, 0.3, 0.5])
    mc = np.array([(r <= rr).mean() for rr in radii])
    np.testing.assert_allclose(encircled_energy(radii, lam), mc, atol=4e-3)


def test_same_seed_same_data() -> None:
    def render(seed: int) -> np.ndarray:
        layout = build_ifu(np.random.default_rng(seed), 1, 2, 64)
        det = layout.detectors[1]
        regions, _ = regions_map(det)
        px = detector_pixels(det, regions, 0.1)
        defects = static_defects(np.random.default_rng(seed), layout, px, regions)
        return render_exposure(layout, px, defects, 0, np.random.default_rng(seed)).sci

    np.testing.assert_array_equal(render(4), render(4))
    assert not np.array_equal(render(4), render(5), equal_nan=True)


@pytest.fixture(scope="module")
def moving(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    return simulate_nirspec_ifu("nirspec-ifu", tmp_path_factory.mktemp("mt"),
                                SimOptions(seed=9, n_exposures=2, n_columns=64, moving_target=True),
                                target_type="EXTENDED", detectors=("NRS1",))


def test_extended_moving_target(moving: SimulationResult) -> None:
    res = moving
    truth = load_truth(res.truth_path)
    ifu = load_ifu_truth(res.truth_path)
    assert truth.sources["1"].source_type == "EXTENDED" and ifu.sigma_arcsec["1"] > 0
    assert truth.moving_target
    assert [p.stem.split("_")[3] for p in res.cal_paths] == ["nrs1", "nrs1"]
    with _open(res.cal_paths[0]) as m0, _open(res.cal_paths[1]) as m1:
        assert m0.meta.target.source_type == "EXTENDED" and m0.meta.target.type == "MOVING"
        assert (m0.meta.wcsinfo.mt_ra, m0.meta.wcsinfo.mt_dec) == truth.ephemeris[res.cal_paths[0].stem]
        d = np.hypot((m1.meta.wcsinfo.mt_ra - m0.meta.wcsinfo.mt_ra) * np.cos(np.deg2rad(m0.meta.wcsinfo.mt_dec)),
                     m1.meta.wcsinfo.mt_dec - m0.meta.wcsinfo.mt_dec) * 3600
        assert d == pytest.approx(ifu_config()["moving_target"]["motion_arcsec_per_exposure"], rel=1e-3)
    # the pointing follows the target: it stays at its commanded dither position
    offsets = ifu_config()["dither"]["offsets_arcsec"]
    first = np.subtract(ifu.positions[res.cal_paths[0].stem]["1"], offsets[0])
    np.testing.assert_allclose(np.subtract(ifu.positions[res.cal_paths[1].stem]["1"], offsets[1]), first, atol=1e-6)


def test_background_members(sim: SimulationResult) -> None:
    truth = load_truth(sim.truth_path)
    asn = json.loads(sim.asn_path.read_text())
    names = [m["expname"] for m in asn["products"][0]["members"] if m["exptype"] == "background"]
    with dm.open(sim.asn_path.parent / names[0]) as x1d:
        assert isinstance(x1d, dm.MultiSpecModel) and x1d.meta.observation.bkgdtarg
        tab = x1d.spec[0].spec_table
        sky = truth.sky[Path(names[0]).stem]
        assert abs(np.median(tab["SURF_BRIGHT"]) / sky - 1) < 0.01
        np.testing.assert_array_equal(tab["BACKGROUND"], tab["SURF_BRIGHT"])  # what master_background reads
        assert np.all(np.diff(tab["WAVELENGTH"]) > 0)


def test_cli(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["simulate", "nirspec-ifu", "--output-dir", str(tmp_path), "--n-exposures", "1",
                                    "--n-columns", "64", "--n-sources", "1"])
    assert res.exit_code == 0, res.output
    assert len(list(tmp_path.glob("*_cal.fits"))) == 2
    assert reference_file_paths(next(tmp_path.glob("*_asn.json"))).cubepar.is_file()
