"""A minimal reader of uncompressed FITS image files: headers as plain values, data as numpy views.

Ingest's fast readers use it (WFSS, and the slit modes' :mod:`.fastread`).  A WFSS ``_cal`` file has thousands of extensions; astropy parses every card
of every header through its configuration machinery (~3 ms per extension),
which makes reading the headers most of the cost of ingesting such a file.
Here a file is read once into memory (or mapped, ``mapped=True``: only the
data a caller touches is read) and its headers are split into
keyword/value pairs with plain string operations (the FITS standard's fixed
format: strings with ``''`` escapes and ``CONTINUE`` long strings, logicals,
integers, reals with ``E`` or ``D`` exponents); data are views on the file's
bytes (a table's data, e.g. the ASDF extension's, as its raw bytes).  Anything this reader does not handle -- scaled data (BSCALE), random
groups, a file that is not a plain FITS file -- is :class:`Unsupported`,
and the caller falls back to astropy.
"""

from __future__ import annotations

import mmap
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["RawHdu", "Unsupported", "primary_header", "read_fits"]

_BLOCK = 2880
_CARD = 80
_INT = re.compile(r"^[+-]?\d+$")
#: BITPIX -> big-endian storage dtype, and the BZERO that makes it unsigned
_DTYPES = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
_UNSIGNED = {16: (32768, ">u2", 0x8000), 32: (2**31, ">u4", 0x80000000), 64: (2**63, ">u8", 0x8000000000000000)}


class Unsupported(ValueError):
    """The file uses a FITS feature this reader leaves to astropy."""


@dataclass
class RawHdu:
    """One HDU: its header values by keyword (first occurrence), raw header bytes and data view
    (an image's array; a table's raw bytes are ``table_bytes``)."""

    header: dict[str, Any]
    header_bytes: bytes
    _data: np.ndarray | None = field(default=None, repr=False)
    table_bytes: memoryview | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return str(self.header.get("EXTNAME", "PRIMARY" if "SIMPLE" in self.header else "")).strip().upper()

    @property
    def ver(self) -> int:
        return int(self.header.get("EXTVER", 1))

    @property
    def data(self) -> np.ndarray | None:
        return self._data

    def native_data(self) -> np.ndarray | None:
        """The image, writable, in this machine's byte order: the file's bytes swapped in place when
        they were read writable (``read_fits(..., writable=True)``; once, the HDU then holds the
        swapped array), else a copy."""
        data = self._data
        if data is None or (data.dtype.isnative and data.flags.writeable):
            return data
        if not data.flags.writeable:
            return np.array(data, dtype=data.dtype.newbyteorder("="))
        self._data = data.byteswap(inplace=True).view(data.dtype.newbyteorder("="))
        return self._data


def _string(text: str) -> tuple[str, int]:
    """A quoted FITS string starting at ``text[0] == "'"``: (value, index after the closing quote)."""
    out, i = [], 1
    while i < len(text):
        if text[i] == "'":
            if i + 1 < len(text) and text[i + 1] == "'":
                out.append("'")
                i += 2
                continue
            return "".join(out).rstrip(), i + 1
        out.append(text[i])
        i += 1
    raise Unsupported("an unterminated string value")


def _value(field_text: str) -> Any:
    text = field_text.strip()
    if not text:
        return None
    if text.startswith("'"):
        return _string(text)[0]
    text = text.split("/", 1)[0].strip()
    if text == "T":
        return True
    if text == "F":
        return False
    if not text:
        return None
    if _INT.match(text):
        return int(text)
    try:
        return float(text.replace("D", "E").replace("d", "e"))
    except ValueError:
        return text  # complex values and other rarities: kept as text


def _cards(header: bytes) -> Iterator[tuple[str, str, str]]:
    """(keyword, value indicator, rest) of every card up to END."""
    text = header.decode("ascii", errors="replace")
    for start in range(0, len(text), _CARD):
        card = text[start:start + _CARD]
        key = card[:8].strip()
        if key == "END":
            return
        yield key, card[8:10], card[10:]


def _parse_header(header: bytes) -> dict[str, Any]:
    values: dict[str, Any] = {}
    last_string: str | None = None
    for key, indicator, rest in _cards(header):
        if key == "CONTINUE" and last_string is not None:
            more = rest.strip()
            if more.startswith("'"):
                piece = _string(more)[0]
                prev = values[last_string]
                values[last_string] = (prev[:-1] if prev.endswith("&") else prev) + piece
                if not piece.endswith("&"):
                    last_string = None
            continue
        last_string = None
        if indicator != "= " or not key or key in values:
            continue
        values[key] = _value(rest)
        if isinstance(values[key], str) and values[key].endswith("&") and rest.strip().startswith("'"):
            last_string = key
    for key, value in list(values.items()):
        if isinstance(value, str) and value.endswith("&"):
            values[key] = value[:-1]
    return values


def _data(buf: bytes | bytearray | mmap.mmap, offset: int, header: dict[str, Any]) -> np.ndarray | memoryview | None:
    """The data view (an image's array, a table's raw bytes, or None) of the HDU whose data start
    at ``offset``."""
    if header.get("GROUPS") is True:
        raise Unsupported("random groups")
    size = _data_size(header)
    if header.get("XTENSION", "IMAGE") not in ("IMAGE",) and "SIMPLE" not in header:
        return memoryview(buf)[offset:offset + size]  # tables (the ASDF extension): raw bytes
    naxis = int(header.get("NAXIS", 0))
    shape = tuple(int(header.get(f"NAXIS{k}", 0)) for k in range(naxis, 0, -1))
    n = int(np.prod(shape)) if shape else 0
    if n == 0:
        return None
    if float(header.get("BSCALE", 1)) != 1.0:
        raise Unsupported("scaled data (BSCALE)")
    bitpix = int(header.get("BITPIX", 8))
    zero = header.get("BZERO", 0)
    dtype = _DTYPES.get(bitpix)
    if dtype is None:
        raise Unsupported(f"BITPIX {bitpix}")
    if offset + n * abs(bitpix) // 8 > len(buf):
        raise Unsupported("a truncated file")
    if zero and bitpix in _UNSIGNED and zero == _UNSIGNED[bitpix][0]:
        _, unsigned, flip = _UNSIGNED[bitpix]
        raw = np.frombuffer(buf, dtype=unsigned, count=n, offset=offset)
        return (raw ^ np.array(flip, dtype=unsigned)).reshape(shape)
    if zero:
        raise Unsupported(f"BZERO {zero}")
    return np.frombuffer(buf, dtype=dtype, count=n, offset=offset).reshape(shape)


def _read_writable(path: Path) -> bytearray:
    with open(path, "rb") as f:
        buf = bytearray(os.fstat(f.fileno()).st_size)
        if f.readinto(buf) != len(buf):
            raise Unsupported("the file changed while it was read")
    return buf


def _map(path: Path) -> mmap.mmap:
    with open(path, "rb") as f:
        try:
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError as exc:  # an empty file
            raise Unsupported(f"cannot map the file: {exc}") from exc


def _data_size(header: dict[str, Any]) -> int:
    """Bytes of an HDU's data before padding (FITS standard: |BITPIX|/8 x GCOUNT x (PCOUNT + NAXIS1 x ...))."""
    bitpix, naxis = int(header.get("BITPIX", 8)), int(header.get("NAXIS", 0))
    dims = [int(header.get(f"NAXIS{k}", 0)) for k in range(1, naxis + 1)]
    n = int(np.prod(dims)) if dims else 0
    return abs(bitpix) // 8 * int(header.get("GCOUNT", 1)) * (int(header.get("PCOUNT", 0)) + n)


def _padded_size(header: dict[str, Any]) -> int:
    """Bytes of an HDU's data with their padding to whole 2880-byte blocks."""
    return (_data_size(header) + _BLOCK - 1) // _BLOCK * _BLOCK


def _headers(buf: bytes | bytearray | mmap.mmap) -> Iterator[tuple[bytes, dict[str, Any], int]]:
    """(raw header, its values, offset of its data) of every HDU, in turn."""
    if buf[:9] != b"SIMPLE  =":
        raise Unsupported("not a plain FITS file")
    pos = 0
    while pos < len(buf):
        end = pos
        while True:
            block = buf[end:end + _BLOCK]
            if len(block) < _BLOCK:
                raise Unsupported("a truncated header")
            end += _BLOCK
            if any(block[i:i + 3] == b"END" and block[i + 3:i + _CARD].strip() == b"" for i in range(0, _BLOCK, _CARD)):
                break
        raw = bytes(buf[pos:end])
        header = _parse_header(raw)
        yield raw, header, end
        pos = end + _padded_size(header)


def primary_header(path: Path) -> dict[str, Any]:
    """The primary header's values of a complete plain FITS file: every header parses and the
    last HDU's padded data end where the file ends (else :class:`Unsupported`: truncated, trailing
    bytes, not plain FITS).  Only the headers are read."""
    buf = _map(path)
    try:
        primary, end = None, 0
        for _, header, data_at in _headers(buf):
            primary = header if primary is None else primary
            end = data_at + _padded_size(header)
        if primary is None or end != len(buf):
            raise Unsupported("the data of the last HDU do not end where the file ends")
        return primary
    finally:
        buf.close()


def read_fits(path: Path, mapped: bool = False, writable: bool = False) -> list[RawHdu]:
    """Every HDU of an uncompressed FITS file (raises :class:`Unsupported` for what it does not read).

    ``mapped``: the file is memory-mapped, read only; the data are read-only views
    that keep the map open (e.g. a time series of which a few planes are wanted).
    ``writable``: the file is read into a buffer the data are writable views of (for
    :meth:`RawHdu.native_data` without a copy); else into read-only bytes.
    """
    buf = _map(path) if mapped else _read_writable(path) if writable else Path(path).read_bytes()
    hdus = []
    for raw, header, data_at in _headers(buf):
        data = _data(buf, data_at, header)
        if isinstance(data, memoryview):
            hdus.append(RawHdu(header, raw, table_bytes=data))
        else:
            hdus.append(RawHdu(header, raw, data))
    return hdus
