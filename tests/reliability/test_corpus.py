"""Broken inputs: each is refused with one message naming the file and the problem, and the
store and the output folder stay exactly as they were (every file's size and sha256).

The inputs are damaged copies of simulated files (``corrupt.py``), chosen by hand and drawn
by hypothesis.  ``spec3c run`` goes into a folder that already holds a finished run.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from corrupt import (
    BREAKERS,
    Where,
    add_member,
    asn_members,
    copy_dataset,
    rewrite_members,
    set_header,
    symlink_outside,
)
from harness import FS_APERTURES, snapshot, spec3c_command
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from spec3c.cli import main
from spec3c.simulate import SimOptions, simulate

NEW_MEMBER = "jw01309011001_03102_00009_nrs1_cal.fits"  # a name not yet in the store


def refused(asn: Path, out: Path) -> str:
    """Run ``spec3c run ASN -o OUT`` and check the refusal; returns the message."""
    before = snapshot(out)
    res = CliRunner().invoke(main, ["run", str(asn), "-o", str(out), "--workers", "1", FS_APERTURES])
    assert res.exit_code == 1, res.output
    assert isinstance(res.exception, SystemExit), f"unhandled {res.exception!r}"  # handled: no traceback
    assert "Traceback" not in res.output
    errors = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, res.output
    assert snapshot(out) == before, "the output folder (store and products) changed"
    return errors[0]


def _broken_member(fs_input: Path, work: Path, case: str, where: Where) -> tuple[Path, Path]:
    """A copy of the association with one more science member, damaged by ``case``."""
    asn = copy_dataset(fs_input, work / "in")
    broken = asn.parent / NEW_MEMBER
    BREAKERS[case][0](sorted(asn.parent.glob("*_cal.fits"))[0], broken, where)
    return add_member(asn, broken.name), broken


@pytest.mark.parametrize("case", sorted(BREAKERS))
def test_broken_member_refused(fs_input, fs_output_copy, tmp_path, case):
    asn, broken = _broken_member(fs_input, tmp_path, case, Where(slit=1, plane="err"))
    message = refused(asn, fs_output_copy)
    assert str(broken) in message
    for word in BREAKERS[case][1]:
        assert word in message, message
    print(f"{case}: {message}")


MEMBER_CASES = st.builds(
    Where,
    slit=st.integers(0, 5),
    fy=st.floats(0.0, 0.999),
    fx=st.floats(0.0, 0.999),
    plane=st.sampled_from(["data", "err", "var_poisson", "var_rnoise", "var_flat", "dq"]),
    sign=st.sampled_from([1.0, -1.0]),
    text=st.sampled_from(["DN/s", "Jy", "erg/s/cm2/A", "", "MJy / sr", "counts"]),
)


def _applicable(case: str, where: Where) -> bool:
    """inf needs a float plane; DQ is an integer plane."""
    return not (case == "inf_value" and where.plane == "dq")


# no shrinking: each example is a whole ``spec3c run``; a failure is reported as drawn
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(case=st.sampled_from(sorted(BREAKERS)), where=MEMBER_CASES)
@example(case="wrong_bunit", where=Where(slit=0, text=""))  # an empty BUNIT: once an AttributeError
def test_drawn_damage_refused(fs_input, fs_output, case, where):
    if not _applicable(case, where):
        where = Where(where.slit, where.fy, where.fx, "err", where.sign, where.text)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        out = Path(shutil.copytree(fs_output, work / "out"))
        asn, broken = _broken_member(fs_input, work, case, where)
        message = refused(asn, out)
        assert str(broken) in message
        assert any(word in message for word in BREAKERS[case][1]), message


# -- EXP_TYPE and instrument ---------------------------------------------------------------

def test_missing_exp_type(fs_input, fs_output_copy, tmp_path):
    asn = copy_dataset(fs_input, tmp_path / "in")
    set_header(sorted(asn.parent.glob("*_cal.fits"))[0], asn.parent / NEW_MEMBER, "EXP_TYPE", None)
    message = refused(add_member(asn, NEW_MEMBER), fs_output_copy)
    assert NEW_MEMBER in message and "no EXP_TYPE" in message


def test_unsupported_exp_type(fs_input, fs_output_copy, tmp_path):
    asn = copy_dataset(fs_input, tmp_path / "in")
    set_header(sorted(asn.parent.glob("*_cal.fits"))[0], asn.parent / NEW_MEMBER, "EXP_TYPE", "NRS_BRIGHTOBJ")
    rewrite_members(asn, [{"expname": NEW_MEMBER, "exptype": "science"}])
    message = refused(asn, fs_output_copy)
    assert NEW_MEMBER in message and "EXP_TYPE NRS_BRIGHTOBJ is not supported" in message


def test_other_exp_type_among_members(fs_input, fs_output_copy, tmp_path):
    asn = copy_dataset(fs_input, tmp_path / "in")
    set_header(sorted(asn.parent.glob("*_cal.fits"))[0], asn.parent / NEW_MEMBER, "EXP_TYPE", "NRS_MSASPEC")
    message = refused(add_member(asn, NEW_MEMBER), fs_output_copy)
    assert asn.name in message and "mixed EXP_TYPE" in message and NEW_MEMBER in message


def test_mixed_instruments_header(fs_input, fs_output_copy, tmp_path):
    asn = copy_dataset(fs_input, tmp_path / "in")
    set_header(sorted(asn.parent.glob("*_cal.fits"))[0], asn.parent / NEW_MEMBER, "INSTRUME", "MIRI")
    message = refused(add_member(asn, NEW_MEMBER), fs_output_copy)
    assert asn.name in message and "mixed instruments" in message and "MIRI" in message


def test_mixed_instruments_files(fs_input, fs_output_copy, tmp_path):
    asn = copy_dataset(fs_input, tmp_path / "in")
    miri = simulate("miri-lrs-fs", tmp_path / "miri", SimOptions(seed=1, n_exposures=1))
    shutil.copy(miri.cal_paths[0], asn.parent / miri.cal_paths[0].name)
    message = refused(add_member(asn, miri.cal_paths[0].name), fs_output_copy)
    assert "mixed instruments" in message and "MIRI" in message and "NIRSPEC" in message


# -- the association ------------------------------------------------------------------------

def test_same_file_twice(fs_input, fs_output_copy, tmp_path):
    asn = copy_dataset(fs_input, tmp_path / "in")
    first = asn_members(asn)[0]["expname"]
    message = refused(add_member(asn, f"./{first}"), fs_output_copy)
    assert asn.name in message and "listed twice" in message


def test_symlink_outside_the_folder(fs_input, fs_output_copy, tmp_path):
    asn = copy_dataset(fs_input, tmp_path / "in")
    outside = tmp_path / "elsewhere" / NEW_MEMBER
    outside.parent.mkdir()
    shutil.copy(sorted(asn.parent.glob("*_cal.fits"))[0], outside)
    message = refused(symlink_outside(asn, outside), fs_output_copy)
    assert asn.name in message and "outside the association folder" in message


def test_absolute_member_path(fs_input, fs_output_copy, tmp_path):
    asn = copy_dataset(fs_input, tmp_path / "in")
    members = asn_members(asn)
    members[0]["expname"] = str((asn.parent / members[0]["expname"]).resolve())
    message = refused(rewrite_members(asn, members), fs_output_copy)
    assert asn.name in message and "absolute path" in message


# -- the command line -------------------------------------------------------------------------

def test_no_traceback_without_debug(fs_input, tmp_path):
    """The real command: one line on stderr, exit 1; ``--debug`` shows the traceback."""
    asn, broken = _broken_member(fs_input, tmp_path, "inf_value", Where())
    res = subprocess.run(spec3c_command("ingest", asn, "--store", tmp_path / "s"), capture_output=True,
                         text=True, timeout=300, check=False)
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    assert [line for line in res.stderr.splitlines() if line.startswith("Error:")] == [
        line for line in res.stderr.splitlines() if "Error" in line]
    assert f"Error: {broken}: slit 0 (S200A1): SCI has 1 infinite value(s)" in res.stderr
    assert not (tmp_path / "s").exists()
    debug = subprocess.run(spec3c_command("--debug", "ingest", asn, "--store", tmp_path / "s"),
                           capture_output=True, text=True, timeout=300, check=False)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "InputError" in debug.stderr


def test_one_science_exposure_runs(fs_input, tmp_path):
    """Steps that need two exposures skip, as the reference's do; the products are written."""
    asn = copy_dataset(fs_input, tmp_path / "in")
    rewrite_members(asn, asn_members(asn)[:1])
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["run", str(asn), "-o", str(out), "--workers", "1", FS_APERTURES])
    assert res.exit_code == 0, res.output
    from spec3c.check import check_store
    from spec3c.store import open_store

    with open_store(out / "spec3c.store") as store:
        for source in store.sources():
            steps = store.get_result(source, "status")[1]["steps"]
            assert steps["outlier_detection"]["status"] == "SKIPPED"
            assert "at least 2" in steps["outlier_detection"]["message"]
            assert steps["resample_spec"]["status"] == steps["extract_1d"]["status"] == "COMPLETE"
    assert len(list(out.glob("*_x1d.fits"))) == 3 and len(list(out.glob("*_s2d.fits"))) == 3
    assert check_store(out / "spec3c.store").ok
