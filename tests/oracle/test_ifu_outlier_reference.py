"""outlier_detection (mode ifu) against jwst 3.0.0 on simulated IFU cal files.

jwst's calwebb_spec3 run on each IFU dataset (shared with the other IFU oracle
modules, ``shared_runs.py``) writes one ``_crf`` per input; so does the
shared ``spec3c run`` on the same association (``shared_runs.ifu_spec3c_run``),
and ``spec3c step outlier_detection`` writes the standalone copies under the names jwst's OutlierDetectionStep gives them.
Per exposure the OUTLIER flags must be identical, and so must the whole DQ
and the SCI/ERR NaNs.  MIRI MRS: 4 dithers of MIRIFUSHORT (neighbours along
x); NIRSpec IFU: 4 dithers of NRS1 and NRS2 (along y).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from stdatamodels.jwst import datamodels as dm

from spec3c import dqflags
from spec3c.cli import main

pytestmark = [pytest.mark.oracle, pytest.mark.slow]


@pytest.fixture(scope="module", params=["miri-mrs", "nirspec-ifu"])
def both(request, tmp_path_factory):
    mode = request.param
    prefix = "mrs" if mode == "miri-mrs" else "nirspec_ifu"
    sim, run, _ = request.getfixturevalue(f"{prefix}_reference")
    assert run.returncode == 0, run.log_path.read_text()[-3000:]
    root = tmp_path_factory.mktemp(f"oracle_ifu_outlier_{mode}")
    (root / "spec3c").symlink_to(request.getfixturevalue(f"{prefix}_spec3c"))  # the shared `spec3c run`
    return mode, sim, root, run


def _reference_crf(run, cal: Path, asn_id: str) -> Path:
    return run.products["crf"][0].parent / cal.name.replace("_cal.fits", f"_{asn_id}_crf.fits")


def test_outlier_flags_identical_to_jwst(both):
    mode, sim, root, run = both
    asn_id = json.loads(sim.asn_path.read_text())["asn_id"]
    assert "Outlier Detection mode: ifu" in run.log_path.read_text()
    lines = []
    for cal in sim.cal_paths:
        stem = cal.name.removesuffix("_cal.fits")
        ref_path = _reference_crf(run, cal, asn_id)
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
    """``spec3c step outlier_detection`` writes jwst's standalone names with the data of jwst's ``_crf``."""
    mode, sim, root, run = both
    asn_id = json.loads(sim.asn_path.read_text())["asn_id"]
    res = CliRunner().invoke(main, ["step", "outlier_detection", str(sim.asn_path), "-o", str(root / "step")])
    assert res.exit_code == 0, res.output
    ours = sorted((root / "step").glob("*.fits"))
    assert [p.name for p in ours] == sorted(c.name.replace("_cal.fits", f"_{asn_id}_outlierdetectionstep.fits")
                                            for c in sim.cal_paths)
    for cal in sim.cal_paths:
        mine_path = root / "step" / cal.name.replace("_cal.fits", f"_{asn_id}_outlierdetectionstep.fits")
        with dm.open(mine_path) as mine, dm.open(_reference_crf(run, cal, asn_id)) as ref:
            np.testing.assert_array_equal(mine.dq, ref.dq)
            np.testing.assert_array_equal(mine.data, ref.data)
            np.testing.assert_array_equal(mine.err, ref.err)
