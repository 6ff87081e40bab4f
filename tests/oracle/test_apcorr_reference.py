"""apcorr against jwst's own ApCorrPhase / ApCorr on synthetic APCORR files."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from apcorr_files import apcorr_spec, write_apcorr
from stdatamodels.jwst.datamodels import (
    MirLrsApcorrModel,
    NisWfssApcorrModel,
    NrcWfssApcorrModel,
    NrsFsApcorrModel,
    NrsMosApcorrModel,
)

from spec3c.algorithms.apcorr import aperture_correction, apply_correction, read_apcorr

pytestmark = pytest.mark.oracle

# Runs in the jwst venv: the reference's classes on a spectrum table whose flux-like
# columns are 1, so after apply() FLUX is c and the variances c**2.
SCRIPT = r"""
import json, sys
import numpy as np
from stdatamodels.jwst.datamodels import JwstDataModel
from jwst.extract_1d.extract import read_apcorr_ref
from jwst.extract_1d.apply_apcorr import ApCorrPhase, select_apcorr

cfg = json.load(open(sys.argv[1]))
ref = read_apcorr_ref(cfg["path"], cfg["exp_type"])
dm = JwstDataModel()
dm.meta.instrument.name = cfg["instrument"]
dm.meta.exposure.type = cfg["exp_type"]
for k in ("filter", "grating", "pupil"):
    if cfg.get(k):
        setattr(dm.meta.instrument, k, cfg[k])
if cfg.get("subarray"):
    dm.meta.subarray.name = cfg["subarray"]
cols = ["flux", "flux_error", "surf_bright", "sb_error", "flux_var_poisson", "flux_var_rnoise",
        "flux_var_flat", "sb_var_poisson", "sb_var_rnoise", "sb_var_flat", "background"]
wl, npix = np.array(cfg["wavelength"], float), np.array(cfg["npixels"], float)
out = {"path": cfg["path"], "cases": []}
for phase in cfg["phases"]:
    spec = np.zeros(wl.size, dtype=[("wavelength", "f8"), ("npixels", "f8")] + [(c, "f8") for c in cols])
    spec["wavelength"], spec["npixels"] = wl, npix
    for c in cols:
        spec[c] = 1.0
    cls = select_apcorr(dm)
    kwargs = {"slit": cfg["slit"]} if cfg.get("slit") else {}
    if cls is ApCorrPhase and phase is not None:
        kwargs["pixphase"] = phase
    ap = cls(dm, ref.apcorr_table, ref.sizeunit, **kwargs)
    try:  # the order extract.py uses
        ap.tabulate_correction(spec)
        ap.apply(spec, use_tabulated=True)
    except AttributeError:
        ap.apply(spec)
    out["cases"].append({c: spec[c].tolist() for c in cols})
print("JSON" + json.dumps(out))
"""


def run_reference(jwst_py, tmp_path, cfg):
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(cfg))
    script = tmp_path / "ref_apcorr.py"
    script.write_text(SCRIPT)
    proc = subprocess.run(
        [str(jwst_py), str(script), str(cfg_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("JSON")][-1]
    return json.loads(line[4:])


def phase_rows(rng, *, slit, nw=40, ns=5, phases=(0.0, 0.25, 0.5)):
    dt = [("filter", "S12"), ("grating", "S15")] + ([("slit", "S15")] if slit else [])
    dt += [
        ("wavelength", "f4", (nw,)),
        ("nelem_wl", "i2"),
        ("size", "f4", (ns, nw)),
        ("nelem_size", "i2"),
        ("pixphase", "f4", (len(phases),)),
        ("apcorr", "f4", (ns, nw, len(phases))),
        ("apcorr_err", "f4", (ns, nw, len(phases))),
    ]
    rows = np.zeros(2, dtype=dt)
    wl = np.linspace(0.6, 5.3, nw)
    rows["filter"] = ["CLEAR", "CLEAR"]
    rows["grating"] = ["PRISM", "G140M"]
    if slit:
        rows["slit"] = "S200A1"
    rows["wavelength"], rows["nelem_wl"], rows["nelem_size"] = wl, nw, ns
    # size grid varying with wavelength, strictly increasing in the size index
    rows["size"] = (
        1.5
        + 2.0 * np.arange(ns)[:, None]
        + 0.3 * np.sin(wl)[None, :]
        + rng.uniform(0, 0.5, (ns, nw))
    )
    rows["pixphase"] = phases
    rows["apcorr"] = rng.uniform(1.0, 1.8, (2, ns, nw, len(phases)))
    rows["apcorr"][0, :, 7, :] = 0.0  # exact zeros: the reference keeps those rows at 1
    return rows


def grid(rng, lo, hi, slo, shi, n=300):
    wl = np.concatenate([rng.uniform(lo, hi, n), [lo - 0.1, hi + 0.2, lo, hi, np.nan]])
    size = np.concatenate([rng.uniform(slo, shi, n), [5.0, 5.0, 0.5, 40.0, 5.0]])
    size[3] = np.nan
    size[4], size[5] = 0.2, 99.0  # clamped at the grid edges
    return wl, size


def compare(ref, table, wl, size, phases):
    for phase, case in zip(phases, ref["cases"], strict=True):
        c = aperture_correction(table, wl, size, pixel_phase=phase)
        np.testing.assert_allclose(c, case["flux"], rtol=1e-6, atol=0)
        cols = {k: np.ones(wl.size) for k in case}
        apply_correction(cols, c)
        for k, v in case.items():
            np.testing.assert_allclose(cols[k], v, rtol=2e-6, atol=0, err_msg=k)


@pytest.mark.parametrize("exp_type", ["NRS_FIXEDSLIT", "NRS_MSASPEC"])
def test_phase_matches_reference(jwst_py, tmp_path, exp_type):
    rng = np.random.default_rng(7)
    fs = exp_type == "NRS_FIXEDSLIT"
    rows = phase_rows(rng, slit=fs)
    path = str(write_apcorr(NrsFsApcorrModel if fs else NrsMosApcorrModel, rows, tmp_path / "apcorr.fits"))
    wl, size = grid(rng, 0.6, 5.3, 0.5, 12.0)
    phases = [None, 0.0, 0.1, 0.25, 0.4, 0.5, 0.55]
    cfg = {
        "path": path,
        "exp_type": exp_type,
        "instrument": "NIRSPEC",
        "filter": "CLEAR",
        "grating": "PRISM",
        "slit": "S200A1" if fs else None,
        "phases": phases,
        "wavelength": wl.tolist(),
        "npixels": size.tolist(),
    }
    ref = run_reference(jwst_py, tmp_path, cfg)
    table = read_apcorr(path, apcorr_spec(exp_type), filter="CLEAR", grating="PRISM", slit="S200A1")
    compare(ref, table, wl, size, phases)
    # the zeroed wavelength really is exercised
    assert np.any((wl > rows["wavelength"][0][6]) & (wl < rows["wavelength"][0][8]))


def test_lrs_matches_reference(jwst_py, tmp_path):
    rng = np.random.default_rng(3)
    nw, ns = 30, 8
    rows = np.zeros(
        2,
        dtype=[
            ("subarray", "S17"),
            ("wavelength", "f4", (nw + 3,)),
            ("nelem_wl", "i2"),
            ("size", "u1", (ns + 2,)),
            ("nelem_size", "i2"),
            ("apcorr", "f4", (nw + 3, ns + 2)),
            ("apcorr_err", "f4", (nw + 3, ns + 2)),
        ],
    )
    rows["subarray"] = ["FULL", "SLITLESSPRISM"]
    wl = rng.permutation(np.linspace(4.0, 14.0, nw))
    rows["wavelength"][:, :nw], rows["nelem_wl"] = wl, nw
    rows["size"][:, :ns], rows["nelem_size"] = np.arange(2, 2 + 2 * ns, 2), ns
    rows["apcorr"] = rng.uniform(1.0, 2.0, rows["apcorr"].shape)
    path = str(write_apcorr(MirLrsApcorrModel, rows, tmp_path / "lrs.fits"))
    wl_in, size = grid(rng, 4.0, 14.0, 1.0, 18.0)
    for sub, exp_type in (("FULL", "MIR_LRS-FIXEDSLIT"), ("SLITLESSPRISM", "MIR_LRS-SLITLESS")):
        cfg = {
            "path": path,
            "exp_type": exp_type,
            "instrument": "MIRI",
            "subarray": sub,
            "phases": [None],
            "wavelength": wl_in.tolist(),
            "npixels": size.tolist(),
        }
        ref = run_reference(jwst_py, tmp_path, cfg)
        compare(ref, read_apcorr(path, apcorr_spec(exp_type), subarray=sub), wl_in, size, [None])


@pytest.mark.parametrize(("model", "instrument", "exp_type", "rows_fp"), [
    (NisWfssApcorrModel, "NIRISS", "NIS_WFSS", [("GR150C", "F150W"), ("GR150C", "F200W"), ("GR150R", "F150W")]),
    (NrcWfssApcorrModel, "NIRCAM", "NRC_WFSS", [("F444W", "GRISMR"), ("F444W", "GRISMC"), ("F356W", "GRISMR")]),
])
def test_wfss_matches_reference(jwst_py, tmp_path, model, instrument, exp_type, rows_fp):
    """WFSS tables (the reference's ApCorr, rows matched on filter and pupil)."""
    rng = np.random.default_rng(11)
    nw, ns = 25, 6
    rows = np.zeros(len(rows_fp), dtype=[("filter", "S12"), ("pupil", "S15"), ("wavelength", "f4", (nw + 2,)),
                                         ("nelem_wl", "i2"), ("size", "u1", (ns + 1,)), ("nelem_size", "i2"),
                                         ("apcorr", "f4", (nw + 2, ns + 1)), ("apcorr_err", "f4", (nw + 2, ns + 1))])
    rows["filter"], rows["pupil"] = zip(*rows_fp, strict=True)
    rows["wavelength"][:, :nw], rows["nelem_wl"] = np.linspace(1.0, 5.0, nw), nw
    rows["size"][:, :ns], rows["nelem_size"] = np.arange(3, 3 + 3 * ns, 3), ns
    rows["apcorr"] = rng.uniform(1.0, 1.5, rows["apcorr"].shape)
    path = str(write_apcorr(model, rows, tmp_path / "wfss.fits"))
    wl_in, size = grid(rng, 1.0, 5.0, 1.0, 20.0)
    for filt, pupil in rows_fp[:2]:
        cfg = {"path": path, "exp_type": exp_type, "instrument": instrument, "filter": filt, "pupil": pupil,
               "phases": [None], "wavelength": wl_in.tolist(), "npixels": size.tolist()}
        ref = run_reference(jwst_py, tmp_path, cfg)
        compare(ref, read_apcorr(path, apcorr_spec(exp_type), filter=filt, pupil=pupil), wl_in, size, [None])


def test_transposed_layout_gives_no_correction(jwst_py, tmp_path):
    """apcorr stored (S, P, W) like jwst's dummy test files: the reference applies nothing."""
    rng = np.random.default_rng(5)
    nw, ns, npp = 20, 3, 3
    rows = np.zeros(
        1,
        dtype=[
            ("filter", "S12"),
            ("grating", "S15"),
            ("wavelength", "f4", (nw,)),
            ("nelem_wl", "i2"),
            ("size", "f4", (ns, nw)),
            ("nelem_size", "i2"),
            ("pixphase", "f4", (npp,)),
            ("apcorr", "f4", (ns, npp, nw)),
            ("apcorr_err", "f4", (ns, npp, nw)),
        ],
    )
    rows["filter"], rows["grating"] = "CLEAR", "PRISM"
    rows["wavelength"] = np.linspace(0.6, 5.3, nw)
    rows["size"] = np.arange(1.0, 1.0 + 2 * ns, 2)[:, None] * np.ones(nw)
    rows["pixphase"], rows["apcorr"] = [0.0, 0.25, 0.5], rng.uniform(1.0, 2.0, (ns, npp, nw))
    path = str(write_apcorr(NrsMosApcorrModel, rows, tmp_path / "transposed.fits"))
    wl, size = np.linspace(0.7, 5.0, 50), np.full(50, 3.0)
    cfg = {
        "path": path,
        "exp_type": "NRS_MSASPEC",
        "instrument": "NIRSPEC",
        "filter": "CLEAR",
        "grating": "PRISM",
        "phases": [None],
        "wavelength": wl.tolist(),
        "npixels": size.tolist(),
    }
    ref = run_reference(jwst_py, tmp_path, cfg)
    np.testing.assert_array_equal(ref["cases"][0]["flux"], 1.0)
    with pytest.warns(Warning, match="no aperture correction"):
        table = read_apcorr(path, apcorr_spec("NRS_MSASPEC"), filter="CLEAR", grating="PRISM")
    compare(ref, table, wl, size, [None])
