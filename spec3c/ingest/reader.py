"""Read one stage-2 exposure into store records (no store access here)."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..fitsio import indexed_hdus
from ..store.records import Cutout, ExposureRecord
from .cutouts import model_meta


@dataclass
class ExposureData:
    """What ingest writes for one exposure."""

    record: ExposureRecord
    cutouts: list[Cutout]
    images: dict[str, np.ndarray]


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def exposure_name(path: Path) -> str:
    """Store key of an input file: its basename without ``.fits``."""
    name = path.name
    return name[: -len(".fits")] if name.lower().endswith(".fits") else name


def read_spectra_tables(model) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """Columns of every spectrum of an x1d model, keyed ``spec<i>.<column>``."""
    images = {}
    for i, spec in enumerate(model.spec):
        for column in spec.spec_table.dtype.names:
            images[f"spec{i}.{column.lower()}"] = np.asarray(spec.spec_table[column])
    return images


def _science_cutouts(model: Any, name: str, path: Path, exp_type: str) -> list[Cutout]:
    """The cutouts of a science exposure, read as its mode reads them."""
    from ..modes.registry import mode_for  # the modes import the layout readers beside this module

    mode = mode_for(exp_type, where=str(path))
    try:
        return mode.read_cutouts(model, name, path)
    except AttributeError as exc:  # a model of another layout than the mode's (e.g. no .slits)
        raise InputError(path, f"a {type(model).__name__} is not a {mode.name} cal file ({exc})") from exc


def read_exposure(path: Path, role: str, sha256: str | None = None) -> ExposureData:
    """Read one ASN member into an :class:`ExposureData` (no store access)."""
    from stdatamodels.jwst import datamodels

    name = exposure_name(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stdatamodels validation chatter; we check below
        try:
            with indexed_hdus():
                model = datamodels.open(path)
        except Exception as exc:  # stdatamodels raises many types for bad files
            raise InputError(path, f"cannot be read as a JWST datamodel: {exc}") from exc
    with model:
        model_type = type(model).__name__
        meta = model_meta(model)
        cutouts: list[Cutout] = []
        images: dict[str, np.ndarray] = {}
        if role == "science":
            cutouts = _science_cutouts(model, name, path, str(meta.get("meta.exposure.type") or ""))
        elif hasattr(model, "spec"):
            images = read_spectra_tables(model)
        record = ExposureRecord(
            name=name,
            filename=str(path.resolve()),
            sha256=sha256 or sha256_of(path),
            role=role,
            exp_type=str(meta.get("meta.exposure.type", "")),
            model_type=model_type,
            meta=meta,
        )
    return ExposureData(record, cutouts, images)
