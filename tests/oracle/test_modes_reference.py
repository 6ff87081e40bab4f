"""spec3c vs the reference (jwst 3.0.0) for master_background, moving targets and MIRI LRS.

Each case simulates a small dataset, runs jwst's calwebb_spec3 offline and
spec3c (ingest, process, export) on it with the same aperture file, and
compares every product the reference wrote: the same file names, identical
outlier flags, and SCI / FLUX values equal to float32 precision.
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

_LRS_FS = [{"id": "MIR_LRS-FIXEDSLIT", "disp_axis": 2, "extract_width": 9, "use_source_posn": True}]
CASES = {
    # name: (mode, simulate kwargs, apertures, instrument, exp_type, jwst steps, spec3c overrides)
    "fs-background": ("nirspec-fs", {"n_exposures": 3, "n_columns": 400, "with_background": 2},
                      [{"id": "ANY", "extract_width": 9, "use_source_posn": True}], "NIRSPEC", "NRS_FIXEDSLIT",
                      {"master_background": {"save_background": True}},
                      {"master_background": {"save_background": True}}),
    "mos-moving": ("nirspec-mos", {"n_exposures": 3, "n_columns": 300, "n_sources": 5, "moving_target": True},
                   [{"id": "NRS_MSASPEC", "extract_width": 5, "use_source_posn": True}], "NIRSPEC", "NRS_MSASPEC",
                   {}, {}),
    "lrs-fs-background": ("miri-lrs-fs", {"n_exposures": 2, "with_background": 2}, _LRS_FS, "MIRI",
                          "MIR_LRS-FIXEDSLIT", {}, {}),
    "lrs-slitless": ("miri-lrs-slitless", {"n_exposures": 3},
                     [{"id": "MIR_LRS-SLITLESS", "disp_axis": 2, "xstart": 33, "xstop": 41,
                       "bkg_coeff": [[11.5], [26.5], [47.5], [62.5]], "bkg_order": 0}],
                     "MIRI", "MIR_LRS-SLITLESS", {"resample_spec": {"skip": True}}, {}),
}


@pytest.fixture(scope="module", params=list(CASES))
def both(request, tmp_path_factory, oracle, jwst_py):
    mode, sim_kw, apertures, instrument, exp_type, ref_steps, ours_steps = CASES[request.param]
    root = tmp_path_factory.mktemp(request.param)
    sim = simulate(mode, root / "input", SimOptions(seed=5, **sim_kw))
    ap = oracle.write_extract1d_json(root / "extract1d.json", [{"disp_axis": 1, **a} for a in apertures],
                                     instrument=instrument, exp_type=exp_type)
    ref = oracle.run_reference(sim.asn_path, root / "reference", extract1d=ap, steps=ref_steps,
                               timeout=900, python=jwst_py)
    assert ref.returncode == 0, ref.log_path.read_text()[-3000:]
    ingest(sim.asn_path, root / "store")
    config = resolve_config(overrides={"extract_1d": {"override_extract1d": str(ap)}, **ours_steps})
    report = process_store(root / "store", config=config, workers=1)
    assert not report.failed, [r.error for r in report.failed]
    with open_store(root / "store") as store:
        asn = load_association(store)
    naming = ProductNaming(asn["product_name"], asn["asn_id"], asn["exp_type"], asn["table_name"])
    export_store(root / "store", root / "ours", naming, workers=1)
    return root / "reference", root / "ours"


def _products(folder):
    return {p.name for p in folder.glob("*.fits")}


def test_same_products(both):
    ref_dir, ours_dir = both
    assert _products(ref_dir) == _products(ours_dir)


def test_outlier_flags_identical(both):
    ref_dir, ours_dir = both
    for ref in sorted(ref_dir.glob("*_crf.fits")):
        with datamodels.open(ref) as r, datamodels.open(ours_dir / ref.name) as m:
            pairs = zip(r.exposures, m.exposures, strict=True) if hasattr(r, "exposures") else [(r, m)]
            for a, b in pairs:
                np.testing.assert_array_equal((b.dq & dqflags.OUTLIER) != 0, (a.dq & dqflags.OUTLIER) != 0)


def _close(mine, ref, what):
    ok = np.isfinite(ref) & (ref != 0)
    np.testing.assert_array_equal(np.isfinite(mine[ok]), True, err_msg=what)
    scale = np.nanmax(np.abs(ref))
    np.testing.assert_allclose(mine[ok], ref[ok], rtol=1e-4, atol=1e-5 * scale, err_msg=what)


def test_images_agree(both):
    """cal, crf, s2d and masterbg2d SCI (background subtracted where it applies)."""
    ref_dir, ours_dir = both
    for ref in sorted(ref_dir.glob("*.fits")):
        if not ref.name.endswith(("_cal.fits", "_crf.fits", "_s2d.fits", "_masterbg2d.fits")):
            continue
        with datamodels.open(ref) as r, datamodels.open(ours_dir / ref.name) as m:
            for attr in ("exposures", "slits"):
                if hasattr(r, attr):
                    for a, b in zip(getattr(r, attr), getattr(m, attr), strict=True):
                        _close(b.data, a.data, ref.name)
                    break
            else:
                assert r.data.shape == m.data.shape, ref.name
                _close(m.data, r.data, ref.name)


def test_spectra_agree(both):
    ref_dir, ours_dir = both
    for ref in sorted(ref_dir.glob("*.fits")):
        if not ref.name.endswith(("_x1d.fits", "_c1d.fits", "_masterbg1d.fits")):
            continue
        with datamodels.open(ref) as r, datamodels.open(ours_dir / ref.name) as m:
            assert len(r.spec) == len(m.spec)
            for a, b in zip(r.spec, m.spec, strict=True):
                ta, tb = a.spec_table, b.spec_table
                np.testing.assert_allclose(tb["WAVELENGTH"], ta["WAVELENGTH"], rtol=1e-6)
                for col in ("FLUX", "SURF_BRIGHT"):
                    _close(np.asarray(tb[col]), np.asarray(ta[col]), f"{ref.name} {col}")


def test_exported_wcs_agree(both):
    """cal/crf gwcs: the same frames (``moving_target`` for a moving target) and world coordinates."""
    ref_dir, ours_dir = both
    for ref in sorted(ref_dir.glob("*.fits")):
        if not ref.name.endswith(("_cal.fits", "_crf.fits")):
            continue
        with datamodels.open(ref) as r, datamodels.open(ours_dir / ref.name) as m:
            pairs = zip(r.exposures, m.exposures, strict=True) if hasattr(r, "exposures") else [(r, m)]
            for a, b in pairs:
                assert a.meta.wcs.available_frames == b.meta.wcs.available_frames, ref.name
                y, x = np.mgrid[0:a.data.shape[0], 0:a.data.shape[1]]
                for va, vb in zip(a.meta.wcs(x, y), b.meta.wcs(x, y), strict=True):
                    np.testing.assert_allclose(vb, va, rtol=0, atol=1e-9, equal_nan=True, err_msg=ref.name)
