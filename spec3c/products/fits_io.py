"""Writing datamodels to FITS: atomically, validated, and fast with many HDUs."""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

from stdatamodels.validate import ValidationWarning

from ..fitsio import asdf_write_unvalidated, indexed_hdus

__all__ = ["atomic_save", "validate_strict"]


def validate_strict(model: Any) -> None:
    """Validate ``model`` against its schema; a ValidationWarning becomes an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", ValidationWarning)
        model.validate()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_save(model: Any, path: str | os.PathLike[str], *, fast: bool = False) -> Path:
    """Validate ``model`` and write it to ``path`` (FITS) all at once.

    The file is written to a hidden temporary file in the destination folder
    and renamed over ``path`` only when complete, so readers never see a
    partial product and a failure leaves no file behind (an existing file at
    ``path`` is kept).  ``meta.filename`` is set to the final file name.

    Parameters
    ----------
    model : stdatamodels DataModel
    path : path-like
        Destination; must end in ``.fits``.
    fast : bool
        Index HDU lookups (:func:`spec3c.fitsio.indexed_hdus`; for models with many extensions).

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    if path.suffix != ".fits":
        raise ValueError(f"{path}: products are FITS files (.fits)")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.meta.filename = path.name
    validate_strict(model)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            # a file object (not a path) keeps meta.filename = the final name
            # validated just above against the datamodel schema: asdf need not re-validate
            with indexed_hdus() if fast else contextlib.nullcontext(), asdf_write_unvalidated():
                model.to_fits(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; products get the usual mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
