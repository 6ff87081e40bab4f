"""jwst-format ASDF parameter files: read them, write them, list every parameter.

jwst keeps step parameters in ASDF files (``strun --save-parameters``,
``Step.export_config``, the CRDS ``pars-*`` files): a tree with ``class``
(e.g. ``jwst.pipeline.calwebb_spec3.Spec3Pipeline``), ``name``,
``parameters`` and, for a pipeline, ``steps`` (a list of ``class``/``name``/
``parameters`` entries).  spec3c reads such a file for ``calwebb_spec3`` or
for any of its steps, and writes one that jwst reads back.

Which parameters jwst 3.0.0 has, with their defaults, is recorded in
``spec3c/data/jwst_spec3_parameters.json`` (``benchmarks/jwst_parameters.py``
regenerates it from the reference).  Reading a file, each parameter is

* applied, when spec3c implements it (a field of the step's parameter class
  in :mod:`spec3c.config`, ``override_<reftype>`` included);
* accepted without effect, when it only steers where stpipe writes files
  (:data:`RUN_CONTROL`: spec3c always writes its products, named as the
  reference names them; ``output_dir`` is the default output folder of
  ``spec3c step``), or ``skip: true`` of a step spec3c does not run;
* otherwise refused (:class:`~spec3c.errors.InputError`) unless it has the
  reference's default value: a parameter spec3c does not implement is never
  ignored silently.

Precedence: defaults < file < command line (:func:`resolve_with_file`).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from . import __version__
from .config import STEP_PARAMS, PipelineConfig, StepParams, resolve_config
from .errors import InputError, Spec3cError

__all__ = [
    "RUN_CONTROL",
    "ParameterFile",
    "ParameterInfo",
    "describe_parameters",
    "is_asdf_file",
    "read_parameter_file",
    "reference_parameters",
    "resolve_with_file",
    "standalone_suffix",
    "write_parameter_file",
]

_DATA = Path(__file__).parent / "data" / "jwst_spec3_parameters.json"

#: stpipe parameters that steer where and whether jwst writes files, not what a step computes
RUN_CONTROL = ("save_results", "output_dir", "output_use_index", "output_use_model", "search_output_file")

#: the names a pipeline file may give itself
_PIPELINE_NAMES = ("Spec3Pipeline", "calwebb_spec3")

#: parameters spec3c adds that jwst does not know: kept in a ``spec3c`` node of written files
#: (jwst refuses unknown keys in ``parameters``, and ignores other top-level nodes)
_SPEC3C_NODE = "spec3c"


@functools.cache
def reference_parameters() -> dict[str, Any]:
    """The recorded jwst 3.0.0 parameters: ``{"pipeline": {...}, "steps": {alias: {...}}}``."""
    data: dict[str, Any] = json.loads(_DATA.read_text())
    return data


def _reference_step(step: str) -> dict[str, Any]:
    steps = reference_parameters()["steps"]
    if step not in steps:
        raise Spec3cError(f"unknown step {step!r}; calwebb_spec3 steps: {', '.join(steps)}")
    entry: dict[str, Any] = steps[step]
    return entry


def standalone_suffix(step: str) -> str:
    """Suffix of a step's output run on its own (stpipe: the class name in lower case, ``extract1dstep``)."""
    return str(_reference_step(step)["class_name"]).lower()


def is_asdf_file(path: str | Path) -> bool:
    """True for a ``.asdf`` name or a file starting with the ASDF magic line."""
    path = Path(path)
    if path.suffix.lower() == ".asdf":
        return True
    try:
        with open(path, "rb") as f:
            return f.read(5) == b"#ASDF"
    except OSError:
        return False


# -- reading -------------------------------------------------------------------------


@dataclass(frozen=True)
class ParameterFile:
    """What a jwst parameter file asks of spec3c.

    Attributes
    ----------
    path : Path
    step : str or None
        The step the file is for (a single-step file), None for a ``calwebb_spec3`` file.
    steps : dict
        ``{step: {parameter: value}}`` of the parameters spec3c applies.
    output_dir : str or None
        The file's ``output_dir`` (the step's, else the pipeline's).
    accepted : list of str
        ``step.parameter`` entries accepted without effect (run control, or the reference default).
    """

    path: Path
    step: str | None
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    output_dir: str | None = None
    accepted: list[str] = field(default_factory=list)


def _same(value: Any, default: Any) -> bool:
    """Whether a file value is the reference default (``1`` is ``1.0``, ``"nan"`` is ``"NAN"``)."""
    if isinstance(value, str) and isinstance(default, str):
        return value.strip().lower() == default.strip().lower()
    if isinstance(value, bool) or isinstance(default, bool):
        return value is default or (value == default and type(value) is type(default))
    if isinstance(value, (int, float)) and isinstance(default, (int, float)):
        return math.isclose(float(value), float(default), rel_tol=1e-12, abs_tol=0.0)
    if isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)):
        return len(value) == len(default) and all(_same(a, b) for a, b in zip(value, default, strict=True))
    return bool(value == default)


def _plain(value: Any) -> Any:
    """An ASDF tree value as plain Python (lists, dicts, numbers, strings)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value


def _implemented(step: str) -> set[str]:
    return {f.name for f in fields(STEP_PARAMS[step])} if step in STEP_PARAMS else set()


def _translate(path: Path, step: str, parameters: Mapping[str, Any], out: ParameterFile) -> None:
    """Sort one step's file parameters into applied / accepted; refuse the rest."""
    reference = _reference_step(step)
    defaults: dict[str, Any] = reference["parameters"]
    implemented = _implemented(step)
    applied: dict[str, Any] = {}
    for name, value in parameters.items():
        where = f"steps.{step}.{name}"
        if name in implemented:
            applied[name] = value
        elif name in RUN_CONTROL or (name == "skip" and value is True):
            out.accepted.append(where)
        elif name.startswith("override_") and name[len("override_"):] in reference["reference_types"]:
            if value not in (None, "N/A", "n/a"):
                raise InputError(path, f"{where} = {value!r}: spec3c does not use a {name[9:].upper()} "
                                       "reference file (only None or N/A are accepted)")
            out.accepted.append(where)
        elif name not in defaults:
            raise InputError(path, f"{where}: jwst {reference_parameters()['jwst_version']} has no such "
                                   f"parameter (known: {', '.join(sorted(defaults))})")
        elif _same(value, defaults[name]):
            out.accepted.append(where)
        else:
            what = "the step" if step not in STEP_PARAMS else "this parameter"
            raise InputError(path, f"{where} = {value!r}: spec3c does not implement {what}; only the "
                                   f"reference default {defaults[name]!r} is accepted")
    if applied:
        out.steps.setdefault(step, {}).update(applied)


def _step_of(path: Path, tree: Mapping[str, Any]) -> str | None:
    """The step a file is for (None: the pipeline); an InputError for another pipeline or step."""
    cls = str(tree.get("class") or "")
    name = str(tree.get("name") or "")
    short = cls.rsplit(".", 1)[-1]
    if short in _PIPELINE_NAMES or name in _PIPELINE_NAMES:
        return None
    for alias, entry in reference_parameters()["steps"].items():
        if short == entry["class_name"] or name in (alias, entry["class_name"]):
            return str(alias)
    what = cls or name or "(no class or name)"
    raise InputError(path, f"a parameter file of {what}; spec3c reads those of calwebb_spec3 "
                           f"(Spec3Pipeline) and its steps: {', '.join(reference_parameters()['steps'])}")


def _load_tree(path: Path) -> dict[str, Any]:
    import asdf

    try:
        with asdf.open(path, lazy_load=False, memmap=False) as af:
            tree = {k: _plain(v) for k, v in af.tree.items() if k not in ("asdf_library", "history")}
    except Exception as exc:  # noqa: BLE001 - asdf/yaml raise many types for a bad file
        raise InputError(path, f"not a readable ASDF parameter file: {type(exc).__name__}: {exc}") from exc
    if not isinstance(tree.get("parameters", {}), dict):
        raise InputError(path, "'parameters' must be a mapping of parameter names to values")
    return tree


def read_parameter_file(path: str | Path) -> ParameterFile:
    """Read a jwst ASDF parameter file of ``calwebb_spec3`` or one of its steps.

    Raises
    ------
    InputError
        Naming the file and the parameter when it is not readable, is for
        another pipeline, or sets a parameter spec3c does not implement to a
        value other than the reference default.
    """
    path = Path(path)
    tree = _load_tree(path)
    step = _step_of(path, tree)
    out = ParameterFile(path, step)
    parameters = dict(tree.get("parameters") or {})
    output_dir = parameters.get("output_dir")
    if step is not None:
        _translate(path, step, parameters, out)
    else:
        pipeline_defaults = reference_parameters()["pipeline"]["parameters"]
        for name, value in parameters.items():
            if name in RUN_CONTROL or (name in pipeline_defaults and _same(value, pipeline_defaults[name])):
                out.accepted.append(f"calwebb_spec3.{name}")
            else:
                raise InputError(path, f"calwebb_spec3.{name} = {value!r}: not implemented by spec3c "
                                       f"(only the reference default {pipeline_defaults.get(name)!r})")
        for entry in tree.get("steps") or []:
            if not isinstance(entry, dict) or "name" not in entry:
                raise InputError(path, f"each entry of 'steps' needs a name and parameters, got {entry!r}")
            alias = _step_of(path, entry)
            if alias is None:
                raise InputError(path, "a pipeline cannot be a step of calwebb_spec3")
            _translate(path, alias, dict(entry.get("parameters") or {}), out)
            output_dir = output_dir or (entry.get("parameters") or {}).get("output_dir")
    for alias, extra in (tree.get(_SPEC3C_NODE) or {}).items():  # spec3c-only parameters we wrote
        if alias not in STEP_PARAMS or not isinstance(extra, dict):
            raise InputError(path, f"{_SPEC3C_NODE}.{alias}: not a spec3c step with parameters")
        out.steps.setdefault(alias, {}).update(extra)
    return dataclasses.replace(out, output_dir=None if output_dir in (None, "") else str(output_dir))


def _merged(layers: Iterable[Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for step, params in layer.items():
            out.setdefault(step, {}).update(params)
    return out


def resolve_with_file(
    config_file: str | Path | None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    skip: Iterable[str] = (),
    *,
    step: str | None = None,
) -> PipelineConfig:
    """Defaults < parameter file (ASDF, TOML or JSON) < ``overrides`` < ``skip``.

    ``step``: the single step being run (``spec3c step``); a single-step ASDF
    file must be for that step (a ``calwebb_spec3`` file is fine).
    """
    if config_file is None or not is_asdf_file(config_file):
        return resolve_config(config_file, overrides, skip)
    pars = read_parameter_file(config_file)
    if step is not None and pars.step not in (None, step):
        raise InputError(config_file, f"a parameter file of step {pars.step}, not of {step}")
    return resolve_config(None, _merged([pars.steps, overrides or {}]), skip)


# -- writing -------------------------------------------------------------------------


def _file_value(value: Any) -> Any:
    return value if value is None or isinstance(value, (bool, int, float, str, list)) else str(value)


def _step_parameters(step: str, params: StepParams | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(jwst parameters, spec3c-only parameters that differ from their default) of one step."""
    reference = _reference_step(step)
    out = dict(reference["parameters"])
    extra: dict[str, Any] = {}
    if params is None:
        return out, extra
    defaults = type(params)()
    for f in fields(params):
        value = getattr(params, f.name)
        if f.name in out:
            out[f.name] = _file_value(value)
        elif f.name.startswith("override_") and f.name[len("override_"):] in reference["reference_types"]:
            if value is not None:
                out[f.name] = _file_value(value)
        elif value != getattr(defaults, f.name):
            extra[f.name] = _file_value(value)
    return out, extra


def _meta(cls: str) -> dict[str, Any]:
    """The CRDS metadata jwst writes with ``--save-parameters`` (fields left to fill marked as jwst marks them)."""
    unset = "<SPECIFY>"
    return {
        "author": f"spec3c {__version__}",
        "date": datetime.datetime.now().replace(microsecond=0).isoformat(),
        "description": f"Parameters for calibration step {cls} (written by spec3c {__version__})",
        "instrument": {"name": unset},
        "origin": "spec3c",
        "pedigree": unset,
        "reftype": unset,
        "telescope": "JWST",
        "useafter": unset,
    }


def write_parameter_file(path: str | Path, config: PipelineConfig, step: str | None = None) -> Path:
    """Write ``config`` as a jwst ASDF parameter file jwst 3.0.0 reads back.

    ``step`` None: a ``calwebb_spec3`` file with every step (parameters spec3c
    does not implement at their reference default); else a file of that one
    step.  Parameters only spec3c has (e.g. ``cube_build.max_memory``) go,
    when not at their default, into a ``spec3c`` node that jwst ignores.
    """
    import asdf

    path = Path(path)
    extras: dict[str, dict[str, Any]] = {}

    def entry(alias: str, in_pipeline: bool) -> dict[str, Any]:
        """A step's node; jwst names a step by its alias inside a pipeline file, else by its class."""
        params = config.step(alias) if alias in STEP_PARAMS else None
        parameters, extra = _step_parameters(alias, params)
        if extra:
            extras[alias] = extra
        reference = _reference_step(alias)
        return {"class": reference["class"], "name": alias if in_pipeline else reference["class_name"],
                "parameters": parameters}

    if step is None:
        pipeline = reference_parameters()["pipeline"]
        tree: dict[str, Any] = {
            "class": pipeline["class"], "name": pipeline["name"], "meta": _meta(pipeline["class"]),
            "parameters": dict(pipeline["parameters"]),
            "steps": [entry(alias, True) for alias in reference_parameters()["steps"]],
        }
    else:
        single = entry(step, False)
        tree = {"class": single["class"], "meta": _meta(single["class"]), "name": single["name"],
                "parameters": single["parameters"]}
    if extras:
        tree[_SPEC3C_NODE] = extras
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        asdf.AsdfFile(tree).write_to(path)
    except OSError as exc:
        raise InputError(path, f"cannot write the parameter file: {exc.strerror or exc}") from exc
    return path


# -- listing -------------------------------------------------------------------------


@dataclass(frozen=True)
class ParameterInfo:
    """One parameter of one step, for ``spec3c params``."""

    step: str
    name: str
    default: Any
    help: str
    implemented: bool


def describe_parameters(step: str | None = None) -> list[ParameterInfo]:
    """Every parameter of every calwebb_spec3 step (or of ``step``): spec3c's with their
    default and help, then the reference's that spec3c does not implement (only their
    default is accepted)."""
    steps = list(reference_parameters()["steps"]) if step is None else [step]
    out: list[ParameterInfo] = []
    for alias in steps:
        reference = _reference_step(alias)
        ours = STEP_PARAMS.get(alias)
        known: set[str] = set()
        if ours is not None:
            for f in fields(ours):
                default = f.default if f.default is not dataclasses.MISSING else None
                out.append(ParameterInfo(alias, f.name, default, str(f.metadata.get("help", "")), True))
                known.add(f.name)
        for name, default in reference["parameters"].items():
            if name in known:
                continue
            if name in RUN_CONTROL:
                note = "stpipe output control: accepted, no effect (spec3c writes every product)"
            elif name == "skip":
                note = "spec3c does not run this step: skip accepted, running it is not implemented"
            else:
                note = "not implemented by spec3c: only the reference default is accepted"
            out.append(ParameterInfo(alias, name, default, note, False))
        for reftype in reference["reference_types"]:
            name = f"override_{reftype}"
            if name not in known:
                out.append(ParameterInfo(alias, name, None, f"{reftype.upper()} reference file: not used by "
                                                            "spec3c (None or N/A only)", False))
    return out
