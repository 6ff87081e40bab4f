"""spectral_leak against jwst 3.0.0's ``SpectralLeakStep`` on the same x1d files.

A simulated MIRI MRS observation (channels 1 and 3, sub-bands SHORT and MEDIUM) is run
through ``spec3c run`` (the run tests/steps/test_spectral_leak_step.py looks at, ``mrs_runs``); the stored cubes are extracted again (the uncorrected spectra) and
written as ``_x1d`` files; jwst's ``SpectralLeakStep`` corrects those with the simulator's
MRSPTCORR file, and its ch3-short spectrum must equal spec3c's corrected one (median
|dFLUX|/FLUX <= 1e-3; it agrees to float64 rounding), with S_SPLEAK as jwst writes it on
every file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
from astropy.io import fits

from spec3c.config import resolve_config
from spec3c.modes.registry import mode_of_store
from spec3c.naming import ProductNaming
from spec3c.products.ifu_x1d import write_cube_x1ds
from spec3c.results import STATUS, load_association
from spec3c.steps import extract_1d
from spec3c.steps.context import StepContext, science_inputs
from spec3c.store import open_store

SCRIPT = """
import json, sys
from pathlib import Path
from jwst.datamodels import ModelContainer
from jwst.spectral_leak import SpectralLeakStep
paths, mrsptcorr, out = json.loads(sys.argv[1])
result = SpectralLeakStep.call(ModelContainer(paths), override_mrsptcorr=mrsptcorr)
for path, model in zip(paths, result):
    model.save(str(Path(out) / Path(path).name))
"""


def _uncorrected_x1ds(out: Path, asn: Path, folder: Path) -> list[Path]:
    """spec3c's x1d files of the stored cubes before the correction (extract_1d run again)."""
    from spec3c.simulate.miri.reffiles import reference_file_paths

    shutil.copytree(out / "spec3c.store", folder / "store")
    with open_store(folder / "store", mode="a") as store:
        config = resolve_config(overrides=reference_file_paths(asn).jwst_overrides())
        ctx = StepContext(store, "1", mode_of_store(store), science_inputs(store, "1"), config)
        assert extract_1d.run(ctx).status == "COMPLETE"
        status = store.get_result("1", STATUS)[1]
        del status["steps"]["spectral_leak"]  # as extract_1d wrote them: no S_SPLEAK
        store.put_result("1", STATUS, {}, status)
        asn_meta = load_association(store)
        naming = ProductNaming(asn_meta["product_name"], asn_meta["asn_id"], None, asn_meta["table_name"])
        return write_cube_x1ds(store, "1", naming, folder / "x1d")


def test_spectral_leak_matches_jwst(tmp_path_factory, tmp_path, oracle, jwst_py):
    from mrs_runs import spectral_leak_run

    from spec3c.simulate.miri.reffiles import reference_file_paths

    asn, ours = spectral_leak_run(tmp_path_factory)  # shared with tests/steps/test_spectral_leak_step.py
    inputs = _uncorrected_x1ds(ours, asn, tmp_path / "uncorrected")
    assert len(inputs) == 8
    (tmp_path / "jwst").mkdir()
    script = tmp_path / "run_spectral_leak.py"
    script.write_text(SCRIPT)
    job = [[str(p) for p in inputs], str(reference_file_paths(asn).mrsptcorr), str(tmp_path / "jwst")]
    env = oracle.offline_env(oracle.make_crds_cache(tmp_path / "crds"))
    done = subprocess.run([str(jwst_py), str(script), json.dumps(job)], env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    median = None
    for path in inputs:
        with fits.open(tmp_path / "jwst" / path.name) as ref, fits.open(ours / path.name) as mine, \
                fits.open(path) as before:
            assert mine[0].header.get("S_SPLEAK") == ref[0].header.get("S_SPLEAK"), path.name
            a, b = np.asarray(ref["EXTRACT1D"].data["FLUX"], float), np.asarray(mine["EXTRACT1D"].data["FLUX"], float)
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
            ok = np.isfinite(a) & (a != 0)
            rel = np.abs(a - b)[ok] / np.abs(a[ok])
            if "ch3-short" in path.name:
                assert ref[0].header["S_SPLEAK"] == "COMPLETE"
                changed = np.abs(a - np.asarray(before["EXTRACT1D"].data["FLUX"], float))
                assert np.nanmax(changed) > 0
                median = float(np.median(rel))
                assert rel.max() <= 1e-6, rel.max()
            else:
                np.testing.assert_array_equal(a, np.asarray(before["EXTRACT1D"].data["FLUX"], float))
    print(f"spectral_leak ch3-short median |dFLUX|/FLUX vs jwst: {median:.1e}")
    assert median is not None and median <= 1e-3
