"""Tests of the MIRI MRS simulator mode (miri-mrs) and its jwst-format reference files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from stdatamodels.jwst import datamodels as dm

from spec3c import dqflags
from spec3c.cli import main
from spec3c.simulate import MODES, SimOptions, SimulationResult, load_truth, simulate
from spec3c.simulate.miri import reffiles
from spec3c.simulate.miri.mrs import load_mrs_truth
from spec3c.simulate.miri.mrs.instrument import (
    channel_spec,
    detector_maps,
    detector_spec,
    mrs_config,
)
from spec3c.simulate.miri.mrs.render import scene_model
from spec3c.simulate.miri.mrs.scene import Leak, MrsScene, Psf, Sky, build_scene
from spec3c.simulate.miri.mrs.wcs import Pointing, solve_pointing

TARGET = tuple(mrs_config()["pointing"]["target_radec"])


@pytest.fixture(scope="module")
def mrs(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    out = tmp_path_factory.mktemp("mrs")
    return simulate("miri-mrs", out, SimOptions(seed=5, n_exposures=2, channels=(1, 2), bands=("SHORT",)))


@pytest.fixture(scope="module")
def models(mrs: SimulationResult) -> Iterator[list[dm.IFUImageModel]]:
    """The cal files, opened once (reading an MRS gwcs takes seconds)."""
    opened = [dm.open(p) for p in mrs.cal_paths]
    yield opened
    for m in opened:
        m.close()


def _pointing(model: dm.IFUImageModel) -> Pointing:
    w = model.meta.wcsinfo
    return Pointing(w.v2_ref, w.v3_ref, w.roll_ref, w.ra_ref, w.dec_ref, w.v3yangle, int(w.vparity))


def _scene(truth_path: Path) -> MrsScene:
    mt = load_mrs_truth(truth_path)
    return MrsScene(tuple(mt.sources.values()), mt.sky, mt.psf, mt.leak)


def test_mode_and_arguments(tmp_path: Path) -> None:
    assert "miri-mrs" in MODES
    for bad, match in [
        (SimOptions(channels=(5,)), "channels"),
        (SimOptions(bands=("BLUE",)), "bands"),
        (SimOptions(n_sources=3), "n_sources"),
        (SimOptions(n_columns=100), "n_columns"),
        (SimOptions(moving_target=True), "moving_target"),
    ]:
        with pytest.raises(ValueError, match=match):
            simulate("miri-mrs", tmp_path, bad)
    assert not list(tmp_path.glob("*.fits"))


def test_files_and_metadata(mrs: SimulationResult, models: list[dm.IFUImageModel]) -> None:
    asn = json.loads(mrs.asn_path.read_text())
    assert asn["asn_rule"] == "Asn_Lv3MIRMRS" and asn["products"][0]["name"] == "jw01050-o003_t001_miri"
    names = [m["expname"] for m in asn["products"][0]["members"]]
    assert names == [p.name for p in mrs.cal_paths] == [
        "jw01050003001_03102_00001_mirifushort_cal.fits", "jw01050003001_03102_00002_mirifushort_cal.fits"]
    maps = detector_maps("MIRIFUSHORT", "SHORT")
    for k, model in enumerate(models):
        assert isinstance(model, dm.IFUImageModel)
        assert model.data.shape == (1024, 1032)
        meta = model.meta
        assert (meta.exposure.type, meta.instrument.detector, meta.instrument.channel, meta.instrument.band) == (
            "MIR_MRS", "MIRIFUSHORT", "12", "SHORT")
        assert meta.dither.position_number == k + 1 and meta.dither.primary_type == "4-POINT"
        assert meta.group_id == f"jw01050003001_03102_{k + 1:05d}"
        assert meta.wcsinfo.s_region.startswith("POLYGON ICRS  ")
        lo, hi = meta.wcsinfo.spectral_region
        assert lo < 4.9 and 8.77 < hi < 9.0
        between = ~maps.valid
        assert np.all(model.dq[between] == dqflags.DO_NOT_USE | dqflags.NON_SCIENCE)
        assert np.all(np.isnan(model.data[between])) and np.all(np.isnan(model.err[between]))
        good = maps.valid & (model.dq == 0)
        assert good.sum() > 0.99 * maps.valid.sum() and np.all(np.isfinite(model.data[good]))
        assert meta.bunit_data == "MJy/sr" and meta.target.source_type == "POINT"


def test_gwcs_layout_and_geometry(models: list[dm.IFUImageModel]) -> None:
    maps = detector_maps("MIRIFUSHORT", "SHORT")
    for model in models[:1]:
        wcs = model.meta.wcs
        assert wcs.available_frames == ["detector", "alpha_beta", "v2v3", "v2v3vacorr", "world"]
        d2ab = wcs.get_transform("detector", "alpha_beta")
        assert np.array_equal(d2ab.label_mapper.mapper, maps.label)  # the slice map cube_build reads
        labels = set(np.unique(maps.label)) - {0}
        assert labels == {100 + s for s in range(1, 22)} | {200 + s for s in range(1, 18)}
        # cube_build's channel column ranges hold exactly their channel's slices
        assert set(np.unique(maps.label[:, :512])) - {0} == {100 + s for s in range(1, 22)}
        assert set(np.unique(maps.label[:, 513:1031])) - {0} == {200 + s for s in range(1, 18)}
        yy, xx = np.nonzero(maps.valid)
        sub = slice(None, None, 37)
        x, y = xx[sub].astype(float), yy[sub].astype(float)
        alpha, beta, lam = d2ab(x, y)
        assert np.allclose(alpha, maps.alpha[yy[sub], xx[sub]], atol=1e-9)
        assert np.allclose(beta, maps.beta[yy[sub], xx[sub]], atol=1e-12)
        assert np.allclose(lam, maps.lam[yy[sub], xx[sub]], atol=1e-9)
        # one beta per slice, spaced by the slice width (cube_build's dbeta)
        ch1 = channel_spec(1)
        betas = np.unique(beta[maps.channel[yy[sub], xx[sub]] == 1])
        assert np.allclose(np.diff(betas), ch1.slice_width)
        xi, yi = d2ab.inverse(alpha, beta, lam)
        assert np.max(np.abs(xi - x)) < 1e-6 and np.max(np.abs(yi - y)) < 1e-6
        ra, dec, lam_w = wcs(x, y)
        assert np.all(np.isfinite(ra)) and np.allclose(lam_w, lam)
        xb, yb = wcs.backward_transform(ra, dec, lam_w)
        assert np.max(np.abs(xb - x)) < 1e-5 and np.max(np.abs(yb - y)) < 1e-5
        row = np.concatenate([np.nonzero(~maps.valid[500])[0][:5], np.nonzero(maps.valid[500])[0][:1]])
        ra_row = wcs(row.astype(float), np.full(row.size, 500.0))[0]
        assert np.all(np.isnan(ra_row[:5])) and np.isfinite(ra_row[5])  # NaN between slices


def test_pointing_dither_and_truth_positions(mrs: SimulationResult, models: list[dm.IFUImageModel]) -> None:
    truth = load_truth(mrs.truth_path)
    mt = load_mrs_truth(mrs.truth_path)
    src = truth.sources["1"]
    off = np.hypot((src.ra - TARGET[0]) * np.cos(np.deg2rad(TARGET[1])), src.dec - TARGET[1]) * 3600
    assert off <= mrs_config()["pointing"]["source_offset_arcsec"] + 1e-9
    assert {k: s.source_type for k, s in truth.sources.items()} == {"1": "POINT", "2": "EXTENDED"}
    offsets = mrs_config()["pointing"]["dither"]["offsets_arcsec"]
    for k, (path, model) in enumerate(zip(mrs.cal_paths, models, strict=True)):
        d = model.meta.dither
        assert (d.x_offset, d.y_offset) == tuple(offsets[k])
        assert d.dithered_ra == pytest.approx(TARGET[0], abs=1e-9)
        assert d.dithered_dec == pytest.approx(TARGET[1], abs=1e-9)
        assert (model.meta.target.ra, model.meta.target.dec) == TARGET
        ab2w = model.meta.wcs.get_transform("alpha_beta", "world")
        rec = mt.exposures[path.stem]
        for ch in (1, 2):
            alpha, beta = rec.alpha_beta[ch]["1"]
            assert truth.exposures[path.stem][f"ch{ch}"]["source_ypos"] == beta
            lam = np.mean(channel_spec(ch).bands["SHORT"].wavelength)
            ra, dec, _ = ab2w(alpha, beta, lam)
            assert ra == pytest.approx(src.ra, abs=1e-10) and dec == pytest.approx(src.dec, abs=1e-10)
    # the dithers move the source on the detector by the commanded ideal offsets
    a0 = np.array(mt.exposures[mrs.cal_paths[0].stem].alpha_beta[1]["1"])
    a1 = np.array(mt.exposures[mrs.cal_paths[1].stem].alpha_beta[1]["1"])
    assert np.hypot(*(a0 - a1)) == pytest.approx(np.hypot(*(np.subtract(offsets[0], offsets[1]))), rel=1e-3)


def test_noise_and_cosmic_rays(mrs: SimulationResult, models: list[dm.IFUImageModel]) -> None:
    truth = load_truth(mrs.truth_path)
    scene = _scene(mrs.truth_path)
    det = detector_spec("MIRIFUSHORT")
    for path, model in zip(mrs.cal_paths, models, strict=True):
        sm = scene_model(det, "SHORT", _pointing(model), scene)
        assert truth.nod_subtracted and model.meta.cal_step.bkg_subtract == "COMPLETE"
        expected = sm.total - sm.sky  # spec2 removed the sky (its noise stays)
        z = (model.data - expected) / model.err
        crs = np.concatenate([truth.exposures[path.stem][c]["cosmic_rays"] for c in ("ch1", "ch2")])
        assert len(crs) > 5
        hit = np.zeros(z.shape, dtype=bool)
        hit[crs[:, 0], crs[:, 1]] = True
        assert np.all(z[hit] > 10.0) and np.all(model.dq[hit] == 0)  # unflagged, far above the noise
        clean = np.isfinite(z) & ~hit
        assert abs(np.mean(z[clean])) < 0.01 and np.std(z[clean]) == pytest.approx(1.0, abs=0.02)
        assert np.allclose(model.err[clean] ** 2, (model.var_poisson + model.var_rnoise + model.var_flat)[clean],
                           rtol=1e-5)


def test_point_source_flux_on_detector() -> None:
    """Sum of surface brightness x pixel solid angle x pixel bandwidth = the true flux."""
    rng = np.random.default_rng(3)
    base = build_scene(rng, TARGET, 1)
    dark = Sky(np.array([4.0, 30.0]), np.array([1e-30, 1e-30]))
    scene = MrsScene(base.sources, dark, base.psf, base.leak)
    src = base.sources[0]
    p = solve_pointing((src.ra, src.dec), (0.0, 0.0), tuple(mrs_config()["pointing"]["v2v3_ref"]), 20.0,
                       mrs_config()["pointing"]["v3yangle"], -1)
    det = detector_spec("MIRIFUSHORT")
    model = scene_model(det, "SHORT", p, scene)
    maps = detector_maps(det.name, "SHORT")
    for ch in det.channels:
        sel = maps.channel == ch.number
        lo, hi = maps.lam_lo[sel], maps.lam_hi[sel]
        omega = np.abs(maps.alpha_hi - maps.alpha_lo)[sel] * ch.slice_width * (np.pi / 648000.0) ** 2
        b0, b1 = ch.bands["SHORT"].wavelength
        a, b = b0 + 0.2 * (b1 - b0), b0 + 0.6 * (b1 - b0)  # spans the first line of the band
        overlap = np.clip(np.minimum(hi, b) - np.maximum(lo, a), 0.0, None)
        measured = np.sum(model.point[sel] * omega * overlap) * 1e6  # Jy um
        grid = np.linspace(a, b, 200001)
        expected = np.trapezoid(src.spectrum(grid), grid)
        assert measured == pytest.approx(expected, rel=2e-3), ch.number


def test_spectral_leak_only_in_channel_3a() -> None:
    base = build_scene(np.random.default_rng(4), TARGET, 1)
    no_leak = Leak(base.leak.channel, base.leak.band, 0.0, base.leak.centre, base.leak.sigma)
    sky_only = MrsScene((), base.sky, base.psf, base.leak)
    p = solve_pointing(TARGET, (0.0, 0.0), tuple(mrs_config()["pointing"]["v2v3_ref"]), 20.0, 8.38, -1)
    det = detector_spec("MIRIFULONG")
    maps = detector_maps(det.name, "SHORT")
    with_leak = scene_model(det, "SHORT", p, sky_only).total
    without = scene_model(det, "SHORT", p, MrsScene((), base.sky, base.psf, no_leak)).total
    diff = with_leak - without
    ch3, ch4 = maps.channel == 3, maps.channel == 4
    assert np.all(diff[ch4] == 0.0)
    lam = maps.lam[ch3]
    expected = base.leak.frac(lam) * base.sky(0.5 * lam)
    assert np.allclose(diff[ch3], expected, rtol=1e-9, atol=1e-13 * base.sky(lam).max())  # sky + leak - sky
    assert diff[ch3].max() > 0.02 * base.sky(6.1)


def _numeric_apcorr(psf: Psf, lam: float, r: float, r_in: float, r_out: float, extra: float) -> float:
    """Slow reference: the PSF (each component broadened by ``extra``) integrated on a fine grid."""
    h = 0.004
    g = np.arange(-r_out - 0.1, r_out + 0.1 + h / 2, h)
    xx, yy = np.meshgrid(g, g)
    rr = np.hypot(xx, yy)
    img = sum(w * np.exp(-0.5 * rr**2 / (s**2 + extra)) / (2 * np.pi * (s**2 + extra)) for w, s in psf.components(lam))
    ap = img[rr <= r].sum() * h * h
    ring = img[(rr >= r_in) & (rr <= r_out)].sum() * h * h
    return 1.0 / (ap - ring * r**2 / (r_out**2 - r_in**2))


def test_reference_files(tmp_path: Path) -> None:
    files = reffiles.write_reference_files(reffiles.reference_file_paths(tmp_path / "x_asn.json"))
    assert files.cubepar.name == "x_asn_cubepar.fits"
    with dm.MiriIFUCubeParsModel(files.cubepar) as cp:
        tab = cp.ifucubepars_table
        assert len(tab) == 12
        row = tab[(tab["channel"] == "3") & (tab["band"] == "MEDIUM")][0]
        assert (row["wavemin"], row["wavemax"]) == pytest.approx(channel_spec(3).bands["MEDIUM"].wavelength)
        assert row["spaxelsize"] == pytest.approx(0.20) and row["spectralstep"] == pytest.approx(0.0025)
        lam = np.asarray(cp.ifucubepars_multichannel_driz_wavetable["wavelength"])
        assert np.all(np.diff(lam) > 0) and lam[0] == pytest.approx(4.90) and lam[-1] > 27.8
        steps = np.diff(lam)
        assert steps[lam[:-1] < 7.0].max() == pytest.approx(0.0008, rel=1e-3)
        assert steps[lam[:-1] > 18.5].min() == pytest.approx(0.006, rel=1e-3)
        assert len(cp.ifucubepars_msm_table) == len(cp.ifucubepars_emsm_table) == 12
        assert len(cp.ifucubepars_multichannel_msm_wavetable) == lam.size
    for path in (files.extract1d, files.apcorr):
        assert b"\xd3BLK" not in path.read_bytes()  # inline arrays only
    psf_cfg = mrs_config()["psf"]
    psf = Psf(*psf_cfg["fwhm_arcsec"], psf_cfg["wing_fraction"], psf_cfg["wing_scale"])
    with dm.Extract1dIFUModel(files.extract1d) as x1:
        assert x1.meta.subtract_background is True and x1.meta.method == "exact"
        assert np.allclose(x1.data.radius, 2.0 * psf.fwhm(x1.data.wavelength), rtol=1e-6)
        assert np.all(x1.data.outer_bkg > x1.data.inner_bkg) and np.all(x1.data.inner_bkg > x1.data.radius)
    with dm.MirMrsApcorrModel(files.apcorr) as ap:
        t = ap.apcorr_table
        assert t.radius_units == "arcseconds" and t.radius.shape == t.apcorr.shape == (3, t.wavelength.size)
        assert np.all(np.diff(t.apcorr, axis=0) < 0)  # larger aperture, smaller correction
        for i in (5, 60, 110):
            lam = float(t.wavelength[i])
            ch = channel_spec(int(reffiles._channel_at(np.array([lam]))[0]) + 1)
            extra = (ch.pixel_scale**2 + ch.slice_width**2) / 24 + ch.spaxel**2 / 12
            fwhm = float(psf.fwhm(lam))
            ref = _numeric_apcorr(psf, lam, 2.0 * fwhm, 2.5 * fwhm, 3.5 * fwhm, extra)
            assert t.apcorr[1, i] == pytest.approx(ref, rel=2e-3)
    with dm.MirMrsPtCorrModel(files.mrsptcorr) as pt:
        leak = pt.leakcor_table
        assert leak["frac_leak"].max() == pytest.approx(0.03, rel=1e-3)
        assert leak["wavelength"][np.argmax(leak["frac_leak"])] == pytest.approx(12.2, abs=0.01)
    overrides = files.jwst_overrides()
    assert overrides["cube_build"]["override_cubepar"] == str(files.cubepar)
    assert overrides["spectral_leak"]["override_mrsptcorr"] == str(files.mrsptcorr)


def test_reference_files_beside_asn(mrs: SimulationResult) -> None:
    files = reffiles.reference_file_paths(mrs.asn_path)
    for p in (files.cubepar, files.extract1d, files.apcorr, files.mrsptcorr):
        assert p.is_file()


def test_cli_one_long_exposure(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    result = CliRunner().invoke(main, ["simulate", "miri-mrs", "-o", str(out), "--n-exposures", "1",
                                       "--channels", "3,4", "--bands", "long", "--n-sources", "1",
                                       "--no-nod-subtracted"])
    assert result.exit_code == 0, result.output
    cals = sorted(p.name for p in out.glob("*_cal.fits"))
    assert cals == ["jw01050003001_03106_00001_mirifulong_cal.fits"]
    truth = load_truth(next(out.glob("*_truth.asdf")))
    with dm.open(out / cals[0]) as model:
        assert (model.meta.instrument.channel, model.meta.instrument.band) == ("34", "LONG")
        assert model.meta.cal_step.bkg_subtract == "SKIPPED" and not truth.nod_subtracted
        ch4 = detector_maps("MIRIFULONG", "LONG").channel == 4
        # the sky stays: channel 4C is sky dominated (truth.sky: the first channel's band centre)
        assert np.nanmedian(model.data[ch4]) == pytest.approx(truth.sky[cals[0][:-5]], rel=0.3)
    assert list(truth.sources) == ["1"]
