"""An exposure's gwcs for the store taken verbatim from its file's ASDF extension.

The store keeps every input gwcs as an ASDF file whose tree holds it under
``wcs`` (:func:`~spec3c.gwcs_asdf.wcs_to_asdf`).  Writing one from the gwcs
objects sends every model back through its converter: 0.27 s for a MIRI MRS
exposure's WCS (about 1200 models), an eighth of reading the exposure.  The
cal file already holds that tree, as YAML text and array blocks: here the
``meta.wcs`` node's text is cut out of the file's YAML (re-indented to the
top level, its anchors renamed as pyyaml names them), its blocks copied (zlib-compressed, as the store's are) and
renumbered, and the file's header, library and ``history`` (the extensions
its tags use) put before it.  The result is
the file's own WCS, byte for byte in its YAML, readable by asdf and spliced
into products as any stored WCS (:class:`~spec3c.gwcs_asdf.StoredWcs`).

Anything this cannot copy faithfully gives None, and the caller serialises
the objects: arrays in FITS extensions or other files, anchors shared with
the rest of the tree, a layout other than asdf's block style.  The first
WCS a process copies is also read back and its forward transform compared,
bit for bit, with the file's gwcs on a grid of pixels
(:func:`stored_wcs_bytes`); a difference turns the copying off for the
process.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from ..gwcs_asdf import YAML_END, wcs_from_asdf, wcs_to_asdf
from ..log import logger
from .asdftree import NotFast, extension_blob
from .fitsraw import Unsupported, read_fits
from .tagged_wcs import read_blocks, written_blocks

__all__ = ["file_wcs_bytes", "stored_wcs_bytes"]

_log = logger("ingest")

_WCS_LINE = re.compile(r"^  wcs: (!<tag:stsci\.edu:gwcs/wcs-[^>]+>)[ \t]*$", re.MULTILINE)
_TOP_KEY = re.compile(r"^([A-Za-z_][^:\n]*):", re.MULTILINE)
_ANCHOR_DEF = re.compile(r"(?<=[ \[{,])&([^\s,\]}]+)")
_ALIAS = re.compile(r"(?<=[ \[{,])\*([^\s,\]}]+)")
#: an ndarray's block reference, block or flow style (as gwcs_asdf's splicing matches it)
_SOURCE = re.compile(r"(?<=[ {,])source: ([^\n,}]+)(?=[\n,}])")
#: zlib level of the copied blocks (an IFU WCS's slice map: 34 MB, 0.05 s; asdf's level 6 takes 0.12 s for 20 % less)
_ZLIB_LEVEL = 1
#: pixels per axis of the grid the first copied WCS of a process is checked on
_CHECK_GRID = 64

#: None until a process has checked a copied WCS against its objects, then whether they agreed
_verified: bool | None = None


def file_wcs_bytes(path: Path) -> bytes | None:
    """The file's ``meta.wcs`` as the store keeps a gwcs (an ASDF file, tree key ``wcs``), copied
    from the file's ASDF extension; None when it cannot be copied faithfully."""
    try:
        blob = extension_blob(read_fits(path, mapped=True))
    except (NotFast, Unsupported, OSError, ValueError):
        return None
    end = blob.find(YAML_END)
    if end < 0:
        return None
    text = blob[:end + 1].decode("utf-8", errors="replace")
    head, history, node = _sections(text)
    if head is None or history is None or node is None:
        return None
    node = _node_text(node)
    if node is None or not _anchors_inside(node, text):
        return None
    node = _renumbered_anchors(node)
    if node is None:
        return None
    renumbered = _renumbered_sources(node)
    if renumbered is None:
        return None
    node, order = renumbered
    try:
        blocks = read_blocks(blob) if order else []
    except ValueError:  # streamed, truncated or otherwise compressed blocks
        return None
    if any(k >= len(blocks) for k in order):
        return None
    yaml_bytes = f"{head}{history}wcs: {node}...\n".encode()
    return yaml_bytes + written_blocks([blocks[k] for k in order], len(yaml_bytes), level=_ZLIB_LEVEL)


def _sections(text: str) -> tuple[str | None, str | None, str | None]:
    """The file's header up to its ``asdf_library`` entry included, its ``history`` section and the
    lines of ``meta.wcs`` (the tag line first); None for what is not found."""
    keys = [(m.start(), m.group(1)) for m in _TOP_KEY.finditer(text)]
    spans = {name: (start, keys[k + 1][0] if k + 1 < len(keys) else len(text)) for k, (start, name) in enumerate(keys)}
    if "history" not in spans or "meta" not in spans or "asdf_library" not in spans:
        return None, None, None
    header_end = spans["asdf_library"][1]
    head = text[:header_end]
    if not head.startswith("#ASDF ") or "\n--- " not in head:
        return None, None, None
    history = text[spans["history"][0]:spans["history"][1]]
    meta = text[spans["meta"][0]:spans["meta"][1]]
    found = _WCS_LINE.search(meta)
    if found is None:
        return head, history, None
    lines = meta[found.end() + 1:].split("\n")
    body = []
    for line in lines:
        if line.strip() and not line.startswith("    "):
            break
        body.append(line)
    while body and not body[-1].strip():
        body.pop()
    return head, history, found.group(1) + "\n" + "\n".join(body) + "\n"


def _node_text(node: str) -> str | None:
    """``meta.wcs``'s lines moved two columns left (the children of a top-level key)."""
    first, _, rest = node.partition("\n")
    moved = []
    for line in rest.split("\n"):
        if line and not line.startswith("  "):
            return None
        moved.append(line[2:])
    return first + "\n" + "\n".join(moved)


def _anchors_inside(node: str, text: str) -> bool:
    """Whether every alias of ``node`` names an anchor it defines once, the whole file defining it once."""
    defined = _ANCHOR_DEF.findall(node)
    if len(set(defined)) != len(defined):
        return False
    everywhere = _ANCHOR_DEF.findall(text)
    return all(name in defined and everywhere.count(name) == 1 for name in set(_ALIAS.findall(node)))


def _renumbered_anchors(node: str) -> str | None:
    """``node`` with its anchors named ``id001``, ``id002``... in the order their first aliases come,
    as pyyaml names them when it dumps the objects (the file numbered them across its whole tree);
    None if an anchor has no alias in ``node``."""
    order = list(dict.fromkeys(_ALIAS.findall(node)))
    if set(_ANCHOR_DEF.findall(node)) != set(order):
        return None
    name = {old: f"id{k:03d}" for k, old in enumerate(order, start=1)}
    node = _ANCHOR_DEF.sub(lambda m: f"&{name[m.group(1)]}", node)
    return _ALIAS.sub(lambda m: f"*{name[m.group(1)]}", node)


def _renumbered_sources(node: str) -> tuple[str, list[int]] | None:
    """``node`` with its blocks numbered 0, 1, ... in the order first met, and the file's block of
    each; None if an array is elsewhere than in a block (a FITS extension, another file)."""
    order: list[int] = []
    new: dict[int, int] = {}
    foreign = False

    def renumber(match: re.Match[str]) -> str:
        nonlocal foreign
        value = match.group(1).strip()
        if not value.isdigit():
            foreign = True
            return match.group(0)
        block = int(value)
        if block not in new:
            new[block] = len(order)
            order.append(block)
        return f"source: {new[block]}"

    out = _SOURCE.sub(renumber, node)
    return None if foreign else (out, order)


def _same_forward(stored: Any, wcs: Any, shape: tuple[int, ...]) -> bool:
    """Whether two gwcs have the same frames and forward transform on a grid of the frame's pixels."""
    if list(stored.available_frames) != list(wcs.available_frames):
        return False
    ny, nx = shape[-2:]
    y, x = np.meshgrid(np.linspace(0, ny - 1, _CHECK_GRID), np.linspace(0, nx - 1, _CHECK_GRID), indexing="ij")
    got, want = stored(x.ravel(), y.ravel()), wcs(x.ravel(), y.ravel())
    got, want = (v if isinstance(v, tuple) else (v,) for v in (got, want))
    return len(got) == len(want) and all(np.array_equal(np.asarray(g), np.asarray(w), equal_nan=True)
                                         for g, w in zip(got, want, strict=True))


def stored_wcs_bytes(model: Any, path: Path, shape: tuple[int, ...]) -> bytes:
    """The store's bytes of ``model.meta.wcs``: copied from ``path`` (:func:`file_wcs_bytes`) when
    the file allows it and this process's first copy read back the same, else serialised."""
    global _verified
    copied = file_wcs_bytes(path) if _verified is not False else None
    if copied is None:
        return wcs_to_asdf(model.meta.wcs)
    if _verified is None:
        try:
            _verified = _same_forward(wcs_from_asdf(copied), model.meta.wcs, shape)
        except Exception as exc:  # noqa: BLE001 - a copy asdf cannot read: serialise from now on
            _log.debug("%s: the WCS copied from the file does not read back (%s)", path, exc)
            _verified = False
        if not _verified:
            _log.debug("%s: the WCS copied from the file differs from its objects; serialised from now on", path)
            return wcs_to_asdf(model.meta.wcs)
    return copied
