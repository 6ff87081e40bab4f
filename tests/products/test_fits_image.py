"""spec3c.products.fits_image: an image extension's bytes are the ones astropy writes for the
same operations (the direct writer's file-for-file test covers the products; these cover the
rules one at a time)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io import fits

from spec3c.products.fits_image import ImageExtension, Unwritable, header_bytes, padding


def _astropy_bytes(hdu: fits.ImageHDU) -> bytes:
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buffer)
    return buffer.getvalue()[2880:]


def _ours(ext: ImageExtension) -> bytes:
    data = bytes(ext.data_bytes())
    return header_bytes(ext) + data + padding(len(data))


@pytest.mark.parametrize("dtype, values", [
    ("<u4", [0, 1, 513, 2**31 + 5, 2**32 - 1]), (">u4", [3, 2**32 - 1]), ("u2", [0, 1, 40000]),
    ("u1", [0, 255]), ("i1", [-128, 0, 127]), ("i2", [-3, 300]), ("i4", [-5, 2**30]), ("i8", [-(2**62), 7]),
    ("u8", [0, 2**64 - 1]), ("<f4", [1.5, -2.0, np.nan]), (">f4", [np.inf, 0.0]), ("f8", [1e300, -0.0]),
])
def test_data_and_header_as_astropy_writes_them(dtype: str, values: list[float]) -> None:
    array = np.array([values, values], dtype=dtype)
    ours, theirs = ImageExtension("dq"), fits.ImageHDU(None, name="dq")
    for hdu in (ours, theirs):
        hdu.ver = 3
        hdu.header.append(("BUNIT", "DN", "units"), end=True)
        hdu.data = array
    assert _ours(ours) == _astropy_bytes(theirs)
    assert str(ours.header) == str(theirs.header)
    assert (ours.name, ours.ver) == (theirs.name, theirs.ver) == ("DQ", 3)


def test_card_placement_and_blank_reuse_as_astropy() -> None:
    """Section titles appended at the end; a later keyword goes before the trailing commentary and
    takes the place of a trailing blank card; existing keywords are updated in place."""
    ours, theirs = ImageExtension("SCI"), fits.ImageHDU(None, name="SCI")
    long_text = "a long string value " * 6
    for hdu in (ours, theirs):
        hdu.header.append(("XPOSURE", 2.5, "exposure"), end=True)
        for card in ((" ", ""), (" ", "Section title"), (" ", "")):
            hdu.header.append(card, end=True)
        hdu.header.append(("SRCNAME", long_text, "long: CONTINUE cards"), end=True)
        hdu.header.append((" ", ""), end=True)
        hdu.header.append((" ", ""), end=True)
        hdu.ver = 1  # new: inserted after SRCNAME, a trailing blank reused
        hdu.header["XPOSURE"] = (3.0, "exposure again")
        hdu.header["NEWKEY"] = True
        hdu.ver = 2  # existing: updated where it is
        hdu.data = np.zeros((2, 3), np.float32)
    assert str(ours.header) == str(theirs.header)
    assert _ours(ours) == _astropy_bytes(theirs)


def test_what_is_not_modelled_is_refused() -> None:
    ext = ImageExtension("SCI")
    ext.data = np.zeros(3, np.float32)
    with pytest.raises(Unwritable):
        ext.data = np.ones(3, np.float32)
    with pytest.raises(Unwritable):
        ImageExtension("SCI").data = np.zeros(3, bool)
    with pytest.raises(Unwritable):
        ImageExtension("SCI").header["HISTORY"] = "a commentary card"
