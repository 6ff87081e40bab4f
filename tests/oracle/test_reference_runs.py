"""Run the reference pipeline (jwst calwebb_spec3) on a tiny simulated MOS dataset."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from spec3c.simulate import SimOptions, load_truth, simulate

pytestmark = pytest.mark.oracle


@pytest.fixture(scope="module")
def mos_run(tmp_path_factory, oracle, jwst_py):
    root = tmp_path_factory.mktemp("oracle_mos")
    res = simulate(
        "nirspec-mos",
        root / "input",
        SimOptions(seed=7, n_sources=2, n_exposures=3, n_columns=200),
    )
    ap = oracle.write_extract1d_json(
        root / "extract1d.json",
        [{"id": "NRS_MSASPEC", "extract_width": 5, "use_source_posn": True}],
    )
    run = oracle.run_reference(
        res.asn_path, root / "out", extract1d=ap, timeout=300, python=jwst_py
    )
    return res, run


def test_reference_products_exist(mos_run):
    res, run = mos_run
    assert run.returncode == 0, run.log_path.read_text()[-3000:]
    truth = load_truth(res.truth_path)
    n = len(truth.sources)
    for suffix in ("cal", "crf", "s2d", "x1d"):
        paths = run.products.get(suffix, [])
        assert len(paths) == n, (suffix, paths)
        for p in paths:
            assert p.name.startswith("jw01345-o066_") and p.name.endswith(
                f"_nirspec_f170lp-g235m_{suffix}.fits"
            )
    models = {s: fits.getval(run.products[s][0], "DATAMODL") for s in ("cal", "crf", "s2d", "x1d")}
    assert models == {
        "cal": "MultiExposureModel",
        "crf": "MultiExposureModel",
        "s2d": "SlitModel",
        "x1d": "MultiSpecModel",
    }
    assert run.wall_seconds > 0 and run.peak_rss_mb > 50
    assert "outlier_detection" in run.step_seconds


def test_reference_point_source_flux(mos_run):
    res, run = mos_run
    truth = load_truth(res.truth_path)
    by_id = {s.source_id: k for k, s in truth.sources.items()}
    n_point = 0
    for p in run.products["x1d"]:
        with fits.open(p) as hdul:
            hdr, tab = hdul["EXTRACT1D"].header, hdul["EXTRACT1D"].data
            if hdr["SRCTYPE"] != "POINT":
                continue
            key = by_id[hdr["SOURCEID"]]
            true = truth.flux_at(key, tab["WAVELENGTH"])
            bright = np.isfinite(tab["FLUX"]) & (true > 0.2 * np.nanmax(true))
            ratio = np.median(tab["FLUX"][bright] / true[bright])
            assert 0.9 < ratio < 1.1, (p.name, ratio)
            n_point += 1
    assert n_point >= 1
