"""Write simulated stage-2 ``_x1d.fits`` spectra (the background members of a spec3 ASN)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from stdatamodels.jwst import datamodels as dm

from ..products.writers import spec_table
from ..results import Spectrum1D

__all__ = ["write_spec2_x1d"]


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
            columns = {name.upper(): np.asarray(v) for name, v in spectrum["columns"].items()}
            spec.spec_table = spec_table(Spectrum1D(columns, {}))  # spectable layout and units
            for key, value in spectrum.items():
                if key != "columns":
                    setattr(spec, key, value)
            model.spec.append(spec)
        model.meta.cal_step.extract_1d = "COMPLETE"
        model.save(path)
