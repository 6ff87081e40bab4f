"""A science file's ASDF extension read as stdatamodels would read it, without a datamodel.

The fast readers (:mod:`.fastread` for the slit modes, the NIRISS SOSS
reader) take a file's metadata from its ASDF tree, parsed once as tagged
YAML, only when the tree is the model stdatamodels would build: its
``_fits_hash`` is that of the headers, so stdatamodels would not read the
headers either.  Any other file raises :class:`NotFast`, and the caller
reads it as a datamodel.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from typing import Any

from ..asdf_plugins import config_context
from .cutouts import _flatten
from .fitsraw import RawHdu

__all__ = ["NotFast", "asdf_tree", "converted", "extension_blob", "flat_meta", "plain"]

_NDARRAY = "tag:stsci.edu:asdf/core/ndarray-"
_YAML_END = re.compile(rb"\r?\n\.\.\.\r?\n")


class NotFast(Exception):  # noqa: N818 - a signal to fall back, not an error
    """The file is left to the datamodel reader."""


class _Array:
    """Stand-in for an array node in the flattened metadata (skipped, as the datamodel's arrays are)."""


def asdf_tree(hdus: list[RawHdu], other_tables: tuple[str, ...] = ()) -> tuple[Any, dict[str, Any]]:
    """The ASDF extension, parsed (tagged, nothing converted), and its tree; the tree must be the
    model stdatamodels would build (its ``_fits_hash`` that of the headers, no table HDU but
    ``other_tables``, which the caller reads)."""
    import asdf

    blob = extension_blob(hdus, other_tables)
    digest = hashlib.sha256(b"".join(h.header_bytes for h in hdus if h.name != "ASDF")).hexdigest()
    try:
        with warnings.catch_warnings(), config_context() as config:
            warnings.simplefilter("error")
            config.validate_on_read = False
            tree = asdf.util.load_yaml(io.BytesIO(blob), tagged=True)  # parsed once, not walked
            af = asdf.open(io.BytesIO(_blocks_only(blob)), memmap=False)
    except Exception as exc:  # noqa: BLE001 - the datamodel reader says what is wrong
        raise NotFast(f"ASDF extension: {exc}") from exc
    if tree.get("_fits_hash") != digest:
        raise NotFast("headers changed since the ASDF tree was written (stdatamodels would read them)")
    if "date" not in (tree.get("meta") or {}):
        raise NotFast("no meta.date (the datamodel sets it on opening)")
    return af, tree


def extension_blob(hdus: list[RawHdu], other_tables: tuple[str, ...] = ()) -> bytes:
    """The bytes of the ASDF extension (an ASDF file), the only table HDU but ``other_tables``."""
    tables = [h for h in hdus if h.table_bytes is not None and h.name not in other_tables]
    if len(tables) != 1 or tables[0].name != "ASDF":
        raise NotFast("no ASDF extension, or other table extensions")
    header = tables[0].header
    if header.get("TFIELDS") != 1 or not re.fullmatch(r"\d*B", str(header.get("TFORM1", ""))):
        raise NotFast("an ASDF extension in another table layout")
    return bytes(tables[0].table_bytes[:int(header.get("NAXIS1", 0))])  # type: ignore[index]


def _blocks_only(blob: bytes) -> bytes:
    """The ASDF file ``blob`` with an empty tree: its binary blocks (arrays referenced by index from
    the tagged tree) open without parsing and walking the tree a second time."""
    end = _YAML_END.search(blob)
    if end is None:
        raise NotFast("no end of the ASDF tree")
    head = blob[:blob.index(b"\n---") + 1]  # the #ASDF comments and %YAML/%TAG directives
    blocks = blob[end.end():]
    index = blocks.rfind(b"#ASDF BLOCK INDEX")  # offsets into the whole file: dropped, blocks read in turn
    return head + b"--- !<tag:stsci.edu:asdf/core/asdf-1.1.0> {}\n...\n" + (blocks[:index] if index >= 0 else blocks)


def plain(node: Any, af: Any) -> Any:
    """``node`` as the datamodel holds it for flattening: tagged values converted, arrays stood in for
    (the gwcs, skipped by the flattening, left as it is)."""
    from asdf import tagged

    if isinstance(node, tagged.Tagged):
        if node._tag.startswith(_NDARRAY):
            return _Array()
        return converted(node, af)
    if isinstance(node, dict):
        return {key: value if key == "wcs" else plain(value, af) for key, value in node.items()}
    return node if not isinstance(node, list) else [plain(v, af) for v in node]


def converted(node: Any, af: Any) -> Any:
    from asdf import yamlutil

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a node asdf cannot convert: the datamodel reader's error
            return yamlutil.tagged_tree_to_custom_tree(node, af)
    except Exception as exc:  # noqa: BLE001 - any failure sends the file to the datamodel reader
        raise NotFast(f"a tagged node does not convert: {exc}") from exc


def flat_meta(tree: dict[str, Any], af: Any) -> dict[str, Any]:
    """:func:`~spec3c.ingest.cutouts.model_meta` of the model the tree is."""
    return _flatten("meta", plain(tree.get("meta") or {}, af), {})


