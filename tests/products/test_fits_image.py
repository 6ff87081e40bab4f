"""spec3c.products.fits_image: an image extension's bytes are the ones astropy writes for the
same operations (the direct writer's file-for-file test covers the products; these cover the
rules one at a time)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io import fits

from spec3c.products.fits_image import (
    ImageExtension,
    TableExtension,
    Unwritable,
    fits_table_dtype,
    header_bytes,
    padding,
)


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


def _astropy_table_bytes(table: np.ndarray, name: str) -> bytes:
    """A table HDU as stdatamodels makes it (BinTableHDU(None, name), data, ver) and astropy writes it,
    the data a FITS_rec of the table's columns (astropy's own conversion of text to ASCII)."""
    hdu = fits.BinTableHDU(None, name=name)
    hdu.data = fits.BinTableHDU.from_columns(table).data
    hdu.ver = 1
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buffer)
    return buffer.getvalue()[2880:]


@pytest.mark.parametrize("rows", [1, 3, 24])
def test_table_as_astropy_writes_it(rows: int) -> None:
    """Text (str and bytes, empty and NaN-like values), float and signed integer columns, in
    either byte order: the header block and the rows are astropy's."""
    rng = np.random.default_rng(rows)
    words = np.array(["", "nan", "NRS_MSASPEC", "a b"])[rng.integers(0, 4, rows)]
    table = np.rec.fromarrays(
        [words, words.astype("S"), rng.normal(size=rows), rng.normal(size=rows).astype(">f4"),
         rng.integers(-5, 5, rows), rng.integers(-5, 5, rows).astype(">i4"), rng.integers(-5, 5, rows).astype(np.int16)],
        names=["TEXT", "BYTES", "D", "E", "K", "J", "I"])
    hdu = TableExtension(None, name="hdrtab")
    hdu.data = table
    hdu.ver = 1
    data = hdu.data_bytes()
    assert header_bytes(hdu) + bytes(data) + padding(len(data)) == _astropy_table_bytes(table, "HDRTAB")
    # the ASDF tree describes the array as stdatamodels describes the FITS_rec (big-endian, as written)
    from asdf.tags.core.ndarray import numpy_dtype_to_asdf_datatype

    assert hdu.data is not None
    assert (numpy_dtype_to_asdf_datatype(hdu.data.dtype, include_byteorder=True, override_byteorder="big")
            == numpy_dtype_to_asdf_datatype(fits.BinTableHDU.from_columns(table).data.dtype, include_byteorder=True,
                                            override_byteorder="big"))


def test_tables_not_modelled_are_left_to_astropy() -> None:
    """Cells of several values, booleans, unsigned or 8-bit integers, FITS_rec (its columns may carry
    units or scaling), and data set twice."""
    plain = np.rec.fromarrays([np.arange(3.0)], names=["A"])
    assert TableExtension.takes(plain) and fits_table_dtype(plain.dtype) is not None
    for dtype in ([("A", "f8", (2,))], [("A", "?")], [("A", "u2")], [("A", "i1")]):
        assert not TableExtension.takes(np.zeros(2, dtype=dtype))
    assert not TableExtension.takes(fits.BinTableHDU.from_columns(plain).data)
    hdu = TableExtension(None, name="T")
    hdu.data = plain
    with pytest.raises(Unwritable):
        hdu.data = plain
