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
from ..store.base import OPTIONAL_PLANES, Cutout, ExposureRecord
from .coords import slit_coordinates, wcs_to_asdf

#: stdatamodels slit attribute -> store plane
_SLIT_PLANES = {
    "data": "sci",
    "err": "err",
    "dq": "dq",
    "var_poisson": "var_poisson",
    "var_rnoise": "var_rnoise",
    "var_flat": "var_flat",
}


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


def source_key(slit_meta: dict[str, Any]) -> str:
    """The reference's exp_to_source key: non-blank source_name, else source_id."""
    name = slit_meta.get("source_name")
    if isinstance(name, str) and name.strip():
        return name
    sid = slit_meta.get("source_id")
    if sid is None:
        raise ValueError("slit has neither source_name nor source_id")
    return str(int(sid))


def _jsonable(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None


def _flatten(prefix: str, tree: Any, out: dict[str, Any]) -> dict[str, Any]:
    """Scalar leaves of a nested mapping as ``prefix.a.b`` keys (WCS objects skipped)."""
    for key, value in tree.items():
        name = f"{prefix}.{key}"
        if key == "wcs":
            continue
        if isinstance(value, dict):
            _flatten(name, value, out)
        elif isinstance(value, np.generic):
            out[name] = value.item()
        elif _jsonable(value):
            out[name] = value
    return out


def model_meta(model) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Flat ``meta.*`` metadata of a datamodel or slit (scalars only, no WCS)."""
    return _flatten("meta", model.meta.instance, {})


def slit_meta(slit) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Scalar slit attributes (name, source_id, xstart ...) plus the slit's own meta."""
    meta: dict[str, Any] = {}
    for key, value in slit.instance.items():
        if key == "meta" or isinstance(value, np.ndarray) or not _jsonable(value):
            continue
        meta[key] = value.item() if isinstance(value, np.generic) else value
    meta.update(model_meta(slit))
    return meta


def read_slits(model, name: str, path: Path) -> list[Cutout]:  # type: ignore[no-untyped-def]
    """Cutouts (with coordinates) of every slit of a MultiSlitModel."""
    cutouts = []
    for index, slit in enumerate(model.slits):
        meta = slit_meta(slit)
        if slit.meta.wcs is None:
            raise InputError(path, f"slit {index} ({meta.get('name')}) has no WCS")
        planes = {plane: np.asarray(getattr(slit, attr)) for attr, plane in _SLIT_PLANES.items()}
        shape = planes["sci"].shape
        for attr in OPTIONAL_PLANES:
            value = getattr(slit, attr, None) if slit.hasattr(attr) else None
            if value is not None and np.shape(value) == shape:
                planes[attr] = np.asarray(value)
        planes.update(slit_coordinates(slit.meta.wcs, shape))
        try:
            key = source_key(meta)
        except ValueError as exc:
            raise InputError(path, f"slit {index} ({meta.get('name')}): {exc}") from exc
        meta["slit_index"] = index
        cutouts.append(Cutout(key, name, str(meta.get("name", index)), meta, planes, wcs_to_asdf(slit.meta.wcs)))
    return cutouts


#: one source per association (the reference does no exp_to_source for these image modes)
IMAGE_SOURCE_KEY = "1"


def read_image_model(model, name: str, path: Path) -> list[Cutout]:  # type: ignore[no-untyped-def]
    """The whole 2-D image of an ImageModel (MIRI LRS) as one cutout of the association's source."""
    if model.meta.wcs is None:
        raise InputError(path, "ImageModel has no WCS (meta.wcs); run assign_wcs in stage 2")
    if np.ndim(model.data) != 2:
        raise InputError(path, f"expected a 2-D SCI array, got shape {np.shape(model.data)}")
    planes = {plane: np.asarray(getattr(model, attr)) for attr, plane in _SLIT_PLANES.items()}
    shape = planes["sci"].shape
    planes.update(slit_coordinates(model.meta.wcs, shape))
    exp_type = str(model.meta.exposure.type)
    meta: dict[str, Any] = {
        "name": exp_type, "source_id": int(IMAGE_SOURCE_KEY), "slit_index": 0,
        "source_type": model.meta.target.source_type or "POINT",
        "xstart": 1, "ystart": 1, "xsize": shape[1], "ysize": shape[0],
        "dispersion_direction": model.meta.wcsinfo.dispersion_direction,
    }
    return [Cutout(IMAGE_SOURCE_KEY, name, exp_type, meta, planes, wcs_to_asdf(model.meta.wcs))]


def read_spectra_tables(model) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """Columns of every spectrum of an x1d model, keyed ``spec<i>.<column>``."""
    images = {}
    for i, spec in enumerate(model.spec):
        for column in spec.spec_table.dtype.names:
            images[f"spec{i}.{column.lower()}"] = np.asarray(spec.spec_table[column])
    return images


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
            if hasattr(model, "slits"):
                cutouts = read_slits(model, name, path)
            elif model_type == "ImageModel":
                cutouts = read_image_model(model, name, path)
            else:
                raise InputError(path, f"science member is a {model_type}; spec3c reads MultiSlitModel "
                                       "(NIRSpec FS/MOS) and ImageModel (MIRI LRS) cal files")
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
