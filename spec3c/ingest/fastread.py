"""The slit modes' science files read without a datamodel (NIRSpec FS/MOS MultiSlit and SlitModel,
MIRI LRS ImageModel cal files).

Opening a cal file as a datamodel parses its headers with astropy, walks
the ASDF tree twice (conversion, validation) and maps every array onto its
HDU.  Here the file is read once with :mod:`.fitsraw` and its ASDF
extension parsed once, as tagged YAML; only the slits' gwcs are converted
to objects.  What the store gets is what the datamodel reader gives: the
flat metadata come from the same tree, and are valid only because
stdatamodels would not read the headers either: the tree's ``_fits_hash``
matches the headers (stdatamodels then skips its FITS update, so the tree
is the model).  Any file this reader does not take as it is -- another
layout, a stale hash, a table HDU, an unusual array source, anything that
fails a check -- is :class:`NotFast`, and the datamodel reader reads it
(and reports the problem with its clear error).
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..asdf_plugins import config_context
from ..errors import InputError, Spec3cError
from ..store.records import OPTIONAL_PLANES, Cutout
from .cutouts import (
    SCIENCE_PLANES,
    Part,
    _flatten,
    _jsonable,
    image_cutout,
    read_image_model,
    read_slit_model,
    read_slits,
    slit_cutouts,
    slit_model_cutout,
)
from .fitsraw import RawHdu, Unsupported, read_fits
from .validate import SciencePart, ScienceParts, check_science_parts

__all__ = ["NotFast", "asdf_tree", "flat_meta", "read_fast"]

_NDARRAY = "tag:stsci.edu:asdf/core/ndarray-"
_YAML_END = re.compile(rb"\r?\n\.\.\.\r?\n")
_FITS_SOURCE = re.compile(r"^fits:(?P<name>[ -~]+),(?P<ver>\d+)$")
#: datamodel class -> the layout reader of the modes that take it
_LAYOUTS: dict[str, Callable[..., Any]] = {"MultiSlitModel": read_slits, "SlitModel": read_slit_model,
                                           "ImageModel": read_image_model}


class NotFast(Exception):  # noqa: N818 - a signal to fall back, not an error
    """The file is left to the datamodel reader."""


class _Array:
    """Stand-in for an array node in the flattened metadata (skipped, as the datamodel's arrays are)."""


def read_fast(path: Path, name: str) -> tuple[str, dict[str, Any], list[Cutout]]:
    """(datamodel class, flat ``meta.*``, cutouts) of a slit-mode science file, as the datamodel
    reader gives them; :class:`NotFast` when the file is left to that reader."""
    from ..modes.registry import mode_for

    try:
        hdus = read_fits(path)
    except (Unsupported, OSError) as exc:
        raise NotFast(str(exc)) from exc
    model_type = str(hdus[0].header.get("DATAMODL") or "")
    try:
        mode = mode_for(str(hdus[0].header.get("EXP_TYPE") or ""), model_type=model_type)
    except Spec3cError as exc:
        raise NotFast(str(exc)) from exc
    if mode.read_frames is not None or _LAYOUTS.get(model_type) is not mode.read_cutouts:
        raise NotFast(f"a {model_type} is not read here for {mode.name}")
    af, tree = asdf_tree(hdus)
    meta = flat_meta(tree, af)
    by_ext = {(h.name, h.ver): h for h in hdus}
    try:
        cutouts = _cutouts(model_type, tree, meta, af, by_ext, name, path)
    except InputError as exc:  # the datamodel reader checks before it lays out: its error comes first
        raise NotFast(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - e.g. a gwcs that fails on evaluation: the datamodel reader's check names it
        raise NotFast(f"laying out the cutouts: {type(exc).__name__}: {exc}") from exc
    if not all(np.isfinite(c.planes["wavelength"]).any() for c in cutouts):
        raise NotFast("a slit's gwcs gives no finite wavelength")
    return model_type, meta, cutouts


def _cutouts(model_type: str, tree: dict[str, Any], meta: dict[str, Any], af: Any,  # noqa: PLR0913
             by_ext: dict[tuple[str, int], RawHdu], name: str, path: Path) -> list[Cutout]:
    """The checked parts of the file laid out as its mode lays them (``read_slits``, ``read_slit_model``,
    ``read_image_model``)."""
    if model_type == "MultiSlitModel":
        parts = [_part(slit, af, by_ext) for slit in tree.get("slits") or []]
        _check(parts, meta, slits=True, path=path)
        return slit_cutouts(parts, name, path)
    part = _part(tree, af, by_ext)
    _check([part], meta, slits=False, path=path)
    if model_type == "SlitModel":
        return [slit_model_cutout(part, name, path)]
    planes = {plane: part.planes[plane] for plane in SCIENCE_PLANES.values()}
    return [image_cutout(Part({}, planes, part.wcs), str(meta.get("meta.exposure.type")),
                         meta.get("meta.target.source_type"), meta.get("meta.wcsinfo.dispersion_direction"),
                         name, path)]


def asdf_tree(hdus: list[RawHdu], other_tables: tuple[str, ...] = ()) -> tuple[Any, dict[str, Any]]:
    """The ASDF extension, parsed (tagged, nothing converted), and its tree; the tree must be the
    model stdatamodels would build (its ``_fits_hash`` that of the headers, no table HDU but
    ``other_tables``, which the caller reads)."""
    import asdf

    tables = [h for h in hdus if h.table_bytes is not None and h.name not in other_tables]
    if len(tables) != 1 or tables[0].name != "ASDF":
        raise NotFast("no ASDF extension, or other table extensions")
    header = tables[0].header
    if header.get("TFIELDS") != 1 or not re.fullmatch(r"\d*B", str(header.get("TFORM1", ""))):
        raise NotFast("an ASDF extension in another table layout")
    blob = bytes(tables[0].table_bytes[:int(header.get("NAXIS1", 0))])  # type: ignore[index]
    digest = hashlib.sha256(b"".join(h.header_bytes for h in hdus if h.name != "ASDF")).hexdigest()
    try:
        with warnings.catch_warnings(), config_context() as config:
            warnings.simplefilter("error")
            config.validate_on_read = False
            tree = asdf.util.load_yaml(io.BytesIO(blob), tagged=True)  # parsed once, not walked
            af = asdf.open(io.BytesIO(_blocks_only(blob)), memmap=False)
    except Exception as exc:  # noqa: BLE001 - the datamodel reader says what is wrong
        raise NotFast(f"ASDF extension: {exc}") from exc
    if tree.get("_fits_hash") != digest:
        raise NotFast("headers changed since the ASDF tree was written (stdatamodels would read them)")
    if "date" not in (tree.get("meta") or {}):
        raise NotFast("no meta.date (the datamodel sets it on opening)")
    return af, tree


def _blocks_only(blob: bytes) -> bytes:
    """The ASDF file ``blob`` with an empty tree: its binary blocks (arrays referenced by index from
    the tagged tree) open without parsing and walking the tree a second time."""
    end = _YAML_END.search(blob)
    if end is None:
        raise NotFast("no end of the ASDF tree")
    head = blob[:blob.index(b"\n---") + 1]  # the #ASDF comments and %YAML/%TAG directives
    blocks = blob[end.end():]
    index = blocks.rfind(b"#ASDF BLOCK INDEX")  # offsets into the whole file: dropped, blocks read in turn
    return head + b"--- !<tag:stsci.edu:asdf/core/asdf-1.1.0> {}\n...\n" + (blocks[:index] if index >= 0 else blocks)


def _plain(node: Any, af: Any) -> Any:
    """``node`` as the datamodel holds it for flattening: tagged values converted, arrays stood in for
    (the gwcs, skipped by the flattening, left as it is)."""
    from asdf import tagged

    if isinstance(node, tagged.Tagged):
        if node._tag.startswith(_NDARRAY):
            return _Array()
        return _converted(node, af)
    if isinstance(node, dict):
        return {key: value if key == "wcs" else _plain(value, af) for key, value in node.items()}
    return node if not isinstance(node, list) else [_plain(v, af) for v in node]


def _converted(node: Any, af: Any) -> Any:
    from asdf import yamlutil

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a node asdf cannot convert: the datamodel reader's error
            return yamlutil.tagged_tree_to_custom_tree(node, af)
    except Exception as exc:  # noqa: BLE001 - any failure sends the file to the datamodel reader
        raise NotFast(f"a tagged node does not convert: {exc}") from exc


def flat_meta(tree: dict[str, Any], af: Any) -> dict[str, Any]:
    """:func:`~spec3c.ingest.cutouts.model_meta` of the model the tree is."""
    return _flatten("meta", _plain(tree.get("meta") or {}, af), {})


def _part(node: dict[str, Any], af: Any, by_ext: dict[tuple[str, int], RawHdu]) -> Part:
    """A slit (or the whole model) of the tree: :func:`~spec3c.ingest.cutouts.slit_meta`'s metadata,
    its planes from their HDUs, its gwcs converted."""
    plain = _plain({key: value for key, value in node.items() if key != "meta"}, af)
    meta = {key: value for key, value in plain.items() if not isinstance(value, np.ndarray) and _jsonable(value)}
    meta.update(flat_meta(node, af))
    planes = {}
    for attr in (*SCIENCE_PLANES, *OPTIONAL_PLANES):
        if attr in node:
            planes[SCIENCE_PLANES.get(attr, attr)] = _plane(node[attr], by_ext)
        elif attr in SCIENCE_PLANES:
            raise NotFast(f"no {attr} plane")
    wcs = (node.get("meta") or {}).get("wcs")
    return Part(meta, planes, None if wcs is None else _converted(wcs, af))


def _plane(node: Any, by_ext: dict[tuple[str, int], RawHdu]) -> np.ndarray:
    """The array an ndarray node maps onto an HDU (``source: fits:NAME,VER``)."""
    match = _FITS_SOURCE.match(str(node.get("source", ""))) if isinstance(node, dict) else None
    hdu = by_ext.get((match["name"], int(match["ver"]))) if match else None
    if hdu is None or hdu.data is None:
        raise NotFast("an array that is not an image HDU")
    return np.array(hdu.data)  # writable, in the file's byte order (as the datamodel gives it)


def _check(parts: list[Part], meta: dict[str, Any], slits: bool, path: Path) -> None:
    """What :func:`~spec3c.ingest.validate.check_model` refuses, but for the gwcs's evaluation (done
    on every pixel next): any of it sends the file to the datamodel reader, which raises its error."""
    labels = [f"slit {index} ({part.meta.get('name')})" if slits else "the image" for index, part in enumerate(parts)]
    science = ScienceParts(
        [SciencePart(label, str(part.meta.get("name") or label),
                     {plane: part.planes[plane] for plane in SCIENCE_PLANES.values()},
                     part.meta.get("meta.bunit_data") or meta.get("meta.bunit_data"),
                     part.meta.get("meta.bunit_err") or meta.get("meta.bunit_err"), part.wcs)
         for label, part in zip(labels, parts, strict=True)],
        calibrated=meta.get("meta.cal_step.photom") == "COMPLETE", slits=slits)
    try:
        check_science_parts(path, science, evaluate_wcs=False)
    except InputError as exc:
        raise NotFast(str(exc)) from exc
