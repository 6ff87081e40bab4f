"""Writing datamodels to FITS: atomically, validated, and fast with many HDUs."""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asdf
from stdatamodels import fits_support
from stdatamodels.validate import ValidationWarning

__all__ = ["atomic_save", "fast_save", "validate_strict"]


@contextlib.contextmanager
def fast_save() -> Iterator[None]:
    """Make ``DataModel.save`` linear in the number of extensions.

    stdatamodels finds every HDU by a linear scan of the HDUList that re-parses
    headers (quadratic in the number of slits or exposures: minutes for a few
    hundred), so HDUs are indexed by ``(EXTNAME, EXTVER)`` while the file is
    written.  The ASDF library's second validation of the tree on write
    (stdatamodels has already validated it against the datamodel schema) is
    switched off.  Not thread-safe: it patches module attributes for the
    duration of the block.
    """
    orig_get, orig_make = fits_support.get_hdu, fits_support._make_hdu
    indexes: dict[int, dict[tuple[str, int], Any]] = {}

    def index_of(hdulist: Any) -> dict[tuple[str, int], Any]:
        if id(hdulist) not in indexes:
            indexes[id(hdulist)] = {(h.name.upper(), h.ver): h for h in hdulist}
        return indexes[id(hdulist)]

    def get_hdu(hdulist, hdu_name, index=None, _cache=None):  # type: ignore[no-untyped-def]
        if not isinstance(hdu_name, str):
            return orig_get(hdulist, hdu_name, index=index, _cache=_cache)
        pair = (hdu_name.upper(), 1 if index is None else index + 1)
        hdu = index_of(hdulist).get(pair)
        if hdu is None:
            raise AttributeError(f"Property missing because FITS file has no {pair!r} HDU")
        return hdu

    def make_hdu(hdulist, hdu_name, index=None, hdu_type=None, value=None):  # type: ignore[no-untyped-def]
        idx = index_of(hdulist)
        hdu = orig_make(hdulist, hdu_name, index=index, hdu_type=hdu_type, value=value)
        if isinstance(hdu_name, str):
            idx[(hdu_name.upper(), 1 if index is None else index + 1)] = hdu
        return hdu

    fits_support.get_hdu, fits_support._make_hdu = get_hdu, make_hdu
    try:
        with asdf.config_context() as cfg:
            cfg.validate_on_write = False
            yield
    finally:
        fits_support.get_hdu, fits_support._make_hdu = orig_get, orig_make


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
        Use :func:`fast_save` (for models with many extensions).

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
            with fast_save() if fast else contextlib.nullcontext():
                model.to_fits(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; products get the usual mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
