"""IFU extract_1d against jwst 3.0.0.

1. The same cube in: spec3c builds cubes from the small synthetic MIRI MRS / NIRSpec
   IFU sets (``tests/ifu_inputs.py``), extracts them and writes ``_s3d`` and ``_x1d``;
   jwst's ``Extract1dStep`` extracts spec3c's ``_s3d`` with the same EXTRACT1D and
   APCORR files and parameters.  The differences measure the extraction only: every
   column must agree to float64 rounding of the aperture areas (the issue's target,
   median |dFLUX|/FLUX <= 1e-3, is met by many orders of magnitude).
2. End to end: jwst ``calwebb_spec3`` (the run shared with the other IFU oracle
   modules, ``shared_runs.py``) and ``spec3c run`` on the same simulated MIRI MRS and
   NIRSpec IFU exposures with the simulators' reference files, x1d against x1d
   (outlier_detection flags the same pixels on both sides: test_ifu_outlier_reference);
   and ``spec3c step extract_1d`` on jwst's own ``_s3d`` against jwst's ``_x1d``.

jwst's residual fringe correction (``ifu_rfcorr``) is switched off: spec3c does not
implement it and writes NaN RF_* columns.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from ifu_inputs import DEC0, RA0, Scene, ingested_set

from spec3c.config import resolve_config
from spec3c.modes.registry import mode_of_store
from spec3c.naming import ProductNaming
from spec3c.products.ifu_x1d import write_cube_x1ds
from spec3c.products.s3d import write_s3d
from spec3c.results import load_association
from spec3c.single_step.run import run_step
from spec3c.steps import cube_build, extract_1d
from spec3c.steps.context import StepContext, science_inputs
from spec3c.store import open_store

pytestmark = [pytest.mark.oracle, pytest.mark.slow]

SCENE = Scene(flat=2.0, point_flux=40.0, point_ra=RA0 + 0.1 / 3600, point_dec=DEC0 - 0.05 / 3600)

#: columns compared (the RF_* columns are NaN in spec3c; the VAR columns are 0 on both sides)
COLUMNS = ("WAVELENGTH", "FLUX", "FLUX_ERROR", "SURF_BRIGHT", "SB_ERROR", "BACKGROUND", "BKGD_ERROR", "NPIXELS")

# Runs in the jwst venv: argv = JSON list of [s3d path, output folder, Extract1dStep parameters]
SCRIPT = """
import json, sys
from jwst.extract_1d import Extract1dStep
for path, out, params in json.loads(sys.argv[1]):
    Extract1dStep.call(path, output_dir=out, save_results=True, **params)
"""

_NA = {f"override_{t}": "N/A" for t in ("psf", "pastasoss", "specprofile", "speckernel")}


def _write_references(folder: Path) -> dict[str, Path]:
    """EXTRACT1D (radii growing with wavelength) and the two APCORR files, jwst format."""
    from stdatamodels.jwst import datamodels as dm

    folder.mkdir(parents=True, exist_ok=True)
    lam = np.linspace(2.0, 12.0, 11).astype(np.float32)
    radii = {"wavelength": lam, "radius": (0.6 + 0.05 * lam).astype(np.float32),
             "inner_bkg": (0.9 + 0.05 * lam).astype(np.float32), "outer_bkg": (1.4 + 0.05 * lam).astype(np.float32)}
    ref = dm.Extract1dIFUModel()
    ref.meta.subtract_background, ref.meta.method, ref.meta.subpixels = True, "exact", 10
    ref.data = dict(radii)
    sub = dm.Extract1dIFUModel()
    sub.meta.subtract_background, sub.meta.method, sub.meta.subpixels = True, "subpixel", 7
    sub.data = dict(radii)
    radius = np.repeat(np.array([0.3, 0.8, 1.6], np.float32)[:, None], lam.size, axis=1)
    corr = (1.0 + 0.3 / (1.0 + radius) + 0.01 * lam[None, :]).astype(np.float32)
    miri = dm.MirMrsApcorrModel()
    miri.apcorr_table = {"channel": "ANY", "band": "ANY", "wavelength": lam, "wavelength_units": "micron",
                         "radius": radius, "radius_units": "arcseconds", "apcorr": corr,
                         "apcorr_err": np.zeros_like(corr)}
    nrs = dm.NrsIfuApcorrModel()
    nrs.apcorr_table = {"grating": "G395H", "filter": "F290LP", "wavelength": lam, "wavelength_units": "micron",
                        "radius": radius, "radius_units": "arcsec", "apcorr": corr, "apcorr_err": np.zeros_like(corr)}
    paths = {"exact": folder / "x1d_exact.asdf", "subpixel": folder / "x1d_subpixel.asdf",
             "miri": folder / "apcorr_miri.asdf", "nirspec": folder / "apcorr_nirspec.asdf"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for key, model in (("exact", ref), ("subpixel", sub), ("miri", miri), ("nirspec", nrs)):
            model.save(paths[key], all_array_storage="inline")
    return paths


#: (case, kind, EXTRACT1D flavour, extract_1d parameters, as jwst reads them)
CASES = [
    ("miri-point", "miri", "exact", {}),
    ("miri-moved-scaled", "miri", "exact", {"center_xy": [20.0, 21.5], "ifu_rscale": 1.5, "ifu_covar_scale": 1.7}),
    ("miri-extended", "miri", "exact", {"ifu_set_srctype": "EXTENDED"}),
    ("nirspec-point", "nirspec", "subpixel", {"bkg_sigma_clip": 2.5}),
    ("miri-autocen", "miri", "exact", {"ifu_autocen": True}),
    ("nirspec-autocen", "nirspec", "exact", {"ifu_autocen": True}),
]


def _spec3c(ingested, folder: Path, params: dict) -> tuple[list[Path], list[Path]]:
    store_path = folder / "store"
    shutil.copytree(ingested.store, store_path)
    overrides = {"cube_build": {"override_cubepar": str(ingested.cubepar)},
                 "extract_1d": {"ifu_rfcorr": "false", **{k: (" ".join(map(str, v)) if isinstance(v, list) else str(v))
                                                          for k, v in params.items()}}}
    with open_store(store_path, mode="a") as store:
        ctx = StepContext(store, "1", mode_of_store(store), science_inputs(store, "1"),
                          resolve_config(overrides=overrides))
        assert cube_build.run(ctx).status == "COMPLETE"
        outcome = extract_1d.run(ctx)
        assert outcome.status == "COMPLETE", outcome.message
        asn = load_association(store)
        naming = ProductNaming(asn["product_name"], asn["asn_id"], None, asn["table_name"])
        return write_s3d(store, "1", naming, folder / "products"), write_cube_x1ds(store, "1", naming,
                                                                                  folder / "products")


def _compare_x1d(ref: Path, ours: Path, *, max_rel: float = 1e-6, keys=("DETECTOR",)) -> float:
    """Every compared column within ``max_rel``; returns the median |dFLUX|/FLUX."""
    with fits.open(ref) as a, fits.open(ours) as b:
        ta, tb = a["EXTRACT1D"].data, b["EXTRACT1D"].data
        assert ta.columns.names == tb.columns.names
        assert [c.unit for c in ta.columns] == [c.unit for c in tb.columns]
        for key in ("SLTNAME", "SRCTYPE", *keys):
            assert a["EXTRACT1D"].header.get(key) == b["EXTRACT1D"].header.get(key), key
        for key in ("EXTR_X", "EXTR_Y"):  # integers from TARG_RA/TARG_DEC, floats from center_xy or ifu_autocen
            assert type(a["EXTRACT1D"].header[key]) is type(b["EXTRACT1D"].header[key]), key
            assert b["EXTRACT1D"].header[key] == pytest.approx(a["EXTRACT1D"].header[key], abs=1e-9), key
        for key in ("SLIT_RA", "SLIT_DEC"):
            assert b["EXTRACT1D"].header[key] == pytest.approx(a["EXTRACT1D"].header[key], abs=1e-10)
        np.testing.assert_array_equal(ta["DQ"], tb["DQ"])
        median = 0.0
        for col in COLUMNS:
            x, y = np.asarray(ta[col], float), np.asarray(tb[col], float)
            np.testing.assert_array_equal(np.isnan(x), np.isnan(y), err_msg=col)
            ok = np.isfinite(x) & (x != 0)
            rel = np.abs(x - y)[ok] / np.abs(x[ok])
            assert rel.size == 0 or rel.max() <= max_rel, (ref.name, col, rel.max())
            if col == "FLUX":
                median = float(np.median(rel))
        for col in ("FLUX_VAR_POISSON", "SB_VAR_POISSON", "BKGD_VAR_POISSON"):
            np.testing.assert_array_equal(ta[col], tb[col])
    return median


def test_extraction_of_the_same_cubes(tmp_path_factory, tmp_path, oracle, jwst_py):
    refs = _write_references(tmp_path / "refs")
    jobs, ours = [], {}
    for case, kind, flavour, params in CASES:
        ingested = ingested_set(tmp_path_factory, kind, SCENE)
        full = {"override_extract1d": str(refs[flavour]), "override_apcorr": str(refs[kind]), **params}
        cubes, spectra = _spec3c(ingested, tmp_path / case, full)
        assert [p.name.replace("_s3d", "_x1d") for p in cubes] == [p.name for p in spectra]
        for cube, spectrum in zip(cubes, spectra, strict=True):
            out = tmp_path / case / "ref"
            jobs.append([str(cube), str(out), {**full, **_NA, "ifu_rfcorr": False}])
            ours[(case, cube.name.replace("_s3d.fits", ""))] = spectrum
    env = oracle.offline_env(oracle.make_crds_cache(tmp_path / "crds"))
    script = tmp_path / "run_extract1d.py"
    script.write_text(SCRIPT)
    done = subprocess.run([str(jwst_py), str(script), json.dumps(jobs)], env=env, capture_output=True, text=True,
                          timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    medians = {}
    for (case, stem), mine in ours.items():
        ref = tmp_path / case / "ref" / f"{stem}_extract1dstep.fits"
        medians[(case, stem)] = _compare_x1d(ref, mine)
    print("median |dFLUX|/FLUX, same cube:", {f"{c}/{s.rsplit('_', 1)[-1]}": f"{m:.1e}" for (c, s), m in medians.items()})
    assert max(medians.values()) <= 1e-3


def _end_to_end(tmp_path: Path, reference: tuple, ours: Path, mode: str) -> None:
    res, run, steps = reference
    assert run.returncode == 0, run.log_path.read_text()[-3000:]
    (tmp_path / "spec3c").symlink_to(ours)  # the shared `spec3c run` (shared_runs.ifu_spec3c_run)
    reference = run.products["x1d"]
    assert reference
    medians = []
    for ref in reference:
        mine = tmp_path / "spec3c" / ref.name
        assert mine.exists(), (ref.name, sorted(p.name for p in (tmp_path / "spec3c").glob("*.fits")))
        medians.append(_compare_x1d(ref, mine, max_rel=1e-3))  # DETECTOR: the cube's, blended (MULTIPLE)
        with fits.open(ref) as a, fits.open(mine) as b:  # exposure times blended over the cube's inputs
            for key in ("DETECTOR", "EFFEXPTM", "DURATION", "TMEASURE"):
                assert b[0].header.get(key) == a[0].header.get(key), key
    for ref in run.products["s3d"]:  # the cube's metadata, blended as model_blender does
        with fits.open(ref) as a, fits.open(tmp_path / "spec3c" / ref.name) as b:
            for key in ("DETECTOR", "EFFEXPTM", "DURATION", "TMEASURE", "EXPSTART", "EXPEND", "BAND"):
                assert b[0].header.get(key) == a[0].header.get(key), (ref.name, key)
            for key in ("WAVSTART", "WAVEND", "XPOSURE", "TELAPSE"):
                assert b["SCI"].header.get(key) == a["SCI"].header.get(key), (ref.name, key)
    print(f"{mode}: median |dFLUX|/FLUX end to end:", [f"{m:.1e}" for m in medians])
    assert max(medians) <= 1e-3
    # `spec3c step extract_1d` on jwst's own cubes: the same cube in, jwst's x1d out
    config = resolve_config(overrides={"extract_1d": {k: str(v) for k, v in steps["extract_1d"].items()}})
    done = run_step("extract_1d", run.products["s3d"], tmp_path / "step", config)
    assert len(done.written) == len(reference)
    for ref, mine in zip(reference, sorted(done.written), strict=True):
        _compare_x1d(ref, mine)


def test_mrs_end_to_end(tmp_path, mrs_reference, mrs_spec3c):
    _end_to_end(tmp_path, mrs_reference, mrs_spec3c, "miri-mrs")


def test_nirspec_ifu_end_to_end(tmp_path, nirspec_ifu_reference, nirspec_ifu_spec3c):
    _end_to_end(tmp_path, nirspec_ifu_reference, nirspec_ifu_spec3c, "nirspec-ifu")
