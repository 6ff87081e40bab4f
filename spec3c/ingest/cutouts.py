"""How a science exposure becomes cutouts: the layouts modes choose from (slits, whole image).

Every reader evaluates each pixel's coordinates once from the input gwcs and
keeps the gwcs as ASDF bytes.  The layouts take each slit (or the image) as a
:class:`Part`, built from an opened datamodel here (``read_*``) or from the
file's raw HDUs and ASDF tree by :mod:`.fastread`, so both readers give the
store the same cutouts.  No store access here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..gwcs_asdf import wcs_to_asdf
from ..store.records import OPTIONAL_PLANES, Cutout
from .coords import slit_coordinates

#: stdatamodels slit attribute -> store plane
SCIENCE_PLANES = {
    "data": "sci",
    "err": "err",
    "dq": "dq",
    "var_poisson": "var_poisson",
    "var_rnoise": "var_rnoise",
    "var_flat": "var_flat",
}


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


@dataclass
class Part:
    """One slit (or a whole image) as the layout readers take it, from a datamodel or from the fast
    reader (:mod:`.fastread`): its flat metadata, its planes (science and optional ones), its gwcs."""

    meta: dict[str, Any]
    planes: dict[str, np.ndarray]
    wcs: Any
    #: the store's bytes of ``wcs`` when the reader has a faster way to them than wcs_to_asdf
    wcs_bytes: Callable[[], bytes] | None = None

    def wcs_asdf(self) -> bytes:
        """The gwcs as the store keeps it (:func:`~spec3c.gwcs_asdf.wcs_to_asdf`'s bytes)."""
        return wcs_to_asdf(self.wcs) if self.wcs_bytes is None else self.wcs_bytes()


def model_part(slit) -> Part:  # type: ignore[no-untyped-def]
    """A slit of an opened MultiSlitModel (or a SlitModel) as a :class:`Part`."""
    planes = {plane: np.asarray(getattr(slit, attr)) for attr, plane in SCIENCE_PLANES.items()}
    for attr in OPTIONAL_PLANES:
        value = getattr(slit, attr, None) if slit.hasattr(attr) else None
        if value is not None:
            planes[attr] = np.asarray(value)
    return Part(slit_meta(slit), planes, slit.meta.wcs)


def _slit_cutout(part: Part, index: int, name: str, path: Path, key: str | None = None) -> Cutout:
    """One slit (of a MultiSlitModel, or a SlitModel file) as a cutout; ``key`` None: exp_to_source's key."""
    meta = dict(part.meta)
    if part.wcs is None:
        raise InputError(path, f"slit {index} ({meta.get('name')}) has no WCS")
    planes = {plane: part.planes[plane] for plane in SCIENCE_PLANES.values()}
    shape = planes["sci"].shape
    for attr in OPTIONAL_PLANES:
        value = part.planes.get(attr)
        if value is not None and np.shape(value) == shape:
            planes[attr] = value
    planes.update(slit_coordinates(part.wcs, shape))
    if key is None:
        try:
            key = source_key(meta)
        except ValueError as exc:
            raise InputError(path, f"slit {index} ({meta.get('name')}): {exc}") from exc
    meta["slit_index"] = index
    return Cutout(key, name, str(meta.get("name", index)), meta, planes, part.wcs_asdf())


def slit_cutouts(parts: list[Part], name: str, path: Path) -> list[Cutout]:
    """Cutouts (with coordinates) of every slit of a MultiSlit file."""
    return list(iter_slit_cutouts(parts, name, path))


def iter_slit_cutouts(parts: list[Part], name: str, path: Path) -> Iterator[Cutout]:
    """:func:`slit_cutouts` one at a time (each slit's coordinates evaluated when it is reached)."""
    for index, part in enumerate(parts):
        yield _slit_cutout(part, index, name, path)


def read_slits(model, name: str, path: Path) -> list[Cutout]:  # type: ignore[no-untyped-def]
    """Cutouts (with coordinates) of every slit of a MultiSlitModel."""
    return slit_cutouts([model_part(slit) for slit in model.slits], name, path)


def slit_model_cutout(part: Part, name: str, path: Path) -> Cutout:
    """The one slit of a SlitModel cal file, as a cutout of the association's single source.

    The reference runs no exp_to_source on SlitModel inputs: the whole
    association is one source (:data:`IMAGE_SOURCE_KEY`), whatever the slits'
    source ids.
    """
    return _slit_cutout(part, 0, name, path, key=IMAGE_SOURCE_KEY)


def read_slit_model(model, name: str, path: Path) -> list[Cutout]:  # type: ignore[no-untyped-def]
    """The one slit of a SlitModel cal file (:func:`slit_model_cutout`)."""
    if hasattr(model, "slits"):
        raise InputError(path, f"a {type(model).__name__} is not a SlitModel (one slit per file)")
    return [slit_model_cutout(model_part(model), name, path)]


#: one source per association (the reference does no exp_to_source for these image modes)
IMAGE_SOURCE_KEY = "1"


def read_image_model(model, name: str, path: Path) -> list[Cutout]:  # type: ignore[no-untyped-def]
    """The whole 2-D image of an ImageModel (MIRI LRS) as one cutout of the association's source."""
    if model.meta.wcs is None:
        raise InputError(path, "ImageModel has no WCS (meta.wcs); run assign_wcs in stage 2")
    if np.ndim(model.data) != 2:
        raise InputError(path, f"expected a 2-D SCI array, got shape {np.shape(model.data)}")
    planes = {plane: np.asarray(getattr(model, attr)) for attr, plane in SCIENCE_PLANES.items()}
    return [image_cutout(Part({}, planes, model.meta.wcs), str(model.meta.exposure.type),
                         model.meta.target.source_type, model.meta.wcsinfo.dispersion_direction, name, path)]


def image_cutout(part: Part, exp_type: str, source_type: Any, dispersion: Any, name: str,  # noqa: PLR0913
                 path: Path) -> Cutout:
    """An image's science ``part.planes`` and gwcs as one cutout of the association's source
    (``exp_type``, SRCTYPE and DISPAXIS from the file's metadata)."""
    planes = dict(part.planes)
    shape = planes["sci"].shape
    planes.update(slit_coordinates(part.wcs, shape))
    if source_type not in ("POINT", "EXTENDED"):
        raise InputError(path, f"SRCTYPE (meta.target.source_type) is {source_type!r}, expected POINT or "
                               "EXTENDED; run srctype in stage 2")
    if dispersion not in (1, 2):
        raise InputError(path, f"DISPAXIS (meta.wcsinfo.dispersion_direction) is {dispersion!r}, expected 1 or 2")
    meta: dict[str, Any] = {
        "name": exp_type, "source_id": int(IMAGE_SOURCE_KEY), "slit_index": 0,
        "source_type": source_type, "xstart": 1, "ystart": 1, "xsize": shape[1], "ysize": shape[0],
        "dispersion_direction": int(dispersion),
    }
    return Cutout(IMAGE_SOURCE_KEY, name, exp_type, meta, planes, part.wcs_asdf())
