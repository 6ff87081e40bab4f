"""spec3c vs the reference (jwst 3.0.0 calwebb_spec3) on simulated NIRISS and NIRCam WFSS.

jwst runs on the spec2 ``_cal`` files (3.0.0 cannot take spec2 ``_x1d`` inputs:
its extract_1d fails on them); spec3c runs on both the ``_cal`` files and the
``_x1d`` files.  The products must have the same names and, per source, the
same x1d and c1d spectra (median relative difference <= 1e-3).
"""

from __future__ import annotations

import numpy as np
import pytest
from stdatamodels.jwst import datamodels as dm

from spec3c.config import resolve_config
from spec3c.ingest import ingest
from spec3c.process import process_store
from spec3c.products import ProductNaming, export_store
from spec3c.results import load_association
from spec3c.simulate import SimOptions, simulate
from spec3c.store import open_store

pytestmark = [pytest.mark.oracle, pytest.mark.slow]

CASES = {
    "niriss-gr150c": ("niriss-wfss", {"n_sources": 8, "n_exposures": 2}),
    "nircam-grismr": ("nircam-wfss", {"n_sources": 6, "n_exposures": 2}),
}


def _spec3c(asn, root, name):
    store = root / f"{name}.store"
    ingest(asn, store)
    report = process_store(store, config=resolve_config(), workers=1)
    assert not report.failed, [r.error for r in report.failed]
    with open_store(store) as s:
        a = load_association(s)
    export_store(store, root / name, ProductNaming(a["product_name"], a["asn_id"], a["exp_type"], a["table_name"]),
                 workers=1)
    return root / name


@pytest.fixture(scope="module", params=list(CASES))
def runs(request, tmp_path_factory, oracle, jwst_py):
    mode, kw = CASES[request.param]
    root = tmp_path_factory.mktemp(request.param)
    sim = simulate(mode, root / "input", SimOptions(seed=31, **kw))
    ref = oracle.run_reference(sim.asn_path, root / "reference", timeout=1800, python=jwst_py)
    assert ref.returncode == 0, ref.log_path.read_text()[-3000:]
    return root / "reference", _spec3c(sim.asn_path, root, "from_cal"), _spec3c(sim.x1d_asn_path, root, "from_x1d")


def _names(folder):
    return sorted(p.name for p in folder.glob("*.fits"))


def _rows(path):
    """{(exposure group or None, order, source id): {column: values}} of a WFSS x1d or c1d file."""
    out = {}
    with dm.open(path) as model:
        for spec in model.spec:
            t = spec.spec_table
            for row in t:
                n = int(row["N_ALONGDISP"])
                if n == 0 or row["SOURCE_ID"] < 0:
                    continue
                key = (getattr(spec, "group_id", None), spec.spectral_order, int(row["SOURCE_ID"]))
                out[key] = {c: np.asarray(row[c][:n]) for c in ("WAVELENGTH", "FLUX", "SURF_BRIGHT")}
                out[key]["SOURCE_TYPE"] = row["SOURCE_TYPE"]
    return out


def _median_relative(a, b):
    ok = np.isfinite(b) & (b != 0)
    return float(np.median(np.abs(a[ok] / b[ok] - 1))) if ok.any() else 0.0


def test_same_products(runs):
    ref, from_cal, from_x1d = runs
    assert _names(ref) == _names(from_cal) == _names(from_x1d)
    assert len(_names(ref)) == 2  # <product>_x1d.fits and <product>_c1d.fits, in the working folder


@pytest.mark.parametrize("suffix", ["x1d", "c1d"])
def test_spectra_agree_per_source(runs, suffix):
    ref, from_cal, from_x1d = runs
    name = next(n for n in _names(ref) if n.endswith(f"_{suffix}.fits"))
    reference = _rows(ref / name)
    assert reference
    for ours in (from_cal, from_x1d):
        mine = _rows(ours / name)
        assert mine.keys() == reference.keys()
        for key, r in reference.items():
            m = mine[key]
            np.testing.assert_allclose(m["WAVELENGTH"], r["WAVELENGTH"], rtol=1e-7, err_msg=str(key))
            for column in ("FLUX", "SURF_BRIGHT"):
                assert _median_relative(m[column], r[column]) <= 1e-3, (key, column)
            assert m["SOURCE_TYPE"] == r["SOURCE_TYPE"]
