"""Write simulated stage-2 ``_x1d.fits`` spectra (the background members of a spec3 ASN)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from stdatamodels.jwst import datamodels as dm

from ..results import X1D_COLUMNS

__all__ = ["write_spec2_x1d"]

#: spectable columns a spec2 x1d carries, filled with 0 unless given
_FLOAT_COLUMNS = (
    "FLUX", "FLUX_ERROR", "FLUX_VAR_POISSON", "FLUX_VAR_RNOISE", "FLUX_VAR_FLAT",
    "SURF_BRIGHT", "SB_ERROR", "SB_VAR_POISSON", "SB_VAR_RNOISE", "SB_VAR_FLAT",
    "BACKGROUND", "BKGD_ERROR", "BKGD_VAR_POISSON", "BKGD_VAR_RNOISE", "BKGD_VAR_FLAT", "NPIXELS",
)


def _table(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    cols = {k.upper(): np.asarray(v) for k, v in columns.items()}
    wavelength = cols["WAVELENGTH"].astype(np.float64)
    table = np.zeros(len(wavelength), dtype=list(X1D_COLUMNS.items()))
    table["WAVELENGTH"] = wavelength
    for name in (*_FLOAT_COLUMNS, "DQ"):
        if name in cols:
            table[name] = cols[name]
    return table


def _unit(column: str) -> str | None:
    if column == "WAVELENGTH":
        return "um"
    if column.startswith("FLUX"):
        return "Jy"
    if column.startswith(("SURF_BRIGHT", "SB_", "BACKGROUND", "BKGD_")):
        return "MJy/sr"
    return None


def write_spec2_x1d(
    path: Path,
    meta: Mapping[str, Any],
    spectra: Sequence[Mapping[str, Any]],
) -> None:
    """Write a MultiSpecModel ``_x1d.fits`` as calwebb_spec2's extract_1d would.

    Parameters
    ----------
    path : Path
        Output file.
    meta : mapping
        The exposure's ``meta`` tree (as a nested dict, e.g. the cal file's);
        ``filename`` is replaced by ``path.name``.
    spectra : sequence of mapping
        One per spectrum: ``columns`` (WAVELENGTH plus any spectable columns,
        case-insensitive) and optional spec attributes (``name``,
        ``source_type``, ``source_id``, ``extraction_xstart`` ...).
    """
    with dm.MultiSpecModel() as model:
        model.meta.instance.update({k: v for k, v in meta.items() if k not in ("wcs", "filename")})
        model.meta.filename = path.name
        for spectrum in spectra:
            spec = dm.SpecModel()
            spec.spec_table = _table(spectrum["columns"])
            for column in spec.spec_table.columns:
                column.unit = _unit(column.name)
            for key, value in spectrum.items():
                if key != "columns":
                    setattr(spec, key, value)
            model.spec.append(spec)
        model.meta.cal_step.extract_1d = "COMPLETE"
        model.save(path)
