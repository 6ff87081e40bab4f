"""Reading WFSS science files: spec2 ``_cal`` (grism cutouts) and spec2 ``_x1d`` (extracted spectra).

A WFSS ``_cal`` file holds one slit per source and spectral order, up to
thousands (extract_2d keeps ``wfss_nbright=1000`` sources by default), each
with its own copy of the exposure's gwcs in the ASDF extension.  Opening such
a file as a datamodel deserialises every copy (~50 ms per slit); here the
planes and the slit keywords are read straight from the FITS extensions
(:mod:`spec3c.ingest.fitsraw`, ~0.5 ms per extension; keyword names from the
MultiSlitModel schema), and the WCS is needed only for a slit without a
WAVELENGTH plane.  The exposure's own metadata comes from
the primary header through stdatamodels, so its keys are those the generic
reader gives.

Per pixel, ingest keeps: SCI, ERR, DQ, VAR_* and the wavelength (the
WAVELENGTH plane, which extract_2d computes from the slit gwcs).  A grism
cutout's world position is the same for every pixel (its source's
direct-image position): ``ra``/``dec`` hold the source's SRCRA/SRCDEC, and
there is no slit frame (``slit_y`` NaN).  A cutout's metadata is its slit's
attributes and ``meta.*`` (no exposure metadata is copied into it) plus
``slit_index`` and ``dispersion_direction`` (DISPAXIS).  Cutouts are keyed by source id, as
exp_to_source does, and named ``<slit name>:<spectral order>``: the orders of
a source share the slit name.

A spec2 ``_x1d`` file (WFSSMultiSpecModel, one table per spectral order with
one row per source) is kept whole, as the exposure's images ``spec<i>.<column>``
(2-D for the vector columns), with the tables' header attributes in the
exposure metadata as ``spec.<i>.<attribute>``.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from ...errors import InputError
from ...fitsio import indexed_hdus
from ...ingest.cutouts import model_meta, source_key
from ...ingest.fitsraw import Unsupported, read_fits
from ...store.records import Cutout
from ..base import ScienceFile

__all__ = ["SPEC_ATTRIBUTES", "cutout_name", "read_grism_slits", "read_wfss_file"]

#: the planes of a slit: FITS extension -> store plane
_PLANES = {"SCI": "sci", "ERR": "err", "DQ": "dq", "VAR_POISSON": "var_poisson", "VAR_RNOISE": "var_rnoise",
           "VAR_FLAT": "var_flat"}
_DTYPES = {"dq": np.uint32}
_UNITS = ("MJy/sr", "MJy", "DN/s")
#: table attributes of a WFSSMultiSpecModel kept per table (``spec.<i>.<name>``)
SPEC_ATTRIBUTES = ("group_id", "spectral_order", "dispersion_direction", "filename", "exposure_time",
                   "integration_time", "s_region")


def cutout_name(slit_name: Any, order: Any) -> str:
    """The store's slit key of a grism cutout: slit name and spectral order (orders share the name)."""
    return f"{slit_name}:{int(order) if order is not None else 1}"


@lru_cache(maxsize=1)
def _slit_keywords() -> tuple[tuple[str, str, str], ...]:
    """(attribute path, FITS keyword, HDU) of every slit attribute the MultiSlitModel schema maps."""
    from stdatamodels.jwst import datamodels as dm

    found: list[tuple[str, str, str]] = []

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if not isinstance(node, dict):
            return
        if "fits_keyword" in node:
            found.append((".".join(path), str(node["fits_keyword"]), str(node.get("fits_hdu", "SCI"))))
        for key in ("allOf", "anyOf", "oneOf"):
            for sub in node.get(key, []):
                walk(sub, path)
        for key, sub in node.get("properties", {}).items():
            walk(sub, (*path, key))
        if isinstance(node.get("items"), dict):
            walk(node["items"], path)

    walk(dm.MultiSlitModel().schema["properties"]["slits"], ())
    return tuple(found)


def _slit_meta(headers: dict[str, fits.Header]) -> dict[str, Any]:
    """Slit attributes and ``meta.*`` keys of one slit from its extension headers."""
    meta: dict[str, Any] = {}
    for path, keyword, hdu in _slit_keywords():
        header = headers.get(hdu)
        if header is None or keyword not in header:
            continue
        value = header[keyword]
        if isinstance(value, (bool, int, float, str)) and not isinstance(value, fits.card.Undefined):
            meta[path] = value
    return meta


def _exposure_meta(primary: fits.Header) -> tuple[str, dict[str, Any]]:
    """(datamodel class name, flat ``meta.*``) of the file, from its primary header via stdatamodels."""
    from stdatamodels.jwst import datamodels as dm

    name = str(primary.get("DATAMODL", "MultiSlitModel"))
    cls = getattr(dm, name, dm.MultiSlitModel)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # keywords of other HDUs are absent from this stub on purpose
        with cls(fits.HDUList([fits.PrimaryHDU(header=primary)])) as stub:
            return name, model_meta(stub)


def _index(hdus: Any) -> dict[tuple[str, int], Any]:
    return {(str(h.name).upper(), int(h.ver)): h for h in hdus}


def _plane(path: Path, label: str, hdus: dict[tuple[str, int], Any], ext: str, ver: int,
           shape: tuple[int, ...] | None) -> np.ndarray | None:
    hdu = hdus.get((ext, ver))
    if hdu is None or hdu.data is None:
        return None
    data = np.asarray(hdu.data)
    if shape is not None and data.shape != shape:
        raise InputError(path, f"{label}: {ext} has shape {data.shape}, SCI has {shape}")
    return data


def _check_planes(path: Path, label: str, planes: dict[str, np.ndarray]) -> None:
    for plane in ("sci", "err", "var_poisson", "var_rnoise", "var_flat"):
        if np.isinf(planes[plane]).any():
            raise InputError(path, f"{label}: {plane.upper()} has infinite values; stage 2 marks bad pixels "
                                   "NaN with DQ flags")


def _cal_cutout(path: Path, name: str, index: int, hdus: dict[tuple[str, int], Any],
                wavelength: np.ndarray | None) -> Cutout:
    """One grism cutout: planes, wavelength, constant world position, slit attributes."""
    ver = index + 1
    sci = _plane(path, f"slit {index}", hdus, "SCI", ver, None)
    if sci is None or sci.ndim != 2 or sci.size == 0:
        raise InputError(path, f"slit {index}: SCI is missing or not a non-empty 2-D array")
    headers = {ext: hdus[(ext, ver)].header for ext in ("SCI", "ERR") if (ext, ver) in hdus}
    meta = _slit_meta(headers)
    label = f"slit {index} ({meta.get('name')}, order {meta.get('meta.wcsinfo.spectral_order')})"
    planes: dict[str, np.ndarray] = {}
    for ext, plane in _PLANES.items():
        data = _plane(path, label, hdus, ext, ver, sci.shape)
        if data is None:
            raise InputError(path, f"{label}: the {ext} plane is missing")
        planes[plane] = np.ascontiguousarray(data, dtype=_DTYPES.get(plane, np.float32))
    _check_planes(path, label, planes)
    unit = str(meta.get("meta.bunit_data") or "")
    if unit.replace(" ", "") not in _UNITS:
        raise InputError(path, f"{label}: BUNIT {unit!r} is not one of {', '.join(_UNITS)}")
    if wavelength is None:
        wavelength = _plane(path, label, hdus, "WAVELENGTH", ver, sci.shape)
    if wavelength is None or not np.isfinite(wavelength).any():
        raise InputError(path, f"{label}: no WAVELENGTH plane and no usable slit WCS")
    planes["wavelength"] = np.asarray(wavelength, dtype=np.float64)
    shape = sci.shape
    planes["ra"] = np.full(shape, float(meta.get("source_ra", np.nan)))
    planes["dec"] = np.full(shape, float(meta.get("source_dec", np.nan)))
    planes["slit_y"] = np.full(shape, np.nan)
    try:
        key = source_key(meta)
    except ValueError as exc:
        raise InputError(path, f"{label}: {exc}") from exc
    meta["slit_index"] = index
    meta["dispersion_direction"] = meta.get("meta.wcsinfo.dispersion_direction")
    order = meta.get("meta.wcsinfo.spectral_order")
    return Cutout(key, name, cutout_name(meta.get("name", index), order), meta, planes)


def _wcs_wavelengths(path: Path, indices: list[int]) -> dict[int, np.ndarray]:
    """Wavelengths of slits without a WAVELENGTH plane, from their gwcs (the slow, datamodel way)."""
    from stdatamodels.jwst import datamodels as dm

    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with indexed_hdus(), dm.open(path) as model:
            for index in indices:
                slit = model.slits[index]
                if slit.meta.wcs is None:
                    continue
                y, x = np.indices(np.shape(slit.data), dtype=np.float64)
                out[index] = np.asarray(slit.meta.wcs(x, y)[2], dtype=np.float64)
    return out


def _needs_wcs(hdus: dict[tuple[str, int], Any], ver: int) -> bool:
    hdu = hdus.get(("WAVELENGTH", ver))
    if hdu is None or hdu.data is None:
        return True
    data = np.asarray(hdu.data)
    return bool(not np.isfinite(data).any() or (np.nanmin(data) == 0.0 and np.nanmax(data) == 0.0))


def _read_cal(path: Path, name: str, hdu_list: Any, primary: fits.Header) -> ScienceFile:
    """The cutouts of a cal file from its HDUs (astropy's or :mod:`spec3c.ingest.fitsraw`'s: ``name``,
    ``ver``, ``header`` and ``data`` each) and its primary header."""
    hdus = _index(hdu_list)
    n = sum(1 for h in hdu_list if str(h.name).upper() == "SCI")
    if n == 0:
        raise InputError(path, "the file holds no slits (no SCI extension)")
    missing = [i for i in range(n) if _needs_wcs(hdus, i + 1)]
    from_wcs = _wcs_wavelengths(path, missing) if missing else {}
    cutouts = [_cal_cutout(path, name, i, hdus, from_wcs.get(i)) for i in range(n)]
    seen: dict[tuple[str, str], int] = {}
    for c in cutouts:
        if (c.source, c.slit) in seen:
            raise InputError(path, f"slits {seen[(c.source, c.slit)]} and {c.meta['slit_index']} are both source "
                                   f"{c.source} in order {c.slit.rpartition(':')[2]}")
        seen[(c.source, c.slit)] = int(c.meta["slit_index"])
    if not any(np.isfinite(c.planes["sci"]).any() for c in cutouts):
        raise InputError(path, "SCI is NaN everywhere: no pixel of the exposure has a value")
    model_type, meta = _exposure_meta(primary)
    return ScienceFile(model_type, meta, cutouts, {})


def _read_x1d(path: Path) -> ScienceFile:
    """A spec2 WFSS x1d: every table's columns as images, its attributes in the metadata."""
    from stdatamodels.jwst import datamodels as dm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with indexed_hdus(), dm.open(path) as model:
            if not isinstance(model, dm.WFSSMultiSpecModel):
                raise InputError(path, f"a {type(model).__name__} is not a WFSS spec2 x1d file "
                                       "(WFSSMultiSpecModel)")
            if len(model.spec) == 0:
                raise InputError(path, "the x1d file holds no spectral table")
            meta = model_meta(model)
            images: dict[str, np.ndarray] = {}
            for i, spec in enumerate(model.spec):
                table = spec.spec_table
                for column in table.dtype.names:
                    images[f"spec{i}.{column.lower()}"] = np.array(table[column])
                for attr in SPEC_ATTRIBUTES:
                    value = getattr(spec, attr, None)
                    if value is not None:
                        meta[f"spec.{i}.{attr}"] = value.item() if isinstance(value, np.generic) else value
                units = {c.name.upper(): c.unit for c in table.columns}
                meta[f"spec.{i}.flux_unit"] = str(units.get("FLUX") or "")
                meta[f"spec.{i}.sb_unit"] = str(units.get("SURF_BRIGHT") or "")
            return ScienceFile(type(model).__name__, meta, [], images)


def read_wfss_file(path: Path, name: str) -> ScienceFile:
    """Read a WFSS science file (spec2 ``_cal`` or ``_x1d``), checking what processing relies on.

    Raises
    ------
    InputError
        Naming the file, and the slit, when a plane is missing or misshapen, a
        value is infinite, BUNIT is not a calibrated or count-rate unit, a
        slit has neither a WAVELENGTH plane nor a WCS, two slits are the same
        source and order, or every pixel is NaN.
    """
    try:
        raw = read_fits(path)
    except Unsupported:  # a FITS feature the plain reader leaves to astropy
        raw = None
    except OSError as exc:
        raise InputError(path, f"not a readable file: {exc}") from exc
    if raw is not None:
        if _is_x1d(str(raw[0].header.get("DATAMODL", "")), [h.name for h in raw[1:3]]):
            return _read_x1d(path)
        return _read_cal(path, name, raw, fits.Header.fromstring(raw[0].header_bytes.decode("ascii", "replace")))
    try:
        hdul = fits.open(path, memmap=False)
    except OSError as exc:
        raise InputError(path, f"not a readable FITS file: {exc}") from exc
    with hdul:
        if _is_x1d(str(hdul[0].header.get("DATAMODL", "")), [str(h.name).upper() for h in hdul[1:3]]):
            return _read_x1d(path)
        return _read_cal(path, name, hdul, hdul[0].header)


def _is_x1d(datamodel: str, first_extensions: list[str]) -> bool:
    return datamodel.endswith("SpecModel") or "EXTRACT1D" in first_extensions


def read_grism_slits(model: Any, name: str, path: Path) -> list[Cutout]:
    """Cutouts of an opened WFSS MultiSlitModel (the datamodel route; ingest uses :func:`read_wfss_file`)."""
    from ...ingest.cutouts import slit_meta

    cutouts = []
    for index, slit in enumerate(model.slits):
        meta = slit_meta(slit)
        shape = np.shape(slit.data)
        planes = {plane: np.ascontiguousarray(getattr(slit, ext.lower() if ext != "SCI" else "data"),
                                              dtype=_DTYPES.get(plane, np.float32))
                  for ext, plane in _PLANES.items()}
        wavelength = slit.wavelength if slit.hasattr("wavelength") else None
        if wavelength is None or np.shape(wavelength) != shape or not np.any(wavelength):
            y, x = np.indices(shape, dtype=np.float64)
            wavelength = slit.meta.wcs(x, y)[2]
        planes["wavelength"] = np.asarray(wavelength, dtype=np.float64)
        planes["ra"] = np.full(shape, float(meta.get("source_ra", np.nan)))
        planes["dec"] = np.full(shape, float(meta.get("source_dec", np.nan)))
        planes["slit_y"] = np.full(shape, np.nan)
        meta = {k: v for k, v in meta.items() if not k.startswith("meta.wcs.")}
        meta["slit_index"] = index
        meta["dispersion_direction"] = meta.get("meta.wcsinfo.dispersion_direction")
        order = meta.get("meta.wcsinfo.spectral_order")
        cutouts.append(Cutout(source_key(meta), name, cutout_name(meta.get("name", index), order), meta, planes))
    return cutouts
