"""Ingest of a NIRISS SOSS ``_calints`` file: one image plane per integration.

The CubeModel's SCI, ERR and DQ planes are stored per integration as the
exposure's full-frame images (``sci.00001``, ``err.00001``, ``dq.00001``, ...;
the store keeps frames of one shape in one tiled array), its INT_TIMES table
in the exposure's metadata (``int_times``).  The VAR_* planes are not kept:
the reference's SOSS extraction reads ERR only (its FLUX_VAR_* columns are 0).
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


def plane_name(plane: str, integration: int) -> str:
    """Image name of a plane of integration ``integration`` (0-based): ``sci.00001`` is the first."""
    return f"{plane}.{integration + 1:05d}"


def _check(path: Path, model: Any) -> None:
    from stdatamodels.jwst import datamodels as dm  # noqa: PLC0415

    if not isinstance(model, dm.CubeModel | dm.ImageModel):
        raise InputError(path, f"a {type(model).__name__} is not a SOSS calints/cal file (CubeModel or ImageModel)")
    shape = np.shape(model.data)
    for plane in ("err", "dq"):
        if np.shape(getattr(model, plane)) != shape:
            raise InputError(path, f"{plane.upper()} has shape {np.shape(getattr(model, plane))}, SCI {shape}")
    if model.meta.instrument.pupil_position is None:
        raise InputError(path, "PWCPOS (meta.instrument.pupil_position) is not set; the SOSS traces depend on it")
    if np.isinf(model.data).any():
        raise InputError(path, "SCI holds infinite values")


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
    from stdatamodels.jwst import datamodels as dm  # noqa: PLC0415

    from ...ingest.cutouts import model_meta  # noqa: PLC0415 - ingest imports the mode registry

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = dm.open(path)
    except Exception as exc:  # noqa: BLE001 - any failure to open is the file's problem
        raise InputError(path, f"not a readable datamodel file: {exc}") from exc
    with model:
        _check(path, model)
        meta = model_meta(model)
        meta["int_times"] = _int_times(model)
        cube = {p: np.asarray(getattr(model, "data" if p == "sci" else p)) for p in PLANES}
        if cube["sci"].ndim == 2:
            cube = {p: a[None] for p, a in cube.items()}
        images = {plane_name(p, i): np.ascontiguousarray(cube[p][i], dtype=dt)
                  for p, dt in PLANES.items() for i in range(cube["sci"].shape[0])}
        return ScienceFile(type(model).__name__, meta, [], images)
