"""assign_mtwcs: shift algebra, the moving_target gwcs frame and the step on simulated data."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from astropy import coordinates as coord
from astropy import units as u
from astropy.modeling import models as am
from gwcs import WCS
from gwcs import coordinate_frames as cf

from spec3c.algorithms.moving_target import (
    add_moving_target_frame,
    frame_offset,
    mean_position,
    shift_coordinates,
)
from spec3c.algorithms.slit_grid import GridOptions, build_slit_grid
from spec3c.errors import Spec3cWarning
from spec3c.gwcs_asdf import wcs_from_asdf, wcs_to_asdf
from spec3c.ingest import ingest
from spec3c.results import COMPLETE, SKIPPED
from spec3c.simulate import SimOptions, load_truth, simulate
from spec3c.simulate.nirspec.wcs import SlitGeometry, build_slit_wcs
from spec3c.steps import assign_mtwcs
from spec3c.steps.context import SourceInputs
from spec3c.store import open_store

ARCSEC = 1.0 / 3600.0


# -- mean_position / shift_coordinates ------------------------------------------------

def test_mean_position_hand_values() -> None:
    assert mean_position([10.0, 10.2, 10.4], [-20.0, -20.1, -20.5]) == pytest.approx((10.2, -20.2))
    # straddling RA = 0: mean taken on unwrapped RA, result in [0, 360)
    ra, dec = mean_position([359.9, 0.1, 0.3], [1.0, 2.0, 3.0])  # type: ignore[misc]
    assert ra == pytest.approx(0.1) and dec == pytest.approx(2.0)
    ra, _ = mean_position([359.8, 359.9, 0.0], [0.0, 0.0, 0.0])  # type: ignore[misc]
    assert ra == pytest.approx(359.9)


@pytest.mark.parametrize(("ras", "decs"), [([1.0, None], [1.0, 2.0]), ([1.0, 2.0], [np.nan, 2.0]),
                                           ([], [])])
def test_mean_position_missing(ras: list, decs: list) -> None:
    assert mean_position(ras, decs) is None


def test_mean_position_length_mismatch() -> None:
    with pytest.raises(ValueError, match="length"):
        mean_position([1.0, 2.0], [1.0])


def test_shift_hand_values_and_wrap() -> None:
    ra = np.array([10.0, 359.99, 0.05, np.nan])
    dec = np.array([-20.0, 30.0, 80.0, np.nan])
    # avra - mt_ra = +0.1, avdec - mt_dec = +0.2
    r, d = shift_coordinates(ra, dec, 10.5, -20.2, 10.6, -20.0)
    np.testing.assert_allclose(r[:3], [10.1, 0.09, 0.15], atol=1e-12)
    np.testing.assert_allclose(d[:3], [-19.8, 30.2, 80.2], atol=1e-12)  # no cos(dec) factor
    assert np.isnan(r[3]) and np.isnan(d[3])
    # negative shift wraps below 0 to just under 360
    r, d = shift_coordinates(np.array([0.05]), np.array([0.0]), 10.6, 0.0, 10.5, -0.1)
    assert r[0] == pytest.approx(359.95) and d[0] == pytest.approx(-0.1)
    assert 0.0 <= r[0] < 360.0
    # mean and exposure on either side of RA = 0: the shift is the small difference
    r, _ = shift_coordinates(np.array([359.95]), np.array([0.0]), 359.95, 0.0, 0.05, 0.0)
    assert r[0] == pytest.approx(0.05)


# -- add_moving_target_frame -----------------------------------------------------------

def _slit_wcs(centre: tuple[float, float] = (359.9999, -20.0)) -> WCS:
    geom = SlitGeometry(
        shape=(30, 100), xc=50.0, trace=(15.0, 0.001, 1e-6),
        wave_coeffs=(2.5e-6, 1.2e-6, 0.05e-6, 0.0), tilt=0.01, pix_per_slit=6.0,
        band_x=(-5.0, 105.0), slit_scale_arcsec=(0.2, 0.5), pa_deg=30.0, centre_radec=centre,
    )
    return build_slit_wcs(geom)


MT = (359.9999, -20.0, 0.0002, -20.0005)  # mt_ra, mt_dec, avra, avdec (shift +0.0003, -0.0005)


def test_frame_and_transform_structure() -> None:
    wcs = _slit_wcs()
    new = add_moving_target_frame(wcs, *MT)
    assert new.available_frames == ["detector", "slit_frame", "world", "moving_target"]
    assert wcs.available_frames == ["detector", "slit_frame", "world"]  # input untouched
    mt = new.output_frame
    assert isinstance(mt, cf.CompositeFrame) and mt.name == "moving_target"
    assert [type(f) for f in mt.frames] == [type(f) for f in wcs.output_frame.frames]
    step = new.get_transform("world", "moving_target")
    assert [type(m).__name__ for m in step] == ["Shift", "Shift", "Identity"]
    assert step[0].offset.value == pytest.approx(0.0003) and step[1].offset.value == pytest.approx(-0.0005)
    assert frame_offset(new) == pytest.approx((0.0003, -0.0005))
    assert frame_offset(wcs) == (0.0, 0.0)
    assert new.bounding_box is not None


def test_detector_to_moving_target_is_shifted_world() -> None:
    wcs = _slit_wcs()
    new = add_moving_target_frame(wcs, *MT)
    y, x = np.mgrid[0:30, 0:100].astype(float)
    ra, dec, lam = wcs(x, y)
    ra2, dec2, lam2 = new(x, y)
    ok = np.isfinite(lam)
    assert ok.sum() > 1000 and np.array_equal(ok, np.isfinite(lam2))
    ra_exp, dec_exp = shift_coordinates(ra, dec, *MT)
    np.testing.assert_allclose(np.mod(ra2[ok], 360.0), ra_exp[ok], rtol=0, atol=1e-10)
    np.testing.assert_allclose(dec2[ok], dec_exp[ok], rtol=0, atol=1e-10)
    np.testing.assert_array_equal(lam2[ok], lam[ok])
    # resample_spec's transforms: slit_frame <-> moving_target
    s2w = new.get_transform("slit_frame", "moving_target")
    w2s = new.get_transform("moving_target", "slit_frame")
    xs, ys, lm = new.get_transform("detector", "slit_frame")(x[ok], y[ok])
    r3, d3, _ = s2w(xs, ys, lm)
    np.testing.assert_allclose(d3, dec2[ok], atol=1e-10)
    _, ys_back, _ = w2s(r3, d3, lm)
    np.testing.assert_allclose(ys_back, ys, atol=1e-8)
    # full inverse (away from RA = 0, where gwcs's world bounding-box check gives NaN)
    away = add_moving_target_frame(_slit_wcs((10.0, -20.0)), 10.0, -20.0, 10.0003, -20.0005)
    xd, yd = away.invert(*away(x[ok][:50], y[ok][:50]))
    np.testing.assert_allclose(xd, x[ok][:50], atol=1e-3)
    np.testing.assert_allclose(yd, y[ok][:50], atol=1e-3)


def test_asdf_round_trip() -> None:
    new = add_moving_target_frame(_slit_wcs(), *MT)
    back = wcs_from_asdf(wcs_to_asdf(new, validate=True))
    assert back.available_frames == new.available_frames
    assert back.output_frame.name == "moving_target"
    y, x = np.mgrid[0:30:3, 0:100:7].astype(float)
    for a, b in zip(back(x, y), new(x, y), strict=True):
        np.testing.assert_array_equal(a, b)
    assert frame_offset(back) == frame_offset(new)


def test_existing_frame_is_replaced() -> None:
    once = add_moving_target_frame(_slit_wcs(), *MT)
    twice = add_moving_target_frame(once, 10.0, 1.0, 10.001, 1.0)
    assert twice.available_frames == ["detector", "slit_frame", "world", "moving_target"]
    assert frame_offset(twice) == pytest.approx((0.001, 0.0))


def test_celestial_and_unsupported_frames() -> None:
    det = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    sky = cf.CelestialFrame(name="world", axes_order=(0, 1), reference_frame=coord.ICRS())
    tan = (am.Scale(1e-4) & am.Scale(1e-4)) | am.Pix2Sky_TAN() | am.RotateNative2Celestial(5.0, 6.0, 180.0)
    img = WCS([(det, tan), (sky, None)])
    new = add_moving_target_frame(img, 5.0, 6.0, 5.01, 5.98)
    assert isinstance(new.output_frame, cf.CelestialFrame)
    assert [type(m).__name__ for m in new.get_transform("world", "moving_target")] == ["Shift", "Shift"]
    r, d = new(3.0, 4.0)
    r0, d0 = img(3.0, 4.0)
    assert r == pytest.approx(r0 + 0.01) and d == pytest.approx(d0 - 0.02)
    flat = WCS([(det, am.Shift(1.0) & am.Shift(2.0)), (cf.Frame2D(name="plain", axes_order=(0, 1)), None)])
    with pytest.raises(TypeError, match="plain"):
        add_moving_target_frame(flat, 0.0, 0.0, 0.0, 0.0)


# -- the step on simulated moving-target data ------------------------------------------

@pytest.fixture(scope="module", params=["nirspec-fs", "nirspec-mos"])
def moving(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp(request.param)
    res = simulate(
        request.param,
        out / "cal",
        SimOptions(seed=21, n_sources=3, n_columns=150, moving_target=True),
    )
    ingest(res.asn_path, out / "store")
    truth = load_truth(res.truth_path)
    key = max((k for k, s in truth.sources.items() if s.kind == "science" and s.source_type == "POINT"),
              key=lambda k: truth.sources[k].snr_median)
    return out / "store", truth, key


def _inputs(store_path, source: str) -> SourceInputs:  # type: ignore[no-untyped-def]
    with open_store(store_path) as store:
        exposures = {r.name: r for r in store.list_exposures() if r.role == "science"}
        cutouts = [c for c in store.read_cutouts(source) if c.exposure in exposures]
    for c in cutouts:  # writable planes, as the steps expect
        c.planes = {k: np.array(v) for k, v in c.planes.items()}
    return SourceInputs(source, cutouts, exposures)


def _sky_centroid(planes: dict[str, np.ndarray]) -> tuple[float, float]:
    """Flux-weighted (RA, Dec) of the positive trace: median over columns of ±3 rows about the peak."""
    sci, ra, dec = planes["sci"], planes["ra"], planes["dec"]
    ra_ref = float(np.nanmedian(ra))
    dra = (ra - ra_ref + 180.0) % 360.0 - 180.0
    ny, nx = sci.shape
    found = []
    for col in range(nx // 5, 4 * nx // 5):
        data = sci[:, col]
        if not np.isfinite(data).any():
            continue
        j = int(np.nanargmax(data))
        rows = slice(max(j - 3, 0), min(j + 4, ny))
        w = np.clip(np.nan_to_num(data[rows]), 0.0, None)
        ok = np.isfinite(dra[rows, col]) & (w > 0)
        if ok.sum() >= 3:
            found.append((np.average(dra[rows, col][ok], weights=w[ok]),
                          np.average(dec[rows, col][ok], weights=w[ok])))
    med = np.median(np.array(found), axis=0)
    return (ra_ref + med[0]) % 360.0, float(med[1])


def _separation_arcsec(a: tuple[float, float], b: tuple[float, float]) -> float:
    dra = ((a[0] - b[0] + 180.0) % 360.0 - 180.0) * np.cos(np.radians(0.5 * (a[1] + b[1])))
    return float(np.hypot(dra, a[1] - b[1]) * 3600.0)


def test_step_aligns_exposures_on_the_target(moving) -> None:  # type: ignore[no-untyped-def]
    store_path, truth, key = moving
    inputs = _inputs(store_path, key)
    names = sorted(truth.ephemeris)
    assert assert_one_cutout_per_exposure(inputs) == names
    before = [_sky_centroid(c.planes) for c in inputs.cutouts]
    # without the shift the traces land where the (moving) source was in each exposure
    for k, c in enumerate(inputs.cutouts):
        ex = next(v for v in truth.exposures[c.exposure].values() if v["source_key"] == key)
        assert _separation_arcsec(before[k], (ex["source_ra"], ex["source_dec"])) < 0.05
    motion = [_separation_arcsec(before[0], b) for b in before]
    injected = [_separation_arcsec(truth.ephemeris[names[0]], truth.ephemeris[n]) for n in names]
    np.testing.assert_allclose(motion, injected, atol=0.05)
    assert max(motion) > 1.0

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        outcome = assign_mtwcs.align(inputs)
    assert outcome.status == COMPLETE
    avra, avdec = mean_position(*zip(*truth.ephemeris.values(), strict=True))  # type: ignore[misc]
    assert outcome.details.record() == pytest.approx({"mt_avra": avra, "mt_avdec": avdec})
    after = [_sky_centroid(c.planes) for c in inputs.cutouts]
    assert max(_separation_arcsec(after[0], a) for a in after) < 0.05
    for k, c in enumerate(inputs.cutouts):
        assert c.meta["meta.wcsinfo.mt_avra"] == pytest.approx(avra)
        assert c.meta["meta.wcsinfo.mt_avdec"] == pytest.approx(avdec)
        # the stored gwcs (and the cached one) carry the frame and reproduce the shifted planes
        for wcs in (wcs_from_asdf(c.wcs_asdf), inputs.wcs(k)):
            assert wcs.available_frames[-1] == "moving_target"
        y, x = np.mgrid[0:c.shape[0], 0:c.shape[1]].astype(float)
        r, d, _ = inputs.wcs(k)(x, y)
        ok = np.isfinite(r)
        np.testing.assert_allclose(np.mod(r[ok], 360.0), c.planes["ra"][ok], atol=1e-9)
        np.testing.assert_allclose(d[ok], c.planes["dec"][ok], atol=1e-9)
    # exactly: the source's slit position maps to one sky position in every exposure
    exact = []
    for k, c in enumerate(inputs.cutouts):
        ypos = truth.exposures[c.exposure][c.slit]["source_ypos"]
        lam_m = float(np.nanmedian(c.planes["wavelength"])) * 1e-6
        r, d, _ = inputs.wcs(k).get_transform("slit_frame", "moving_target")(
            c.meta["source_xpos"], ypos, lam_m)
        exact.append((float(r) % 360.0, float(d)))
    assert max(_separation_arcsec(exact[0], e) for e in exact) < 1e-4

    # running again changes nothing (the planes are already in the moving_target frame)
    planes = [(c.planes["ra"].copy(), c.planes["dec"].copy()) for c in inputs.cutouts]
    assert assign_mtwcs.align(inputs).status == COMPLETE
    for c, (r, d) in zip(inputs.cutouts, planes, strict=True):
        np.testing.assert_allclose(c.planes["ra"], r, atol=1e-12)
        np.testing.assert_allclose(c.planes["dec"], d, atol=1e-12)


def assert_one_cutout_per_exposure(inputs: SourceInputs) -> list[str]:
    names = [c.exposure for c in inputs.cutouts]
    assert len(set(names)) == len(names)
    return names


def test_association_positions_and_grid(moving) -> None:  # type: ignore[no-untyped-def]
    store_path, truth, key = moving
    with open_store(store_path) as store:
        exposures = {r.name: r for r in store.list_exposures()}
        positions = assign_mtwcs.association_positions(store.list_cutouts(), exposures)
        assert assign_mtwcs.is_applicable([r.meta for r in exposures.values()])
    assert positions == [pytest.approx(truth.ephemeris[n]) for n in sorted(truth.ephemeris)]

    plain = _inputs(store_path, key)
    aligned = _inputs(store_path, key)
    assert assign_mtwcs.align(aligned, positions).status == COMPLETE
    # slit_grid uses the moving_target frame: the fiducial moves by the reference input's shift
    g0 = _grid(plain, GridOptions())
    g1 = _grid(aligned, GridOptions())
    ref = 0  # both choose the first input (same data)
    mt_ra, mt_dec = truth.ephemeris[plain.cutouts[ref].exposure]
    meta = aligned.cutouts[ref].meta
    expected = shift_coordinates(np.array([g0.fiducial[0]]), np.array([g0.fiducial[1]]), mt_ra, mt_dec,
                                 meta["meta.wcsinfo.mt_avra"], meta["meta.wcsinfo.mt_avdec"])
    assert _separation_arcsec(g1.fiducial, (float(expected[0][0]), float(expected[1][0]))) < 1e-6
    # and its slit-frame table agrees with the shifted planes: the output row each reference
    # pixel maps to has that pixel's slit y; a world-only WCS with shifted planes does not
    mixed = build_slit_grid(aligned.grid_inputs(), plain.wcs(ref), GridOptions(), ref_index=ref)
    assert _slit_y_mismatch(g1, aligned.cutouts[ref].planes) < 1e-3
    assert _slit_y_mismatch(g0, plain.cutouts[ref].planes) < 1e-3
    assert _slit_y_mismatch(mixed, aligned.cutouts[ref].planes) > 0.05


def _slit_y_mismatch(grid, planes) -> float:  # type: ignore[no-untyped-def]
    rows = grid.pixmap(planes["ra"], planes["dec"], planes["wavelength"])[..., 1]
    ok = np.isfinite(rows) & np.isfinite(planes["slit_y"])
    predicted = np.interp(rows[ok], np.arange(grid.ny, dtype=float), grid.slit_y)
    inside = (rows[ok] > 0) & (rows[ok] < grid.ny - 1)
    return float(np.max(np.abs(predicted - planes["slit_y"][ok])[inside]))


def test_missing_mt_keywords_skip_with_warning(moving) -> None:  # type: ignore[no-untyped-def]
    store_path, truth, key = moving
    inputs = _inputs(store_path, key)
    c = inputs.cutouts[1]
    c.meta.pop("meta.wcsinfo.mt_ra")
    rec = inputs.exposures[c.exposure]
    inputs.exposures[c.exposure] = dataclasses.replace(
        rec, meta={k: v for k, v in rec.meta.items() if k != "meta.wcsinfo.mt_ra"})
    ra = [x.planes["ra"].copy() for x in inputs.cutouts]
    blobs = [x.wcs_asdf for x in inputs.cutouts]
    with pytest.warns(Spec3cWarning, match="MT_RA/MT_DEC missing"):
        outcome = assign_mtwcs.align(inputs)
    assert outcome.status == SKIPPED and c.exposure in outcome.message
    for x, r, b in zip(inputs.cutouts, ra, blobs, strict=True):
        np.testing.assert_array_equal(x.planes["ra"], r)
        assert x.wcs_asdf == b and "meta.wcsinfo.mt_avra" not in x.meta
    # a missing value elsewhere in the association also skips
    full = _inputs(store_path, key)
    with pytest.warns(Spec3cWarning, match="association"):
        assert assign_mtwcs.align(full, [(1.0, 2.0), (None, 2.0)]).status == SKIPPED


def test_exposure_level_keywords_are_the_fallback(moving) -> None:  # type: ignore[no-untyped-def]
    store_path, truth, key = moving
    inputs = _inputs(store_path, key)
    for c in inputs.cutouts:
        c.meta.pop("meta.wcsinfo.mt_ra")
        c.meta.pop("meta.wcsinfo.mt_dec")
    assert assign_mtwcs.align(inputs).status == COMPLETE


def test_is_applicable() -> None:
    assert assign_mtwcs.is_applicable([{"meta.target.type": "MOVING"}])
    assert assign_mtwcs.is_applicable([{"meta.target.type": "moving"}, {"meta.target.type": "FIXED"}])
    assert not assign_mtwcs.is_applicable([{"meta.target.type": "FIXED"}, {"meta.target.type": "MOVING"}])
    assert not assign_mtwcs.is_applicable([{"meta.target.type": None}])
    assert not assign_mtwcs.is_applicable([{}])
    assert not assign_mtwcs.is_applicable([])


def _grid(inputs, options):  # type: ignore[no-untyped-def]
    """The output grid of the inputs' mode."""
    from spec3c.modes.registry import mode_for

    return mode_for(inputs.exp_type()).build_grid(inputs, options)
