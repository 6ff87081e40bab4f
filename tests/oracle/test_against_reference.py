"""spec3c vs the reference (jwst 3.0.0 calwebb_spec3), live, on the same MOS data.

The dataset is the one of tests/science (seed 11, 8 slitlets, 3 nods, 400
columns).  Outlier flags must be the same pixels, and the x1d / s2d values
agree to float32 precision.
"""

from __future__ import annotations

import numpy as np
import pytest
from stdatamodels.jwst import datamodels

from spec3c import dqflags
from spec3c.config import resolve_config
from spec3c.ingest import ingest
from spec3c.process import process_store
from spec3c.products import ProductNaming, export_store
from spec3c.results import load_association
from spec3c.simulate import SimOptions, simulate
from spec3c.store import open_store

pytestmark = pytest.mark.oracle


@pytest.fixture(scope="module")
def both(tmp_path_factory, oracle, jwst_py):
    root = tmp_path_factory.mktemp("versus")
    sim = simulate(
        "nirspec-mos",
        root / "input",
        SimOptions(seed=11, n_sources=8, n_exposures=3, n_columns=400),
    )
    ap = oracle.write_extract1d_json(root / "extract1d.json",
                                     [{"id": "NRS_MSASPEC", "extract_width": 5, "use_source_posn": True}])
    ref = oracle.run_reference(sim.asn_path, root / "reference", extract1d=ap, timeout=600, python=jwst_py)
    assert ref.returncode == 0, ref.log_path.read_text()[-3000:]
    ingest(sim.asn_path, root / "store")
    config = resolve_config(overrides={"extract_1d": {"override_extract1d": str(ap)}})
    report = process_store(root / "store", config=config, workers=1)
    assert not report.failed
    with open_store(root / "store") as store:
        asn = load_association(store)
    naming = ProductNaming(asn["product_name"], asn["asn_id"], asn["exp_type"], asn["table_name"])
    export_store(root / "store", root / "ours", naming)
    return root / "reference", root / "ours"


def _pairs(ref_dir, ours_dir, suffix):
    pairs = []
    for ref in sorted(ref_dir.glob(f"*_{suffix}.fits")):
        mine = ours_dir / ref.name
        assert mine.exists(), f"spec3c wrote no {mine.name}"
        pairs.append((ref, mine))
    assert pairs
    return pairs


def test_same_products(both):
    ref_dir, ours_dir = both
    for suffix in ("cal", "crf", "s2d", "x1d"):
        assert {p.name for p in ref_dir.glob(f"*_{suffix}.fits")} == {p.name for p in ours_dir.glob(f"*_{suffix}.fits")}


def test_outlier_flags_identical(both):
    for ref, mine in _pairs(*both, "crf"):
        with datamodels.open(ref) as r, datamodels.open(mine) as m:
            assert len(r.exposures) == len(m.exposures)
            for re_, me in zip(r.exposures, m.exposures, strict=True):
                np.testing.assert_array_equal((me.dq & dqflags.OUTLIER) != 0, (re_.dq & dqflags.OUTLIER) != 0)


def test_s2d_agrees(both):
    for ref, mine in _pairs(*both, "s2d"):
        with datamodels.open(ref) as r, datamodels.open(mine) as m:
            assert r.data.shape == m.data.shape
            np.testing.assert_allclose(m.wavelength, r.wavelength, rtol=0, atol=1e-6)
            ok = (r.wht > 0) & np.isfinite(r.data)
            np.testing.assert_array_equal(np.isfinite(m.data[ok]), True)
            np.testing.assert_allclose(m.data[ok], r.data[ok], rtol=1e-4, atol=1e-5 * np.nanmax(np.abs(r.data)))
            np.testing.assert_allclose(m.err[ok], r.err[ok], rtol=1e-4, atol=1e-5 * np.nanmax(np.abs(r.err)))


def test_x1d_agrees(both):
    for ref, mine in _pairs(*both, "x1d"):
        with datamodels.open(ref) as r, datamodels.open(mine) as m:
            rt, mt = r.spec[0].spec_table, m.spec[0].spec_table
            assert len(rt) == len(mt)
            np.testing.assert_allclose(mt["WAVELENGTH"], rt["WAVELENGTH"], rtol=0, atol=1e-6)
            for col in ("FLUX", "FLUX_ERROR", "SURF_BRIGHT", "NPIXELS"):
                scale = np.nanmax(np.abs(rt[col])) or 1.0
                np.testing.assert_allclose(mt[col], rt[col], rtol=1e-4, atol=1e-6 * scale, err_msg=col)
            assert r.spec[0].extraction_ystart == pytest.approx(m.spec[0].extraction_ystart, abs=1e-3)
