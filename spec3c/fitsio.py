"""Linear-time reading and writing of JWST files with thousands of extensions.

stdatamodels finds each HDU by ``hdulist[(name, ver)]``, a linear scan that
re-parses headers, and repeats it for every *missing* optional extension, so
opening a 200-slit MultiSlit file costs O(slits²) (42 s measured for 200
slits x 10 planes; the reference pipeline pays this too, jwst #9074).  Inside
:func:`indexed_hdus` HDUs are looked up in a dict built once per HDUList.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from astropy.io import fits
from stdatamodels import fits_support

_LOCK = threading.RLock()


def _index(indexes: dict[int, dict[tuple[str, int], Any]], hdulist: Any) -> dict[tuple[str, int], Any]:
    key = id(hdulist)
    if key not in indexes:
        indexes[key] = {}
        for hdu in hdulist:
            indexes[key].setdefault((hdu.name.upper(), int(hdu.ver)), hdu)
    return indexes[key]


@contextlib.contextmanager
def indexed_hdus() -> Iterator[None]:
    """Patch stdatamodels' HDU lookup with an index for the duration of the block."""
    with _LOCK:
        orig_get, orig_make = fits_support.get_hdu, fits_support._make_hdu
        indexes: dict[int, dict[tuple[str, int], Any]] = {}

        def get_hdu(hdulist, hdu_name, index=None, _cache=None):  # type: ignore[no-untyped-def]
            if not isinstance(hdu_name, str):
                return orig_get(hdulist, hdu_name, index=index, _cache=_cache)
            pair = (hdu_name.upper(), 1 if index is None else index + 1)
            hdu = _index(indexes, hdulist).get(pair)
            if hdu is None:
                raise AttributeError(f"Property missing because FITS file has no {pair!r} HDU")
            return hdu

        def make_hdu(hdulist, hdu_name, index=None, hdu_type=None, value=None):  # type: ignore[no-untyped-def]
            table = _index(indexes, hdulist)
            hdu = orig_make(hdulist, hdu_name, index=index, hdu_type=hdu_type, value=value)
            if isinstance(hdu_name, str):
                table[(hdu_name.upper(), 1 if index is None else index + 1)] = hdu
            return hdu

        def index_of(hdulist, key):  # type: ignore[no-untyped-def]
            # stdatamodels maps array blocks with hdulist[(name, ver)] directly
            if isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str):
                hdu = _index(indexes, hdulist).get((key[0].upper(), int(key[1])))
                if hdu is not None:
                    return orig_index_of(hdulist, hdu)
            return orig_index_of(hdulist, key)

        orig_index_of = fits.HDUList.index_of
        fits_support.get_hdu, fits_support._make_hdu = get_hdu, make_hdu
        fits.HDUList.index_of = index_of
        try:
            yield
        finally:
            fits_support.get_hdu, fits_support._make_hdu = orig_get, orig_make
            fits.HDUList.index_of = orig_index_of


def _no_validation(*args: object, **kwargs: object) -> None:
    return None


@contextlib.contextmanager
def asdf_write_unvalidated() -> Iterator[None]:
    """Skip asdf's schema validation of trees being written (80 % of writing a gwcs).

    Only for trees already validated (inputs read from valid files, products
    validated against their datamodel schema).  asdf has no public switch for
    this; without its private hook the block simply validates.
    """
    import asdf.yamlutil

    hook = getattr(asdf.yamlutil, "schema", None)
    if hook is None or not hasattr(hook, "validate"):
        yield
        return
    with _LOCK:  # (not unittest.mock: importing it costs a start ~15 ms)
        validate = hook.validate
        hook.validate = _no_validation
        try:
            yield
        finally:
            hook.validate = validate
