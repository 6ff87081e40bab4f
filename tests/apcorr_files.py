"""Write jwst-format APCORR reference files for tests (stdatamodels APCORR models)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np


def write_apcorr(model_cls, rows: np.ndarray, path: Path, sizeunit: str = "pixels") -> Path:  # type: ignore[no-untyped-def]
    """Save ``rows`` as the APCORR table of a ``model_cls`` file at ``path``."""
    model = model_cls()
    model.apcorr_table = rows
    model.sizeunit = sizeunit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stdatamodels warns about the missing reference-file header keys
        model.save(path)
    return path


def apcorr_spec(exp_type: str):  # type: ignore[no-untyped-def]
    """The APCORR model spec of the mode serving ``exp_type``."""
    from spec3c.modes.registry import mode_for

    return mode_for(exp_type).extraction.apcorr
