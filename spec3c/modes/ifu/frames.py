"""Pieces the MIRI MRS and NIRSpec IFU exposure readers share.

An IFU exposure is ingested as full detector frames (``Store`` images): the
science planes, and per pixel the coordinates ``cube_build`` needs, evaluated
once from the input gwcs (ALGORITHMS.md §11.4): wavelength, RA/Dec of the
pixel centre, the wavelength extent ``dwave`` and the four footprint corners
drizzle weighting uses.  Corners are kept as offsets from the centre in
arcsec (``RA`` offsets are differences of the RA coordinate, not scaled by
cos(Dec)), float32: that keeps 1e-8 arcsec with half the bytes of float64.

Every evaluation runs on 1-D pixel lists in chunks (:func:`evaluate`), so the
transient memory of gwcs stays bounded whatever the detector size.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ...algorithms.cube_setup import wrap_ra
from ...errors import InputError
from ...ingest.file_wcs import stored_wcs_bytes
from ...store.records import CUTOUT_PLANES, Cutout

#: the one source of an IFU association (the reference runs no exp_to_source for IFUs)
IFU_SOURCE_KEY = "1"
#: pixels per gwcs call
CHUNK = 1 << 18
#: pixels per gwcs call of a frame reader, whose every chunk's astropy.modeling intermediates (~75 MB
#: here, twice that at CHUNK) add to the frames it holds; a multiple of every SIMD width, so no
#: pixel's value depends on its chunk
FRAME_CHUNK = CHUNK // 2
#: datamodel attribute -> image plane (stored dtype) of the science arrays
SCIENCE_PLANES = {
    "data": ("sci", np.float32),
    "err": ("err", np.float32),
    "dq": ("dq", np.uint32),
    "var_poisson": ("var_poisson", np.float32),
    "var_rnoise": ("var_rnoise", np.float32),
    "var_flat": ("var_flat", np.float32),
}
#: corner offset planes, in the reference's corner order (ALGORITHMS.md §11.4)
CORNER_PLANES = tuple(f"corner{k}_{axis}" for k in range(1, 5) for axis in ("dra", "ddec"))


@cache
def instrument_table() -> dict[str, Any]:
    """The fixed IFU facts of ``instrument.json`` beside this module."""
    data: dict[str, Any] = json.loads((Path(__file__).with_name("instrument.json")).read_text())
    return data


def evaluate(func: Callable[..., Any], *args: np.ndarray, chunk: int = CHUNK) -> tuple[np.ndarray, ...]:
    """``func(*args)`` on 1-D arrays, ``chunk`` elements at a time; float64 outputs concatenated."""
    n = args[0].size
    pieces: list[list[np.ndarray]] = []
    for start in range(0, max(n, 1), chunk):
        part = func(*(a[start:start + chunk] for a in args))
        part = part if isinstance(part, tuple) else (part,)
        if not pieces:
            pieces = [[] for _ in part]
        for k, value in enumerate(part):
            pieces[k].append(np.asarray(value, dtype=np.float64).reshape(-1))
    return tuple(np.concatenate(p) if p else np.empty(0) for p in pieces)


def frame_shape(model: Any, path: Path) -> tuple[int, int]:
    """The shape of the exposure's SCI array; an error naming the file unless it is 2-D."""
    shape = np.shape(model.data)
    if len(shape) != 2:
        raise InputError(path, f"expected a 2-D SCI array, got shape {shape}")
    return int(shape[0]), int(shape[1])


def science_planes(model: Any, path: Path) -> dict[str, np.ndarray]:
    """SCI, ERR, DQ and VAR_* of an IFUImageModel as 2-D arrays of the stored dtypes."""
    shape = frame_shape(model, path)
    planes = {}
    for attr, (plane, dtype) in SCIENCE_PLANES.items():
        value = getattr(model, attr, None)
        if value is None or np.shape(value) != shape:
            if attr in ("data", "err", "dq"):
                raise InputError(path, f"{attr.upper()} is missing or not of the SCI shape {shape}")
            value = np.zeros(shape, dtype)
        planes[plane] = np.ascontiguousarray(value, dtype=dtype)
    return planes


def input_wcs(model: Any, path: Path, frame: str) -> Any:
    """The exposure's gwcs; an error naming the file unless it has ``frame``."""
    wcs = model.meta.wcs
    if wcs is None:
        raise InputError(path, "IFUImageModel has no WCS (meta.wcs); run assign_wcs in stage 2")
    if frame not in wcs.available_frames:
        raise InputError(path, f"the WCS has no {frame!r} frame (frames: {', '.join(wcs.available_frames)})")
    return wcs


def label_map(model: Any, wcs: Any, shape: tuple[int, ...], path: Path) -> np.ndarray:
    """The slice label of every pixel: the model's ``regions`` array, else the label
    mapper array of the WCS's slice selector (0 = no slice)."""
    regions = getattr(model, "regions", None) if model.hasattr("regions") else None
    if regions is not None and np.shape(regions) == shape and np.any(np.asarray(regions) > 0):
        return np.asarray(regions, dtype=np.int32)
    mapper = selector_labels(wcs, shape)
    if mapper is not None:
        return np.asarray(mapper, dtype=np.int32)
    raise InputError(path, "no slice map: neither a REGIONS array nor a label-mapper array in the WCS")


def selector_labels(wcs: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    """The label-mapper array of the WCS's slice selector, if it has one of the frame's ``shape``
    (its pixels labelled 0 are in no slice), else None."""
    for step in wcs.pipeline:
        mapper = getattr(getattr(step.transform, "label_mapper", None), "mapper", None)
        if isinstance(mapper, np.ndarray) and mapper.shape == shape:
            return mapper
    return None


#: unlabelled pixels checked to map to NaN before only the labelled ones are evaluated
UNLABELLED_SAMPLE = 1024


def mapped_pixels(check: Callable[..., Any], wcs: Any, shape: tuple[int, int]) -> np.ndarray:
    """Flat indices of the pixels whose coordinates are evaluated: those of a slice (a third of an
    MRS detector is in none) when the WCS's slice selector says which they are and a sample of the
    others maps to NaN through ``check`` (the forward transform, or its first step), as the selector
    makes them; else every pixel."""
    labels = selector_labels(wcs, shape)
    if labels is not None:
        outside = np.flatnonzero(labels.ravel() <= 0)
        pick = outside[np.linspace(0, outside.size - 1, min(outside.size, UNLABELLED_SAMPLE)).astype(np.intp)]
        y, x = (v.astype(np.float64) for v in np.divmod(pick, shape[1]))
        with warnings.catch_warnings():  # (astropy: "All data is outside the valid range")
            warnings.simplefilter("ignore")
            unlabelled = evaluate(check, x, y) if pick.size else ()
        if all(np.isnan(v).all() for v in unlabelled):
            return np.flatnonzero(labels.ravel() > 0)
    return np.arange(int(np.prod(shape)))


def box_pixels(box: Sequence[float], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices ``(y, x)`` of the pixels of a bounding box ``(x0, x1, y0, y1)``, as
    ``gwcs.wcstools.grid_from_bounding_box(center=True)`` lists them (``floor(lo + 0.5)`` to
    ``ceil(hi - 0.5)``), clipped to the frame."""
    x0, x1, y0, y1 = (float(v) for v in box)
    if not np.isfinite(x0):
        return np.empty(0, np.intp), np.empty(0, np.intp)
    xs = np.arange(max(int(np.floor(x0 + 0.5)), 0), min(int(np.ceil(x1 - 0.5)), shape[1] - 1) + 1)
    ys = np.arange(max(int(np.floor(y0 + 0.5)), 0), min(int(np.ceil(y1 - 0.5)), shape[0] - 1) + 1)
    gy, gx = np.meshgrid(ys, xs, indexing="ij")
    return gy.ravel(), gx.ravel()


def footprint(ra: np.ndarray, dec: np.ndarray, *, modulo: bool) -> list[float]:
    """The 4 extreme points ``[a_min, b(a_min), a_max, b(a_max), a(b_min), b_min, a(b_max), b_max]``
    of the pixels with finite coordinates (``find_corners_miri/nirspec``); ``modulo``: RA % 360."""
    ok = np.isfinite(ra) & np.isfinite(dec)
    a = wrap_ra(ra[ok])
    b = np.asarray(dec, dtype=np.float64)[ok]
    if a.size == 0:
        return [math.nan] * 8
    i_amin, i_amax, i_bmin, i_bmax = (int(np.argmin(a)), int(np.argmax(a)), int(np.argmin(b)), int(np.argmax(b)))
    corners = [a[i_amin], b[i_amin], a[i_amax], b[i_amax], a[i_bmin], b[i_bmin], a[i_bmax], b[i_bmax]]
    if modulo:
        for k in (0, 2, 4, 6):
            corners[k] %= 360.0
    return [float(v) for v in corners]


def rotation_angle(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Angle (deg) between RA/Dec and the IFU plane from two points along the slice (``ifualign``)."""
    dra = (ra2 - ra1) * np.cos(dec1 * np.pi / 180.0)
    return float(90.0 + np.arctan2(dra, dec2 - dec1) * 180.0 / np.pi)


def corner_offsets(ra: np.ndarray, dec: np.ndarray, corners: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Corner planes ``(ra_k - ra, dec_k - dec) * 3600`` as float32 (``corners``: ra1, dec1 ... ra4, dec4)."""
    out = {}
    for name, value, centre in zip(CORNER_PLANES, corners, (ra, dec) * 4, strict=True):
        out[name] = ((value - centre) * 3600.0).astype(np.float32)
    return out


def scatter(shape: tuple[int, ...], index: np.ndarray, values: np.ndarray, dtype: Any = np.float64,
            fill: float = np.nan) -> np.ndarray:
    """A full frame holding ``values`` at the flat pixel ``index`` and ``fill`` elsewhere."""
    frame = np.full(int(np.prod(shape)), fill, dtype=dtype)
    frame[index] = values
    return frame.reshape(shape)


def s_region(model: Any) -> tuple[str | None, bool]:
    """``S_REGION`` and whether ``spectral_region`` is set (the reference's footprint shortcut needs both)."""
    wcsinfo = model.meta.wcsinfo.instance
    text = wcsinfo.get("s_region")
    return (str(text) if text else None), wcsinfo.get("spectral_region") is not None


def marker_cutout(model: Any, name: str, path: Path, ifu: dict[str, Any]) -> Cutout:
    """The exposure's entry in the association's one source: the exposure's slit-level
    metadata, its gwcs (copied from the file ``path`` where it can be) and ``ifu`` (what
    cube_build needs to know without reading the frames); its planes are empty (the frames
    are the exposure's images)."""
    exp_type = str(model.meta.exposure.type)
    source_type = model.meta.target.source_type
    meta: dict[str, Any] = {
        "name": exp_type, "source_id": int(IFU_SOURCE_KEY), "slit_index": 0,
        "source_type": source_type, "ifu": ifu,
    }
    planes = {plane: np.zeros((0, 0), dtype) for plane, dtype in CUTOUT_PLANES.items()}
    return Cutout(IFU_SOURCE_KEY, name, exp_type, meta, planes, stored_wcs_bytes(model, path, np.shape(model.data)))
