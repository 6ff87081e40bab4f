"""Ingest of a NIRISS SOSS ``_calints`` file: its SCI, ERR and DQ cubes.

The CubeModel's SCI, ERR and DQ planes are stored as the exposure's images
``sci``, ``err`` and ``dq``, each ``(nints, ny, nx)`` (the TileDB store keeps
them in one tiled array, a tile per integration); its INT_TIMES table in
the exposure's metadata (``int_times``).  Stores written before this layout
hold one image per plane and integration (``sci.00001``, ...), which
processing still reads.  The VAR_* planes are not kept:
the reference's SOSS extraction reads ERR only (its FLUX_VAR_* columns are 0).

A calints file is read without a datamodel when it can be: memory-mapped
(:mod:`spec3c.ingest.fitsraw`), so that only SCI, ERR and DQ are read of
it, the metadata from its ASDF tree as :mod:`spec3c.ingest.asdftree` reads
them (the datamodel's, when the tree's ``_fits_hash`` matches the headers).
Any other file -- or any problem -- goes to the datamodel reader, which
names the problem.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError
from ..base import ScienceFile

__all__ = ["PLANES", "plane_name", "read_soss_file"]

#: the per-integration planes stored, and their dtypes
PLANES = {"sci": np.float32, "err": np.float32, "dq": np.uint32}
#: the HDU of each plane
_EXTNAMES = {"sci": "SCI", "err": "ERR", "dq": "DQ"}
#: binary-table TFORM codes of the INT_TIMES columns read without astropy (big-endian scalars)
_TFORMS = {"J": ">i4", "K": ">i8", "E": ">f4", "D": ">f8"}


def plane_name(plane: str, integration: int) -> str:
    """Image name of a plane of integration ``integration`` (0-based) in stores written before the
    stacked layout: ``sci.00001`` is the first."""
    return f"{plane}.{integration + 1:05d}"


def _check_model_type(path: Path, model_type: str) -> None:
    if model_type not in ("CubeModel", "ImageModel"):
        raise InputError(path, f"a {model_type} is not a SOSS calints/cal file (CubeModel or ImageModel)")


def _check(path: Path, model_type: str, cube: dict[str, Any], pupil_position: Any) -> None:
    """What the extraction needs of the file, before its planes are copied."""
    _check_model_type(path, model_type)
    shape = np.shape(cube["sci"])
    for plane in ("err", "dq"):
        if np.shape(cube[plane]) != shape:
            raise InputError(path, f"{plane.upper()} has shape {np.shape(cube[plane])}, SCI {shape}")
    if pupil_position is None:
        raise InputError(path, "PWCPOS (meta.instrument.pupil_position) is not set; the SOSS traces depend on it")


def _int_times(model: Any) -> list[list[float]] | None:
    table = getattr(model, "int_times", None)
    if table is None or len(table) == 0:
        return None
    return [[float(v) for v in row] for row in np.asarray(table).tolist()]


def read_soss_file(path: Path, name: str) -> ScienceFile:
    """The planes of every integration, the metadata and the INT_TIMES rows of a SOSS exposure.

    Raises
    ------
    InputError
        Naming the file, when it is not a CubeModel/ImageModel, a plane is
        missing or misshapen, SCI holds infinities or PWCPOS is missing.
    """
    from ...ingest.asdftree import NotFast  # noqa: PLC0415 - ingest imports the mode registry

    try:
        return _read_mapped(path)
    except NotFast:
        return _read_datamodel(path)


def _science_file(path: Path, model_type: str, meta: dict[str, Any], cube: dict[str, Any]) -> ScienceFile:
    """Checked, one (nints, ny, nx) image per plane (native byte order)."""
    _check(path, model_type, cube, meta.get("meta.instrument.pupil_position"))
    if np.ndim(cube["sci"]) == 2:
        cube = {p: a[None] for p, a in cube.items()}
    images = {p: np.ascontiguousarray(cube[p], dtype=dt) for p, dt in PLANES.items()}
    if np.isinf(images["sci"]).any():
        raise InputError(path, "SCI holds infinite values")
    return ScienceFile(model_type, meta, [], images)


def _read_mapped(path: Path) -> ScienceFile:
    """Without a datamodel (see the module docstring); :class:`NotFast` for the datamodel reader."""
    from ...ingest.asdftree import NotFast, asdf_tree, flat_meta  # noqa: PLC0415
    from ...ingest.fitsraw import Unsupported, read_fits  # noqa: PLC0415

    try:
        hdus = read_fits(path, mapped=True)
    except (Unsupported, OSError) as exc:
        raise NotFast(str(exc)) from exc
    model_type = str(hdus[0].header.get("DATAMODL") or "")
    if model_type not in ("CubeModel", "ImageModel"):
        raise NotFast(f"a {model_type or 'file without DATAMODL'}")
    by_name = {h.name: h for h in hdus if h.ver == 1}
    cube = {p: by_name[ext].data for p, ext in _EXTNAMES.items() if ext in by_name}
    if len(cube) < len(_EXTNAMES) or any(a is None for a in cube.values()):
        raise NotFast("a plane is missing")
    af, tree = asdf_tree(hdus, other_tables=("INT_TIMES",))
    meta = flat_meta(tree, af)
    meta["int_times"] = _raw_int_times(by_name.get("INT_TIMES"), "int_times" in tree)
    try:
        return _science_file(path, model_type, meta, cube)
    except InputError as exc:  # the datamodel reader checks the file first: its error comes first
        raise NotFast(str(exc)) from exc


def _raw_int_times(hdu: Any, in_tree: bool) -> list[list[float]] | None:
    """The INT_TIMES rows as floats (the datamodel's ``int_times``), from the table's bytes."""
    from ...ingest.asdftree import NotFast  # noqa: PLC0415

    if hdu is None or not in_tree:
        if hdu is not None or in_tree:
            raise NotFast("INT_TIMES and the tree disagree")
        return None
    header = hdu.header
    fields = []
    for k in range(1, int(header.get("TFIELDS", 0)) + 1):
        code = _TFORMS.get(str(header.get(f"TFORM{k}", "")).strip().lstrip("1"))
        if code is None:
            raise NotFast(f"INT_TIMES column {k} of format {header.get(f'TFORM{k}')!r}")
        fields.append((f"c{k}", code))
    dtype = np.dtype(fields)
    rows = int(header.get("NAXIS2", 0))
    if int(header.get("NAXIS1", 0)) != dtype.itemsize or int(header.get("PCOUNT", 0)) or hdu.table_bytes is None:
        raise NotFast("INT_TIMES in another layout")
    table = np.frombuffer(hdu.table_bytes, dtype=dtype, count=rows)
    if rows == 0:
        return None
    return [[float(v) for v in row] for row in table.tolist()]


def _read_datamodel(path: Path) -> ScienceFile:
    """Through stdatamodels: any calints or cal file it opens, its problems named."""
    from stdatamodels.jwst import datamodels as dm  # noqa: PLC0415

    from ...ingest.cutouts import model_meta  # noqa: PLC0415 - ingest imports the mode registry

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = dm.open(path)
    except Exception as exc:  # noqa: BLE001 - any failure to open is the file's problem
        raise InputError(path, f"not a readable datamodel file: {exc}") from exc
    with model:
        model_type = type(model).__name__
        _check_model_type(path, model_type)  # before the planes of another layout are looked up
        meta = model_meta(model)
        meta["int_times"] = _int_times(model)
        return _science_file(path, model_type, meta,
                             {p: np.asarray(getattr(model, "data" if p == "sci" else p)) for p in PLANES})
