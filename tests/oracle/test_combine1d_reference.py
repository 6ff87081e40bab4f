"""combine_1d against jwst's Combine1dStep on synthetic x1d files."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from spec3c.config import Combine1dParams
from spec3c.results import Spectrum1D
from spec3c.steps import combine_1d

pytestmark = pytest.mark.oracle

# Runs in the jwst venv: writes one MultiSpecModel x1d file per entry of cfg["files"],
# runs Combine1dStep on the list and prints every COMBINE1D table as JSON.
SCRIPT = r"""
import json, sys
import numpy as np
from stdatamodels.jwst import datamodels as dm
from jwst.combine_1d import Combine1dStep

cfg = json.load(open(sys.argv[1]))
paths = []
for j, f in enumerate(cfg["files"]):
    m = dm.MultiSpecModel()
    m.meta.telescope = "JWST"
    m.meta.instrument.name = "NIRSPEC"
    m.meta.exposure.type = "NRS_FIXEDSLIT"
    m.meta.exposure.exposure_time = f["exposure_time"]
    m.meta.exposure.integration_time = f["integration_time"]
    m.meta.target.ra, m.meta.target.dec = 10.0, -20.0
    for s in f["spectra"]:
        n = len(s["WAVELENGTH"])
        tab = np.zeros(n, dtype=dm.SpecModel().get_dtype("spec_table"))
        for col in ("WAVELENGTH", "FLUX", "FLUX_ERROR", "SURF_BRIGHT", "SB_ERROR", "DQ"):
            tab[col] = np.array(s[col], dtype=float if col != "DQ" else np.uint32)
        spec = dm.SpecModel(spec_table=tab)
        spec.spectral_order = s["order"]
        spec.source_id, spec.source_type, spec.dispersion_direction = 7, "POINT", 1
        spec.source_ra, spec.source_dec, spec.name = 10.0, -20.0, "S200A1"
        spec.spec_table.columns["flux"].unit = "Jy"
        spec.spec_table.columns["surf_bright"].unit = "MJy/sr"
        m.spec.append(spec)
    path = f"{cfg['dir']}/in{j}_x1d.fits"
    m.save(path)
    paths.append(path)
res = Combine1dStep.call(paths if len(paths) > 1 else paths[0], exptime_key=cfg["exptime_key"], sigma_clip=cfg["sigma_clip"])
out = {"status": res.meta.cal_step.combine_1d, "orders": {}}
if out["status"] == "COMPLETE":
    for spec in res.spec:
        t = spec.spec_table
        out["orders"][str(spec.spectral_order)] = {n: np.asarray(t[n]).tolist() for n in t.dtype.names}
print("JSON" + json.dumps(out))
"""

COLUMNS = ("WAVELENGTH", "FLUX", "FLUX_ERROR", "SURF_BRIGHT", "SB_ERROR", "DQ")


def run_reference(oracle, jwst_py, tmp_path, files, exptime_key, sigma_clip):
    cfg = {"dir": str(tmp_path), "files": files, "exptime_key": exptime_key, "sigma_clip": sigma_clip}
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(cfg))
    script = tmp_path / "ref_combine1d.py"
    script.write_text(SCRIPT)
    env = oracle.offline_env(oracle.make_crds_cache(tmp_path / "crds"))
    proc = subprocess.run([str(jwst_py), str(script), str(cfg_path)], capture_output=True, text=True,
                          timeout=300, check=False, env=env, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("JSON")][-1]
    return json.loads(line[4:])


def spectrum(wl, rng, order=1, flux_level=1.0):
    n = len(wl)
    dq = np.zeros(n, dtype=np.uint32)
    dq[rng.integers(0, n, 3)] = 4  # propagated
    dq[rng.integers(0, n, 2)] = 1  # DO_NOT_USE: skipped
    flux = flux_level + 0.1 * rng.normal(size=n)
    flux[rng.integers(0, n, 2)] = np.nan
    err = 0.05 + 0.01 * rng.random(n)
    err[rng.integers(0, n)] = np.nan  # NaN errors are ignored by the sums
    return {"order": order, "WAVELENGTH": list(map(float, wl)), "FLUX": flux.tolist(),
            "FLUX_ERROR": err.tolist(), "SURF_BRIGHT": (2.0 * flux).tolist(),
            "SB_ERROR": (2.0 * err).tolist(), "DQ": dq.tolist()}  # fmt: skip


def basic_files(seed):
    rng = np.random.default_rng(seed)
    files = []
    for shift, exptime, n in ((0.0, 100.0, 80), (0.37e-3, 250.0, 85), (-0.21e-3, 60.0, 78)):
        wl = 1.0 + 0.001 * np.arange(n) + shift
        files.append({"exposure_time": exptime, "integration_time": exptime / 4, "spectra": [spectrum(wl, rng)]})
    return files


def mixed_files(seed):
    """Two orders, a descending spectrum, different dispersions, a non-monotonic spectrum."""
    rng = np.random.default_rng(seed)
    files = []
    for j, (shift, exptime) in enumerate(((0.0, 100.0), (0.45e-3, 30.0), (0.2e-3, 75.0))):
        wl1 = 1.0 + (0.001 + 0.0002 * j) * np.arange(60) + shift
        wl2 = 0.6 + 0.0007 * np.arange(70) + 0.5 * shift
        if j == 1:
            wl1 = wl1[::-1]  # descending (MIRI LRS style)
        spectra = [spectrum(wl1, rng), spectrum(wl2, rng, order=2, flux_level=3.0)]
        if j == 2:
            bad = 2.0 + 0.001 * np.arange(40)
            bad[10] = bad[9]
            spectra.append(spectrum(bad, rng, order=2))
        files.append({"exposure_time": exptime, "integration_time": exptime / 3, "spectra": spectra})
    return files


def spiky_files(seed):
    files = basic_files(seed)
    files.append({"exposure_time": 90.0, "integration_time": 30.0,
                  "spectra": [spectrum(1.0 + 0.001 * np.arange(80) + 0.1e-3, np.random.default_rng(seed + 1))]})
    files[1]["spectra"][0]["FLUX"][40] = 50.0  # cosmic-ray-like spike
    return files


def mine(files, exptime_key, sigma_clip):
    spectra, times = [], []
    key = exptime_key.lower()
    for f in files:
        for s in f["spectra"]:
            cols = {c: np.asarray(s[c], dtype=np.uint32 if c == "DQ" else float) for c in COLUMNS}
            spectra.append(Spectrum1D(cols, {"spectral_order": s["order"], "source_id": 7}))
            times.append(f["integration_time"] if key.startswith("integration") else f["exposure_time"])
    outcome, combined, _ = combine_1d.combine_spectra(spectra, times, Combine1dParams(exptime_key=exptime_key,
                                                                                   sigma_clip=sigma_clip))
    return outcome, combined


@pytest.mark.parametrize(
    ("make", "seed", "exptime_key", "sigma_clip"),
    [
        (basic_files, 1, "exposure_time", None),
        (basic_files, 2, "unit_weight", None),
        (basic_files, 3, "exposure_time", 3.0),
        (spiky_files, 4, "exposure_time", 3.0),
        (mixed_files, 5, "integration_time", None),
        (mixed_files, 6, "EFFEXPTM", 3.0),
    ],
)
def test_combine_1d_matches_reference(oracle, jwst_py, tmp_path, make, seed, exptime_key, sigma_clip):
    files = make(seed)
    ref = run_reference(oracle, jwst_py, tmp_path, files, exptime_key, sigma_clip)
    outcome, combined = mine(files, exptime_key, sigma_clip)
    assert ref["status"] == outcome.status == "COMPLETE"
    assert combined is not None
    assert sorted(combined) == sorted(int(k) for k in ref["orders"])
    for order, got in combined.items():
        exp = {k: np.array(v, dtype=float) for k, v in ref["orders"][str(order)].items()}
        np.testing.assert_allclose(got.wavelength, exp["WAVELENGTH"], rtol=0, atol=1e-12)
        for name in ("FLUX", "ERROR", "SURF_BRIGHT", "SB_ERROR", "WEIGHT", "N_INPUT"):
            np.testing.assert_allclose(got.column(name), exp[name], rtol=1e-10, atol=0, err_msg=name)
        np.testing.assert_array_equal(got.dq, exp["DQ"].astype(np.uint32))
    if make is spiky_files:
        assert np.max(combined[1].flux) < 5.0  # the spike was clipped


def test_combine_1d_skipped_like_reference(oracle, jwst_py, tmp_path):
    # one x1d file holding every spectrum: for a container of files with no valid spectrum
    # the reference itself fails (it sets meta.cal_step on the ModelContainer)
    files = basic_files(9)
    for f in files:
        f["spectra"][0]["FLUX"] = [float("nan")] * len(f["spectra"][0]["FLUX"])
    files = [{**files[0], "spectra": [f["spectra"][0] for f in files]}]
    ref = run_reference(oracle, jwst_py, tmp_path, files, "exposure_time", None)
    outcome, combined = mine(files, "exposure_time", None)
    assert ref["status"] == outcome.status == "SKIPPED"
    assert combined is None
