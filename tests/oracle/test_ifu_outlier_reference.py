"""outlier_detection (mode ifu) against jwst 3.0.0's OutlierDetectionStep on simulated IFU cal files.

jwst runs the step alone on the association (it picks the ``ifu`` mode from
EXP_TYPE and saves one ``<input>_<asn_id>_outlierdetectionstep.fits`` per
input); spec3c runs ``spec3c run`` (outlier_detection only) and exports its
``_crf`` files, and ``spec3c step outlier_detection`` writes the standalone
copies under jwst's names.  Per exposure the OUTLIER flags must be identical,
and so must the whole DQ and the SCI/ERR NaNs.  MIRI MRS: 4 dithers of MIRIFUSHORT
(neighbours along x); NIRSpec IFU: 2 dithers of NRS1 and NRS2 (along y).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from stdatamodels.jwst import datamodels as dm

from spec3c import dqflags
from spec3c.cli import main
from spec3c.simulate import SimOptions, simulate

pytestmark = [pytest.mark.oracle, pytest.mark.slow]

SCRIPT = """
import json, sys
from jwst.outlier_detection import OutlierDetectionStep
cfg = json.loads(sys.argv[1])
OutlierDetectionStep.call(cfg["asn"], save_results=True, output_dir=cfg["out"])
"""

CASES = {
    "miri-mrs": SimOptions(seed=3, n_exposures=4, channels=(1, 2), bands=("SHORT",)),
    "nirspec-ifu": SimOptions(seed=21, n_exposures=2, n_sources=1, n_columns=128),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def both(request, tmp_path_factory, oracle, jwst_py):
    mode = request.param
    root = tmp_path_factory.mktemp(f"oracle_ifu_outlier_{mode}")
    sim = simulate(mode, root / "input", CASES[mode])
    (root / "jwst").mkdir()
    done = subprocess.run([str(jwst_py), "-c", SCRIPT, json.dumps({"asn": str(sim.asn_path), "out": str(root / "jwst")})],
                          capture_output=True, text=True, env=oracle.offline_env(oracle.make_crds_cache(root / "crds")),
                          timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    res = CliRunner().invoke(main, ["run", str(sim.asn_path), "-o", str(root / "spec3c"), "--workers", "1",
                                    "--skip", "cube_build", "--skip", "extract_1d"])
    assert res.exit_code == 0, res.output
    return mode, sim, root, done.stderr


def test_outlier_flags_identical_to_jwst(both):
    mode, sim, root, log = both
    asn_id = json.loads(sim.asn_path.read_text())["asn_id"]
    assert "Outlier Detection mode: ifu" in log
    lines = []
    for cal in sim.cal_paths:
        stem = cal.name.removesuffix("_cal.fits")
        ref_path = root / "jwst" / f"{stem}_{asn_id}_outlierdetectionstep.fits"
        ours_path = root / "spec3c" / f"{stem}_{asn_id}_crf.fits"
        with dm.open(ref_path) as ref, dm.open(ours_path) as ours:
            assert isinstance(ours, dm.IFUImageModel)
            a, b = (ref.dq & dqflags.OUTLIER) != 0, (ours.dq & dqflags.OUTLIER) != 0
            lines.append(f"{mode} {stem}: jwst {a.sum()} spec3c {b.sum()} identical {(a & b).sum()} "
                         f"differences {(a ^ b).sum()}")
            np.testing.assert_array_equal(b, a)
            np.testing.assert_array_equal(ours.dq, ref.dq)
            np.testing.assert_array_equal(ours.data, ref.data)  # NaN where flagged, equal elsewhere
            np.testing.assert_array_equal(ours.err, ref.err)
            assert ours.meta.cal_step.outlier_detection == ref.meta.cal_step.outlier_detection == "COMPLETE"
    print("\n".join(lines))


def test_crf_names_match(both):
    mode, sim, root, _ = both
    asn_id = json.loads(sim.asn_path.read_text())["asn_id"]
    ours = sorted(p.name for p in Path(root / "spec3c").glob("*_crf.fits"))
    assert ours == sorted(c.name.replace("_cal.fits", f"_{asn_id}_crf.fits") for c in sim.cal_paths)


def test_standalone_step_equals_jwst(both):
    mode, sim, root, _ = both
    res = CliRunner().invoke(main, ["step", "outlier_detection", str(sim.asn_path), "-o", str(root / "step")])
    assert res.exit_code == 0, res.output
    ours = sorted((root / "step").glob("*.fits"))
    assert [p.name for p in ours] == sorted(p.name for p in (root / "jwst").glob("*.fits"))
    for path in ours:
        with dm.open(path) as mine, dm.open(root / "jwst" / path.name) as ref:
            np.testing.assert_array_equal(mine.dq, ref.dq)
            np.testing.assert_array_equal(mine.data, ref.data)
            np.testing.assert_array_equal(mine.err, ref.err)
