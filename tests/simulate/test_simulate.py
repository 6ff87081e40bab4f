"""Tests of spec3c.simulate: file validity, noise model, WCS, truth."""

from __future__ import annotations

import io
import json

import asdf
import numpy as np
import pytest
from stdatamodels.jwst import datamodels as dm

from spec3c import dqflags
from spec3c.simulate import MODES, SimOptions, SimulationResult, load_truth, simulate

NCOL = 300


@pytest.fixture(scope="module")
def mos(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    return simulate(
        "nirspec-mos",
        tmp_path_factory.mktemp("mos"),
        SimOptions(seed=3, n_sources=20, n_columns=NCOL),
    )


@pytest.fixture(scope="module")
def fs(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    return simulate("nirspec-fs", tmp_path_factory.mktemp("fs"), SimOptions(seed=4, n_columns=NCOL))


@pytest.fixture(scope="module")
def fs_sky(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    return simulate(
        "nirspec-fs",
        tmp_path_factory.mktemp("fs_sky"),
        SimOptions(seed=5, n_columns=NCOL, nod_subtracted=False, n_exposures=2),
    )


@pytest.fixture(params=["mos", "fs"])
def result(request: pytest.FixtureRequest) -> SimulationResult:
    return request.getfixturevalue(request.param)


def test_modes() -> None:
    assert {"nirspec-fs", "nirspec-mos", "miri-lrs-fs", "miri-lrs-slitless", "miri-mrs"} <= set(MODES)
    with pytest.raises(ValueError, match="mode"):
        simulate("nope", "/nonexistent")


def test_files_open_and_validate(result: SimulationResult) -> None:
    assert len(result.cal_paths) == 3
    for path in result.cal_paths:
        with dm.open(path) as model:
            assert isinstance(model, dm.MultiSlitModel)
            model.validate()
            assert model.meta.exposure.type in ("NRS_MSASPEC", "NRS_FIXEDSLIT")
            assert model.meta.filename == path.name
            assert model.meta.group_id == path.name.rsplit("_", 2)[0]
            assert model.meta.instrument.name == "NIRSPEC"
            assert len(model.slits) >= 3


def test_asn(result: SimulationResult) -> None:
    asn = json.loads(result.asn_path.read_text())
    assert asn["asn_type"] == "spec3"
    prod = asn["products"][0]
    assert "{source_id}" in prod["name"]
    if result.mode == "nirspec-mos":
        assert prod["name"] == "jw01345-o066_{source_id}_nirspec_f170lp-g235m"
        assert asn["asn_id"] == "o066"
    else:
        assert prod["name"].endswith("_nirspec_f290lp-g395h-{slit_name}")
        assert "o022_t001-{source_id}" in prod["name"]
    assert [m["expname"] for m in prod["members"]] == [p.name for p in result.cal_paths]
    assert all(m["exptype"] == "science" for m in prod["members"])
    assert result.truth_path.name == result.asn_path.stem + "_truth.asdf"


def _slits(path):  # type: ignore[no-untyped-def]
    model = dm.open(path)
    return model, list(model.slits)


def test_arrays_consistent(result: SimulationResult) -> None:
    model, slits = _slits(result.cal_paths[0])
    with model:
        for s in slits:
            var = s.var_poisson + s.var_rnoise + s.var_flat
            bad = (s.dq & dqflags.DO_NOT_USE) != 0
            np.testing.assert_allclose(s.err[~bad] ** 2, var[~bad], rtol=2e-6)
            assert np.array_equal(bad, np.isnan(s.data))
            for arr in (s.err, s.var_poisson, s.var_rnoise, s.var_flat):
                assert np.array_equal(np.isnan(arr), bad)
            assert bad.any() and (~bad).sum() > 0.5 * bad.size
            assert s.wavelength.dtype.kind == "f" and s.wavelength.dtype.itemsize == 4
            ny, nx = s.data.shape
            y, x = np.mgrid[:ny, :nx]
            _, _, lam = s.meta.wcs(x, y)
            assert np.array_equal(np.isnan(lam), np.isnan(s.wavelength))
            assert np.array_equal(
                lam.astype(np.float32)[~np.isnan(lam)], s.wavelength[~np.isnan(lam)]
            )
            assert s.pathloss_point.shape == s.data.shape
            assert 0.5 < np.nanmin(s.pathloss_point) <= np.nanmax(s.pathloss_point) < 1.0
            unit = "MJy" if s.source_type == "POINT" else "MJy/sr"
            assert s.meta.bunit_data == unit and s.meta.bunit_err == unit


def test_wcs_roundtrip_and_asdf(result: SimulationResult) -> None:
    model, slits = _slits(result.cal_paths[1])
    with model:
        wcs = slits[0].meta.wcs
        assert wcs.available_frames == ["detector", "slit_frame", "world"]
        ny, nx = slits[0].data.shape
        y, x = np.mgrid[:ny, :nx].astype(float)
        ra, dec, lam = wcs(x, y)
        ok = np.isfinite(lam)
        xi, yi = wcs.invert(ra, dec, lam)
        assert np.nanmax(np.abs(xi - x)[ok]) < 1e-3
        assert np.nanmax(np.abs(yi - y)[ok]) < 1e-3
        xs, ys, lam_m = wcs.get_transform("detector", "slit_frame")(x[ok], y[ok])
        np.testing.assert_allclose(lam_m * 1e6, lam[ok], rtol=1e-12)
        r2 = wcs.get_transform("slit_frame", "world")(xs, ys, lam_m)
        np.testing.assert_allclose(r2[0], ra[ok], rtol=0, atol=1e-10)
        buf = io.BytesIO()
        asdf.AsdfFile({"wcs": wcs}).write_to(buf)
        buf.seek(0)
        with asdf.open(buf) as af:
            back = af["wcs"](x, y)
            for a, b in zip(back, (ra, dec, lam), strict=True):
                np.testing.assert_array_equal(a, b)


def test_mos_slit_conventions(mos: SimulationResult) -> None:
    model, slits = _slits(mos.cal_paths[0])
    with model:
        names = [s.source_name for s in slits]
        bkg = [s for s in slits if "BKG" in s.source_name]
        virt = [s for s in slits if s.source_id < 0]
        assert bkg and all(s.source_id > 0 for s in bkg)
        assert virt and all("BKG" not in s.source_name for s in virt)
        assert len(set(names)) == len(names)
        for s in bkg + virt:
            assert s.source_type == "EXTENDED"
        assert all(len(s.shutter_state) == 3 and "x" in s.shutter_state for s in slits)
    truth = load_truth(mos.truth_path)
    assert set(truth.sources) == set(names)
    for s in bkg + virt:
        assert not truth.sources[s.source_name].flux.any()


def test_fs_keys(fs: SimulationResult) -> None:
    model, slits = _slits(fs.cal_paths[0])
    with model:
        assert [s.name for s in slits] == ["S200A1", "S200A2", "S400A1"]
        assert all(not s.source_name for s in slits)
        assert {s.source_type for s in slits} == {"POINT", "EXTENDED"}
    truth = load_truth(fs.truth_path)
    assert set(truth.sources) == {"1", "2", "3"}


def test_nods_move_source(mos: SimulationResult) -> None:
    truth = load_truth(mos.truth_path)
    rows = []
    for path in mos.cal_paths:
        model, slits = _slits(path)
        with model:
            s = next(x for x in slits if x.source_type == "POINT" and "BKG" not in x.source_name)
            exp = truth.exposures[path.stem][s.name]
            assert exp["source_ypos"] == pytest.approx(s.source_ypos)
            x = np.full(1, s.data.shape[1] / 2.0)
            lam = np.nanmedian(s.wavelength)
            _, yy = s.meta.wcs.get_transform("slit_frame", "detector")(
                0.0, s.source_ypos, lam * 1e-6
            )
            rows.append(float(yy))
            assert x.size == 1
    assert np.ptp(rows) > 8.0  # two shutters apart (~10.6 px)
    assert len({round(r) for r in rows}) == 3


def test_cosmic_rays_where_truth_says(mos: SimulationResult) -> None:
    truth = load_truth(mos.truth_path)
    n_total = 0
    for path in mos.cal_paths:
        model, slits = _slits(path)
        with model:
            for s in slits:
                crs = truth.exposures[path.stem][s.name]["cosmic_rays"]
                n_total += len(crs)
                for y, x in crs:
                    assert s.dq[y, x] & dqflags.DO_NOT_USE == 0
                    assert s.data[y, x] > 10 * s.err[y, x]
    assert n_total > 20


def test_deterministic(tmp_path) -> None:  # type: ignore[no-untyped-def]
    a = simulate(
        "nirspec-mos",
        tmp_path / "a",
        SimOptions(seed=11, n_sources=4, n_columns=120, n_exposures=2),
    )
    b = simulate(
        "nirspec-mos",
        tmp_path / "b",
        SimOptions(seed=11, n_sources=4, n_columns=120, n_exposures=2),
    )
    c = simulate(
        "nirspec-mos",
        tmp_path / "c",
        SimOptions(seed=12, n_sources=4, n_columns=120, n_exposures=2),
    )
    for pa, pb, pc in zip(a.cal_paths, b.cal_paths, c.cal_paths, strict=True):
        with dm.open(pa) as ma, dm.open(pb) as mb, dm.open(pc) as mc:
            for sa, sb in zip(ma.slits, mb.slits, strict=True):
                np.testing.assert_array_equal(sa.data, sb.data)
                assert sa.source_name == sb.source_name
            assert not np.array_equal(ma.slits[0].data, mc.slits[0].data, equal_nan=True)


def test_single_exposure_and_progress(tmp_path) -> None:  # type: ignore[no-untyped-def]
    calls: list[tuple[int, int]] = []
    res = simulate(
        "nirspec-fs",
        tmp_path,
        SimOptions(n_exposures=1, n_columns=100),
        progress=lambda d, n: calls.append((d, n)),
    )
    assert calls[-1] == (4, 4) and len(calls) == 4
    with dm.open(res.cal_paths[0]) as model:
        assert model.meta.cal_step.bkg_subtract == "SKIPPED"
    assert not load_truth(res.truth_path).nod_subtracted


def test_nod_subtraction_flags(mos: SimulationResult, fs_sky: SimulationResult) -> None:
    with dm.open(mos.cal_paths[0]) as model:
        assert model.meta.cal_step.bkg_subtract == "COMPLETE"
        # negative traces from the subtracted nods
        point = [s for s in model.slits if s.source_type == "POINT"]
        assert np.nanmin(point[0].data) < -5 * np.nanmedian(point[0].err)
    with dm.open(fs_sky.cal_paths[0]) as model:
        assert model.meta.cal_step.bkg_subtract == "SKIPPED"


def test_point_flux_matches_truth(fs_sky: SimulationResult) -> None:
    """Sum over rows of (SCI - sky) equals the true flux density (bright POINT source)."""
    truth = load_truth(fs_sky.truth_path)
    for path in fs_sky.cal_paths:
        sky = truth.sky[path.stem]
        with dm.open(path) as model:
            s = model.slits[0]
            assert s.source_type == "POINT"
            key = truth.exposures[path.stem][s.name]["source_key"]
            assert truth.sources[key].snr_median > 100
            area = s.meta.photometry.pixelarea_steradians
            good = (s.dq & dqflags.DO_NOT_USE) == 0
            full = good.sum(axis=0) == good.sum(axis=0).max()
            lam = np.full(s.data.shape[1], np.nan)
            lam[full] = np.nanmedian(s.wavelength[:, full], axis=0)
            # a uniform sky calibrated as a point source carries the path-loss ratio
            col = np.nansum(s.data - sky * area * s.pathloss_uniform / s.pathloss_point, axis=0)  # MJy
            crs = truth.exposures[path.stem][s.name]["cosmic_rays"]
            full[np.unique(crs[:, 1])] = False
            full &= np.isfinite(lam)
            ratio = col[full] / (truth.flux_at(key, lam[full]) * 1e-6)
            assert abs(np.median(ratio) - 1.0) < 0.02
            # extended source: surface brightness at the peak row
            e = model.slits[2]
            assert e.source_type == "EXTENDED" and e.meta.bunit_data == "MJy/sr"


def test_snr_range(mos: SimulationResult) -> None:
    truth = load_truth(mos.truth_path)
    snr = [s.snr_median for s in truth.sources.values() if s.kind == "science"]
    assert max(snr) > 100
    assert min(snr) < 60
    grid = next(iter(truth.sources.values())).wavelength
    assert grid.dtype == np.float64 and np.all(np.diff(grid) > 0)


@pytest.fixture(scope="module", params=["nirspec-fs", "nirspec-mos"])
def moving(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    return simulate(
        request.param,
        tmp_path_factory.mktemp("moving"),
        SimOptions(seed=6, n_sources=3, n_columns=120, moving_target=True),
    )


def test_moving_target_files_and_ephemeris(moving: SimulationResult) -> None:
    truth = load_truth(moving.truth_path)
    assert truth.moving_target and set(truth.ephemeris) == {p.stem for p in moving.cal_paths}
    for path in moving.cal_paths:
        mt_ra, mt_dec = truth.ephemeris[path.stem]
        with dm.open(path) as model:
            model.validate()
            assert model.meta.target.type == "MOVING"
            assert model.meta.wcsinfo.mt_ra == mt_ra and model.meta.wcsinfo.mt_dec == mt_dec
            assert (model.meta.wcsinfo.ra_ref, model.meta.wcsinfo.dec_ref) == (mt_ra, mt_dec)
            for s in model.slits:
                assert s.meta.wcsinfo.mt_ra == mt_ra and s.meta.wcsinfo.mt_dec == mt_dec
                # tracked: the source sits at its planned slit position, at its moved sky position
                exp = truth.exposures[path.stem][s.name]
                assert exp["source_ypos"] == pytest.approx(s.source_ypos)
                assert (s.source_ra, s.source_dec) == (exp["source_ra"], exp["source_dec"])
                lam = float(np.nanmedian(s.wavelength)) * 1e-6
                ra, dec, _ = s.meta.wcs.get_transform("slit_frame", "world")(
                    s.source_xpos, s.source_ypos, lam
                )
                assert abs(float(ra) - exp["source_ra"]) * 3600 < 1e-3
                assert abs(float(dec) - exp["source_dec"]) * 3600 < 1e-3


def test_moving_target_moves_by_the_configured_step(moving: SimulationResult) -> None:
    truth = load_truth(moving.truth_path)
    names = [p.stem for p in moving.cal_paths]
    ra = np.array([truth.ephemeris[n][0] for n in names])
    dec = np.array([truth.ephemeris[n][1] for n in names])
    step = np.hypot(np.diff(ra) * np.cos(np.radians(dec[:-1])), np.diff(dec)) * 3600
    np.testing.assert_allclose(step, 0.6, rtol=1e-3)
    for slits in (truth.exposures[n] for n in names[1:]):
        for slit, exp in slits.items():
            src = truth.sources[exp["source_key"]]
            moved = np.hypot((exp["source_ra"] - src.ra) * np.cos(np.radians(src.dec)),
                             exp["source_dec"] - src.dec) * 3600
            assert moved > 0.5, slit


def test_fixed_target_has_no_ephemeris(fs: SimulationResult) -> None:
    truth = load_truth(fs.truth_path)
    assert not truth.moving_target and truth.ephemeris == {}
    with dm.open(fs.cal_paths[1]) as model:
        assert model.meta.target.type == "FIXED"
        assert "mt_ra" not in model.meta.wcsinfo.instance
        assert "mt_ra" not in model.slits[0].meta.wcsinfo.instance
        for s in model.slits:
            exp = truth.exposures[fs.cal_paths[1].stem][s.name]
            src = truth.sources[exp["source_key"]]
            assert (exp["source_ra"], exp["source_dec"]) == (src.ra, src.dec) == (s.source_ra, s.source_dec)
