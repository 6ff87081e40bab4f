"""``spec3c compare``: parity reports between two folders of FITS products (hand-made files)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner

from spec3c.cli import main
from spec3c.compare import Tolerances, compare_arrays, compare_dirs


def _product(path: Path, sci: np.ndarray, dq: np.ndarray, flux: np.ndarray, **keywords: object) -> Path:
    primary = fits.PrimaryHDU()
    primary.header.update({"TELESCOP": "JWST", "EXP_TYPE": "NRS_FIXEDSLIT", "DATE": "2026-01-01", **keywords})
    table = fits.BinTableHDU.from_columns([
        fits.Column("WAVELENGTH", "D", array=np.linspace(1, 2, flux.size)),
        fits.Column("FLUX", "D", array=flux),
        fits.Column("DQ", "J", array=np.zeros(flux.size, np.int32)),
    ], name="EXTRACT1D")
    fits.HDUList([primary, fits.ImageHDU(sci, name="SCI"), fits.ImageHDU(dq, name="DQ"), table]).writeto(path)
    return path


@pytest.fixture
def folders(tmp_path):
    rng = np.random.default_rng(1)
    sci = rng.normal(10, 1, (20, 30)).astype(np.float32)
    sci[0, :5] = np.nan
    dq = np.zeros((20, 30), np.uint32)
    flux = rng.uniform(1, 2, 50)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for folder in (a, b):
        _product(folder / "x_s2d.fits", sci, dq, flux)
    return a, b, sci, dq, flux


def test_identical_folders_agree(folders):
    a, b, *_ = folders
    report = compare_dirs(a, b)
    assert report.ok and report.failures() == []
    (file,) = report.files
    assert {d.label for d in file.arrays} >= {"SCI,1", "DQ,1", "EXTRACT1D,1[FLUX]"}
    assert all(d.median_rel in (None, 0.0) for d in file.arrays)


def test_data_differences_against_tolerances(folders):
    a, b, sci, dq, flux = folders
    (a / "x_s2d.fits").unlink()
    _product(a / "x_s2d.fits", sci * np.float32(1 + 1e-3), dq, flux * (1 + 1e-7))
    report = compare_dirs(a, b)
    sci_diff = next(d for d in report.files[0].arrays if d.label == "SCI,1")
    assert sci_diff.median_rel == pytest.approx(1e-3, rel=1e-3)
    assert sci_diff.nan_mismatch == 0
    assert any("SCI,1: median relative difference" in f for f in report.failures())
    assert not any("FLUX" in f for f in report.failures())  # 1e-7 is within 1e-4
    assert compare_dirs(a, b, Tolerances(median_rel=1e-2)).ok
    assert not compare_dirs(a, b, Tolerances(median_rel=1e-2, max_rel=1e-4)).ok


def test_nan_dq_shape_names_and_headers(folders):
    a, b, sci, dq, flux = folders
    (a / "x_s2d.fits").unlink()
    changed_sci = sci.copy()
    changed_sci[5, 5] = np.nan
    changed_dq = dq.copy()
    changed_dq[3, 3] = 1 | 16
    _product(a / "x_s2d.fits", changed_sci, changed_dq, flux[:-1], EXP_TYPE="NRS_MSASPEC", EXTRA=1)
    _product(a / "only_a_x1d.fits", sci, dq, flux)
    report = compare_dirs(a, b)
    failures = "\n".join(report.failures())
    assert "only in A: only_a_x1d.fits" in failures
    assert "SCI,1: 1 elements NaN in one only" in failures
    assert "DQ,1: 1 of 600 values differ" in failures and "bits [0, 4]" in failures
    assert "EXTRACT1D,1[FLUX]: shape (49,) in A, (50,) in B" in failures
    header = next(h for h in report.files[0].headers if h.hdu == "PRIMARY")
    assert header.only_a == ["EXTRA"] and header.differ == [("EXP_TYPE", "NRS_MSASPEC", "NRS_FIXEDSLIT")]
    assert "header differs" not in failures  # headers fail only when asked
    strict = compare_dirs(a, b, Tolerances(strict_headers=True, nan_fraction=1.0, dq_fraction=1.0))
    assert any("PRIMARY: header differs" in f for f in strict.failures())
    loose = compare_dirs(a, b, Tolerances(nan_fraction=0.01, dq_fraction=0.01), names=["x_s2d.fits"])
    assert [f for f in loose.failures() if "shape" not in f] == []


def test_hdus_in_one_file_only_and_ignored(folders):
    a, b, *_ = folders
    with fits.open(a / "x_s2d.fits", mode="append") as hdul:
        hdul.append(fits.BinTableHDU.from_columns([fits.Column("KIND", "10A", array=["software"])],
                                                  name="PROVENANCE"))
    assert "x_s2d.fits: HDU PROVENANCE,1 only in A" in compare_dirs(a, b).failures()
    assert compare_dirs(a, b, Tolerances(ignore_hdus=("PROVENANCE",))).ok


def test_relative_difference_definition():
    diff = compare_arrays("SCI,1", None, np.array([1.0, 2.2, np.nan, 0.0, 5.0]), np.array([1.0, 2.0, 3.0, 0.0, 4.0]))
    assert diff.n_compared == 4 and diff.nan_mismatch == 1
    assert diff.max_rel == pytest.approx(0.25) and diff.median_rel == pytest.approx(0.1)  # b == 0 left out
    assert diff.max_abs == pytest.approx(1.0)


def test_cli_exit_status_and_json(folders, tmp_path):
    a, b, sci, dq, flux = folders
    runner = CliRunner()
    res = runner.invoke(main, ["compare", str(a), str(b)])
    assert res.exit_code == 0 and "0 difference(s) above the tolerances" in res.output
    (a / "x_s2d.fits").unlink()
    _product(a / "x_s2d.fits", sci * np.float32(1.01), dq, flux)
    res = runner.invoke(main, ["compare", str(a), str(b), "--json", str(tmp_path / "r.json"), "-v"])
    assert res.exit_code == 1 and "median relative difference" in res.output and "SCI,1: (20, 30)" in res.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["failures"] and report["files"][0]["name"] == "x_s2d.fits"
    res = runner.invoke(main, ["compare", str(a), str(b), "--median-rel", "0.1"])
    assert res.exit_code == 0


def _with_hdrtab(path: Path, cal_ver: str, exp_type: str) -> Path:
    table = fits.BinTableHDU.from_columns([
        fits.Column("CAL_VER", "16A", array=[cal_ver] * 3),
        fits.Column("EXP_TYPE", "16A", array=[exp_type] * 3),
    ], name="HDRTAB")
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    return path


def test_hdrtab_columns_of_volatile_keywords_are_left_out(tmp_path):
    """HDRTAB holds the inputs' headers, a column per keyword: CAL_VER there names the software
    as the keyword does, and is ignored like it; any other column is compared."""
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    _with_hdrtab(tmp_path / "a" / "x_s2d.fits", "spec3c 0.1", "NRS_FIXEDSLIT")
    _with_hdrtab(tmp_path / "b" / "x_s2d.fits", "1.20.2", "NRS_FIXEDSLIT")
    _with_hdrtab(tmp_path / "c" / "x_s2d.fits", "1.20.2", "NRS_MSASPEC")
    assert compare_dirs(tmp_path / "a", tmp_path / "b", Tolerances()).ok
    assert not compare_dirs(tmp_path / "a", tmp_path / "c", Tolerances()).ok
