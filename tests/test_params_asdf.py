"""jwst-format ASDF parameter files: read (applied / accepted / refused), written, listed.

The files here are built the way jwst 3.0.0 writes them (``export_config``:
``class``, ``name``, ``parameters``, for a pipeline ``steps`` entries, every
parameter of every step at its default unless changed), from the recorded
reference parameters; tests/oracle/test_single_step_reference.py uses files
jwst itself wrote.
"""

from __future__ import annotations

import copy
from dataclasses import fields
from pathlib import Path
from typing import Any

import asdf
import pytest
from click.testing import CliRunner

from spec3c.cli import main
from spec3c.config import STEP_PARAMS, PipelineConfig, resolve_config
from spec3c.errors import InputError
from spec3c.params_asdf import (
    describe_parameters,
    read_parameter_file,
    reference_parameters,
    resolve_with_file,
    standalone_suffix,
    write_parameter_file,
)


def _pipeline_tree(changes: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    ref = reference_parameters()
    steps = []
    for alias, entry in ref["steps"].items():
        parameters = copy.deepcopy(entry["parameters"])
        parameters.update((changes or {}).get(alias, {}))
        steps.append({"class": entry["class"], "name": alias, "parameters": parameters})
    return {"class": ref["pipeline"]["class"], "name": ref["pipeline"]["name"],
            "meta": {"author": "<SPECIFY>", "reftype": "<SPECIFY>"},
            "parameters": copy.deepcopy(ref["pipeline"]["parameters"]), "steps": steps}


def _step_tree(alias: str, changes: dict[str, Any] | None = None) -> dict[str, Any]:
    entry = reference_parameters()["steps"][alias]
    parameters = {**copy.deepcopy(entry["parameters"]), **(changes or {})}
    return {"class": entry["class"], "name": entry["class_name"], "parameters": parameters}


def _write(tmp_path: Path, tree: dict[str, Any], name: str = "pars.asdf") -> Path:
    path = tmp_path / name
    asdf.AsdfFile(tree).write_to(path)
    return path


def test_spec3c_defaults_are_the_reference_defaults():
    """Every parameter both have starts from jwst 3.0.0's default (a pipeline file of defaults changes nothing)."""
    ref = reference_parameters()["steps"]
    defaults = PipelineConfig()
    checked = 0
    for step, cls in STEP_PARAMS.items():
        for f in fields(cls):
            if f.name in ref[step]["parameters"]:
                assert getattr(defaults.step(step), f.name) == ref[step]["parameters"][f.name], f"{step}.{f.name}"
                checked += 1
    assert checked > 40


def test_pipeline_file_applies_changes_and_accepts_defaults(tmp_path):
    path = _write(tmp_path, _pipeline_tree({"resample_spec": {"pixfrac": 0.8, "save_results": True,
                                                              "output_dir": "elsewhere"},
                                            "outlier_detection": {"snr": "4.0 3.0"},
                                            "extract_1d": {"override_extract1d": "ap.json", "override_psf": "N/A"}}))
    pars = read_parameter_file(path)
    assert pars.step is None and pars.output_dir == "elsewhere"
    assert "steps.resample_spec.save_results" in pars.accepted
    config = resolve_with_file(path)
    assert config.resample_spec.pixfrac == 0.8
    assert config.outlier_detection.snr == "4.0 3.0"
    assert config.extract_1d.override_extract1d == "ap.json"
    unchanged = PipelineConfig()
    assert config.cube_build == unchanged.cube_build and config.combine_1d == unchanged.combine_1d


def test_precedence_defaults_file_command_line_skip(tmp_path):
    path = _write(tmp_path, _pipeline_tree({"resample_spec": {"pixfrac": 0.8, "kernel": "point"}}))
    config = resolve_with_file(path, {"resample_spec": {"pixfrac": "0.5"}}, skip=("resample_spec",))
    assert config.resample_spec.pixfrac == 0.5  # the command line wins over the file
    assert config.resample_spec.kernel == "point"  # the file wins over the default
    assert config.resample_spec.skip is True  # --skip wins over everything


@pytest.mark.parametrize(("changes", "message"), [
    ({"outlier_detection": {"rolling_window_width": 5}}, "outlier_detection.rolling_window_width = 5: spec3c does not implement"),
    ({"extract_1d": {"model_nod_pair": False}}, "extract_1d.model_nod_pair"),
    ({"extract_1d": {"override_psf": "psf.fits"}}, "does not use a PSF reference file"),
    ({"adaptive_trace_model": {"skip": False}}, "adaptive_trace_model.skip = False: spec3c does not implement the step"),
    ({"resample_spec": {"pre_hooks": ["x"]}}, "resample_spec.pre_hooks"),
    ({"combine_1d": {"no_such": 1}}, "has no such parameter"),
])
def test_unimplemented_parameters_are_refused_unless_default(tmp_path, changes, message):
    path = _write(tmp_path, _pipeline_tree(changes))
    with pytest.raises(InputError, match=message) as info:
        read_parameter_file(path)
    assert str(path) in str(info.value)


def test_steps_spec3c_does_not_run_may_be_skipped(tmp_path):
    path = _write(tmp_path, _pipeline_tree({"adaptive_trace_model": {"skip": True}, "spectral_leak": {"skip": True}}))
    assert "steps.adaptive_trace_model.skip" in read_parameter_file(path).accepted


def test_photom_parameters_are_applied(tmp_path):
    path = _write(tmp_path, _pipeline_tree({"photom": {"skip": True, "apply_time_correction": False}}))
    config = resolve_with_file(path)
    assert config.photom.skip is True and config.photom.apply_time_correction is False


def test_single_step_file(tmp_path):
    path = _write(tmp_path, _step_tree("extract_1d", {"position_offset": 1.5, "use_source_posn": False}))
    pars = read_parameter_file(path)
    assert pars.step == "extract_1d"
    config = resolve_with_file(path, step="extract_1d")
    assert config.extract_1d.position_offset == 1.5 and config.extract_1d.use_source_posn is False
    with pytest.raises(InputError, match="a parameter file of step extract_1d, not of combine_1d"):
        resolve_with_file(path, step="combine_1d")


def test_other_pipelines_and_broken_files_are_refused(tmp_path):
    other = _write(tmp_path, {"class": "jwst.pipeline.calwebb_image3.Image3Pipeline", "name": "Image3Pipeline",
                              "parameters": {}}, "image3.asdf")
    with pytest.raises(InputError, match="Image3Pipeline; spec3c reads those of calwebb_spec3"):
        read_parameter_file(other)
    broken = tmp_path / "broken.asdf"
    broken.write_text("#ASDF 1.0.0\nnot: [valid\n")
    with pytest.raises(InputError, match="not a readable ASDF parameter file"):
        read_parameter_file(broken)


def test_write_then_read_round_trip(tmp_path):
    config = resolve_config(overrides={"resample_spec": {"pixfrac": "0.7"}, "extract_1d": {"override_extract1d": "a.json"},
                                       "cube_build": {"max_memory": "2GB"}, "pixel_replace": {"skip": "false"}})
    path = write_parameter_file(tmp_path / "spec3.asdf", config)
    with asdf.open(path) as af:
        tree = af.tree
        assert tree["class"] == "jwst.pipeline.calwebb_spec3.Spec3Pipeline"
        names = [s["name"] for s in tree["steps"]]
        assert names == list(reference_parameters()["steps"])
        resample = next(s for s in tree["steps"] if s["name"] == "resample_spec")["parameters"]
        assert resample["pixfrac"] == 0.7 and set(resample) == set(reference_parameters()["steps"]["resample_spec"]["parameters"])
        assert "max_memory" not in next(s for s in tree["steps"] if s["name"] == "cube_build")["parameters"]
        assert tree["spec3c"] == {"cube_build": {"max_memory": "2GB"}}  # spec3c-only, where jwst looks not
    assert resolve_with_file(path) == config
    single = write_parameter_file(tmp_path / "x1d.asdf", config, "extract_1d")
    pars = read_parameter_file(single)
    assert pars.step == "extract_1d" and pars.steps["extract_1d"]["override_extract1d"] == "a.json"


def test_standalone_suffixes():
    assert standalone_suffix("extract_1d") == "extract1dstep"
    assert standalone_suffix("resample_spec") == "resamplespecstep"
    assert standalone_suffix("master_background") == "masterbackgroundstep"


def test_every_reference_parameter_is_listed():
    listed = {(p.step, p.name) for p in describe_parameters()}
    for alias, entry in reference_parameters()["steps"].items():
        for name in entry["parameters"]:
            assert (alias, name) in listed
    assert ("cube_build", "max_memory") in listed  # and spec3c's own
    ours = [p for p in describe_parameters("extract_1d") if p.implemented]
    assert all(p.help for p in ours)


def test_cli_params_and_save_parameters(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["params", "resample_spec"])
    assert res.exit_code == 0 and "--steps.resample_spec.pixfrac=1.0" in res.output
    assert "blendheaders" not in res.output
    res = runner.invoke(main, ["params", "resample_spec", "--all"])
    assert "--steps.resample_spec.blendheaders=True  [reference only]" in res.output
    res = runner.invoke(main, ["params"])
    assert all(f"{step}:" in res.output for step in STEP_PARAMS)
    # process --save-parameters writes the resolved parameters (before it fails on the missing store)
    target = tmp_path / "saved.asdf"
    res = runner.invoke(main, ["process", str(tmp_path), "--save-parameters", str(target),
                               "--steps.resample_spec.pixfrac=0.6"])
    assert target.is_file(), res.output
    assert resolve_with_file(target).resample_spec.pixfrac == 0.6
