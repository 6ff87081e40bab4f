"""photom of extracted SOSS spectra (calwebb_spec3 runs it between extract_1d and combine_1d).

As ``jwst/photom/photom.py`` (``DataSet.calc_niriss``, ``photom_io``,
``create_1d_conversion``) does for a TSOMultiSpecModel: per order, the
PHOTOM table row matching the exposure's FILTER, PUPIL and the order
(``NisSossPhotomModel``) gives ``conversion(lambda) = PHOTMJ x RELRESPONSE(lambda)``
(linear interpolation on the row's first NELEM points; 0 outside them, as jwst 3.0.0
sets it — later versions give NaN);
FLUX, FLUX_ERROR and BACKGROUND are multiplied by it, their unit becomes
MJy.  An order without a matching row stops the calibration there (the
remaining orders stay in DN/s), as in the reference.  Time-dependence
coefficients (``TIMECOEFF_*`` tables) are not implemented: such a file is
refused while ``apply_time_correction`` is true.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import InputError

__all__ = ["PhotomRow", "calibrate", "read_soss_photom", "response"]

log = logging.getLogger("spec3c.step.photom")

#: the calibrated flux unit of SOSS spectra (the reference's)
FLUX_UNIT = "MJy"
_TIME_TABLES = ("timecoeff_linear", "timecoeff_exponential", "timecoeff_powerlaw")


@dataclass(frozen=True)
class PhotomRow:
    """One PHOTOM row: the scalar conversion and the relative response against wavelength (um)."""

    photmj: float
    wavelength: np.ndarray
    relresponse: np.ndarray


def read_soss_photom(path: str, filter_name: str, pupil: str, orders: list[int],
                     apply_time_correction: bool) -> dict[int, PhotomRow | None]:
    """The row of each order (None: no row matches; the orders after it are not calibrated)."""
    from stdatamodels.jwst import datamodels as dm  # noqa: PLC0415

    try:
        model = dm.NisSossPhotomModel(path)
    except Exception as exc:  # noqa: BLE001 - any failure to read is the file's problem
        raise InputError(path, f"not a readable NIRISS SOSS PHOTOM reference file: {exc}") from exc
    with model:
        if apply_time_correction and any(model.hasattr(t) and model[t] is not None and len(model[t])
                                         for t in _TIME_TABLES):
            raise InputError(path, "time-dependence coefficients are not implemented by spec3c; set "
                                   "--steps.photom.apply_time_correction=false to calibrate without them")
        table = model.phot_table
        filters = np.array([str(v).strip().upper() for v in table["filter"]])
        pupils = np.array([str(v).strip().upper() for v in table["pupil"]])
        out: dict[int, PhotomRow | None] = {}
        for order in orders:
            rows = np.nonzero((filters == filter_name.upper()) & (pupils == pupil.upper())
                              & (np.asarray(table["order"]) == order))[0]
            if len(rows) > 1:
                raise InputError(path, f"{len(rows)} PHOTOM rows match {filter_name}/{pupil} order {order}")
            out[order] = None if len(rows) == 0 else _row(table[int(rows[0])])
        return out


def _row(row: Any) -> PhotomRow:
    waves = np.array(row["wavelength"], dtype=np.float64)
    resp = np.array(row["relresponse"], dtype=np.float64)
    nelem = int(row["nelem"]) if row["nelem"] is not None else len(waves)
    waves, resp = waves[:nelem], resp[:nelem]
    if not np.all(np.diff(waves) > 0):
        order = np.argsort(waves)
        waves, resp = waves[order], resp[order]
    if 0.0 < waves.max() < 1.0e-4:  # metres
        waves = waves * 1.0e6
    return PhotomRow(float(row["photmj"]), waves, resp)


def response(row: PhotomRow, wavelength: np.ndarray) -> np.ndarray:
    """The conversion (MJy per DN/s) at ``wavelength``; 0 outside the row's wavelengths or where NaN."""
    wl = np.asarray(wavelength, dtype=np.float64)
    conv = np.interp(np.where(np.isnan(wl), -1.0, wl), row.wavelength, row.relresponse, left=0.0, right=0.0)
    return row.photmj * conv


def calibrate(rows: dict[int, PhotomRow | None], wavelength: dict[int, np.ndarray],
              columns: dict[int, dict[str, np.ndarray]]) -> list[int]:
    """Multiply each order's ``columns`` (FLUX, FLUX_ERROR, BACKGROUND; ``(nints, n)``) in place; the orders
    calibrated (those before the first order without a PHOTOM row)."""
    done = []
    for order, row in rows.items():
        if row is None:
            log.warning("PHOTOM: no row for order %d: it and the following orders stay uncalibrated", order)
            break
        conv = response(row, wavelength[order])
        for values in columns[order].values():
            values *= conv[None, :]
        done.append(order)
    return done
