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

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import InputError, Spec3cError
from ..store.records import OPTIONAL_PLANES, Cutout
from .asdftree import NotFast, asdf_tree, converted, extension_blob, flat_meta, plain
from .cutouts import (
    SCIENCE_PLANES,
    Part,
    _jsonable,
    image_cutout,
    iter_slit_cutouts,
    read_image_model,
    read_slit_model,
    read_slits,
    slit_cutouts,
    slit_model_cutout,
)
from .fitsraw import RawHdu, Unsupported, read_fits
from .tagged_wcs import TaggedWcsWriter
from .validate import SciencePart, ScienceParts, check_science_parts

__all__ = ["NotFast", "read_fast"]

_FITS_SOURCE = re.compile(r"^fits:(?P<name>[ -~]+),(?P<ver>\d+)$")
#: datamodel class -> the layout reader of the modes that take it
_LAYOUTS: dict[str, Callable[..., Any]] = {"MultiSlitModel": read_slits, "SlitModel": read_slit_model,
                                           "ImageModel": read_image_model}


def read_fast(path: Path, name: str, sink: CutoutSink | None = None) -> tuple[str, dict[str, Any], list[Cutout]]:
    """(datamodel class, flat ``meta.*``, cutouts) of a slit-mode science file, as the datamodel
    reader gives them; :class:`NotFast` when the file is left to that reader.

    With ``sink`` the slits of a MultiSlit file go to ``sink.add`` one at a time as they are laid
    out (their coordinates evaluated then, and dropped after), and none is returned; a file found
    not fast half-way ``sink.reset()``s.
    """
    from ..modes.registry import mode_for

    try:
        hdus = read_fits(path, writable=True)
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
    file = _File(af, {(h.name, h.ver): h for h in hdus}, TaggedWcsWriter(extension_blob(hdus)))
    try:
        try:
            cutouts = _cutouts(model_type, tree, meta, file, name, path, sink)
        except BaseException:
            if sink is not None:  # the reader that takes the file over stages it from the start
                sink.reset()
            raise
    except NotFast:
        raise
    except InputError as exc:  # the datamodel reader checks before it lays out: its error comes first
        raise NotFast(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - e.g. a gwcs that fails on evaluation: the datamodel reader's check names it
        raise NotFast(f"laying out the cutouts: {type(exc).__name__}: {exc}") from exc
    return model_type, meta, cutouts


def read_fast_spectra(path: Path) -> tuple[str, dict[str, Any], dict[str, np.ndarray]]:
    """(datamodel class, flat ``meta.*``, spectrum columns keyed ``spec<i>.<column>``) of a spec2
    ``_x1d`` file (a background member), as the datamodel reader gives them (columns in this
    machine's byte order, as the datamodel holds them); :class:`NotFast` when left to it.

    Opening an x1d as a datamodel walks its tables and tree against the schema (~0.1 s a file:
    a tenth of a small association's run).
    """
    from astropy.io import fits

    try:
        hdus = read_fits(path)
    except (Unsupported, OSError) as exc:
        raise NotFast(str(exc)) from exc
    model_type = str(hdus[0].header.get("DATAMODL") or "")
    if model_type != "MultiSpecModel":
        raise NotFast(f"a {model_type or 'file without DATAMODL'} is not read here as spectra")
    versions = [h.ver for h in hdus if h.name == "EXTRACT1D"]
    af, tree = asdf_tree(hdus, ("EXTRACT1D",))
    if not versions or versions != list(range(1, len(versions) + 1)) or len(tree.get("spec") or []) != len(versions):
        raise NotFast("the spectra are not EXTRACT1D 1..n, one per spec entry of the tree")
    meta = flat_meta(tree, af)
    columns: dict[str, np.ndarray] = {}
    try:
        with fits.open(path, memmap=False) as hdul:  # the tables' scaling (TZERO of unsigned columns) is astropy's
            for ver in versions:
                table = hdul["EXTRACT1D", ver].data
                for name in table.dtype.names:
                    values = np.asarray(table[name])
                    columns[f"spec{ver - 1}.{name.lower()}"] = values.astype(values.dtype.newbyteorder("="))
    except Exception as exc:  # noqa: BLE001 - the datamodel reader says what is wrong
        raise NotFast(f"reading the spectra: {type(exc).__name__}: {exc}") from exc
    return model_type, meta, columns


class CutoutSink(Protocol):
    """Where :func:`read_fast` puts cutouts one at a time (:class:`~spec3c.ingest.staging.StagedFile`)."""

    def add(self, cutout: Cutout) -> None: ...

    def reset(self) -> None: ...


def _with_wavelengths(cutout: Cutout) -> Cutout:
    if not np.isfinite(cutout.planes["wavelength"]).any():
        raise NotFast("a slit's gwcs gives no finite wavelength")
    return cutout


@dataclass(frozen=True)
class _File:
    """What the parts of one file are read from."""

    af: Any  # the ASDF extension's blocks, opened (for converting tagged nodes)
    by_ext: dict[tuple[str, int], RawHdu]  # (EXTNAME, EXTVER) -> HDU
    wcs_writer: TaggedWcsWriter  # the slits' gwcs as the store keeps them, from their tagged trees


def _cutouts(model_type: str, tree: dict[str, Any], meta: dict[str, Any], file: _File,  # noqa: PLR0913
             name: str, path: Path, sink: CutoutSink | None) -> list[Cutout]:
    """The checked parts of the file laid out as its mode lays them (``read_slits``, ``read_slit_model``,
    ``read_image_model``); a MultiSlit file's into ``sink`` if given."""
    if model_type == "MultiSlitModel":
        parts = [_part(slit, file) for slit in tree.get("slits") or []]
        _check(parts, meta, slits=True, path=path)
        if sink is None:
            return [_with_wavelengths(c) for c in slit_cutouts(parts, name, path)]
        for cutout in iter_slit_cutouts(parts, name, path):
            sink.add(_with_wavelengths(cutout))
        return []
    part = _part(tree, file)
    _check([part], meta, slits=False, path=path)
    if model_type == "SlitModel":
        return [_with_wavelengths(slit_model_cutout(part, name, path))]
    planes = {plane: part.planes[plane] for plane in SCIENCE_PLANES.values()}
    return [_with_wavelengths(image_cutout(
        Part({}, planes, part.wcs, part.wcs_bytes), str(meta.get("meta.exposure.type")),
        meta.get("meta.target.source_type"), meta.get("meta.wcsinfo.dispersion_direction"), name, path))]


def _part(node: dict[str, Any], file: _File) -> Part:
    """A slit (or the whole model) of the tree: :func:`~spec3c.ingest.cutouts.slit_meta`'s metadata,
    its planes from their HDUs, its gwcs converted (and written for the store from its tagged tree)."""
    values = plain({key: value for key, value in node.items() if key != "meta"}, file.af)
    meta = {key: value for key, value in values.items() if not isinstance(value, np.ndarray) and _jsonable(value)}
    meta.update(flat_meta(node, file.af))
    planes = {}
    for attr in (*SCIENCE_PLANES, *OPTIONAL_PLANES):
        if attr in node:
            planes[SCIENCE_PLANES.get(attr, attr)] = _plane(node[attr], file.by_ext)
        elif attr in SCIENCE_PLANES:
            raise NotFast(f"no {attr} plane")
    tagged = (node.get("meta") or {}).get("wcs")
    if tagged is None:
        return Part(meta, planes, None)
    wcs = converted(tagged, file.af)
    return Part(meta, planes, wcs, functools.partial(file.wcs_writer.wcs_bytes, tagged, wcs))


def _plane(node: Any, by_ext: dict[tuple[str, int], RawHdu]) -> np.ndarray:
    """The array an ndarray node maps onto an HDU (``source: fits:NAME,VER``)."""
    match = _FITS_SOURCE.match(str(node.get("source", ""))) if isinstance(node, dict) else None
    hdu = by_ext.get((match["name"], int(match["ver"]))) if match else None
    # in this machine's byte order, the store's (no second copy when the exposure is committed),
    # swapped where the file was read
    data = hdu.native_data() if hdu is not None else None
    if data is None:
        raise NotFast("an array that is not an image HDU")
    return data


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
