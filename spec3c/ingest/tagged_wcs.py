"""A slit's gwcs written for the store from the file's own tagged tree, as :func:`wcs_to_asdf` writes it.

:func:`~spec3c.gwcs_asdf.wcs_to_asdf` serialises the gwcs objects: every
model goes back through its asdf converter (13 ms for a simulated MOS slit,
the largest cost of reading a slit).  The fast reader already holds each
slit's gwcs as the tagged tree parsed from the file, so here that tree is
dumped as it is, with its arrays renumbered and written as zlib blocks.

The two ways agree only if the file's tree is what the converters write
today.  So, per file and per set of tags, the first slit is written both
ways and the bytes compared; the tagged way is used for the file's other
slits with those tags only when they are identical (the product then says
byte for byte what it said before).  Anything unusual (inline or external
arrays, views into blocks, compression other than zlib) takes the objects'
way.
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
import struct
import zlib
from typing import Any

import yaml

from ..gwcs_asdf import BLOCK_MAGIC, YAML_END, asdf_blocks, wcs_to_asdf

__all__ = ["TaggedWcsWriter", "read_blocks", "written_blocks"]

_NDARRAY = "tag:stsci.edu:asdf/core/ndarray-"
_NDARRAY_KEYS = {"source", "datatype", "byteorder", "shape"}
_BLOCK_HEADER = struct.Struct(">I4sQQQ16s")  # flags, compression, allocated, used, data size, md5
_TAG_DIRECTIVE = re.compile(rb"^%TAG (\S+) (\S+)$", re.MULTILINE)


class _Unusual(ValueError):
    """A tree (or blocks) this writer leaves to :func:`wcs_to_asdf`."""


@functools.cache
def _dumper() -> type:
    from asdf.yamlutil import AsdfDumper

    class Dumper(AsdfDumper):
        """asdf's dumper without anchors: the file may share nodes between slits, the converters do not."""

        def ignore_aliases(self, data: Any) -> bool:
            return True

    return Dumper


class TaggedWcsWriter:
    """The store's bytes of each slit gwcs of one file (:func:`wcs_to_asdf`'s), from its tagged tree.

    ``blob`` is the file's ASDF extension: the blocks the tree's arrays refer to.
    """

    def __init__(self, blob: bytes) -> None:
        self._blob = blob
        self._block_data: list[bytes] | None = None
        self._heads: dict[frozenset[str], tuple[bytes, dict[str, str]]] = {}  # tags -> verified head
        self._differs = False  # the tagged way gave other bytes once: objects only for this file

    def wcs_bytes(self, node: Any, wcs: Any) -> bytes:
        """The bytes :func:`wcs_to_asdf` gives for ``wcs``, the object converted from ``node``."""
        if self._differs:
            return wcs_to_asdf(wcs)
        try:
            tree, tags, sources = _renumbered(node)
            known = self._heads.get(tags)
            if known is not None:
                return self._tagged(tree, sources, *known)
            expected = wcs_to_asdf(wcs)
            head = _head(expected)
            if head is not None and self._tagged(tree, sources, *head) == expected:
                self._heads[tags] = head
            else:
                self._differs = True
            return expected
        except _Unusual:
            return wcs_to_asdf(wcs)

    def _tagged(self, tree: Any, sources: list[int], head: bytes, handles: dict[str, str]) -> bytes:
        """``head`` (a verified file's up to ``wcs:``), then ``tree`` dumped, then its blocks."""
        blocks = self._blocks()
        if any(not 0 <= source < len(blocks) for source in sources):
            raise _Unusual(f"an array in a block the file does not have ({len(blocks)} blocks)")
        stream = io.BytesIO()
        yaml.dump_all([{"wcs": tree}], stream=stream, Dumper=_dumper(), explicit_start=True, explicit_end=True,
                      version=(1, 1), allow_unicode=True, encoding="utf-8", tags=handles)
        text = stream.getvalue()
        at = text.find(b"\nwcs: ")
        if at < 0:
            raise _Unusual("no wcs key in the dump")
        yaml_part = head + text[at + 1:]
        return yaml_part + written_blocks([blocks[source] for source in sources], len(yaml_part))

    def _blocks(self) -> list[bytes]:
        """The data of the file's ASDF blocks, uncompressed."""
        if self._block_data is None:
            self._block_data = read_blocks(self._blob)
        return self._block_data


def _renumbered(node: Any) -> tuple[Any, frozenset[str], list[int]]:
    """A copy of ``node`` whose array nodes point to new blocks 0, 1, ... in the order asdf's
    converters meet them (each occurrence its own block, as the converted arrays are), its tags, and
    the file's block each new block copies."""
    from asdf.tagged import Tagged, TaggedDict, TaggedList

    tags: set[str] = set()
    sources: list[int] = []

    def copy(item: Any) -> Any:
        tag = item._tag if isinstance(item, Tagged) else None
        if tag is not None:
            tags.add(tag)
        if tag is not None and tag.startswith(_NDARRAY):
            if not isinstance(item, dict) or set(item) != _NDARRAY_KEYS or type(item["source"]) is not int:
                raise _Unusual("an array that is not a whole block")
            sources.append(item["source"])
            return TaggedDict({**item, "source": len(sources) - 1}, tag)
        if isinstance(item, dict):
            children = {key: copy(value) for key, value in item.items()}
            return children if tag is None else TaggedDict(children, tag)
        if isinstance(item, list):
            values = [copy(value) for value in item]
            return values if tag is None else TaggedList(values, tag)
        return item  # a scalar (tagged ones are immutable)

    return copy(node), frozenset(tags), sources


def _head(expected: bytes) -> tuple[bytes, dict[str, str]] | None:
    """What precedes ``wcs:`` in :func:`wcs_to_asdf`'s bytes (ASDF header, library, history) and
    their %TAG handles; None for another layout."""
    end = expected.find(YAML_END)
    at = expected.find(b"\nwcs: ", 0, end)
    if end < 0 or at < 0:
        return None
    handles = {m[1].decode(): m[2].decode() for m in _TAG_DIRECTIVE.finditer(expected, 0, at)}
    return expected[:at + 1], handles


def read_blocks(blob: bytes) -> list[bytes]:
    """The uncompressed data of each ASDF block of ``blob`` (an ASDF file), in order."""
    end = blob.find(YAML_END)
    blocks = asdf_blocks(blob, blob.find(BLOCK_MAGIC, end)) if end >= 0 and BLOCK_MAGIC in blob[end:] else []
    if blocks is None:
        raise _Unusual("blocks that are not whole ASDF blocks")
    out: list[bytes] = []
    for block in blocks:
        (size,) = struct.unpack(">H", block[4:6])
        flags, compression, _, used, data_size, _ = _BLOCK_HEADER.unpack(block[6:6 + _BLOCK_HEADER.size])
        data = block[6 + size:6 + size + used]
        if flags or len(data) != used:
            raise _Unusual("a streamed or truncated block")
        if compression == b"zlib":
            data = zlib.decompress(data)
        elif compression != b"\0\0\0\0":
            raise _Unusual(f"a block compressed with {compression!r}")
        if len(data) != data_size:
            raise _Unusual("a block whose data size is not its header's")
        out.append(data)
    return out


def written_blocks(data: list[bytes], offset: int, level: int = zlib.Z_DEFAULT_COMPRESSION) -> bytes:
    """``data`` as asdf writes arrays with ``all_array_compression="zlib"``: one block each, then the
    block index (offsets from the file's start, ``offset`` being where the first block goes);
    ``level``: zlib's (asdf's is the default)."""
    if not data:
        return b""
    out, offsets = [], []
    for item in data:
        packed = zlib.compress(item, level)
        checksum = hashlib.md5(packed, usedforsecurity=False).digest()
        header = _BLOCK_HEADER.pack(0, b"zlib", len(packed), len(packed), len(item), checksum)
        offsets.append(offset)
        out.append(BLOCK_MAGIC + struct.pack(">H", len(header)) + header + packed)
        offset += len(out[-1])
    index = yaml.dump(offsets, Dumper=yaml.SafeDumper, explicit_start=True, explicit_end=True,
                      allow_unicode=True, encoding="utf-8", version=(1, 1))
    return b"".join(out) + b"#ASDF BLOCK INDEX\n" + index
