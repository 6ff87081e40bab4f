"""Broken inputs made from good simulated files: the corpus of the reliability tests.

Every function here writes a damaged copy of a good ``_cal.fits`` (or a
damaged association).  ``BREAKERS`` maps a case name to ``(break(src, dst,
where), words)``: ``where`` picks the slit and pixel to damage (hypothesis
draws it), ``words`` are what the error message must say.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits


@dataclass(frozen=True)
class Where:
    """Which slit, which pixel (fractions of the slit size) and which plane a breaker damages."""

    slit: int = 0
    fy: float = 0.5
    fx: float = 0.5
    plane: str = "data"
    sign: float = 1.0
    text: str = "erg/s/cm2"


def _open(path: Path):  # type: ignore[no-untyped-def]
    from stdatamodels.jwst import datamodels

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return datamodels.open(path)


def _save(model, dst: Path) -> None:  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # damaged on purpose: stdatamodels' validation warnings
        model.save(dst)


def _slit(model, where: Where):  # type: ignore[no-untyped-def]
    return model.slits[where.slit % len(model.slits)]


def _pixel(shape: tuple[int, ...], where: Where) -> tuple[int, int]:
    return min(int(where.fy * shape[0]), shape[0] - 1), min(int(where.fx * shape[1]), shape[1] - 1)


def all_nan(src: Path, dst: Path, where: Where) -> None:
    with _open(src) as model:
        for slit in model.slits:
            slit.data = np.full(slit.data.shape, np.nan, np.float32)
        _save(model, dst)


def inf_value(src: Path, dst: Path, where: Where) -> None:
    with _open(src) as model:
        slit = _slit(model, where)
        plane = np.array(getattr(slit, where.plane))
        plane[_pixel(plane.shape, where)] = np.inf * where.sign
        setattr(slit, where.plane, plane)
        _save(model, dst)


def plane_missing(src: Path, dst: Path, where: Where) -> None:
    with _open(src) as model:
        delattr(_slit(model, where), where.plane)
        _save(model, dst)


def plane_other_shape(src: Path, dst: Path, where: Where) -> None:
    with _open(src) as model:
        slit = _slit(model, where)
        ny, nx = slit.data.shape
        shape = (max(1, int(where.fy * ny)), nx + 1 + int(where.fx * 5))
        setattr(slit, where.plane, np.zeros(shape, np.uint32 if where.plane == "dq" else np.float32))
        _save(model, dst)


def zero_size(src: Path, dst: Path, where: Where) -> None:
    with _open(src) as model:
        slit = _slit(model, where)
        nx = slit.data.shape[1]
        for attr in ("data", "err", "var_poisson", "var_rnoise", "var_flat", "wavelength",
                     "flatfield_point", "flatfield_uniform", "pathloss_point", "pathloss_uniform",
                     "photom_point", "photom_uniform"):
            if slit.hasattr(attr):
                setattr(slit, attr, np.zeros((0, nx), np.float32))
        slit.dq = np.zeros((0, nx), np.uint32)
        slit.ysize = 0
        _save(model, dst)


def wrong_bunit(src: Path, dst: Path, where: Where) -> None:
    with _open(src) as model:
        _slit(model, where).meta.bunit_data = where.text
        _save(model, dst)


def duplicate_slit_name(src: Path, dst: Path, where: Where) -> None:
    with _open(src) as model:
        n = len(model.slits)
        first = where.slit % n
        model.slits[(first + 1) % n].name = model.slits[first].name
        _save(model, dst)


def wcs_nan_everywhere(src: Path, dst: Path, where: Where) -> None:
    """A bounding box far off the slit: the gwcs gives NaN on every pixel."""
    with _open(src) as model:
        wcs = _slit(model, where).meta.wcs
        wcs.bounding_box = ((5000.0, 5001.0), (7000.0, 7001.0))
        _save(model, dst)


def wcs_fails_to_evaluate(src: Path, dst: Path, where: Where) -> None:
    """A gwcs whose first transform raises when evaluated (a table lookup out of its bounds)."""
    from astropy.modeling import models

    with _open(src) as model:
        step = _slit(model, where).meta.wcs.pipeline[0]
        lookup = models.Tabular1D(points=np.array([0.0, 1.0]), lookup_table=np.array([0.0, 1.0]), bounds_error=True)
        step.transform = (lookup & models.Identity(1)) | step.transform
        _save(model, dst)


def wcs_not_deserialisable(src: Path, dst: Path, where: Where) -> None:
    """A gwcs transform tag no software knows (``compose`` -> ``kompose``), in one slit's gwcs."""
    shutil.copyfile(src, dst)
    with fits.open(dst, mode="update") as hdul:
        column = hdul["ASDF"].data.columns[0].name
        raw = hdul["ASDF"].data[column][0]  # the ASDF file as uint8, edited in place (same length)
        text = raw.tobytes()
        tag = b"!transform/compose-"
        hits = [i for i in range(len(text)) if text.startswith(tag, i)]
        at = hits[int(where.fy * len(hits)) % len(hits)]
        raw[at + len(b"!transform/")] = ord("k")


def set_header(src: Path, dst: Path, key: str, value: str | None) -> None:
    """A copy of ``src`` with a primary-header keyword changed (``None``: removed)."""
    shutil.copyfile(src, dst)
    with fits.open(dst, mode="update") as hdul:
        if value is None:
            del hdul[0].header[key]
        else:
            hdul[0].header[key] = value


Breaker = Callable[[Path, Path, Where], None]

#: case -> (breaker, words its message must contain); each damages one science member
BREAKERS: dict[str, tuple[Breaker, tuple[str, ...]]] = {
    "all_nan": (all_nan, ("NaN everywhere",)),
    "inf_value": (inf_value, ("infinite value",)),
    "plane_missing": (plane_missing, ("plane is missing",)),
    "plane_other_shape": (plane_other_shape, ("has shape",)),
    "zero_size": (zero_size, ("zero size",)),
    "wrong_bunit": (wrong_bunit, ("BUNIT",)),
    "duplicate_slit_name": (duplicate_slit_name, ("both named",)),
    "wcs_nan_everywhere": (wcs_nan_everywhere, ("no finite wavelength",)),
    "wcs_fails_to_evaluate": (wcs_fails_to_evaluate, ("cannot be evaluated",)),
    "wcs_not_deserialisable": (wcs_not_deserialisable, ("gwcs",)),
}


def copy_dataset(src: Path, dst: Path) -> Path:
    """A copy of a simulated folder (cal files and ASN); returns the copied ASN."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*_truth.asdf"))
    return next(dst.glob("*_asn.json"))


def asn_members(asn: Path) -> list[dict]:
    return json.loads(asn.read_text())["products"][0]["members"]


def rewrite_members(asn: Path, members: list[dict]) -> Path:
    doc = json.loads(asn.read_text())
    doc["products"][0]["members"] = members
    asn.write_text(json.dumps(doc, indent=2))
    return asn


def add_member(asn: Path, expname: str, exptype: str = "science") -> Path:
    members = asn_members(asn)
    members.append({"expname": expname, "exptype": exptype})
    return rewrite_members(asn, members)


def symlink_outside(asn: Path, outside: Path) -> Path:
    """A member that is a symlink, in the ASN folder, to a file outside it."""
    link = asn.parent / "jw99999001001_01101_00001_nrs1_cal.fits"
    os.symlink(outside, link)
    return add_member(asn, link.name)
