"""Refuse a broken exposure before anything is written.

:func:`check_exposure` opens one ASN member and checks what ingest and the
steps rely on; every problem is an :class:`~spec3c.errors.InputError` naming
the file, the slit and what is wrong.  Ingest checks every member this way
before it creates or changes the store, so a bad member leaves the store as
it was.

Science exposures (each slit of a MultiSlit file, or the whole image):

* an EXP_TYPE spec3c serves, and the layout its mode reads;
* SCI, ERR, DQ, VAR_POISSON, VAR_RNOISE and VAR_FLAT present, of one
  non-empty 2-D shape;
* no infinite value in SCI, ERR or the variances, and not every SCI value
  of the exposure NaN;
* BUNIT (``meta.bunit_data``) a surface brightness or flux density unit
  (``MJy/sr``, ``MJy``), or ``DN/s`` when photom did not run; ERR in the
  same unit;
* unique slit names;
* a gwcs that was deserialised and gives a finite wavelength somewhere.

Background members (spec2 ``_x1d`` files) must hold at least one spectrum.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, Spec3cError
from ..fitsio import indexed_hdus
from .cutouts import SCIENCE_PLANES

__all__ = ["SciencePart", "ScienceParts", "check_exposure", "check_model", "check_science_parts", "open_model"]

#: calibrated units of SCI; DN/s is accepted only from files photom did not calibrate
_CALIBRATED_UNITS = ("MJy/sr", "MJy")
_UNCALIBRATED_UNIT = "DN/s"
#: about this many pixels of each slit are evaluated through its gwcs (all of them if none is finite)
_WCS_SAMPLES = 2048
_MISSING_HDU = re.compile(r"Extension \('(\w+)', (\d+)\) not found")


def open_model(path: Path) -> Any:
    """The stdatamodels model of ``path``; an InputError saying why it cannot be read."""
    from stdatamodels.jwst import datamodels

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # stdatamodels validation chatter is dropped; the checks below decide
        try:
            with indexed_hdus():
                model = datamodels.open(path)
        except Exception as exc:  # noqa: BLE001 - stdatamodels/asdf/astropy raise many types for bad files
            raise InputError(path, _unreadable(exc)) from exc
    failed = [w for w in caught if type(w.message).__name__ == "AsdfConversionWarning"
              and "failed to convert" in str(w.message)]
    if failed:  # asdf kept a damaged node (e.g. a gwcs transform) as raw data and went on
        model.close()
        text = " ".join(str(failed[0].message).split())
        raise InputError(path, f"its ASDF extension (gwcs and metadata) is damaged: {text}")
    return model


def _unreadable(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    missing = _MISSING_HDU.search(text)
    if missing:
        name, ver = missing.groups()
        return (f"the {name} plane of extension version {ver} is missing: the file's ASDF tree "
                "names an HDU the file does not have")
    if "ASDF" in text:
        return f"its ASDF extension (gwcs and metadata) cannot be read: {text}"
    return f"cannot be read as a JWST datamodel: {type(exc).__name__}: {text}"


def check_exposure(path: Path, role: str) -> None:
    """Open the member at ``path`` and refuse (InputError) what would break ingest or processing."""
    with open_model(path) as model:
        check_model(model, path, role)


def check_model(model: Any, path: Path, role: str) -> None:
    """Refuse (InputError naming ``path``) an opened member that would break ingest or processing."""
    if role == "science":
        _check_science(model, path)
    elif not list(getattr(model, "spec", None) or []):
        raise InputError(path, f"a {role} member must be a spec2 _x1d file with at least one spectrum; "
                               f"this {type(model).__name__} has none")


@dataclass
class SciencePart:
    """What the science checks read of one slit (or the whole image), however the file was read."""

    label: str  #: how errors name it: ``slit 3 (S200A1)`` or ``the image``
    name: str  #: the slit name (unique in a MultiSlit file)
    planes: dict[str, Any]  #: the science planes (:data:`SCIENCE_PLANES`'), None where missing
    unit: Any  #: SCI BUNIT: the slit's own, else the file's
    err_unit: Any  #: ERR BUNIT: the slit's own, else the file's
    wcs: Any  #: meta.wcs


@dataclass
class ScienceParts:
    """A science file's parts and what the checks need of the file itself."""

    parts: Sequence[SciencePart]
    calibrated: bool  #: photom COMPLETE: SCI must be in a calibrated unit
    slits: bool  #: a MultiSlit file (its slit names must be unique)


def _check_science(model: Any, path: Path) -> None:
    from ..modes.registry import mode_for  # the modes import the readers beside this module

    exp_type = model.meta.exposure.type
    try:
        mode = mode_for(str(exp_type or ""), model_type=type(model).__name__)  # SlitModel files: their own mode
    except Spec3cError as exc:
        raise InputError(path, str(exc)) from None
    if mode.image_exposures != (not hasattr(model, "slits")):
        layout = "an image" if mode.image_exposures else "slits (a MultiSlit file)"
        raise InputError(path, f"EXP_TYPE {exp_type} ({mode.name}) needs {layout}, but the file is a "
                               f"{type(model).__name__}")
    parts = ScienceParts([_science_part(label, part, model) for label, part in _parts(model)],
                         calibrated=model.meta.cal_step.photom == "COMPLETE", slits=hasattr(model, "slits"))
    check_science_parts(path, parts, evaluate_wcs=mode.read_frames is None)


def check_science_parts(path: Path, science: ScienceParts, evaluate_wcs: bool) -> None:
    """Refuse (InputError naming ``path``) a science file whose parts would break ingest or processing.

    ``evaluate_wcs`` False: only the gwcs's type is checked (a mode that reads
    full frames (IFU) evaluates its gwcs per slice itself; the fast slit
    reader evaluates it on every pixel next).
    """
    if not science.parts:
        raise InputError(path, "the file holds no slits")
    names: dict[str, int] = {}
    finite = False
    for index, part in enumerate(science.parts):
        if part.name in names and science.slits:
            raise InputError(path, f"slits {names[part.name]} and {index} are both named {part.name!r}")
        names[part.name] = index
        finite |= _check_part(path, part, science.calibrated, evaluate_wcs)
    if not finite:
        raise InputError(path, "SCI is NaN everywhere: no pixel of the exposure has a value")


def _parts(model: Any) -> Iterator[tuple[str, Any]]:
    """(label, object with data/err/... and meta.wcs) for every slit, or the whole image."""
    if hasattr(model, "slits"):
        for index, slit in enumerate(model.slits):
            yield f"slit {index} ({slit.name})", slit
    else:
        yield "the image", model


def _science_part(label: str, part: Any, model: Any) -> SciencePart:
    """One slit (or the image) of an opened datamodel (a missing plane is None, refused by the checks)."""
    planes = {plane: part.instance.get(attr) for attr, plane in SCIENCE_PLANES.items()}
    # the slit's own BUNIT, else the file's (a MultiSlitModel's top level has none in its schema)
    unit = getattr(part.meta, "bunit_data", None) or getattr(model.meta, "bunit_data", None)
    err_unit = getattr(part.meta, "bunit_err", None) or getattr(model.meta, "bunit_err", None)
    return SciencePart(label, str(getattr(part, "name", None) or label), planes, unit, err_unit, part.meta.wcs)


def _check_part(path: Path, part: SciencePart, calibrated: bool, evaluate_wcs: bool) -> bool:
    """Check one slit (or the image); True if its SCI has a finite value."""
    label, planes = part.label, _present_planes(path, part)
    sci = planes["sci"]
    if sci.ndim != 2 or 0 in sci.shape:
        raise InputError(path, f"{label}: zero size: SCI has shape {sci.shape}, expected 2-D and not empty")
    for plane, value in planes.items():
        if value.shape != sci.shape:
            raise InputError(path, f"{label}: {plane.upper()} has shape {value.shape}, SCI has {sci.shape}")
    for plane in ("sci", "err", "var_poisson", "var_rnoise", "var_flat"):
        n_inf = int(np.count_nonzero(np.isinf(planes[plane])))
        if n_inf:
            y, x = np.argwhere(np.isinf(planes[plane]))[0]
            raise InputError(path, f"{label}: {plane.upper()} has {n_inf} infinite value(s), the first at "
                                   f"pixel (x={x}, y={y}); stage 2 marks bad pixels NaN with DQ flags")
    _check_units(path, part, calibrated)
    _check_wcs(path, label, part.wcs, sci.shape, evaluate=evaluate_wcs)
    return bool(np.isfinite(sci).any())


def _present_planes(path: Path, part: SciencePart) -> dict[str, np.ndarray]:
    planes: dict[str, np.ndarray] = {}
    for plane, value in part.planes.items():
        if value is None:
            raise InputError(path, f"{part.label}: the {plane.upper()} plane is missing")
        planes[plane] = np.asarray(value)
    return planes


def _check_units(path: Path, part: SciencePart, calibrated: bool) -> None:
    allowed = _CALIBRATED_UNITS if calibrated else (*_CALIBRATED_UNITS, _UNCALIBRATED_UNIT)
    if part.unit not in allowed:
        why = "photom COMPLETE" if calibrated else "photom not run"
        raise InputError(path, f"{part.label}: SCI BUNIT is {part.unit!r}; expected one of {', '.join(allowed)} "
                               f"({why})")
    if part.err_unit is not None and part.err_unit != part.unit:
        raise InputError(path, f"{part.label}: ERR BUNIT {part.err_unit!r} differs from SCI BUNIT {part.unit!r}")


def _check_wcs(path: Path, label: str, wcs: Any, shape: tuple[int, ...], evaluate: bool) -> None:
    from gwcs import WCS

    if wcs is None:
        raise InputError(path, f"{label}: no WCS (meta.wcs); run assign_wcs in stage 2")
    if not isinstance(wcs, WCS):
        raise InputError(path, f"{label}: its WCS did not deserialise as a gwcs (it is a {type(wcs).__name__}: "
                               "an ASDF tag this software does not know?)")
    if not evaluate:
        return
    step = max(1, int(np.sqrt(shape[0] * shape[1] / _WCS_SAMPLES)))
    for stride in dict.fromkeys((step, 1)):  # a sparse grid first, every pixel only if it finds nothing
        y, x = np.mgrid[0:shape[0]:stride, 0:shape[1]:stride].astype(np.float64)
        try:
            wavelength = np.asarray(wcs(x, y, with_bounding_box=True)[-1], dtype=np.float64)
        except Exception as exc:  # noqa: BLE001 - any failure of the transform is the file's problem
            raise InputError(path, f"{label}: its gwcs cannot be evaluated: {type(exc).__name__}: {exc}") from exc
        if np.isfinite(wavelength).any():
            return
    raise InputError(path, f"{label}: its gwcs gives no finite wavelength on any pixel")
