"""gwcs objects to and from ASDF bytes (how the store keeps every input and output WCS)."""

from __future__ import annotations

import contextlib
import functools
import io

import asdf

from .asdf_plugins import config_context
from .fitsio import asdf_write_unvalidated


def wcs_to_asdf(wcs, validate: bool = False) -> bytes:  # type: ignore[no-untyped-def]
    """Serialise a gwcs object as the bytes of an ASDF file (tree key ``wcs``).

    The objects were validated when their input file was read, so asdf's
    validation on write is skipped unless ``validate`` (5x faster).
    """
    buf = io.BytesIO()
    with contextlib.nullcontext() if validate else asdf_write_unvalidated():
        # array blocks zlib-compressed: an IFU WCS holds its slice map (a NIRSpec one: 35 MB -> 1.2 MB)
        asdf.AsdfFile({"wcs": wcs}).write_to(buf, all_array_compression="zlib")
    return buf.getvalue()


@functools.lru_cache(maxsize=64)
def wcs_from_asdf(blob: bytes):  # type: ignore[no-untyped-def]
    """Inverse of :func:`wcs_to_asdf` (cached: products of one source share their inputs' WCS).

    The returned object is shared between callers; treat it as read-only.  The bytes are
    :func:`wcs_to_asdf`'s, of objects validated when their file was read: they are not validated
    again (40 % of the reading time of a NIRSpec IFU WCS).
    """
    with config_context() as config:
        config.validate_on_read = False
        with asdf.open(io.BytesIO(blob), lazy_load=False, memmap=False) as af:
            return af.tree["wcs"]
