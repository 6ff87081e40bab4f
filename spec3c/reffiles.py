"""Which reference file each step reads: its override, else CRDS's choice, else none.

For every reference type a run's steps read (a step parameter
``override_<reftype>``: EXTRACT1D and APCORR for extract_1d, CUBEPAR for
cube_build, MRSPTCORR for spectral_leak; a step that does not run, or extract_1d with
``apply_apcorr=false`` for APCORR, reads none):

1. ``--steps.STEP.override_<reftype>=FILE`` always wins; ``N/A`` means "no
   file" (as in jwst) and CRDS is not asked either;
2. else, when a CRDS cache is configured (``CRDS_PATH`` is set and the
   optional ``crds`` package is installed: ``pip install 'spec3c[crds]'``),
   the ``crds`` client chooses the file from the association's first science
   exposure's metadata, exactly as jwst's stpipe does (``crds.getreferences``;
   a ``N/A`` rule means no file).  The context is ``CRDS_CONTEXT``, else the
   cache's latest.  crds runs as configured by its own environment: without
   ``CRDS_SERVER_URL`` it never contacts a server and reads only the cache;
3. else the step has no file and uses its documented default (extract_1d:
   the whole slit, no aperture correction; cube_build refuses to run).

:func:`select_references` returns the parameters with the chosen paths filled
in (so the run's provenance and incremental key, :mod:`spec3c.provenance`,
hash their content) and a record of the names the products give them
(``R_EXTR1D = crds://<file>`` or ``N/A``, ``CRDS_CTX``, ``CRDS_VER``, as jwst
writes them).  Every choice is logged on ``spec3c.crds``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import PipelineConfig
from .errors import Spec3cError
from .store.records import ExposureRecord

__all__ = [
    "NOT_APPLICABLE",
    "ReferenceSelection",
    "crds_configured",
    "is_not_applicable",
    "reference_header",
    "reference_parameters",
    "select_references",
]

log = logging.getLogger("spec3c.crds")

#: the value meaning "no file" (an override, or a CRDS rule)
NOT_APPLICABLE = "N/A"
#: the prefix of a step parameter naming a reference file of a type (``override_extract1d``)
OVERRIDE = "override_"
#: the name jwst gives a file CRDS chose, in the products (``R_EXTR1D = crds://jwst_..._0001.json``)
CRDS_URI = "crds://"
#: crds's own default server address: a "serverless" URL, for which crds never opens a connection
CRDS_SERVERLESS_URL = "https://crds-serverless-mode.stsci.edu"
_OBSERVATORY = "jwst"


#: reference types read only by the modes that name them (``Mode.reference_types``: the SOSS extraction's)
MODE_ONLY_REFERENCES = frozenset({"pastasoss", "specprofile", "speckernel"})


def is_not_applicable(value: Any) -> bool:
    """``N/A`` (any case, blanks around): a reference-file parameter that asks for no file."""
    return isinstance(value, str) and value.strip().upper() == NOT_APPLICABLE


def crds_configured() -> bool:
    """True when a CRDS cache is configured (``CRDS_PATH`` set, not empty)."""
    return bool(os.environ.get("CRDS_PATH", "").strip())


@dataclass(frozen=True)
class ReferenceSelection:
    """The parameters of a run with their reference files chosen, and how they were chosen.

    Attributes
    ----------
    config : PipelineConfig
        The parameters, with CRDS's choices filled in and ``N/A`` overrides as None.
    names : dict of str to str
        ``"step.override_<reftype>" -> name`` the products give a file that is not an override
        path: ``crds://<basename>`` (chosen by CRDS) or ``N/A`` (no file, by override or rule).
    crds_context : str or None
        The CRDS context (``.pmap``) that chose files, None when CRDS was not asked.
    crds_version : str or None
        The version of the ``crds`` package that chose them.
    """

    config: PipelineConfig
    names: dict[str, str] = field(default_factory=dict)
    crds_context: str | None = None
    crds_version: str | None = None

    def record(self) -> dict[str, Any]:
        """What the run's provenance keeps (empty when there is nothing to say)."""
        if not self.names and self.crds_context is None:
            return {}
        return {"names": dict(sorted(self.names.items())), "crds_context": self.crds_context,
                "crds_version": self.crds_version}


def reference_parameters(config: PipelineConfig, plan: Iterable[str]) -> list[tuple[str, str, str]]:
    """(step, parameter, reftype) of every reference file the plan's running steps read."""
    out = []
    for step in plan:
        params = config.step(step)
        if params.skip:
            continue
        for f in dataclasses.fields(params):
            reftype = f.name.removeprefix(OVERRIDE)
            if f.name.startswith(OVERRIDE) and params.uses_reference(reftype):
                out.append((step, f.name, reftype))
    return out


def reference_header(exposures: Sequence[ExposureRecord]) -> dict[str, Any]:
    """The metadata CRDS selects on: the first science exposure's flat ``meta.*`` scalars
    (what ``DataModel.get_crds_parameters()`` gives jwst)."""
    science = [r for r in exposures if r.role == "science"] or list(exposures)
    if not science:
        return {}
    return {key: value for key, value in science[0].meta.items()
            if isinstance(value, str | int | float | bool)}


def _without_not_applicable(config: PipelineConfig) -> PipelineConfig:
    """``config`` with every ``N/A`` reference-file parameter as None (no file)."""
    changes: dict[str, Any] = {}
    for step in config.to_dict():
        params = config.step(step)
        updates: dict[str, Any] = {f.name: None for f in dataclasses.fields(params)
                   if f.name.startswith(OVERRIDE) and is_not_applicable(getattr(params, f.name))}
        if updates:
            changes[step] = dataclasses.replace(params, **updates)
    return dataclasses.replace(config, **changes) if changes else config


def select_references(config: PipelineConfig, plan: Iterable[str], header: Mapping[str, Any],
                      mode_references: Iterable[str] = ()) -> ReferenceSelection:
    """Choose the reference file of every type the plan's running steps read (module docstring).

    Parameters
    ----------
    config : PipelineConfig
        The resolved parameters (overrides included).
    plan : iterable of str
        The mode's steps.
    header : mapping
        Flat ``meta.*`` metadata CRDS selects on (:func:`reference_header`).
    mode_references : iterable of str
        The :data:`MODE_ONLY_REFERENCES` types the mode reads (``Mode.reference_types``).

    Raises
    ------
    Spec3cError
        CRDS is configured and could not choose a file (the message names the type and the
        parameter that gives one instead).
    """
    mode_references = set(mode_references)
    wanted: dict[str, list[tuple[str, str]]] = {}  # reftype -> (step, parameter) that CRDS is asked for
    names: dict[str, str] = {}
    for step, param, reftype in reference_parameters(config, plan):
        if reftype in MODE_ONLY_REFERENCES and reftype not in mode_references:
            continue  # another mode's file: neither asked of CRDS nor named in the products
        value = getattr(config.step(step), param)
        if is_not_applicable(value):
            names[f"{step}.{param}"] = NOT_APPLICABLE
            log.info("%s: none (--steps.%s.%s=N/A)", reftype.upper(), step, param)
        elif value not in (None, ""):
            log.info("%s: %s (--steps.%s.%s)", reftype.upper(), value, step, param)
        else:
            wanted.setdefault(reftype, []).append((step, param))
    config = _without_not_applicable(config)
    if not wanted:
        return ReferenceSelection(config, names)
    if not crds_configured():
        log.info("no CRDS cache (CRDS_PATH is unset): %s from the steps' defaults (no file)",
                 ", ".join(t.upper() for t in sorted(wanted)))
        return ReferenceSelection(config, names)
    chosen = _crds_choice(header, sorted(wanted), wanted)
    if chosen is None:
        return ReferenceSelection(config, names)
    paths, context, version = chosen
    changes: dict[str, dict[str, Any]] = {}
    for reftype, users in sorted(wanted.items()):
        path = paths[reftype]
        for step, param in users:
            if path == NOT_APPLICABLE:
                names[f"{step}.{param}"] = NOT_APPLICABLE
            else:
                names[f"{step}.{param}"] = CRDS_URI + Path(path).name
                changes.setdefault(step, {})[param] = path
        log.info("%s: %s (CRDS context %s)", reftype.upper(),
                 "none (N/A in the rules)" if path == NOT_APPLICABLE else path, context)
    replaced: dict[str, Any] = {step: dataclasses.replace(config.step(step), **updates)
                                for step, updates in changes.items()}
    config = dataclasses.replace(config, **replaced)
    return ReferenceSelection(config, names, context, version)


def _crds_choice(header: Mapping[str, Any], reftypes: list[str],
                 wanted: Mapping[str, list[tuple[str, str]]]) -> tuple[dict[str, str], str, str] | None:
    """({reftype: path or N/A}, context, crds version) as the ``crds`` client chooses them;
    None (and a warning) when the package is not installed."""
    try:
        import crds
        from crds.client import api
        from crds.core import heavy_client, utils
    except ImportError:
        log.warning("CRDS_PATH is set but the crds package is not installed (pip install 'spec3c[crds]'): "
                    "%s from the steps' defaults (no file)", ", ".join(t.upper() for t in reftypes))
        return None
    # crds keeps its configuration per process: read the environment again (it may have changed)
    utils.clear_function_caches()
    server = os.environ.get("CRDS_SERVER_URL", CRDS_SERVERLESS_URL).rstrip("/")
    if api.get_crds_server() != server:
        api.set_crds_server(server)
    # jwst's default is the build context of the installed jwst, which needs a server; spec3c has
    # no jwst: the latest context the cache knows (what crds falls back to, without its warning)
    context = None if os.environ.get("CRDS_CONTEXT") else "latest"
    try:
        best = crds.getreferences(dict(header), reftypes=reftypes, observatory=_OBSERVATORY, context=context)
        used = str(heavy_client.get_processing_mode(_OBSERVATORY, context)[1])
    except (crds.CrdsError, OSError, LookupError, AttributeError, ValueError, SyntaxError, SystemExit) as exc:
        # SystemExit: crds exits when it cannot read its cache's configuration at all
        raise Spec3cError(_failure(exc, reftypes, wanted)) from exc
    paths = {t: NOT_APPLICABLE if NOT_APPLICABLE in str(p).upper() else str(p) for t, p in best.items()}
    return paths, used, str(crds.__version__)


def _failure(exc: BaseException, reftypes: list[str], wanted: Mapping[str, list[tuple[str, str]]]) -> str:
    what = str(exc).strip() or type(exc).__name__
    if isinstance(exc, SystemExit):
        what = "crds cannot read its cache configuration (config/jwst/server_config)"
    instead = " or ".join(f"--steps.{step}.{param}=FILE" for t in reftypes for step, param in wanted[t])
    return (f"CRDS (CRDS_PATH={os.environ.get('CRDS_PATH')}) could not choose the "
            f"{', '.join(t.upper() for t in reftypes)} reference file(s): {what}. Give {instead} "
            "(N/A: no file), or unset CRDS_PATH to use the steps' defaults")
