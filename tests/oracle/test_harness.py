"""The oracle harness itself (no jwst needed)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest


def test_crds_cache_is_a_dict_literal(tmp_path, oracle):
    root = oracle.make_crds_cache(tmp_path / "cache")
    cfg = ast.literal_eval((root / "config" / "jwst" / "server_config").read_text())
    assert cfg["observatory"] == "jwst"
    assert cfg["operational_context"] == cfg["edit_context"] == "jwst_offline.pmap"
    assert cfg["reference_url"]["checked"]["jwst"] == "file:///dev/null"
    assert "last_synced" in cfg  # crds reads it when logging the cached config
    env = oracle.offline_env(root, base={"PYTHONPATH": "x", "HOME": "/h"})
    assert env["CRDS_MODE"] == "local" and env["STPIPE_DISABLE_CRDS_STEPPARS"] == "true"
    assert env["CRDS_PATH"] == str(root.resolve()) and "PYTHONPATH" not in env


def test_extract1d_json(tmp_path, oracle):
    p = oracle.write_extract1d_json(
        tmp_path / "ap.json", [{"id": "NRS_MSASPEC", "extract_width": 5, "use_source_posn": True}]
    )
    ref = json.loads(p.read_text())
    assert ref["reftype"] == "EXTRACT1D" and ref["telescope"] == "JWST"
    (ap,) = ref["apertures"]
    assert ap == {
        "id": "NRS_MSASPEC",
        "region_type": "target",
        "disp_axis": 1,
        "extract_width": 5,
        "use_source_posn": True,
    }
    with pytest.raises(ValueError, match="id"):
        oracle.write_extract1d_json(tmp_path / "bad.json", [{"extract_width": 5}])


def test_reference_steps_merge(tmp_path, oracle):
    ap = tmp_path / "ap.json"
    pars = oracle.reference_steps(
        ap, {"outlier_detection": {"skip": True}, "extract_1d": {"apply_apcorr": True}}
    )
    assert pars["extract_1d"]["override_extract1d"] == str(ap.resolve())
    assert pars["extract_1d"]["apply_apcorr"] is True
    assert pars["extract_1d"]["override_psf"] == "N/A"
    assert pars["photom"] == {"override_photom": "N/A", "override_area": "N/A"}
    assert pars["outlier_detection"] == {"skip": True}
    assert oracle.DEFAULT_OVERRIDES["extract_1d"]["apply_apcorr"] is False  # not mutated
    cmd = oracle.strun_command("a.json", "out", pars)
    assert "--steps.outlier_detection.skip=true" in cmd


def test_find_products(tmp_path, oracle):
    for name in ("a_s1_cal.fits", "a_s2_cal.fits", "a_s1_x1d.fits", "notes.txt"):
        (tmp_path / name).touch()
    found = oracle.find_products(tmp_path)
    assert sorted(found) == ["cal", "x1d"]
    assert [p.name for p in found["cal"]] == ["a_s1_cal.fits", "a_s2_cal.fits"]


def test_jwst_python_env_override(tmp_path, monkeypatch, oracle):
    monkeypatch.setenv("SPEC3C_JWST_PYTHON", "")
    assert oracle.jwst_python() is None
    monkeypatch.setenv("SPEC3C_JWST_PYTHON", str(tmp_path / "missing"))
    assert oracle.jwst_python() is None
    monkeypatch.setenv("SPEC3C_JWST_PYTHON", sys.executable)
    assert str(oracle.jwst_python()) == sys.executable


def test_wait_measures_a_child(tmp_path, oracle):
    # any python stands in for the jwst venv: it must report rc, wall and a peak RSS
    script = "import sys; b = bytearray(60 * 2**20); sys.exit(3)"
    proc = subprocess.Popen([sys.executable, "-c", script])
    rc, peak = oracle._wait(proc, timeout=60)
    assert rc == 3 and peak > 60
