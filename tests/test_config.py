"""Typed step parameters: precedence, coercion, and no parameter accepted and then ignored."""

from __future__ import annotations

import math

import pytest

from spec3c.config import STEP_PARAMS, PipelineConfig, parse_cli_overrides, resolve_config
from spec3c.errors import InputError, Spec3cError


def test_typed_attributes_and_precedence(tmp_path):
    param_file = tmp_path / "params.toml"
    param_file.write_text("[steps.resample_spec]\npixfrac = 0.7\nkernel = 'point'\n")
    config = resolve_config(param_file, {"resample_spec": {"pixfrac": "0.5"}}, skip=["outlier_detection"])
    assert isinstance(config, PipelineConfig)
    assert config.resample_spec.pixfrac == 0.5  # the command line beats the file
    assert config.resample_spec.kernel == "point"  # the file beats the default
    assert config.outlier_detection.skip is True
    assert config.step("extract_1d") is config.extract_1d
    assert list(config.to_dict()) == list(STEP_PARAMS)


def test_cli_overrides_parse():
    assert parse_cli_overrides(["--steps.combine_1d.sigma_clip=3"]) == {"combine_1d": {"sigma_clip": "3"}}
    with pytest.raises(Spec3cError, match="expected --steps.STEP.PARAM=VALUE"):
        parse_cli_overrides(["--steps.combine_1d"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"bogus": {"skip": "true"}}, "unknown step 'bogus'"),
        ({"resample_spec": {"pixfrak": "1"}}, "has no parameter 'pixfrak'"),
        ({"resample_spec": {"pixfrac": "big"}}, "expected float"),
        ({"master_background": {"force_subtract": "maybe"}}, "expected true or false"),
        ({"resample_spec": {"fillval": "none-such"}}, "expected NAN, INDEF or a number"),
        ({"outlier_detection": {"fillval": "x"}}, "expected NAN, INDEF or a number"),
        ({"outlier_detection": {"save_intermediate_results": "true"}}, "not supported yet"),
        ({"exp_to_source": {"skip": "true"}}, "cannot be skipped"),
    ],
)
def test_refused_values_name_the_parameter(overrides, message):
    with pytest.raises(Spec3cError, match=message):
        resolve_config(overrides=overrides)


def test_skip_exp_to_source_is_refused():
    with pytest.raises(Spec3cError, match="exp_to_source has no parameters and cannot be skipped"):
        resolve_config(skip=["exp_to_source"])


def test_fill_values():
    config = resolve_config(overrides={"outlier_detection": {"fillval": "indef"}, "resample_spec": {"fillval": "0"}})
    assert math.isnan(config.outlier_detection.fill())
    assert config.resample_spec.fill() == 0.0


def test_unreadable_parameter_file_names_it(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[steps.resample_spec\n")
    with pytest.raises(InputError, match="bad.toml"):
        resolve_config(bad)
