"""The IFU modes: registry entries and the full-frame exposure readers.

Ingest evaluates every pixel's coordinates once; they are checked here
against the synthetic files' own transforms (centre, wavelength extent and
the four footprint corners drizzle uses, as jwst 3.0.0 defines them).
"""

from __future__ import annotations

import numpy as np
import pytest
from ifu_inputs import (
    ACROSS_ARCSEC,
    ACROSS_M,
    ALONG_ARCSEC,
    ALONG_M,
    MIRI_CHANNELS,
    NRS_ACROSS,
    NRS_GAP,
    NRS_ROWS,
    Scene,
    _sky,
    ingested_set,
    miri_file,
    nirspec_wcs,
)

from spec3c.errors import InputError
from spec3c.ingest import ingest
from spec3c.ingest.reader import read_exposure
from spec3c.modes.ifu.frames import CORNER_PLANES
from spec3c.modes.registry import mode_for
from spec3c.store import open_store

SCENE = Scene(flat=1.0)


def _corners(images: dict[str, np.ndarray], y: np.ndarray, x: np.ndarray) -> list[np.ndarray]:
    """Absolute corner RA, Dec (ra1, dec1, ..., ra4, dec4) of pixels (y, x) from the stored planes."""
    ra, dec = images["ra"][y, x], images["dec"][y, x]
    return [(ra if k % 2 == 0 else dec) + images[name][y, x].astype(np.float64) / 3600.0
            for k, name in enumerate(CORNER_PLANES)]


def test_registry_serves_the_ifus():
    mrs, nrs = mode_for("MIR_MRS"), mode_for("NRS_IFU")
    assert (mrs.name, nrs.name) == ("miri-mrs", "nirspec-ifu")
    ifu_plan = ("assign_mtwcs", "master_background", "outlier_detection", "cube_build", "extract_1d")
    assert mrs.plan == (*ifu_plan, "spectral_leak")  # the reference: MRS only
    assert nrs.plan == ifu_plan
    for mode in (mrs, nrs):
        assert dict(mode.products) == {"crf": "exposure", "s3d": "source", "x1d": "cube"}
        assert mode.extraction.ifu is not None and mode.extraction.apcorr.kind == "radial"
        assert mode.naming.whole_association and mode.read_frames is not None and mode.cube is not None
    assert mrs.cube.per_channel and mrs.cube.spectral_tears and not mrs.cube.internal_cal
    assert mrs.extraction.ifu.residual_fringe_columns and not nrs.extraction.ifu.residual_fringe_columns
    assert nrs.cube.slice_fov and nrs.cube.internal_cal


def test_miri_frames_hold_the_reference_coordinates(tmp_path_factory):
    ingested = ingested_set(tmp_path_factory, "miri", SCENE, n_dithers=1, pa=20.0)
    with open_store(ingested.store) as store:
        (record,) = store.list_exposures()
        images = store.read_images(record.name)
        (marker,) = store.read_cutouts("1")
    ifu = marker.meta["ifu"]
    assert ifu["bands"] == [["1", "short"], ["2", "short"]] and ifu["x_limits"] == {"1": [0, 512], "2": [513, 1031]}
    assert ifu["slice_width"]["1"] == pytest.approx(MIRI_CHANNELS["1"][1])
    assert marker.planes["sci"].shape == (0, 0) and marker.wcs_asdf
    assert images["slice"].dtype == np.int16 and images["sci"].dtype == np.float32
    from ifu_inputs import _miri_layout

    regions, info = _miri_layout("12", images["sci"].shape[0])
    np.testing.assert_array_equal(images["slice"], regions)
    sky = _sky(80.5, -69.5, 20.0)
    rng = np.random.default_rng(1)
    y, x = np.nonzero(regions > 0)
    pick = rng.choice(y.size, 300, replace=False)
    y, x = y[pick], x[pick]
    labels = regions[y, x]
    xc = np.array([info[lab][0] for lab in labels])
    beta = np.array([info[lab][1] for lab in labels])
    ascale, bwidth, lam0, dlam = (np.array([MIRI_CHANNELS[info[lab][2]][i] for lab in labels]) for i in range(4))
    np.testing.assert_allclose(images["wavelength"][y, x], lam0 + y * dlam, rtol=1e-12)
    np.testing.assert_allclose(images["dwave"][y, x], 2 * 0.4999 * dlam, rtol=1e-9)
    a1, a2 = (x - 0.4999 - xc) * ascale, (x + 0.4999 - xc) * ascale
    expected = []
    for a, b in ((a1, beta - bwidth / 2), (a1, beta + bwidth / 2), (a2, beta + bwidth / 2), (a2, beta - bwidth / 2)):
        expected += list(sky(a, b))
    for got, want in zip(_corners(images, y, x), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-7 / 3600)  # 0.1 micro-arcsec
    centre = sky((x - xc) * ascale, beta)
    np.testing.assert_allclose(images["ra"][y, x], centre[0], atol=1e-12)
    assert np.all(np.isnan(images["ra"][regions == 0]))


def test_nirspec_frames_all_slices_at_once(tmp_path_factory):
    ingested = ingested_set(tmp_path_factory, "nirspec", SCENE, n_dithers=1, pa=20.0)
    with open_store(ingested.store) as store:
        (record,) = store.list_exposures()
        images = store.read_images(record.name)
        (marker,) = store.read_cutouts("1")
    ifu = marker.meta["ifu"]
    assert ifu["bands"] == [["g395h", "f290lp"]] and len(ifu["slice_boxes"]) == 30
    assert ifu["slice_pitch"] == pytest.approx(ACROSS_M)
    shape = images["sci"].shape
    _, regions = nirspec_wcs(shape[1], 80.5, -69.5, 20.0)
    assert np.array_equal(images["slice"], regions.astype(np.int16))  # stripes' boxes do not overlap
    y, x = np.nonzero(regions > 0)
    k = regions[y, x] - 1
    yc = NRS_GAP + k * (NRS_ROWS + NRS_GAP) + (NRS_ROWS - 1) / 2.0
    across = (np.array(NRS_ACROSS)[k] - 14.5) * ACROSS_M
    np.testing.assert_allclose(images["wavelength"][y, x], 3.0 + x * 0.002, rtol=1e-12)
    np.testing.assert_allclose(images["dwave"][y, x], 2 * 0.4999 * 0.002, rtol=1e-6)
    np.testing.assert_allclose(images["slicer_along"][y, x], (y - yc) * ALONG_M, atol=1e-15)
    sky = _sky(80.5, -69.5, 20.0)
    scale_a, scale_b = ACROSS_ARCSEC / ACROSS_M, ALONG_ARCSEC / ALONG_M
    b_lo, b_hi = (y - 0.49 - yc) * ALONG_M, (y + 0.49 - yc) * ALONG_M
    half = ACROSS_M / 2
    expected = []
    for a, b in ((across - half, b_lo), (across + half, b_lo), (across + half, b_hi), (across - half, b_hi)):
        expected += list(sky(a * scale_a, b * scale_b))
    for got, want in zip(_corners(images, y, x), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-7 / 3600)
    assert ifu["footprint_internal"][0] == pytest.approx(np.nanmin(images["slicer_along"]))


def test_ifualign_angle_follows_the_position_angle(tmp_path):
    angles = []
    for pa in (0.0, 25.0):
        path = miri_file(tmp_path / f"pa{pa:.0f}_mirifushort_cal.fits", SCENE, ny=8, pa=pa)
        data = read_exposure(path, "science")
        angles.append(data.cutouts[0].meta["ifu"]["rotation"]["1"])
    assert (angles[1] - angles[0]) % 360 == pytest.approx(335.0) or (angles[1] - angles[0]) % 360 == pytest.approx(25.0)


def test_a_cal_file_without_the_ifu_frames_is_refused(tmp_path):
    from stdatamodels.jwst import datamodels as dm

    path = miri_file(tmp_path / "bad_mirifushort_cal.fits", SCENE, ny=8)
    with dm.open(path) as model:
        model.meta.wcs = nirspec_wcs(20, 80.5, -69.5)[0]
        model.save(path)
    with pytest.raises(InputError, match="no 'alpha_beta' frame") as err:
        read_exposure(path, "science")
    assert str(path) in str(err.value)


def test_reingest_is_a_no_op_and_keeps_the_frames(tmp_path_factory):
    ingested = ingested_set(tmp_path_factory, "miri", SCENE, n_dithers=1, pa=20.0)
    report = ingest(ingested.files.asn, ingested.store)
    assert report.nothing_to_do
    with open_store(ingested.store) as store:
        assert store.sources() == ["1"]
        assert "corner4_ddec" in store.list_images(store.list_exposures()[0].name)


def _centres(fast, index: np.ndarray, shape: tuple[int, int]) -> list[np.ndarray]:
    """The forward transform of the pixels ``index`` as full frames (NaN elsewhere), as the MRS reader makes them."""
    from spec3c.modes.ifu import frames

    y, x = (v.astype(np.float64) for v in np.divmod(index, shape[1]))
    return [frames.scatter(shape, index, v) for v in frames.evaluate(fast, x, y)]


def test_mapped_pixels_are_only_the_labelled_ones_and_lose_nothing(monkeypatch):
    from ifu_inputs import miri_wcs

    from spec3c.fast_transform import FastWcs
    from spec3c.modes.ifu import frames

    wcs, regions, _ = miri_wcs("12", 40, 80.5, -69.5, pa=20.0)
    shape = regions.shape
    yy, xx = np.indices(shape, dtype=np.float64)
    everywhere = [v.reshape(shape) for v in FastWcs(wcs)(xx.ravel(), yy.ravel())]
    sizes: list[int] = []
    real = frames.evaluate
    monkeypatch.setattr(frames, "evaluate", lambda f, x, *a, **k: sizes.append(x.size) or real(f, x, *a, **k))
    mapped = frames.mapped_pixels(FastWcs(wcs), wcs, shape)
    assert sum(sizes) <= frames.UNLABELLED_SAMPLE
    np.testing.assert_array_equal(mapped, np.flatnonzero(regions > 0))
    got = _centres(FastWcs(wcs), mapped, shape)
    for g, want in zip(got, everywhere, strict=True):
        np.testing.assert_array_equal(g, want)
    assert np.isnan(got[0][regions == 0]).all() and np.isfinite(got[0][regions > 0]).all()


def test_every_pixel_is_mapped_when_unlabelled_ones_map_somewhere():
    """A selector whose label 0 has a transform of its own: nothing is assumed NaN."""
    from gwcs import selector

    from spec3c.modes.ifu import frames

    shape = (6, 8)
    labels = np.zeros(shape, dtype=np.int32)
    labels[:, :4] = 1

    class Wcs:
        pipeline = [type("Step", (), {"transform": type("T", (), {"label_mapper": selector.LabelMapperArray(labels)})()})()]

    def fast(x, y):
        return (x + 10 * y,)

    (got,) = _centres(fast, frames.mapped_pixels(fast, Wcs(), shape), shape)
    yy, xx = np.indices(shape, dtype=np.float64)
    np.testing.assert_array_equal(got, xx + 10 * yy)
