"""What a source's results were made from: its key, and the provenance its products carry.

A source's **key** (:class:`SourceKey`) has five parts, each a sha256 except the version:

``inputs``
    the source's science cutouts: (exposure, slit) and the sha256 of the file
    each was read from (a cutout is a deterministic function of its file's
    bytes and the spec3c version, so its arrays need not be read to know it);
``association``
    the association-level data the source used: the master background
    spectrum (its arrays and record) and, for a moving target, the MT_RA/MT_DEC
    positions every exposure is aligned on;
``parameters``
    the resolved parameters of the mode's steps (a skipped step counts only
    as skipped; reference-file paths are left out: their content is the next part);
``references``
    every reference file a parameter names (``override_*``, which holds CRDS's
    choice when no override was given, :mod:`spec3c.reffiles`; ``user_background``),
    by its sha256;
``version``
    the spec3c version.

``process`` recomputes a source exactly when its key changed and names the
parts that did (:meth:`SourceKey.changes`).  The key and the full provenance
record (input files, reference files, parameters, dependency versions) are
kept in the source's ``status`` result and stamped into every product
(``spec3c.products.meta``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import __version__
from .config import PipelineConfig
from .errors import InputError
from .results import ASSOCIATION_SOURCE
from .steps import assign_mtwcs, master_background
from .store import CutoutInfo, ExposureRecord, Store
from .store.base import dumps_meta

if TYPE_CHECKING:
    from .modes.base import Mode

__all__ = [
    "DEPENDENCIES",
    "InputFile",
    "RunProvenance",
    "SourceKey",
    "dependency_versions",
    "file_sha256",
    "reference_files",
    "run_provenance",
    "source_inputs",
]

#: packages whose versions a product records (those that shape the numbers or the files)
DEPENDENCIES = ("numpy", "scipy", "astropy", "asdf", "gwcs", "stdatamodels", "tiledb", "h5py")

#: the parts of a key, in the order :meth:`SourceKey.changes` reports them
KEY_PARTS = ("inputs", "association", "parameters", "references", "version")

#: why a part changed, as ``process`` says it
REASONS = {
    "inputs": "inputs (new or changed exposure)",
    "association": "association data (master background or moving-target positions)",
    "parameters": "parameters",
    "references": "reference file",
    "version": "spec3c version",
}


def _sha256_json(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- reference files ------------------------------------------------------------


def is_reference_parameter(name: str) -> bool:
    """Parameters that name a reference file (the reference's ``override_<reftype>``) or a user file."""
    return name.startswith("override_") or name == "user_background"


def reference_type(parameter: str) -> str | None:
    """The reference-file type of a parameter (``override_extract1d`` -> ``extract1d``), None for a user file."""
    return parameter.removeprefix("override_") if parameter.startswith("override_") else None


def reference_files(config: PipelineConfig, plan: Iterable[str]) -> dict[str, dict[str, str]]:
    """``"step.param" -> {"path": absolute path, "sha256": ...}`` of every file the plan's steps are given.

    Raises
    ------
    InputError
        A named file does not exist or cannot be read.
    """
    files: dict[str, dict[str, str]] = {}
    for step in plan:
        params = config.step(step)
        if params.skip:
            continue
        for name, value in asdict(params).items():
            if not is_reference_parameter(name) or value in (None, ""):
                continue
            path = Path(str(value)).expanduser().resolve()
            try:
                files[f"{step}.{name}"] = {"path": str(path), "sha256": file_sha256(path)}
            except OSError as exc:
                raise InputError(value, f"--steps.{step}.{name}: cannot read the file ({exc.strerror or exc})") from exc
    return files


def with_absolute_references(config: PipelineConfig) -> PipelineConfig:
    """``config`` with every reference-file parameter an absolute path (workers may run elsewhere)."""
    import dataclasses

    changes: dict[str, Any] = {}
    for step, params in config.to_dict().items():
        updates: dict[str, Any] = {name: str(Path(str(value)).expanduser().resolve()) for name, value in params.items()
                                   if is_reference_parameter(name) and value not in (None, "")}
        if updates:
            changes[step] = dataclasses.replace(config.step(step), **updates)
    return dataclasses.replace(config, **changes) if changes else config


# -- dependencies -----------------------------------------------------------------


@lru_cache(maxsize=1)
def dependency_versions() -> dict[str, str]:
    """Installed versions of :data:`DEPENDENCIES` (and Python)."""
    versions = {"python": platform.python_version()}
    for name in DEPENDENCIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


# -- inputs and association-level data ----------------------------------------------


@dataclass(frozen=True)
class InputFile:
    """One science cutout of a source and the file it was read from."""

    exposure: str
    slit: str
    filename: str  # base name of the ingested file
    sha256: str


def source_inputs(infos: Iterable[CutoutInfo], exposures: Sequence[ExposureRecord]) -> dict[str, list[InputFile]]:
    """Science inputs of every source, from the store's cutout list (no arrays are read)."""
    science = {r.name: r for r in exposures if r.role == "science"}
    inputs: dict[str, list[InputFile]] = {}
    for info in infos:
        record = science.get(info.exposure)
        if record is not None:
            inputs.setdefault(info.source, []).append(
                InputFile(info.exposure, info.slit, Path(record.filename).name, record.sha256))
    for files in inputs.values():
        files.sort(key=lambda f: (f.exposure, f.slit))
    return inputs


def _result_digest(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(dumps_meta(meta).encode())
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{arr.dtype.str}:{arr.shape}".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def association_data(store: Store, config: PipelineConfig, mode: Mode,
                     infos: Sequence[CutoutInfo], exposures: Sequence[ExposureRecord]) -> dict[str, str]:
    """Digests of the association-level data the sources use: the master background (as
    ``process`` saved it for this run) and the moving-target positions (when aligned)."""
    parts: dict[str, str] = {}
    try:
        arrays, meta = store.get_result(ASSOCIATION_SOURCE, master_background.ASSOCIATION_KEY)
        parts["master_background"] = _result_digest(arrays, meta)
    except KeyError:
        pass
    if "assign_mtwcs" in mode.plan and not config.assign_mtwcs.skip:
        science = {r.name: r for r in exposures if r.role == "science"}
        if assign_mtwcs.is_applicable([science[n].meta for n in sorted(science)]):
            parts["moving_target"] = _sha256_json(assign_mtwcs.association_positions(infos, science))
    return parts


def plan_parameters(config: PipelineConfig, plan: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The parameters that shape a source's results: those of the plan's steps; a skipped step
    only as skipped; no reference-file paths (their content is in the key's ``references``)."""
    out: dict[str, dict[str, Any]] = {}
    for step in plan:
        params = asdict(config.step(step))
        out[step] = {"skip": True} if params["skip"] else {
            name: value for name, value in params.items() if not is_reference_parameter(name)}
    return out


# -- keys ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceKey:
    """The identity of what a source's results are computed from (see the module docstring)."""

    inputs: str
    association: str
    parameters: str
    references: str
    version: str

    @property
    def digest(self) -> str:
        """sha256 of every part: equal digests, equal results."""
        return _sha256_json([getattr(self, part) for part in KEY_PARTS])

    def record(self) -> dict[str, str]:
        return {**asdict(self), "digest": self.digest}

    @classmethod
    def from_record(cls, record: Mapping[str, Any] | None) -> SourceKey | None:
        """The key a ``status`` result recorded (None if it has none)."""
        if not isinstance(record, Mapping) or any(part not in record for part in KEY_PARTS):
            return None
        return cls(**{part: str(record[part]) for part in KEY_PARTS})

    def changes(self, old: SourceKey) -> list[str]:
        """The parts that differ from ``old``, in :data:`KEY_PARTS` order."""
        return [part for part in KEY_PARTS if getattr(self, part) != getattr(old, part)]


@dataclass(frozen=True)
class RunProvenance:
    """What every source of one ``process`` run shares: parameters, reference files, association
    data, versions.  :meth:`key` and :meth:`record` add one source's inputs."""

    parameters: dict[str, dict[str, Any]]
    references: dict[str, dict[str, str]]
    association: dict[str, str]
    dependencies: dict[str, str] = field(default_factory=dependency_versions)
    version: str = __version__
    #: how the reference files were chosen (:meth:`spec3c.reffiles.ReferenceSelection.record`): the
    #: names the products give them and the CRDS context; not in the key (the files' content is)
    selection: dict[str, Any] = field(default_factory=dict)

    def key(self, inputs: Sequence[InputFile]) -> SourceKey:
        return SourceKey(
            inputs=_sha256_json([[f.exposure, f.slit, f.sha256] for f in inputs]),
            association=_sha256_json(self.association),
            parameters=_sha256_json(self.parameters),
            references=_sha256_json({k: v["sha256"] for k, v in self.references.items()}),
            version=self.version,
        )

    def record(self, inputs: Sequence[InputFile]) -> dict[str, Any]:
        """The provenance a source's ``status`` keeps (and its products carry)."""
        return {
            "software": {"spec3c": self.version, **self.dependencies},
            "inputs": [asdict(f) for f in inputs],
            "references": self.references,
            "association": self.association,
            **({"reference_selection": self.selection} if self.selection else {}),
        }


def run_provenance(store: Store, config: PipelineConfig, mode: Mode,
                   infos: Sequence[CutoutInfo], exposures: Sequence[ExposureRecord],
                   selection: Mapping[str, Any] | None = None) -> RunProvenance:
    """The shared provenance of a run of ``config`` on ``store`` (after the association-level
    steps saved their data, i.e. after ``master_background.prepare_association``); ``selection``:
    how its reference files were chosen (:mod:`spec3c.reffiles`)."""
    return RunProvenance(
        parameters=plan_parameters(config, mode.plan),
        references=reference_files(config, mode.plan),
        association=association_data(store, config, mode, infos, exposures),
        selection=dict(selection or {}),
    )
