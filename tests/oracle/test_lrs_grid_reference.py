"""MIRI LRS output grid against jwst's ``ResampleSpec`` (``build_interpolated_output_wcs``).

Synthetic LRS-like gwcs (``SYNTHETIC_WCS`` of tests/algorithms/test_lrs_grid.py) on
``MIR_LRS-FIXEDSLIT`` ImageModels; jwst builds its output WCS in the jwst venv and maps every
input pixel with stcal's ``calc_pixmap`` (as its drizzle does); spec3c builds its grid from
the same inputs' stored planes.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import asdf
import numpy as np
import pytest

from spec3c.algorithms.lrs_grid import build_lrs_grid
from spec3c.algorithms.slit_grid import GridOptions

pytestmark = pytest.mark.oracle

UNIT_TESTS = Path(__file__).resolve().parents[1] / "algorithms" / "test_lrs_grid.py"


def _synthetic():  # type: ignore[no-untyped-def]
    """tests/algorithms/test_lrs_grid.py as a module (its synthetic gwcs and input planes)."""
    name = "spec3c_tests_lrs_grid_synthetic"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, UNIT_TESTS)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


# Runs in the jwst venv: argv = cfg.json, synthetic-wcs source.  One npz per case: the output
# WCS's world coordinates at every output pixel, calc_pixmap of every input, psr and scale.
SCRIPT = r"""
import json, sys
import asdf
import numpy as np
from stdatamodels.jwst import datamodels as dm
from jwst.resample.resample_spec import ResampleSpec
from stcal.resample.utils import calc_pixmap

ns = {}
exec(open(sys.argv[2]).read(), ns)
cfg = json.load(open(sys.argv[1]))
shape = tuple(cfg["shape"])
for name, case in cfg["cases"].items():
    models = []
    for k, spec in enumerate(case["inputs"]):
        spec = dict(spec)
        if "bbox" in spec:
            spec["bbox"] = tuple(tuple(b) for b in spec["bbox"])
        m = dm.ImageModel(np.ones(shape, dtype=np.float32))
        m.meta.instrument.name = "MIRI"
        m.meta.instrument.detector = "MIRIMAGE"
        m.meta.exposure.type = case["exp_type"]
        m.meta.exposure.exposure_time = 100.0
        m.meta.wcsinfo.dispersion_direction = 2
        m.meta.photometry.pixelarea_steradians = 2.84e-13
        m.meta.photometry.pixelarea_arcsecsq = 0.0121
        m.meta.filename = f"{name}_{k}_cal.fits"
        m.meta.wcs = ns["lrs_wcs"](**spec)
        models.append(m)
    pars = {"pixel_scale_ratio": case["psr"], "pixel_scale": case["pixel_scale"]}
    resamp = ResampleSpec(models, good_bits=0, wcs_pars=pars)
    wcs = resamp.output_wcs
    y, x = np.indices(wcs.array_shape, dtype=np.float64)
    ra, dec, lam = wcs(x, y)
    pixmaps = np.array([calc_pixmap(m.meta.wcs, wcs, shape) for m in models])
    # spec3c's gwcs, read and used here as jwst would use an output WCS
    with asdf.open(f"{cfg['dir']}/ours_{name}.asdf", lazy_load=False, memmap=False) as af:
        ours = af.tree["wcs"]
    y, x = np.indices(ours.array_shape, dtype=np.float64)
    ours_world = np.array(ours(x, y))
    ours_pixmaps = np.array([calc_pixmap(m.meta.wcs, ours, shape) for m in models])
    np.savez(f"{cfg['dir']}/{name}.npz", shape=np.array(wcs.array_shape), ra=ra, dec=dec, lam=lam,
             pixmap=pixmaps, psr=resamp.pixel_scale_ratio, scale=resamp.output_pixel_scale,
             ours_world=ours_world, ours_pixmap=ours_pixmaps)
print("DONE")
"""

NODS = [{"nod": -1.5}, {"nod": 1.5}]
WRAP_SWAP = [  # slit crossing RA 0, closer to Dec than RA (swap_xy), spectra shifted in y
    {"ra0": 0.0003, "pa": 75.0, "nod": -1.5},
    {"ra0": 0.0003, "pa": 75.0, "nod": 1.5, "dy": -2.5},
    {"ra0": 0.0003, "pa": 75.0, "nod": 0.0, "dy": 3.25},
]
WRAP_HIGH = [{**s, "ra0": 359.9999} for s in WRAP_SWAP]  # median RA > 180: low ones get +360
ODD_BOX = [{"bbox": ((300.2, 345.0), (4.6, 390.3)), "lam_range": (8.0, 385.0), "pa": -20.0}]
CASES = {
    "nods_psr1": {"inputs": NODS, "psr": 1.0},
    "nods_psr05": {"inputs": NODS, "psr": 0.5},
    "nods_pixel_scale": {"inputs": NODS, "psr": 1.0, "pixel_scale": 0.2},
    "single_odd_box": {"inputs": ODD_BOX, "psr": 1.0},
    "single_odd_box_psr05": {"inputs": ODD_BOX, "psr": 0.5},
    "wrap_swap_psr1": {"inputs": WRAP_SWAP, "psr": 1.0},
    "wrap_high_pixel_scale": {"inputs": WRAP_HIGH, "psr": 2.0, "pixel_scale": 0.3},  # ratio ignored
    "ascending_slitless_type": {"inputs": NODS, "psr": 0.5, "exp_type": "MIR_LRS-SLITLESS"},
}


def _case(name: str) -> dict:
    c = CASES[name]
    return {"inputs": c["inputs"], "psr": c["psr"], "pixel_scale": c.get("pixel_scale"),
            "exp_type": c.get("exp_type", "MIR_LRS-FIXEDSLIT")}  # fmt: skip


@pytest.fixture(scope="module")
def reference(oracle, jwst_py, tmp_path_factory) -> Path:
    """Run every case through jwst once; returns the folder of npz files."""
    tmp = tmp_path_factory.mktemp("lrs_grid_ref")
    for name in CASES:
        asdf.AsdfFile({"wcs": _build(name)[0].to_gwcs()}).write_to(tmp / f"ours_{name}.asdf")
    cfg = {"dir": str(tmp), "shape": list(_synthetic().SHAPE), "cases": {n: _case(n) for n in CASES}}
    (tmp / "cfg.json").write_text(json.dumps(cfg))
    (tmp / "synthetic_wcs.py").write_text(_synthetic().SYNTHETIC_WCS)
    (tmp / "ref_lrs_grid.py").write_text(SCRIPT)
    env = oracle.offline_env(oracle.make_crds_cache(tmp / "crds"))
    proc = subprocess.run([str(jwst_py), str(tmp / "ref_lrs_grid.py"), str(tmp / "cfg.json"),
                           str(tmp / "synthetic_wcs.py")], capture_output=True, text=True,
                          timeout=600, check=False, env=env, cwd=tmp)  # fmt: skip
    assert proc.returncode == 0 and "DONE" in proc.stdout, proc.stderr[-3000:]
    return tmp


def _dra(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a - b + 180.0) % 360.0 - 180.0


def _build(name: str):  # type: ignore[no-untyped-def]
    """spec3c's grid of a case and its input planes."""
    syn = _synthetic()
    case = _case(name)
    wcss = [syn.lrs_wcs(**s) for s in case["inputs"]]
    inputs = [syn.grid_input(w) for w in wcss]
    grid = build_lrs_grid(inputs, GridOptions(case["psr"], case["pixel_scale"]), wcss[0],
                          descending=case["exp_type"] == "MIR_LRS-FIXEDSLIT")  # fmt: skip
    return grid, inputs


@pytest.mark.parametrize("name", list(CASES))
def test_lrs_grid_matches_reference(reference, name):
    ref = np.load(reference / f"{name}.npz")
    grid, inputs = _build(name)

    assert grid.shape == tuple(int(v) for v in ref["shape"])
    assert grid.pixel_scale_ratio == pytest.approx(float(ref["psr"]), rel=1e-9)
    assert grid.spatial_scale == pytest.approx(float(ref["scale"]), rel=1e-8)

    ra, dec, lam = grid.world()
    d_sky = max(np.max(np.abs(_dra(ra, ref["ra"]))), np.max(np.abs(dec - ref["dec"])))
    d_lam = np.max(np.abs(lam - ref["lam"]))
    assert d_sky < 1e-9 and d_lam < 1e-9
    gw = grid.to_gwcs()
    rows, cols = np.indices(grid.shape, dtype=np.float64)
    g_ra, g_dec, g_lam = gw(cols, rows)
    assert np.max(np.abs(_dra(g_ra, ref["ra"]))) < 1e-9 and np.max(np.abs(g_dec - ref["dec"])) < 1e-9
    assert np.max(np.abs(g_lam - ref["lam"])) < 1e-9

    d_pix = 0.0
    for k, inp in enumerate(inputs):
        mine = grid.pixmap(inp.ra, inp.dec, inp.wavelength)
        theirs = ref["pixmap"][k]
        assert np.array_equal(np.isnan(mine), np.isnan(theirs))
        d_pix = max(d_pix, float(np.nanmax(np.abs(mine - theirs))))
    assert d_pix < 1e-6
    # spec3c's gwcs serialised, read and evaluated in the jwst venv, mapped with calc_pixmap
    o_ra, o_dec, o_lam = ref["ours_world"]
    assert np.max(np.abs(_dra(o_ra, ref["ra"]))) < 1e-9 and np.max(np.abs(o_dec - ref["dec"])) < 1e-9
    assert np.max(np.abs(o_lam - ref["lam"])) < 1e-9
    assert np.array_equal(np.isnan(ref["ours_pixmap"]), np.isnan(ref["pixmap"]))
    d_gwcs = float(np.nanmax(np.abs(ref["ours_pixmap"] - ref["pixmap"])))
    assert d_gwcs < 1e-6
    print(f"{name}: shape {grid.shape} psr {grid.pixel_scale_ratio:.6g} scale {grid.spatial_scale:.6g} "
          f"max|d sky| {d_sky:.2e} deg, max|d lambda| {d_lam:.2e} um, max|d pixmap| {d_pix:.2e} px, "
          f"via our gwcs in jwst {d_gwcs:.2e} px, scale rel {grid.spatial_scale / float(ref['scale']) - 1:.1e}")
