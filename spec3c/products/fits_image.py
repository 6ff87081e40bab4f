"""Image (and plain binary table) extensions built as astropy builds them, written without
astropy's per-card machinery.

The direct writer (:mod:`.direct_fits`) makes a 24-exposure MOS ``_cal`` of
about 220 image extensions.  astropy spends ~1 ms making each ImageHDU and
setting its data, then formats every card again to hash and write the
headers: more than half of the time of writing such a product.  Here an
image extension is a list of ``[keyword, value, comment]`` that follows
astropy's rules for what the writer does to it -- the cards a new
``ImageHDU(None, name=...)`` has, ``ver``, ``data`` (BITPIX, NAXISn,
BSCALE/BZERO of unsigned data), ``header[key] = ...`` and
``header.append(..., end=...)`` with astropy's placement of new cards and
its reuse of trailing blank cards -- and each distinct card is formatted
once per process by astropy's :class:`~astropy.io.fits.Card`.  The bytes are
astropy's: tests/products/test_direct_fits.py compares the files with
stdatamodels' header block for header block.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Hashable
from typing import Any, cast

import numpy as np
from astropy.io import fits

__all__ = ["ImageExtension", "TableExtension", "Unwritable", "fits_table_dtype", "header_bytes", "padding"]

_BLOCK = 2880
_COMMENTARY = ("", "COMMENT", "HISTORY")
#: dtype -> BITPIX and the BZERO of astropy's pseudo-unsigned integers (None: not scaled)
_BITPIX = {"uint8": (8, None), "int8": (8, -128), "int16": (16, None), "uint16": (16, 32768),
           "int32": (32, None), "uint32": (32, 2**31), "int64": (64, None), "uint64": (64, 2**63),
           "float32": (-32, None), "float64": (-64, None)}


class Unwritable(Exception):  # noqa: N818 - a signal to fall back, not an error
    """Something astropy's ImageHDU does that this class does not model."""


@functools.lru_cache(maxsize=1 << 16)
def _card_image(keyword: str, value_type: Hashable, value: Any, comment: str | None) -> str:
    """astropy's image of one card (``value_type``: 1, 1.0 and True hash alike)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Card is too long": astropy truncates the comment, as on write
        return fits.Card(keyword, value, comment).image


def _is_blank(card: list[Any]) -> bool:
    return card[0] == "" and card[1] == "" and not card[2]


class _Header:
    """The cards of an image extension, with the Header methods the writer uses."""

    def __init__(self, cards: list[list[Any]]) -> None:
        self.cards = cards
        self._first: dict[str, list[Any]] = {}  # keyword -> its first card (commentary aside)
        for card in cards:
            self._note(card)

    def _note(self, card: list[Any]) -> None:
        """Index a new card (a keyword card repeated only ever goes after its first)."""
        if card[0] not in _COMMENTARY:
            self._first.setdefault(card[0], card)

    def _card(self, keyword: str) -> list[Any] | None:
        """The first card of ``keyword`` (astropy's ``header[keyword]``)."""
        keyword = keyword.strip().upper()
        if keyword in _COMMENTARY:
            return next((card for card in self.cards if card[0] == keyword), None)
        return self._first.get(keyword)

    def __contains__(self, keyword: str) -> bool:
        return self._card(keyword) is not None

    def get(self, keyword: str, default: Any = None) -> Any:
        card = self._card(keyword)
        return default if card is None else card[1]

    def items(self) -> list[tuple[str, Any]]:
        return [(card[0], card[1]) for card in self.cards]

    def __setitem__(self, keyword: str, value: Any) -> None:
        """astropy's ``header[keyword] = value`` or ``= (value, comment)``."""
        value, comment = value if isinstance(value, tuple) else (value, None)
        keyword = keyword.strip().upper()
        if keyword in _COMMENTARY:
            raise Unwritable("a commentary card set by keyword")
        card = self._card(keyword)
        if card is not None:
            card[1] = value
            if comment is not None:
                card[2] = comment
        else:
            self.append((keyword, value, "" if comment is None else comment))

    def append(self, card: tuple[Any, ...], end: bool = False) -> None:
        """astropy's ``Header.append``: a card that is not blank goes after the last card that is
        neither blank nor (for a keyword card) commentary, and takes the place of a trailing blank."""
        keyword, value, comment = (*card, "")[:3]
        new = [str(keyword).strip().upper(), value, comment]
        self._note(new)
        if _is_blank(new) or end:
            self.cards.append(new)
            return
        at = len(self.cards) - 1
        while at >= 0 and _is_blank(self.cards[at]):
            at -= 1
        if new[0] not in _COMMENTARY:
            while at >= 0 and self.cards[at][0] in _COMMENTARY:
                at -= 1
        self.cards.insert(at + 1, new)
        if _is_blank(self.cards[-1]):
            for _ in range(len(_image(new)) // 80):
                if not _is_blank(self.cards[-1]):
                    break
                del self.cards[-1]

    def set_after(self, keyword: str, value: Any, after: str, comment: str = "") -> None:
        """astropy's ``Header.set(keyword, value, after=after)`` for a keyword not in the header."""
        if keyword in self:
            raise Unwritable(f"{keyword} set again")
        card = self._card(after)
        if card is None:
            raise Unwritable(f"no {after} to put {keyword} after")
        at = next(i for i, other in enumerate(self.cards) if other is card)
        new = [keyword, value, comment]
        self.cards.insert(at + 1, new)
        self._note(new)

    def __str__(self) -> str:
        """The header block as astropy's ``str(header)``: the cards, END, blanks to 2880 bytes."""
        text = "".join(_image(card) for card in self.cards) + "END".ljust(80)
        return text + " " * (-len(text) % _BLOCK)


def _image(card: list[Any]) -> str:
    return _card_image(card[0], cast(Hashable, type(card[1])), card[1], card[2])


class ImageExtension:
    """An image extension as ``fits.ImageHDU(None, name=name)`` starts it."""

    def __init__(self, name: str) -> None:
        self.header = _Header([["XTENSION", "IMAGE", "Image extension"], ["BITPIX", 8, "array data type"],
                               ["NAXIS", 0, "number of array dimensions"], ["PCOUNT", 0, "number of parameters"],
                               ["GCOUNT", 1, "number of groups"], ["EXTNAME", name.upper(), "extension name"]])
        self._data: np.ndarray | None = None

    @property
    def name(self) -> str:
        return str(self.header.get("EXTNAME", ""))

    @property
    def ver(self) -> int:
        return int(self.header.get("EXTVER", 1))

    @ver.setter
    def ver(self, value: int) -> None:
        self.header["EXTVER"] = value if "EXTVER" in self.header else (value, "extension value")

    @property
    def data(self) -> np.ndarray | None:
        return self._data

    @data.setter
    def data(self, array: np.ndarray) -> None:
        """What astropy's ``ImageHDU.data = array`` does to the header of an extension without data."""
        if self._data is not None:
            raise Unwritable("data set twice")
        if array.dtype.name not in _BITPIX or not array.shape:
            raise Unwritable(f"image data of dtype {array.dtype}")
        bitpix, zero = _BITPIX[array.dtype.name]
        header = self.header
        if header.get("NAXIS") != 0 or any(k in header for k in ("BSCALE", "BZERO", "BLANK", "TFIELDS")):
            raise Unwritable("data set on a header that has axes or scaling")
        header["BITPIX"] = bitpix
        header["NAXIS"] = array.ndim
        for axis, size in enumerate(reversed(array.shape), start=1):
            header.set_after(f"NAXIS{axis}", size, after="NAXIS" if axis == 1 else f"NAXIS{axis - 1}")
        if zero is not None:
            header.set_after("BSCALE", 1, after="GCOUNT")
            header.set_after("BZERO", zero, after="BSCALE")
        self._data = array

    def data_bytes(self) -> memoryview:
        """The data's bytes as astropy writes them: big-endian, pseudo-unsigned integers offset by BZERO."""
        array = self._data
        if array is None:
            return memoryview(b"")
        _, zero = _BITPIX[array.dtype.name]
        values = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
        if zero is not None:  # x - BZERO in the signed type: the sign bit flipped
            unsigned = np.dtype(f"u{values.dtype.itemsize}")
            values = values.view(unsigned) ^ np.array(1 << (8 * unsigned.itemsize - 1), dtype=unsigned)
        big = values.astype(values.dtype.newbyteorder(">"))
        return big.data.cast("B")  # the bytes of the new array, not a copy


#: numpy kind and item size -> TFORM code of a one-value binary table column (astropy's)
_TFORM = {("f", 8): "D", ("f", 4): "E", ("i", 8): "K", ("i", 4): "J", ("i", 2): "I"}


def _tform(dtype: np.dtype) -> str | None:
    """The TFORM astropy gives a column of ``dtype`` (one value per cell), None if not modelled here."""
    if dtype.shape or dtype.names:
        return None
    if dtype.kind in "SU":
        size = dtype.itemsize // (4 if dtype.kind == "U" else 1)
        return f"{size}A" if size else None
    return _TFORM.get((dtype.kind, dtype.itemsize))


def fits_table_dtype(dtype: np.dtype) -> np.dtype | None:
    """The packed big-endian dtype (text as ASCII bytes) astropy writes a record array of ``dtype``
    in, as its FITS_rec holds it; None if a column is not modelled by :class:`TableExtension`."""
    if not dtype.names or any(_tform(dtype[name]) is None for name in dtype.names):
        return None
    fields: list[tuple[str, Any]] = []
    for name in dtype.names:
        field = dtype[name]
        if field.kind == "U":
            fields.append((name, f"S{field.itemsize // 4}"))
        else:
            fields.append((name, field.newbyteorder(">") if field.kind != "S" else field))
    return np.dtype(fields)


class TableExtension:
    """A binary table extension as ``fits.BinTableHDU(None, name=name)`` starts it, whose data is a
    plain record array of one-value text, float and signed integer columns (:func:`fits_table_dtype`):
    no units, scaling or multi-dimensional cells, which astropy's FITS_rec columns may carry."""

    def __init__(self, data: None = None, name: str = "") -> None:
        if data is not None:
            raise Unwritable("a table extension made with data")
        self.header = _Header([["XTENSION", "BINTABLE", "binary table extension"], ["BITPIX", 8, "array data type"],
                               ["NAXIS", 2, "number of array dimensions"], ["NAXIS1", 0, "length of dimension 1"],
                               ["NAXIS2", 0, "length of dimension 2"], ["PCOUNT", 0, "number of group parameters"],
                               ["GCOUNT", 1, "number of groups"], ["TFIELDS", 0, "number of table fields"],
                               ["EXTNAME", name.upper(), "extension name"]])
        self._data: np.ndarray | None = None

    name = ImageExtension.name
    ver = ImageExtension.ver

    @staticmethod
    def takes(array: Any) -> bool:
        """Whether ``array`` is data this class writes as astropy would."""
        return type(array) in (np.ndarray, np.recarray) and array.ndim == 1 and fits_table_dtype(array.dtype) is not None

    @property
    def data(self) -> np.ndarray | None:
        return self._data

    @data.setter
    def data(self, array: np.ndarray) -> None:
        """What astropy's ``BinTableHDU.data = array`` does to the header of an empty table."""
        dtype = fits_table_dtype(array.dtype) if self.takes(array) else None
        if self._data is not None or dtype is None:
            raise Unwritable("table data set twice, or of columns not modelled")
        if any(key.startswith(("TTYPE", "TFORM")) for key, _ in self.header.items()):
            raise Unwritable("table data set on a header with columns")
        header = self.header
        header["NAXIS1"] = dtype.itemsize
        header["NAXIS2"] = len(array)
        header["TFIELDS"] = len(dtype.names or ())
        after = "TFIELDS"
        for index, name in enumerate(dtype.names or (), start=1):
            header.set_after(f"TTYPE{index}", name, after=after)
            header.set_after(f"TFORM{index}", _tform(dtype[name]), after=f"TTYPE{index}")
            after = f"TFORM{index}"
        self._data = np.asarray(array, dtype=dtype)

    def data_bytes(self) -> memoryview:
        """The rows as astropy writes them: packed, big-endian, text as ASCII."""
        if self._data is None:
            return memoryview(b"")
        return np.ascontiguousarray(self._data).data.cast("B")


def header_bytes(hdu: Any) -> bytes:
    """The header block of an :class:`ImageExtension` or an astropy HDU."""
    return str(hdu.header).encode("ascii")


def padding(nbytes: int) -> bytes:
    """The zeros that pad ``nbytes`` of FITS data to a whole number of 2880-byte blocks."""
    return b"\0" * (-nbytes % _BLOCK)
