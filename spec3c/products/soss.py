"""The NIRISS SOSS products, as calwebb_spec3 (jwst 3.0.0) writes them.

* ``<product>_x1d.fits``: a TSOMultiSpecModel: ``INT_TIMES`` (the input's),
  then one ``EXTRACT1D`` table per spectral order (``SPORDER``) with one row
  per integration (``INT_NUM``, ``N_ALONGDISP``, ``SEGMENT``, the
  integration's ``MJD-*``/``TDB-*`` times) and vector columns: WAVELENGTH,
  FLUX, FLUX_ERROR and NPIXELS from the extraction, BACKGROUND and every
  other column 0, DQ 0 (as the reference's SOSS extraction leaves them);
  units ``um`` and ``DN/s`` (photom not applied);
* ``<product>_c1d.fits``: a MultiCombinedSpecModel, one ``COMBINE1D`` table
  per order, every integration combined.

Primary headers: the exposure's metadata, the association, the step
statuses, the SOSS extraction parameters (``SOSSWDTH``, ``OVERSAMP``,
``THRESHLD``) and the reference files (``R_PSTSOS``, ``R_SPPROF``,
``R_SPKERN``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from stdatamodels.jwst import datamodels as dm

from ..modes.soss.stored import SOSS_SOURCE, stored_spectra
from ..naming import ProductNaming, product_filename
from ..results import C1D, STATUS, CombinedResult
from ..store import ExposureRecord, Store
from .c1d import write_c1d
from .fits_io import atomic_save
from .meta import merge_tree, step_statuses, top_level_meta

__all__ = ["soss_x1d_model", "write_soss_c1d", "write_soss_x1d"]

#: vector columns filled from the extraction; the others stay 0 (times the photom conversion)
_EXTRACTED = ("WAVELENGTH", "FLUX", "FLUX_ERROR", "NPIXELS", "BACKGROUND")
_UNITS = {"WAVELENGTH": "um", "FLUX": "DN/s", "FLUX_ERROR": "DN/s", "BACKGROUND": "DN/s"}
#: columns photom scales by the conversion (their unit MJy) and by its square (MJy^2), beyond _EXTRACTED's
_CALIBRATED = {"BKGD_ERROR": 1, "FLUX_VAR_POISSON": 2, "FLUX_VAR_RNOISE": 2, "FLUX_VAR_FLAT": 2,
               "BKGD_VAR_POISSON": 2, "BKGD_VAR_RNOISE": 2, "BKGD_VAR_FLAT": 2}
_CALIBRATED_UNITS = {"FLUX": "MJy", "FLUX_ERROR": "MJy", "BACKGROUND": "MJy",
                     **{c: "MJy" if p == 1 else "MJy^2" for c, p in _CALIBRATED.items()}}
#: (x1d time column, INT_TIMES column)
_TIMES = (("MJD-BEG", "int_start_MJD_UTC"), ("MJD-AVG", "int_mid_MJD_UTC"), ("MJD-END", "int_end_MJD_UTC"),
          ("TDB-BEG", "int_start_BJD_TDB"), ("TDB-MID", "int_mid_BJD_TDB"), ("TDB-END", "int_end_BJD_TDB"))
_REFERENCES = {"pastasoss": "override_pastasoss", "specprofile": "override_specprofile",
               "speckernel": "override_speckernel"}


def _int_times(record: ExposureRecord) -> np.ndarray | None:
    rows = record.meta.get("int_times")
    if not rows:
        return None
    table = np.zeros(len(rows), dtype=dm.CubeModel().get_dtype("int_times"))
    for k, row in enumerate(rows):
        table[k] = tuple(row)
    return table


def _time_columns(record: ExposureRecord, n: int) -> dict[str, np.ndarray]:
    """Each integration's times from INT_TIMES (NaN without the table or its row)."""
    out = {col: np.full(n, np.nan) for col, _ in _TIMES}
    table = _int_times(record)
    if table is None:
        return out
    start = int(record.meta.get("meta.exposure.integration_start") or 1)
    rows = {int(num): k for k, num in enumerate(table["integration_number"])}
    for i in range(n):
        k = rows.get(start + i)
        if k is not None:
            for col, src in _TIMES:
                out[col][i] = table[src][k]
    return out


def _order_table(arrays: Mapping[str, np.ndarray], order: int, record: ExposureRecord) -> np.ndarray:
    flux = arrays[f"{order}.FLUX"]
    n_int, n = flux.shape
    base = dm.TSOSpecModel().get_dtype("spec_table")
    dtype = [(name, base[name], (n,)) if name in _VECTOR else (name, base[name]) for name in base.names]
    table = np.zeros(n_int, dtype=dtype)
    table["INT_NUM"] = np.arange(1, n_int + 1)
    for name in _EXTRACTED:
        value = arrays.get(f"{order}.{name}")
        if value is not None:
            table[name] = np.broadcast_to(value, (n_int, n))
    conversion = arrays.get(f"{order}.CONVERSION")
    if conversion is not None:
        for name, power in _CALIBRATED.items():
            table[name] = table[name] * conversion[None, :] ** power
    table["N_ALONGDISP"] = n
    table["SEGMENT"] = int(record.meta.get("meta.exposure.segment_number") or 1)
    for col, values in _time_columns(record, n_int).items():
        table[col] = values
    return table


_VECTOR = ("WAVELENGTH", "FLUX", "FLUX_ERROR", "FLUX_VAR_POISSON", "FLUX_VAR_RNOISE", "FLUX_VAR_FLAT",
           "SURF_BRIGHT", "SB_ERROR", "SB_VAR_POISSON", "SB_VAR_RNOISE", "SB_VAR_FLAT", "DQ", "BACKGROUND",
           "BKGD_ERROR", "BKGD_VAR_POISSON", "BKGD_VAR_RNOISE", "BKGD_VAR_FLAT", "NPIXELS")


def _primary(record: ExposureRecord, naming: ProductNaming, status: Mapping[str, Any],
             extraction: Mapping[str, Any] | None) -> dict[str, Any]:
    tree = top_level_meta(record)
    tree.pop("int_times", None)
    tree.get("exposure", {}).pop("effective_exposure_time", None)  # XPOSURE: a SCI-extension keyword
    asn = {k: v for k, v in (("table_name", naming.asn_table_name), ("pool_name", naming.asn_pool)) if v}
    if asn:
        tree["asn"] = asn
    steps = step_statuses(status)
    tree.setdefault("cal_step", {}).update({"extract_1d": steps.get("extract_1d", "SKIPPED"),
                                            "photom": steps.get("photom", "SKIPPED"),
                                            "pixel_replace": steps.get("pixel_replace", "SKIPPED")})
    params = status.get("params", {}).get("extract_1d", {})
    tree["ref_file"] = {ref: {"name": str(params.get(p) or "N/A")} for ref, p in _REFERENCES.items()}
    photom = status.get("params", {}).get("photom", {})
    tree["ref_file"].update(photom={"name": str(photom.get("override_photom") or "N/A")},
                            area={"name": str(photom.get("override_area") or "N/A")})
    if extraction is not None:
        soss = {"width": float(extraction["width"]), "apply_decontamination": bool(extraction["decontaminated"]),
                "oversampling": int(extraction["n_os"]), "threshold": float(extraction["threshold"]),
                "bad_pix": str(extraction["bad_pix"])}
        if extraction.get("tikfac") is not None:
            soss["tikhonov_factor"] = float(extraction["tikfac"])
        tree["soss_extract1d"] = soss
    return tree


def soss_x1d_model(arrays: Mapping[str, np.ndarray], extraction: Mapping[str, Any], record: ExposureRecord,
                   tree: Mapping[str, Any]) -> Any:
    """The TSOMultiSpecModel of a stored SOSS extraction (see the module docstring)."""
    model = dm.TSOMultiSpecModel()
    model.instance["meta"] = merge_tree(dict(model.instance.get("meta", {})), tree)
    table = _int_times(record)
    if table is not None:
        model.int_times = table
    for order in extraction["orders"]:
        spec = dm.TSOSpecModel(spec_table=_order_table(arrays, int(order), record))
        units = {**_UNITS, **(_CALIBRATED_UNITS if f"{order}.CONVERSION" in arrays else {})}
        for name, unit in [*units.items(), *((col, "d") for col, _ in _TIMES)]:
            spec.spec_table.columns[name].unit = unit
        spec.spectral_order = int(order)
        model.spec.append(spec)
    return model


def _record(store: Store, extraction: Mapping[str, Any]) -> ExposureRecord:
    return next(r for r in store.list_exposures() if r.name == extraction["exposure"])


def _status(store: Store) -> dict[str, Any]:
    try:
        return store.get_result(SOSS_SOURCE, STATUS)[1]
    except KeyError:
        return {}


def write_soss_x1d(store: Store, naming: ProductNaming, out_dir: str | os.PathLike[str],
                   sources: Sequence[str] | None = None) -> list[Path]:
    """Write ``<product>_x1d.fits`` (nothing when extract_1d did not run)."""
    try:
        arrays, extraction = stored_spectra(store)
    except KeyError:
        return []
    record = _record(store, extraction)
    model = soss_x1d_model(arrays, extraction, record, _primary(record, naming, _status(store), extraction))
    with model:
        return [atomic_save(model, Path(out_dir) / product_filename(naming.template, "x1d"))]


def write_soss_c1d(store: Store, naming: ProductNaming, out_dir: str | os.PathLike[str],
                   sources: Sequence[str] | None = None) -> list[Path]:
    """Write ``<product>_c1d.fits`` (nothing when combine_1d did not run)."""
    if (SOSS_SOURCE, C1D) not in store.list_results(SOSS_SOURCE):
        return []
    combined = CombinedResult.load(store, SOSS_SOURCE)
    _, extraction = stored_spectra(store)
    record = _record(store, extraction)
    tree = _primary(record, naming, _status(store), extraction)
    meta = {"instrument": record.meta.get("meta.instrument.name"), "exp_type": record.meta.get("meta.exposure.type"),
            "tree": tree, "sb_unit": None, "spec": combined.spec_meta}
    return [write_c1d(combined.orders, meta, Path(out_dir) / product_filename(naming.template, "c1d"))]
