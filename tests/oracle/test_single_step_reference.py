"""``spec3c step`` and jwst ASDF parameter files against jwst 3.0.0.

On simulated NIRSpec fixed-slit data, calwebb_spec3 (jwst) writes the
``_s2d``/``_x1d`` products; then:

* ``spec3c step extract_1d`` on jwst's ``_s2d`` must reproduce jwst's ``_x1d``
  (median relative difference <= 1e-4; the issue's Done-when);
* a parameter file jwst wrote (``export_config``, as ``strun
  --save-parameters``) with a changed parameter must be applied: spec3c's
  spectrum equals jwst's run with the same file, and differs from the default;
* a parameter file spec3c wrote must be read by jwst with the same values;
* ``spec3c step combine_1d`` on jwst's ``_x1d`` files equals jwst's Combine1dStep.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner

from spec3c.cli import main
from spec3c.config import resolve_config
from spec3c.params_asdf import write_parameter_file
from spec3c.simulate import SimOptions, simulate
from spec3c.single_step.run import standalone_name

pytestmark = [pytest.mark.oracle, pytest.mark.slow]

APERTURES = Path(__file__).resolve().parents[2] / "examples" / "extract1d_nirspec_fs.json"
OFFSET = 2.0  # the changed parameter: extract_1d.position_offset

# Runs in the jwst venv: writes a parameter file of Extract1dStep with the changed parameter, runs the
# step with it on one s2d, runs Combine1dStep on an association of x1d files, and reads the parameter
# files spec3c wrote; prints what it read as JSON.
SCRIPT = r"""
import json, sys
from jwst.combine_1d import Combine1dStep
from jwst.extract_1d import Extract1dStep
from jwst.pipeline import Spec3Pipeline

cfg = json.loads(sys.argv[1])
no_refs = {"override_apcorr": "N/A", "apply_apcorr": False, "override_psf": "N/A", "override_pastasoss": "N/A",
           "override_specprofile": "N/A", "override_speckernel": "N/A"}
Extract1dStep(position_offset=cfg["offset"]).export_config(cfg["jwst_pars"], include_metadata=True)
Extract1dStep.call(cfg["s2d"], config_file=cfg["jwst_pars"], override_extract1d=cfg["apertures"],
                   output_dir=cfg["out"], save_results=True, **no_refs)
Combine1dStep.call(cfg["x1d_asn"], output_dir=cfg["out"], save_results=True)
pipe = Spec3Pipeline.from_config_file(cfg["spec3c_pipeline"])
step = Extract1dStep.from_config_file(cfg["spec3c_step"])
print("JSON" + json.dumps({"pixfrac": pipe.resample_spec.pixfrac, "snr": pipe.outlier_detection.snr,
                           "offset": step.position_offset, "use_source_posn": step.use_source_posn}))
"""


def _median_rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    good = np.isfinite(a) & np.isfinite(b) & (b != 0)
    assert good.sum() > 100
    return float(np.median(np.abs(a[good] - b[good]) / np.abs(b[good])))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, oracle, jwst_py):
    root = tmp_path_factory.mktemp("single_step_ref")
    sim = simulate("nirspec-fs", root / "in", SimOptions(seed=2, n_exposures=2, n_columns=300))
    run = oracle.run_reference(sim.asn_path, root / "jwst", extract1d=APERTURES, timeout=900)
    assert run.ok, run.log_path.read_text()[-3000:]
    x1ds = run.products["x1d"]
    asn = root / "jwst" / "x1d_asn.json"
    asn.write_text(json.dumps({"asn_type": "spec3", "asn_id": "o022", "asn_pool": "jw01309_pool", "products": [
        {"name": "combined", "members": [{"expname": p.name, "exptype": "science"} for p in x1ds]}]}))
    spec3c_config = resolve_config(overrides={"resample_spec": {"pixfrac": "0.75"},
                                              "outlier_detection": {"snr": "4.5 3.5"},
                                              "extract_1d": {"position_offset": "1.25", "use_source_posn": "false"}})
    cfg = {"offset": OFFSET, "jwst_pars": str(root / "jwst_extract1d.asdf"), "s2d": str(run.products["s2d"][0]),
           "apertures": str(APERTURES), "out": str(root / "jwst_steps"), "x1d_asn": str(asn),
           "spec3c_pipeline": str(write_parameter_file(root / "spec3c_spec3.asdf", spec3c_config)),
           "spec3c_step": str(write_parameter_file(root / "spec3c_x1d.asdf", spec3c_config, "extract_1d"))}
    done = subprocess.run([str(jwst_py), "-c", SCRIPT, json.dumps(cfg)], capture_output=True, text=True,
                          env=oracle.offline_env(oracle.make_crds_cache(root / "crds")), timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    read_back = json.loads(done.stdout.split("JSON", 1)[1])
    return root, run, read_back, Path(cfg["jwst_pars"])


def _spec3c_step(args: list[str]) -> None:
    res = CliRunner().invoke(main, ["step", *args])
    assert res.exit_code == 0, res.output


def test_extract_1d_on_jwst_s2d_reproduces_jwst_x1d(reference):
    root, run, _, _ = reference
    s2ds = run.products["s2d"]
    _spec3c_step(["extract_1d", *map(str, s2ds), "-o", str(root / "spec3c_x1d"),
                  f"--override_extract1d={APERTURES}"])
    worst = 0.0
    for s2d, x1d in zip(s2ds, run.products["x1d"], strict=True):
        with fits.open(root / "spec3c_x1d" / standalone_name(s2d.name, "extract_1d")) as ours, fits.open(x1d) as ref:
            for column in ("WAVELENGTH", "FLUX", "FLUX_ERROR", "BACKGROUND", "NPIXELS"):
                if not np.any(ref["EXTRACT1D"].data[column]):
                    continue
                rel = _median_rel(ours["EXTRACT1D"].data[column], ref["EXTRACT1D"].data[column])
                worst = max(worst, rel)
                assert rel <= 1e-4, (s2d.name, column, rel)
            assert ours[0].header["EXP_TYPE"] == ref[0].header["EXP_TYPE"]
            assert ours["EXTRACT1D"].header["SLTNAME"] == ref["EXTRACT1D"].header["SLTNAME"]
    print(f"extract_1d on jwst s2d vs jwst x1d: worst median relative difference {worst:.2e}")


def test_jwst_parameter_file_with_a_changed_parameter_is_applied(reference):
    root, run, _, jwst_pars = reference
    s2d = run.products["s2d"][0]
    name = standalone_name(s2d.name, "extract_1d")
    _spec3c_step(["extract_1d", str(s2d), "--config", str(jwst_pars), "-o", str(root / "spec3c_pars"),
                  f"--override_extract1d={APERTURES}"])
    with fits.open(root / "spec3c_pars" / name) as ours, fits.open(root / "jwst_steps" / name) as ref, \
            fits.open(run.products["x1d"][0]) as default:
        flux = ours["EXTRACT1D"].data["FLUX"]
        rel = _median_rel(flux, ref["EXTRACT1D"].data["FLUX"])
        moved = _median_rel(flux, default["EXTRACT1D"].data["FLUX"])
        print(f"position_offset={OFFSET} from jwst's file: vs jwst with that file {rel:.2e}, vs default {moved:.2e}")
        assert rel <= 1e-4
        assert moved > 1e-3  # the parameter changed the spectrum
        assert ours["EXTRACT1D"].header["EXTRYSTR"] == pytest.approx(ref["EXTRACT1D"].header["EXTRYSTR"], abs=1e-6)


def test_spec3c_parameter_files_are_read_by_jwst(reference):
    _, _, read_back, _ = reference
    assert read_back == {"pixfrac": 0.75, "snr": "4.5 3.5", "offset": 1.25, "use_source_posn": False}


def test_combine_1d_on_jwst_x1d_files_matches_jwst(reference):
    root, _, _, _ = reference
    asn = root / "jwst" / "x1d_asn.json"
    _spec3c_step(["combine_1d", str(asn), "-o", str(root / "spec3c_c1d")])
    name = standalone_name(asn.name, "combine_1d")
    with fits.open(root / "spec3c_c1d" / name) as ours, fits.open(root / "jwst_steps" / name) as ref:
        for column in ("WAVELENGTH", "FLUX", "ERROR", "N_INPUT"):
            np.testing.assert_allclose(ours["COMBINE1D"].data[column], ref["COMBINE1D"].data[column],
                                       rtol=1e-7, equal_nan=True)
