"""``spec3c step``: single steps on FITS products, checked against the pipeline's own products.

The pipeline runs in memory on simulated NIRSpec fixed-slit exposures (every
source through the mode's plan, then its products exported); each single
step, run on files, must give what the pipeline gave (or, for combine_1d,
what combining a spectrum with itself must give: the spectrum).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner
from single_step_helpers import run_pipeline

from spec3c.asn import read_association
from spec3c.cli import main
from spec3c.config import resolve_config
from spec3c.errors import InputError, Spec3cError
from spec3c.simulate import SimOptions, simulate
from spec3c.single_step.exposures import load_store
from spec3c.single_step.run import run_step, standalone_name

APERTURES = Path(__file__).resolve().parents[1] / "examples" / "extract1d_nirspec_fs.json"


def _median_rel(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    good = np.isfinite(a) & np.isfinite(b) & (b != 0)
    assert good.sum() > 50
    return float(np.median(np.abs(a[good] - b[good]) / np.abs(b[good])))


@pytest.fixture(scope="module")
def fs(tmp_path_factory):
    """Simulated FS exposures and the pipeline's crf/s2d/x1d of every source (outlier detection included)."""
    root = tmp_path_factory.mktemp("single_step")
    sim = simulate("nirspec-fs", root / "in", SimOptions(seed=3, n_exposures=2, n_columns=120))
    asn = read_association(sim.asn_path)
    config = resolve_config(overrides={"extract_1d": {"override_extract1d": str(APERTURES)}})
    run_pipeline(asn, config, root / "pipeline", ("crf", "s2d", "x1d"))
    return root, sim, config


def _pipeline(root: Path, suffix: str) -> list[Path]:
    return sorted((root / "pipeline").glob(f"*_{suffix}.fits"))


def test_standalone_names():
    assert standalone_name("a_nrs1_s2d.fits", "extract_1d") == "a_nrs1_extract1dstep.fits"
    assert standalone_name("x1d_asn.json", "combine_1d") == "x1d_asn_combine1dstep.fits"
    assert standalone_name("a_extract1dstep.fits", "combine_1d") == "a_combine1dstep.fits"
    assert standalone_name("e_nrs1_cal.fits", "outlier_detection", "o022") == "e_nrs1_o022_outlierdetectionstep.fits"
    assert standalone_name("e_nrs1_crf.fits", "resample_spec") == "e_nrs1_resamplespecstep.fits"


def test_extract_1d_on_s2d_reproduces_the_pipeline_x1d(fs, tmp_path):
    root, _, config = fs
    s2ds = _pipeline(root, "s2d")
    done = run_step("extract_1d", s2ds, tmp_path, config)
    assert [p.name for p in done.written] == [standalone_name(p.name, "extract_1d") for p in s2ds]
    for s2d, x1d in zip(s2ds, _pipeline(root, "x1d"), strict=True):
        with fits.open(tmp_path / standalone_name(s2d.name, "extract_1d")) as ours, fits.open(x1d) as ref:
            assert ours[0].header["S_EXTR1D"] == "COMPLETE"
            assert ours[0].header["R_EXTR1D"] == str(APERTURES)
            assert ours[0].header["EXP_TYPE"] == ref[0].header["EXP_TYPE"]
            a, b = ours["EXTRACT1D"], ref["EXTRACT1D"]
            assert a.header["SLTNAME"] == b.header["SLTNAME"]
            assert a.header["EXTRYSTR"] == pytest.approx(b.header["EXTRYSTR"], abs=1e-6)  # same centring
            for column in ("WAVELENGTH", "FLUX", "FLUX_ERROR", "NPIXELS"):
                assert _median_rel(a.data[column], b.data[column]) < 1e-6, column


def test_resample_then_extract_multislit(fs, tmp_path):
    """resample_spec on the association (one MultiSlitModel, a slit per source), then extract_1d on it:
    the pipeline's spectra when it ran without outlier detection (the single step runs only itself)."""
    root, sim, config = fs
    no_outliers = resolve_config(overrides={**config.to_dict(), "outlier_detection": {"skip": True}})
    run_pipeline(read_association(sim.asn_path), no_outliers, tmp_path / "ref", ("x1d",))
    store = load_store(read_association(sim.asn_path))
    resampled = run_step("resample_spec", [sim.asn_path], tmp_path / "rs", config).written
    assert [p.name for p in resampled] == [standalone_name(sim.asn_path.name, "resample_spec")]
    with fits.open(resampled[0]) as hdul:
        assert hdul[0].header["DATAMODL"] == "MultiSlitModel" and hdul[0].header["S_RESAMP"] == "COMPLETE"
        assert sum(h.name == "SCI" for h in hdul) == len(store.sources())
    x1d = run_step("extract_1d", resampled, tmp_path / "x1d", config).written[0]
    with fits.open(x1d) as ours:
        spectra = {h.header["SLTNAME"]: h.data for h in ours if h.name == "EXTRACT1D"}
    for ref in sorted((tmp_path / "ref").glob("*_x1d.fits")):
        with fits.open(ref) as hdul:
            expected = hdul["EXTRACT1D"]
            assert _median_rel(spectra[expected.header["SLTNAME"]]["FLUX"], expected.data["FLUX"]) < 1e-6


def test_outlier_detection_copies_each_input_with_the_pipeline_flags(fs, tmp_path):
    root, sim, config = fs
    asn = read_association(sim.asn_path)
    done = run_step("outlier_detection", [sim.asn_path], tmp_path, config)
    assert sorted(p.name for p in done.written) == sorted(
        standalone_name(m.path.name, "outlier_detection", asn.asn_id) for m in asn.science)
    # the pipeline's source-based crf of each slit: its k-th SCI/DQ is exposure k's
    pipeline = {}
    for crf in _pipeline(root, "crf"):
        with fits.open(crf) as hdul:
            for k, sci in enumerate(h for h in hdul if h.name == "SCI"):
                pipeline[(sci.header["SLTNAME"], k)] = (hdul["DQ", sci.ver].data.copy(), sci.data.copy())
    n_flagged = 0
    for index, path in enumerate(sorted(done.written)):
        with fits.open(path) as hdul:
            assert hdul[0].header["S_OUTLIR"] == "COMPLETE"
            for h in hdul:
                if h.name == "SCI":
                    dq, sci = pipeline[(h.header["SLTNAME"], index)]
                    ours_dq = hdul["DQ", h.ver].data
                    np.testing.assert_array_equal(ours_dq, dq)
                    np.testing.assert_array_equal(np.isnan(h.data), np.isnan(sci))
                    n_flagged += int(np.count_nonzero(ours_dq & 16))
    assert n_flagged > 0  # the simulated cosmic rays were found


def test_master_background_subtracts_what_the_pipeline_subtracts(tmp_path):
    sim = simulate("nirspec-fs", tmp_path / "in", SimOptions(seed=5, n_exposures=2, n_columns=120,
                                                             nod_subtracted=False, with_background=2))
    asn = read_association(sim.asn_path)
    config = resolve_config(overrides={"extract_1d": {"override_extract1d": str(APERTURES)}})
    done = run_step("master_background", [sim.asn_path], tmp_path / "out", config)
    assert sorted(p.name for p in done.written) == sorted(
        standalone_name(m.path.name, "master_background") for m in asn.science)
    run_pipeline(asn, resolve_config(overrides={"outlier_detection": {"skip": True}}), tmp_path / "pipeline",
                  ("cal",))
    cal = {}
    for path in (tmp_path / "pipeline").glob("*_cal.fits"):
        with fits.open(path) as hdul:
            for k, h in enumerate(h for h in hdul if h.name == "SCI"):
                cal[(h.header["SLTNAME"], k)] = h.data.copy()
    for index, member in enumerate(sorted(m.path for m in asn.science)):
        with fits.open(tmp_path / "out" / standalone_name(member.name, "master_background")) as ours, \
                fits.open(member) as original:
            assert ours[0].header["S_MSBSUB"] == "COMPLETE"
            for h in (h for h in ours if h.name == "SCI"):
                expected = cal[(h.header["SLTNAME"], index)]
                np.testing.assert_allclose(h.data, expected, rtol=1e-6, equal_nan=True)
                removed = np.nanmedian(original["SCI", h.ver].data - h.data)
                assert removed > 0.05 * np.nanmedian(np.abs(h.data))  # the sky the simulation left in


def test_combine_1d_of_a_spectrum_with_itself_is_the_spectrum(fs, tmp_path):
    root, _, config = fs
    x1d = _pipeline(root, "x1d")[0]
    copy = tmp_path / "copy_x1d.fits"
    copy.write_bytes(x1d.read_bytes())
    out = run_step("combine_1d", [x1d, copy], tmp_path / "c1d", config).written
    assert [p.name for p in out] == [standalone_name(x1d.name, "combine_1d")]
    with fits.open(out[0]) as combined, fits.open(x1d) as single:
        c, s = combined["COMBINE1D"].data, single["EXTRACT1D"].data
        assert combined[0].header["S_COMB1D"] == "COMPLETE"
        assert np.all(c["N_INPUT"][np.isfinite(c["FLUX"])] == 2)
        np.testing.assert_allclose(c["WAVELENGTH"], s["WAVELENGTH"], rtol=1e-12)
        np.testing.assert_allclose(c["FLUX"], s["FLUX"], rtol=1e-10, equal_nan=True)


def test_cli_short_parameters_config_and_errors(fs, tmp_path):
    root, _, _ = fs
    s2d = _pipeline(root, "s2d")[0]
    runner = CliRunner()
    res = runner.invoke(main, ["step", "extract_1d", str(s2d), "-o", str(tmp_path / "a"),
                               f"--override_extract1d={APERTURES}", "--position_offset", "2",
                               "--save-parameters", str(tmp_path / "used.asdf")])
    assert res.exit_code == 0, res.output
    assert "extract1dstep.fits" in res.output
    # the saved single-step file gives the same parameters back
    res = runner.invoke(main, ["step", "extract_1d", str(s2d), "-o", str(tmp_path / "b"),
                               "--config", str(tmp_path / "used.asdf")])
    assert res.exit_code == 0, res.output
    name = standalone_name(s2d.name, "extract_1d")
    with fits.open(tmp_path / "a" / name) as a, fits.open(tmp_path / "b" / name) as b:
        np.testing.assert_array_equal(a["EXTRACT1D"].data["FLUX"], b["EXTRACT1D"].data["FLUX"])
        assert a["EXTRACT1D"].header["EXTRYSTR"] != pytest.approx(0.0)
    res = runner.invoke(main, ["step", "cube_build", str(s2d), "-o", str(tmp_path)])
    assert res.exit_code == 1 and "does not run as a single step" in res.output
    res = runner.invoke(main, ["step", "extract_1d", str(s2d), "-o", str(tmp_path), "--nonsense=1"])
    assert res.exit_code == 1 and "no parameter 'nonsense'" in res.output


def test_inputs_of_the_wrong_kind_are_refused(fs, tmp_path):
    root, sim, config = fs
    with pytest.raises(InputError, match="resampled 2-D spectra"):
        run_step("extract_1d", [sim.cal_paths[0]], tmp_path, config)
    with pytest.raises(InputError, match="extracted spectra"):
        run_step("combine_1d", [_pipeline(root, "s2d")[0]], tmp_path, config)
    with pytest.raises(InputError, match="association"):
        run_step("master_background", [sim.cal_paths[0]], tmp_path, config)
    with pytest.raises(Spec3cError, match="no such file"):
        run_step("extract_1d", [tmp_path / "missing_s2d.fits"], tmp_path, config)
