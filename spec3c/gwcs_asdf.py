"""gwcs objects to and from ASDF bytes (how the store keeps every input and output WCS).

The bytes are an ASDF file whose tree holds the gwcs under ``wcs``: its YAML
and its array blocks.  :class:`StoredWcs` carries them into a product's ASDF
extension as they are (:func:`splice_stored_wcs`), without the round trip
through gwcs objects that was a fifth of the time of exporting a MOS source.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import pickle
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asdf

from .asdf_plugins import config_context
from .fitsio import asdf_write_unvalidated

__all__ = ["BLOCK_MAGIC", "YAML_END", "StoredWcs", "asdf_blocks", "materialised", "splice_stored_wcs", "wcs_from_asdf",
           "wcs_to_asdf"]


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


# -- a stored WCS written into a product as its YAML and blocks ---------------------------------


def asdf_blocks(blob: bytes, start: int) -> list[bytes] | None:
    """The ASDF blocks (each with its header) from ``start`` up to the block index or the end;
    None if the bytes there are not blocks."""
    blocks, at = [], start
    while at < len(blob) and not blob.startswith(_BLOCK_INDEX, at):
        if not blob.startswith(BLOCK_MAGIC, at) or at + 6 > len(blob):
            return None
        (header_size,) = struct.unpack(">H", blob[at + 4:at + 6])
        (allocated,) = struct.unpack(">Q", blob[at + 14:at + 22])  # after flags (4) and compression (4)
        end = at + 6 + header_size + allocated
        if header_size < 48 or end > len(blob):
            return None
        blocks.append(blob[at:end])
        at = end
    return blocks


@dataclass(frozen=True)
class _Parts:
    wcs: str  # the ``wcs`` node's YAML text, from its tag on (children indented by 2)
    history: str  # the file's ``history`` section
    blocks: tuple[bytes, ...]  # the array blocks the ``source: N`` of ``wcs`` refer to


@dataclass(frozen=True, eq=False)
class StoredWcs:
    """A gwcs as the store holds it (:func:`wcs_to_asdf`'s bytes), to be written into a product
    as it is: a product tree's ``meta.wcs`` may be one instead of the gwcs object."""

    blob: bytes

    def wcs(self) -> Any:
        """The gwcs object (read-only, shared: :func:`wcs_from_asdf`)."""
        return wcs_from_asdf(self.blob)

    @functools.cached_property
    def parts(self) -> _Parts | None:
        """The WCS's YAML, history and blocks; None for another layout than wcs_to_asdf's."""
        end = self.blob.find(YAML_END)
        blocks = None if end < 0 else asdf_blocks(self.blob, end + len(YAML_END))
        if blocks is None:
            return None
        text = self.blob[:end + 1].decode("utf-8")
        wcs_at, history_at = text.find("\nwcs: "), text.find("\nhistory:\n")
        if wcs_at < 0 or not 0 <= history_at < wcs_at:
            return None
        wcs = text[wcs_at + len("\nwcs: "):]
        if _TOP_LEVEL.search(wcs):  # wcs is not the last key of the tree
            return None
        return _Parts(wcs, text[history_at + 1:wcs_at + 1], tuple(blocks))


@functools.lru_cache(maxsize=16)
def _extension_entries(history: str) -> tuple[Any, ...]:
    """The ``history: extensions:`` entries of a stored WCS's file (the extensions its YAML uses)."""
    from asdf.tags.core import ExtensionMetadata, Software

    document = f"%YAML 1.1\n%TAG ! tag:stsci.edu:asdf/\n---\n{history}...\n"
    loaded = asdf.yamlutil.load_tree(io.BytesIO(document.encode()))  # tagged dicts, not objects
    entries = []
    for item in (loaded or {}).get("history", {}).get("extensions", []):
        entries.append(ExtensionMetadata({
            key: Software({str(k): str(v) for k, v in value.items()}) if key.endswith("software") else value
            for key, value in item.items()
        }))
    return tuple(entries)


BLOCK_MAGIC = b"\xd3BLK"
_BLOCK_INDEX = b"#ASDF BLOCK INDEX"
YAML_END = b"\n...\n"
_TOP_LEVEL = re.compile(r"\n[^ \n]")
#: a stored WCS's place in the dumped tree: a mapping (so that the one holding it is in block style)
_PLACEHOLDER_KEY = "spec3c-stored-wcs"
_PLACED = re.compile(r"^( *)([^ \n:]+): \{spec3c-stored-wcs: (\d+)\}\n", re.MULTILINE)
#: pyyaml's anchors and aliases (&id001, *id001) and ndarray block numbers (source: 0), block or flow style
_ANCHOR = re.compile(r"(?<=[ \[{,])([&*])id(\d+)(?=[ \n,\]}])")
_SOURCE = re.compile(r"(?<=[ {,])source: (\d+)(?=[\n,}])")


def _replaced(tree: Any, visit: Callable[[StoredWcs], Any]) -> Any:
    """``tree`` with each StoredWcs replaced by ``visit(it)``; containers holding one are shallow
    copies (same class and tag), the others are ``tree``'s own."""
    if isinstance(tree, StoredWcs):
        return visit(tree)
    if isinstance(tree, (dict, list)):
        items = tree.items() if isinstance(tree, dict) else enumerate(tree)
        changed = {key: new for key, value in items
                   if isinstance(value, (dict, list, StoredWcs)) and (new := _replaced(value, visit)) is not value}
        if changed:
            tree = copy.copy(tree)
            for key, new in changed.items():
                tree[key] = new
    return tree


def materialised(tree: Any) -> Any:
    """``tree`` with every StoredWcs replaced by its gwcs object (for the writers and validators
    that need objects)."""
    return _replaced(tree, StoredWcs.wcs)


def _with_history(tree: dict[str, Any], found: list[StoredWcs]) -> dict[str, Any]:
    """``tree`` with the extension entries of the stored WCSs' files in its ``history`` (asdf
    records only the extensions of the objects it converts itself)."""
    history = tree.get("history", {})
    history = dict(history) if isinstance(history, dict) else {"entries": history}
    entries = list(history.get("extensions", []))
    known = {e.get("extension_uri") for e in entries}
    for wcs in found:
        assert wcs.parts is not None
        for entry in _extension_entries(wcs.parts.history):
            if entry.get("extension_uri") not in known:
                entries.append(entry)
                known.add(entry.get("extension_uri"))
    history["extensions"] = entries
    return {**tree, "history": history}


def _spliced_text(wcs: StoredWcs, indent: str, key: str, first_block: int, first_anchor: int) -> str:
    """The stored WCS's YAML as the value of ``key`` at ``indent``, its block numbers and anchors
    moved on by those of the WCSs before it in the product.

    pyyaml names anchors ``id001``, ``id002``... in the order their first aliases
    are met; the product having none of its own, the numbers a file written
    from the objects would have are each WCS's own moved on by the number of
    anchors before it (``first_anchor``: the highest number before it).
    """
    assert wcs.parts is not None
    text = _ANCHOR.sub(lambda m: f"{m.group(1)}id{int(m.group(2)) + first_anchor:03d}", wcs.parts.wcs)
    text = _SOURCE.sub(lambda m: f"source: {int(m.group(1)) + first_block}", text)
    first, _, rest = text.partition("\n")
    lines = [f"{indent}{line}" if line else line for line in rest.split("\n")]
    return f"{indent}{key}: {first}\n" + "\n".join(lines)


def splice_stored_wcs(tree: dict[str, Any], dump: Callable[[dict[str, Any]], bytes]) -> bytes:
    """The ASDF file of ``tree`` as ``dump`` (an ASDF writer) makes it, with each StoredWcs
    written as its stored YAML and blocks instead of through gwcs objects.

    The product's YAML is dumped with a placeholder for each stored WCS; each
    placeholder is then replaced by the stored YAML (re-indented, anchors and
    block numbers moved on) and the stored blocks are appended.  Falls back to
    the objects (``dump`` of :func:`materialised`) when a stored WCS has
    another layout, or when the product has array blocks or YAML anchors of
    its own or a placeholder not in block style.

    A mapping holding a stored WCS and otherwise only plain values (an
    exposure's ``meta``, the same in every source's product) is dumped once
    per process and content (:func:`_rendered`), and its text reused.
    """
    found: list[StoredWcs] = []

    def placeholder(wcs: StoredWcs) -> Any:
        if wcs.parts is None:
            return wcs.wcs()
        found.append(wcs)
        return {_PLACEHOLDER_KEY: len(found) - 1}

    placed = _replaced(tree, placeholder)
    if not found:
        return dump(placed)
    placed = _with_history(placed, found)
    holders: list[_Holder] = []
    text = _yaml_text(dump(_holders_replaced(placed, holders)))
    if text is not None and holders:
        text = _holders_expanded(text, holders)
        if text is None:  # a holder the dumped text cannot take: the tree dumped as it is
            text = _yaml_text(dump(placed))
    if text is None:
        return dump(materialised(tree))
    spots = list(_PLACED.finditer(text))
    if sorted(int(s.group(3)) for s in spots) != list(range(len(found))) or _ANCHOR.search(text):
        return dump(materialised(tree))
    out: list[str] = []
    blocks: list[bytes] = []
    last = anchors = 0
    for spot in spots:
        indent, key, wcs = spot.group(1), spot.group(2), found[int(spot.group(3))]
        assert wcs.parts is not None
        out += [text[last:spot.start()], _spliced_text(wcs, indent, key, len(blocks), anchors)]
        blocks += wcs.parts.blocks
        anchors += max((int(m.group(2)) for m in _ANCHOR.finditer(wcs.parts.wcs)), default=0)
        last = spot.end()
    out.append(text[last:])
    return "".join(out).encode("utf-8") + YAML_END[1:] + b"".join(blocks)


def _yaml_text(raw: bytes) -> str | None:
    """The YAML of an ASDF file (up to its end marker's line); None if it has blocks of its own."""
    end = raw.find(YAML_END)
    if end < 0 or raw[end + len(YAML_END):].strip() != b"":
        return None
    return raw[:end + 1].decode("utf-8")


# -- mappings holding a stored WCS, dumped once per content -------------------------------------

#: a holder's place in the dumped tree, as the stored WCSs' (a flow mapping: its parent in block style)
_HOLDER_KEY = "spec3c-holder"
_HELD = re.compile(r"^( *(?:- )?)([^ \n:]+): \{spec3c-holder: (\d+)\}\n", re.MULTILINE)
#: the stored WCS's placeholder in a holder's cached text (its number is the product's)
_HELD_MARK = -1
_PLAIN = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class _Holder:
    node: dict[str, Any]  # the mapping, its stored WCS's placeholder numbered _HELD_MARK
    key: tuple[Any, ...]  # its content (but the placeholder's number)
    number: int  # its stored WCS's placeholder number in the product


def _plain(values: list[Any], seen: set[int]) -> bool:
    """Whether ``values`` are plain YAML (dicts, lists, str, int, float, bool, None: nothing tagged
    or converted); their containers' ids go into ``seen``."""
    stack = values
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            seen.add(id(item))
            stack.extend(item.values())
        elif kind is list:
            seen.add(id(item))
            stack.extend(item)
        elif kind not in _PLAIN:
            return False
    return True


def _holder(node: dict[str, Any], seen: set[int]) -> _Holder | None:
    """``node`` as a :class:`_Holder` if it holds one stored WCS placeholder and otherwise plain
    values (their containers' ids into ``seen``)."""
    held = [name for name, value in node.items() if type(value) is dict and _PLACEHOLDER_KEY in value]
    if len(held) != 1 or len(node[held[0]]) != 1:
        return None
    rest = {name: value for name, value in node.items() if name != held[0]}
    seen.add(id(node))
    if not _plain(list(rest.values()), seen):
        return None
    # pickle tells apart what YAML writes apart (1, 1.0 and True; 0.0 and -0.0; key order aside)
    key = (held[0], pickle.dumps(rest, protocol=pickle.HIGHEST_PROTOCOL))
    return _Holder({**node, held[0]: {_PLACEHOLDER_KEY: _HELD_MARK}}, key, node[held[0]][_PLACEHOLDER_KEY])


def _holders_replaced(tree: dict[str, Any], holders: list[_Holder]) -> dict[str, Any]:
    """``tree`` with each holder (below the root) replaced by a numbered placeholder (in ``holders``),
    containers above one shallow copies; ``tree`` itself, and no holders, if a container is met
    twice (pyyaml would write an anchor and an alias where the holders' text has neither)."""
    inside: list[set[int]] = []
    outside: set[int] = set()

    def replaced(node: Any) -> Any:
        if not isinstance(node, (dict, list)):
            return node
        outside.add(id(node))
        items = node.items() if isinstance(node, dict) else enumerate(node)
        changed = {}
        for name, value in items:
            seen: set[int] = set()
            if type(value) is dict and (holder := _holder(value, seen)) is not None:
                inside.append(seen)
                holders.append(holder)
                changed[name] = {_HOLDER_KEY: len(holders) - 1}
            elif (new := replaced(value)) is not value:
                changed[name] = new
        if changed:
            node = copy.copy(node)
            for name, new in changed.items():
                node[name] = new
        return node

    out = replaced(tree)
    ids = [i for seen in inside for i in seen]
    if len(set(ids)) != len(ids) or not outside.isdisjoint(ids):
        holders.clear()
        return tree
    return out


def _holders_expanded(text: str, holders: list[_Holder]) -> str | None:
    """``text`` with each holder's placeholder replaced by its YAML; None if one is not where a
    block mapping's key can take it."""
    spots = list(_HELD.finditer(text))
    if sorted(int(s.group(3)) for s in spots) != list(range(len(holders))):
        return None
    out, last = [], 0
    for spot in spots:
        indent, name, holder = spot.group(1), spot.group(2), holders[int(spot.group(3))]
        rendered = _rendered(name, len(indent), holder)
        if rendered is None:
            return None
        rendered = indent + rendered[len(indent):]  # a sequence item's first key: after its "- "
        mark = f"{{{_PLACEHOLDER_KEY}: {_HELD_MARK}}}"
        out += [text[last:spot.start()], rendered.replace(mark, f"{{{_PLACEHOLDER_KEY}: {holder.number}}}")]
        last = spot.end()
    out.append(text[last:])
    return "".join(out)


_RENDERED: dict[tuple[Any, ...], str | None] = {}


def _rendered(name: str, indent: int, holder: _Holder) -> str | None:
    """``name: holder`` as asdf's dumper writes it at ``indent`` in a block mapping (cached per
    process by content); None at an odd indent."""
    key = (name, indent, holder.key)
    if key not in _RENDERED:
        if len(_RENDERED) >= 1024:
            _RENDERED.clear()
        _RENDERED[key] = None if indent % 2 else _dumped_at(name, indent, holder.node)
    return _RENDERED[key]


def _dumped_at(name: str, indent: int, node: dict[str, Any]) -> str | None:
    """``name: node`` dumped as the key of a block mapping at ``indent`` (even): nested in as many
    one-key mappings, so that the emitter's columns (its line breaks) are the product's."""
    import yaml
    from asdf.yamlutil import AsdfDumper

    nested: dict[str, Any] = {name: node}
    for _ in range(indent // 2):
        nested = {"x": nested}
    lines = yaml.dump(nested, Dumper=AsdfDumper, allow_unicode=True).split("\n")
    text = "\n".join(lines[indent // 2:])
    return text if text.startswith(f"{' ' * indent}{name}:\n") else None
