"""Aperture correction end to end in the modes whose APCORR rows are matched on other keys than
NIRSpec's: MIRI LRS (subarray) and WFSS (filter and pupil).  A constant-correction file makes a
point source's stored x1d fluxes scale by c (variances by c**2) and leaves extended ones alone."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from apcorr_files import write_apcorr
from stdatamodels.jwst.datamodels import MirLrsApcorrModel, NisWfssApcorrModel

from spec3c.config import resolve_config
from spec3c.ingest import ingest
from spec3c.process import process_store
from spec3c.results import X1D, Spectrum1D
from spec3c.simulate import SimOptions, simulate
from spec3c.store import open_store

CORRECTION = 1.25


def _table(keys: dict[str, str], nw: int = 12, ns: int = 6) -> np.ndarray:
    """One APCORR row (the ``lrs``/``wfss`` layout) matching ``keys``, correction :data:`CORRECTION`."""
    dtype = [(k, "S15") for k in keys] + [("wavelength", "f4", (nw,)), ("nelem_wl", "i2"), ("size", "u1", (ns,)),
                                          ("nelem_size", "i2"), ("apcorr", "f4", (nw, ns)), ("apcorr_err", "f4", (nw, ns))]
    rows = np.zeros(1, dtype=dtype)
    for k, v in keys.items():
        rows[k] = v
    rows["wavelength"], rows["nelem_wl"] = np.linspace(0.5, 15.0, nw), nw
    rows["size"], rows["nelem_size"] = np.arange(1, 6 * ns, 6), ns
    rows["apcorr"] = CORRECTION
    return rows


def _x1ds(store_path) -> dict[tuple[str, str], Spectrum1D]:
    with open_store(store_path) as store:
        return {(src, key): Spectrum1D.load(store, src, key) for src, key in store.list_results()
                if key == X1D or key.startswith(f"{X1D}/")}


def _with_and_without(tmp_path, mode: str, options: SimOptions, model, keys_of) -> tuple[dict, dict]:  # type: ignore[no-untyped-def]
    sim = simulate(mode, tmp_path / "in", options)
    ingest(sim.asn_path, tmp_path / "plain")
    with open_store(tmp_path / "plain") as store:
        meta = next(r.meta for r in store.list_exposures() if r.role == "science")
    path = write_apcorr(model, _table(keys_of(meta)), tmp_path / "apcorr.fits")
    shutil.copytree(tmp_path / "plain", tmp_path / "corrected")
    for name, extract in (("plain", {"apply_apcorr": False}), ("corrected", {"override_apcorr": str(path)})):
        report = process_store(tmp_path / name, config=resolve_config(overrides={"extract_1d": extract}), workers=1)
        assert not report.failed, [r.error for r in report.failed]
    return _x1ds(tmp_path / "plain"), _x1ds(tmp_path / "corrected")


def _check_scaled(plain: dict, corrected: dict) -> int:
    assert plain.keys() == corrected.keys() and plain
    points = 0
    for key, spec in plain.items():
        c = CORRECTION if spec.meta.get("source_type") == "POINT" else 1.0
        points += c != 1.0
        got = corrected[key].columns
        np.testing.assert_allclose(got["FLUX"], c * spec.columns["FLUX"], rtol=1e-6, err_msg=str(key))
        np.testing.assert_allclose(got["FLUX_VAR_POISSON"], c * c * spec.columns["FLUX_VAR_POISSON"], rtol=1e-6)
    return points


def test_miri_lrs_rows_matched_on_subarray(tmp_path):
    plain, corrected = _with_and_without(
        tmp_path, "miri-lrs-fs", SimOptions(seed=4, n_exposures=2), MirLrsApcorrModel,
        lambda meta: {"subarray": meta["meta.subarray.name"]})
    assert _check_scaled(plain, corrected) >= 1


@pytest.mark.parametrize("grism", ["C"])
def test_niriss_wfss_rows_matched_on_filter_and_pupil(tmp_path, grism):
    plain, corrected = _with_and_without(
        tmp_path, "niriss-wfss", SimOptions(seed=5, n_exposures=1, n_sources=4, grism=grism), NisWfssApcorrModel,
        lambda meta: {"filter": meta["meta.instrument.filter"], "pupil": meta["meta.instrument.pupil"]})
    assert _check_scaled(plain, corrected) >= 1
