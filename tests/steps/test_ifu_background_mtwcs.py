"""master_background and assign_mtwcs in the IFU plan, against the simulated truth.

One small NIRSpec IFU moving-target set (NRS1, 2 dithers, 64 columns) with a
blank-sky background member: the master background removes the sky that the
science frames keep, the point source's x1d stays within 2 % of its true
flux, and the target lands at one cube position (within 0.1 spaxel) only when
assign_mtwcs moves every exposure to the mean ephemeris position.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from stdatamodels.jwst import datamodels as dm

from spec3c.config import resolve_config
from spec3c.ingest import ingest
from spec3c.process import process_store
from spec3c.products import ProductNaming, export_store
from spec3c.products.s3d import cube_gwcs
from spec3c.results import IfuCube, load_association
from spec3c.simulate import SimOptions, load_truth
from spec3c.simulate.nirspec.ifu import reference_file_paths, simulate_nirspec_ifu
from spec3c.steps.master_background import build_master, frame_background, subtraction_wanted
from spec3c.store import open_store

SOURCE = "1"


@pytest.fixture(scope="module")
def moving(tmp_path_factory):
    root = tmp_path_factory.mktemp("ifu-mbkg")
    sim = simulate_nirspec_ifu("nirspec-ifu", root / "sim", SimOptions(
        seed=4, n_exposures=2, n_sources=1, n_columns=64, with_background=1, moving_target=True),
        detectors=("NRS1",))
    ingest(sim.asn_path, root / "store")
    return sim, root


def _process(root: Path, sim, **steps) -> None:
    overrides = reference_file_paths(sim.asn_path).jwst_overrides()
    report = process_store(root / "store", config=resolve_config(overrides={**overrides, **steps}), workers=1,
                           force=True)
    assert not report.failed, [r.error for r in report.failed]


def _cube(root: Path) -> tuple[np.ndarray, IfuCube]:
    with open_store(root / "store") as store:
        (name,) = IfuCube.names(store, SOURCE)
        cube = IfuCube.load(store, SOURCE, name)
        sci = np.concatenate([cube.read_tile(store, SOURCE, t[0])["sci"] for t in cube.tiles])
    return sci, cube


def _centroid(image: np.ndarray) -> tuple[float, float]:
    """Flux-weighted (x, y) in a 7x7 box about the peak, iterated onto the source."""
    y, x = np.unravel_index(np.nanargmax(image), image.shape)
    cx, cy = float(x), float(y)
    for _ in range(5):
        x0, y0 = round(cx), round(cy)
        box = image[y0 - 3:y0 + 4, x0 - 3:x0 + 4]
        gy, gx = np.mgrid[y0 - 3:y0 + 4, x0 - 3:x0 + 4]
        w = np.where(np.isfinite(box), np.clip(box, 0.0, None), 0.0)
        cx, cy = float((w * gx).sum() / w.sum()), float((w * gy).sum() / w.sum())
    return cx, cy


def _expected_xy(sim, cube: IfuCube, aligned: bool) -> np.ndarray:
    """Cube (x, y) of the target in each exposure; ``aligned``: moved by its exposure's assign_mtwcs shift."""
    truth = load_truth(sim.truth_path)
    mt = np.array([truth.ephemeris[s] for s in sorted(truth.ephemeris)], dtype=float)[:, :2]
    avra, avdec = mt.mean(axis=0)
    wcs = cube_gwcs(cube.meta["wcsinfo"], cube.shape, None)
    lam = float(np.mean(cube.wavelength))
    out = []
    for stem, (mt_ra, mt_dec) in zip(sorted(truth.ephemeris), mt, strict=True):
        pos = truth.exposures[stem]["NRS_IFU"]
        dra, ddec = (avra - mt_ra, avdec - mt_dec) if aligned else (0.0, 0.0)
        x, y, _ = wcs.invert(pos["source_ra"] + dra, pos["source_dec"] + ddec, lam)
        out.append((float(x), float(y)))
    return np.array(out)


def test_moving_target_lands_at_one_spaxel_only_with_mtwcs(moving):
    sim, root = moving
    _process(root, sim, assign_mtwcs={"skip": True}, outlier_detection={"skip": True}, extract_1d={"skip": True})
    unaligned, plain = _cube(root)
    _process(root, sim, master_background={"save_background": True})
    aligned, cube = _cube(root)
    expected = _expected_xy(sim, cube, aligned=True)
    assert np.ptp(expected, axis=0).max() < 0.01  # one sky position in the moving_target frame
    assert cube.meta["moving_target"] is not None and plain.meta["moving_target"] is None
    got = _centroid(np.nansum(aligned, axis=0))
    assert np.hypot(*(np.array(got) - expected[0])) < 0.1
    # without assign_mtwcs the exposures put the target 0.4" (4 spaxels) apart: two images, each
    # where its exposure's own coordinates put it, and little flux between them
    apart = _expected_xy(sim, plain, aligned=False)
    assert np.hypot(*(apart[0] - apart[1])) > 3.0
    image = np.nansum(unaligned, axis=0)
    peak = np.nanmax(image)
    for x, y in apart:
        assert image[round(y), round(x)] > 0.5 * peak
    middle = apart.mean(axis=0)
    assert image[round(middle[1]), round(middle[0])] < 0.3 * peak


def test_master_background_removes_the_sky(moving):
    """After the moving-target run: products, S_MSBSUB, sky gone from the cube, x1d within 2 %."""
    sim, root = moving
    truth = load_truth(sim.truth_path)
    sky = float(np.median(list(truth.sky.values())))
    with open_store(root / "store") as store:
        asn = load_association(store)
        status = store.get_result(SOURCE, "status")[1]["steps"]
    assert status["master_background"]["status"] == "COMPLETE"
    naming = ProductNaming(asn["product_name"], asn["asn_id"], asn["exp_type"], asn["table_name"])
    paths = export_store(root / "store", root / "out", naming, workers=1, suffixes=("s3d", "x1d", "crf"))
    _check_masterbg_products(sim, root / "out", sky)
    s3d = next(p for p in paths if p.name.endswith("_s3d.fits"))
    x1d = next(p for p in paths if p.name.endswith("_x1d.fits"))
    with dm.open(s3d) as model:
        assert model.meta.cal_step.master_background == "COMPLETE"
        assert model.meta.cal_step.assign_mtwcs == "COMPLETE"
        assert model.meta.wcsinfo.mt_ra == pytest.approx(cube_mean_ra(status))
        assert abs(float(np.nanmedian(model.data))) < 0.02 * sky  # the sky was ~all of the median
    with dm.open(x1d) as model:
        table = model.spec[0].spec_table
        source = next(s for s in truth.sources.values() if s.source_type == "POINT")
        ratio = table["FLUX"] / np.interp(table["WAVELENGTH"], source.wavelength, source.flux)
        assert abs(np.nanmedian(ratio) - 1.0) < 0.02
        assert abs(np.nanmedian(table["BACKGROUND"])) < 0.02 * sky  # the annulus sees no sky left
    crf = next(p for p in paths if p.name.endswith("_crf.fits"))
    with dm.open(crf) as model, dm.open(sim.cal_paths[0]) as cal:
        assert "moving_target" in model.meta.wcs.available_frames
        ok = np.isfinite(model.data) & np.isfinite(cal.data)
        assert np.median(cal.data[ok] - model.data[ok]) == pytest.approx(sky, rel=0.05)


def cube_mean_ra(status: dict) -> float:
    return float(status["assign_mtwcs"]["mt_avra"])


def _check_masterbg_products(sim, out: Path, sky: float) -> None:
    """save_background: the association's masterbg1d and one IFUImageModel masterbg2d per exposure."""
    names = sorted(p.name for p in out.iterdir() if "masterbg" in p.name)
    assert sorted(n.rsplit("_", 1)[1] for n in names) == ["masterbg1d.fits", "masterbg2d.fits", "masterbg2d.fits"]
    with dm.open(next(out / n for n in names if n.endswith("_masterbg1d.fits"))) as model:
        assert isinstance(model, dm.MultiCombinedSpecModel)
        assert np.nanmedian(model.spec[0].spec_table["SURF_BRIGHT"]) == pytest.approx(sky, rel=0.02)
    first = Path(sim.cal_paths[0]).name.replace("_cal.fits", "")
    with dm.open(next(out / n for n in names if n.startswith(first) and n.endswith("_masterbg2d.fits"))) as model, \
            dm.open(sim.cal_paths[0]) as cal:
        assert isinstance(model, dm.IFUImageModel)
        on = np.isfinite(cal.data)
        assert np.median(model.data[on]) == pytest.approx(sky, rel=0.05)
        assert np.all(model.data[cal.regions == 0] == 0.0)  # off the slices: no wavelength, no background


def test_master_background_skip_rules(moving):
    """Stage 2 already subtracted (every input, or some) -> not subtracted unless force_subtract."""
    _, root = moving
    with open_store(root / "store") as store:
        records = store.list_exposures()
        params = resolve_config().master_background
        master = build_master(store, params)
    assert master is not None and master.subtract
    done = [dataclasses.replace(r, meta={**r.meta, "meta.cal_step.bkg_subtract": "COMPLETE"}) for r in records]
    assert not subtraction_wanted(done, force=False)[0]
    assert not subtraction_wanted([done[0], *records[1:]], force=False)[0]
    assert subtraction_wanted(done, force=True)[0]


def test_user_background_expands_on_the_frames(moving):
    """``user_background``: the file's SURF_BRIGHT, at every pixel's stored wavelength (0 off the slices)."""
    sim, root = moving
    user = next(sim.asn_path.parent.glob("*_x1d.fits"))  # a 1-D spectrum of the blank sky
    with open_store(root / "store") as store:
        params = resolve_config(overrides={"master_background": {"user_background": str(user)}}).master_background
        master = build_master(store, params)
        record = next(r for r in store.list_exposures() if r.role == "science")
        frames = store.read_images(record.name, planes=("wavelength", "sci"))
    assert master is not None and master.subtract and master.origin == user.name
    bkg = frame_background(master, frames, record.meta)
    on = np.isfinite(frames["wavelength"])
    sky = float(np.median(list(load_truth(sim.truth_path).sky.values())))
    assert np.median(bkg[on]) == pytest.approx(sky, rel=0.02)
    assert np.all(bkg[~on] == 0.0) and bkg.dtype == np.float32
