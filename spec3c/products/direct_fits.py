"""Writing a datamodel to FITS directly with astropy.io.fits, without stdatamodels' schema walk.

stdatamodels writes a model by running a jsonschema validator over its tree
whose keyword handlers write header cards and HDUs as a side effect
(``stdatamodels.fits_support.to_fits``): about a third of the time of writing a
NIRSpec MOS product went to that machinery.  Here the schema is compiled once per
model class (and HDRTAB extension, :func:`~spec3c.products.blend.attach_hdrtab`) into a plan holding only what writes something (section
titles, ``fits_keyword`` cards, array HDUs, sequences), and the tree is walked
against that plan in the schema's order, making the same cards (with the same
section comments and short descriptions), the same HDUs in the same order and
the same ASDF extension (arrays in HDUs referenced as ``fits:NAME,VER``, the
FITS hash).  The test suite checks, product type by product type and mode by
mode, that files written here equal stdatamodels' (tests/products/test_direct_fits.py).

A schema using a construct the plan does not model (``allOf``/``oneOf``, an
``anyOf`` whose branches write, an unresolved ``$ref``) makes :func:`plan_of`
return None and the model is written by stdatamodels.  stdatamodels' own
helpers make the HDU types, card comments, array references and the ASDF
extension (private functions of the pinned stdatamodels: the file-for-file
test is what tells a change of theirs).
"""

from __future__ import annotations

import contextlib
import datetime
import io
import threading
import types
import warnings
from collections.abc import Callable, Iterator
from typing import IO, Any

import asdf
import numpy as np
from astropy import time as astropy_time
from astropy.io import fits
from stdatamodels import fits_support
from stdatamodels import util as stdatamodels_util
from stdatamodels.jwst.datamodels import JwstDataModel

from ..gwcs_asdf import splice_stored_wcs
from .fits_image import ImageExtension, TableExtension, Unwritable, header_bytes, padding

__all__ = ["iter_plan_keywords", "plan_of", "write_fits_direct"]

_ARRAY_KEYS = ("ndim", "max_ndim", "datatype")
_UNMODELLED = ("allOf", "oneOf", "not", "if", "then", "else", "additionalProperties", "patternProperties",
               "dependencies", "additionalItems", "contains")
_WRITING = ("properties", "items", "fits_keyword", *_ARRAY_KEYS)


class _Unsupported(Exception):
    """The schema uses a construct the plan does not model."""


# -- the plan: the writing parts of a schema ------------------------------------------------------

#: a plan node: ("props", title, [(name, node), ...]) | ("keyword", keyword, hdu, comment)
#: | ("array", schema) | ("items", node) | ("tuple", [node, ...]) | ("all", [node, ...])
Plan = tuple[Any, ...]


def _writes(schema: Any) -> bool:
    """Whether anything below ``schema`` writes a card or an HDU."""
    if isinstance(schema, dict):
        return any(k in schema for k in _WRITING) or any(_writes(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_writes(v) for v in schema)
    return False


def _check_modelled(schema: dict[str, Any]) -> None:
    if "$ref" in schema:  # what it points to may write
        raise _Unsupported("$ref")
    for key in (*_UNMODELLED, "anyOf"):  # anyOf: only branches that write nothing (enum lists)
        if key in schema and _writes(schema[key]):
            raise _Unsupported(key)


def _step(key: str, value: Any, schema: dict[str, Any]) -> Plan | None:
    """What the validator's handler of schema keyword ``key`` writes (None: nothing)."""
    if key == "properties" and isinstance(value, dict):
        children = [(name, node) for name, sub in value.items()
                    if isinstance(sub, dict) and (node := _compile(sub)) is not None]
        title = schema.get("title")
        return ("props", title, children) if children or title is not None else None
    if key == "fits_keyword":
        if schema.get("type", "object") == "array":
            raise _Unsupported("fits_keyword on an array")
        return ("keyword", value, fits_support._get_hdu_name(schema), fits_support._get_short_doc(schema))
    if key in _ARRAY_KEYS:
        return ("array", schema)
    if key == "items" and isinstance(value, dict):
        node = _compile(value)
        return None if node is None else ("items", node)
    if key == "items" and isinstance(value, list):
        nodes = [_compile(v) if isinstance(v, dict) else None for v in value]
        return ("tuple", nodes) if any(n is not None for n in nodes) else None
    return None


def _compile(schema: dict[str, Any]) -> Plan | None:
    """The plan of one schema node (None: it writes nothing)."""
    _check_modelled(schema)
    steps: list[Plan] = []
    for key, value in schema.items():  # the validator's order: the schema's keys in order
        step = _step(key, value, schema)
        if step is None or (step[0] == "array" and any(s[0] == "array" for s in steps)):
            continue  # the array writer is idempotent: once per node is enough
        steps.append(step)
    if not steps:
        return None
    return steps[0] if len(steps) == 1 else ("all", steps)


#: (model class, its schema's top-level properties) -> plan: every model holds its own copy of its
#: class's schema; a schema extended at the top (spec3c's HDRTAB entry) has a plan of its own
_PLANS: dict[tuple[type, tuple[str, ...]], Plan | None] = {}
_PLANS_LOCK = threading.Lock()


def plan_of(model: Any) -> Plan | None:
    """The compiled plan of ``model``'s schema (None: write it with stdatamodels)."""
    schema = model.schema
    key = (type(model), tuple(schema.get("properties", {})))
    with _PLANS_LOCK:
        if key not in _PLANS:
            try:
                _PLANS[key] = _compile(schema) or ("all", [])
            except _Unsupported:
                _PLANS[key] = None
        return _PLANS[key]


# -- the tree as stdatamodels hands it to the writer ----------------------------------------------


def _prepared(node: Any) -> Any:
    """A copy of the containers of ``node`` (arrays shared unless not C-contiguous, as
    stdatamodels' ``_normalize_arrays``), datetimes and Times as ISO strings."""
    if isinstance(node, dict):
        return node.__class__((k, _prepared(v)) for k, v in node.items())
    if isinstance(node, list):
        return [_prepared(v) for v in node]
    if isinstance(node, tuple):
        return tuple(_prepared(v) for v in node)
    if isinstance(node, np.ndarray):
        return node if node.flags.c_contiguous else node.copy()
    if isinstance(node, datetime.datetime):
        node = astropy_time.Time(node)
    if isinstance(node, astropy_time.Time):
        return str(astropy_time.Time(node, format="iso"))
    return node


# -- HDUs ---------------------------------------------------------------------------------------


class _Hdus:
    """The HDU list being built, with stdatamodels' lookup rules (``get_hdu``) answered from
    an index instead of a scan.  Image extensions are :class:`~.fits_image.ImageExtension`,
    the primary and tables astropy's."""

    def __init__(self) -> None:
        self.hdulist: list[Any] = [fits.PrimaryHDU()]
        self._by_pair: dict[tuple[str, int], Any] = {}

    def _find(self, name: Any, index: int | None) -> Any:
        if name == 0:  # stdatamodels: the primary (sequence index 0), else its lookup fails
            if index not in (None, 0):
                raise _Unsupported("a primary keyword inside a sequence")
            return self.hdulist[0]
        key = str(name).upper()
        if index is None:
            return next((h for h in self.hdulist if h.name == key), None)
        hdu = self._by_pair.get((key, index + 1))
        if hdu is None and index == 0:  # stdatamodels' fallback: the first of that name, if its EXTVER is 1
            hdu = next((h for h in self.hdulist if h.name == key), None)
            if hdu is not None and hdu.header.get("EXTVER", 1) != 1:
                hdu = None
        return hdu

    def _append(self, name: Any, index: int | None, hdu_type: Any) -> Any:
        if hdu_type is None:
            hdu_type = fits_support._get_hdu_type(name) or fits.ImageHDU
        if hdu_type is fits.PrimaryHDU:
            raise _Unsupported("a second primary HDU")
        hdu = ImageExtension(name) if hdu_type is fits.ImageHDU else hdu_type(None, name=name)
        if index is not None:
            hdu.ver = index + 1
        self.hdulist.append(hdu)
        self._register(hdu)
        return hdu

    def _register(self, hdu: Any) -> None:
        self._by_pair.setdefault((hdu.name, int(hdu.ver)), hdu)

    def get_or_make(self, name: Any, index: int | None, hdu_type: Any = None) -> Any:
        hdu = self._find(name, index)
        if hdu is None:
            return self._append(name, index, hdu_type)
        if hdu_type is not None and not _is_a(hdu, hdu_type):  # e.g. keywords came first: re-made
            new = self._append(name, index, hdu_type)
            for key, value in hdu.header.items():
                if not fits_support.is_builtin_fits_keyword(key):
                    new.header[key] = value
            self.hdulist.remove(hdu)
            self._by_pair = {k: v for k, v in self._by_pair.items() if v is not hdu}
            self._register(new)
            hdu = new
        return hdu

    def extra(self, name: str, value: Any = None) -> Any:
        """stdatamodels' ``_get_or_make_hdu(hdulist, name, hdu_type=..., value=value)`` for an
        ``extra_fits`` entry: the first HDU of that name, its data set, or a new one."""
        if value is not None and not isinstance(value, np.ndarray):
            value = np.asarray(value)
        hdu_type = None if value is None else fits_support._get_hdu_type(name, value=value)
        hdu = self._find(name, None)
        if hdu is not None:
            if hdu_type is not None and not _is_a(hdu, hdu_type):
                raise _Unsupported("an extra_fits HDU of another type")
            if value is not None:
                hdu.data = value
            return hdu
        if value is None:
            hdu = ImageExtension(name)
        else:
            hdu = (hdu_type or fits.ImageHDU)(value, name=name)
        self.hdulist.append(hdu)
        self._register(hdu)
        return hdu

    def set_ver(self, hdu: Any, ver: int) -> None:
        """``hdu.ver = ver`` (always: setting it writes EXTVER, as stdatamodels does)."""
        moved = int(hdu.ver) != ver
        if moved:
            self._by_pair = {k: v for k, v in self._by_pair.items() if v is not hdu}
        hdu.ver = ver
        if moved:
            self._register(hdu)


class _Writer:
    """Walks a tree against a plan: the FITS side effects of stdatamodels' validator."""

    def __init__(self) -> None:
        self.hdus = _Hdus()
        self.comments: list[str] = []
        self.index: int | None = None
        self.links: dict[int, Any] = {}  # id(array) -> its HDU

    def walk(self, plan: Plan, instance: Any) -> None:
        kind = plan[0]
        if kind == "all":
            for step in plan[1]:
                self.walk(step, instance)
        elif kind == "props":
            self._properties(plan, instance)
        elif kind == "keyword":
            self._keyword(plan, instance)
        elif kind == "array":
            self._array(plan[1], instance)
        elif kind == "items":
            if isinstance(instance, (list, tuple)):
                outer = self.index
                for i, item in enumerate(instance):
                    self.index = i
                    self.walk(plan[1], item)
                self.index = outer
        elif kind == "tuple" and isinstance(instance, (list, tuple)):
            for item, node in zip(instance, plan[1], strict=False):
                if node is not None:
                    self.walk(node, item)

    def _properties(self, plan: Plan, instance: Any) -> None:
        if not isinstance(instance, dict):
            return
        _, title, children = plan
        stack = self.comments
        if title is not None:
            stack.append(title)
        for name, node in children:
            if name in instance:
                self.walk(node, instance[name])
        if title is not None:
            stack.pop(-1)  # the list the title went on (a flushed stack is a new list)

    def _keyword(self, plan: Plan, value: Any) -> None:
        _, keyword, hdu_name, comment = plan
        header = self.hdus.get_or_make(hdu_name, self.index).header
        for title in self.comments:
            header.append((" ", ""), end=True)
            header.append((" ", title), end=True)
            header.append((" ", ""), end=True)
        self.comments = []
        if keyword in ("COMMENT", "HISTORY"):
            for item in value:
                header[keyword] = item
        elif keyword in header:
            header[keyword] = (value, comment)
        else:
            header.append((keyword, value, comment), end=True)

    def _array(self, schema: dict[str, Any], instance: Any) -> None:
        if instance is None:
            return
        key = id(instance)
        array = np.asanyarray(instance)
        if not len(array.shape):
            return
        name = fits_support._get_hdu_name(schema)
        fits_support._assert_non_primary_hdu(name)
        index = 0 if self.index is None else self.index
        hdu_type = fits_support._get_hdu_type(name, schema=schema, value=array)
        if hdu_type is fits.BinTableHDU and TableExtension.takes(array):
            hdu_type = TableExtension
        hdu = self.hdus.get_or_make(name, index, hdu_type)
        hdu.data = array
        if key in self.links and self.links[key] is not hdu:
            raise ValueError("Linking one array to multiple hdus is not supported")
        self.links[key] = hdu
        self.hdus.set_ver(hdu, index + 1)

    def linked(self, node: Any) -> Any:
        """``node`` with its arrays written to HDUs replaced by references to them (as stdatamodels)."""
        if isinstance(node, dict):
            return node.__class__((k, self.linked(v)) for k, v in node.items())
        if isinstance(node, list):
            return [self.linked(v) for v in node]
        if isinstance(node, tuple):
            return tuple(self.linked(v) for v in node)
        hdulist = self.hdus.hdulist
        if id(node) in self.links:
            hdu = self.links[id(node)]
            return fits_support._create_tagged_dict_for_fits_array(hdu, hdulist.index(hdu))
        if isinstance(node, np.ndarray):
            for i, hdu in enumerate(hdulist):
                if hdu.data is not None and node is hdu.data:
                    return fits_support._create_tagged_dict_for_fits_array(hdu, i)
        return node


def _is_a(hdu: Any, hdu_type: Any) -> bool:
    return isinstance(hdu, ImageExtension if hdu_type is fits.ImageHDU else hdu_type)


def _save_extra_fits(hdus: _Hdus, tree: dict[str, Any]) -> dict[str, Any]:
    """stdatamodels' ``_save_extra_fits`` on the list being built: the tree's ``extra_fits``
    arrays and cards (e.g. spec3c's PROVENANCE table) in HDUs of their names."""
    for name, parts in tree.get("extra_fits", {}).items():
        if "data" in parts:
            hdu = hdus.extra(name, parts["data"])
            parts["data"] = fits_support._create_tagged_dict_for_fits_array(hdu, hdus.hdulist.index(hdu))
        if "header" in parts:
            hdu = hdus.extra(name)
            for key, value, comment in parts["header"]:
                if not fits_support.is_builtin_fits_keyword(key):
                    hdu.header.append((key, value, comment), end=True)
    return tree


def _hdulist(instance: dict[str, Any], plan: Plan) -> list[Any]:
    """The HDUs of a model's (saved) instance, the ASDF extension last."""
    tree = _prepared(instance)
    writer = _Writer()
    writer.walk(plan, tree)
    hdulist = writer.hdus.hdulist
    tree = writer.linked(tree)
    tree = _save_extra_fits(writer.hdus, tree)
    fits_support._save_history(hdulist[:1], tree)  # HISTORY cards: in the primary (hdulist[0]) only
    tree[fits_support.FITS_HASH_KEY] = fits_support.fits_hash(hdulist)
    hdulist.append(_asdf_hdu(tree))
    return hdulist


def _astropy_bytes(hdu: Any, primary: bool) -> bytes:
    """An astropy HDU as HDUList.writeto writes it in a list (a table after a bare primary)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Card is too long")
        # astropy's verification of every card, which only raises here (its "exception" mode fixes
        # nothing): the cards are the schema's, as stdatamodels writes them (tests compare the files)
        fits.HDUList([hdu] if primary else [fits.PrimaryHDU(), hdu]).writeto(buffer, output_verify="ignore")
    return buffer.getvalue() if primary else buffer.getvalue()[_PRIMARY_BYTES:]


_PRIMARY_BYTES = 2880  # a bare PrimaryHDU: one header block


def _write(hdulist: list[Any], fileobj: IO[bytes]) -> None:
    if hdulist[0].header.get("EXTEND") is not True:  # astropy's update_extend would set it in the list
        raise _Unsupported("a primary header without EXTEND = T")
    for index, hdu in enumerate(hdulist):
        if isinstance(hdu, (ImageExtension, TableExtension)):
            data = hdu.data_bytes()
            fileobj.write(header_bytes(hdu))
            fileobj.write(data)
            fileobj.write(padding(len(data)))
        else:
            fileobj.write(_astropy_bytes(hdu, primary=index == 0))


def _holds(node: Any, test: Callable[[Any], bool]) -> bool:
    """Whether ``test`` holds for a leaf of ``node`` (or a None child: those are leaves too),
    descending into dicts, lists and tuples as asdf's tree walks do."""
    if isinstance(node, dict):
        node = node.values()
    elif not isinstance(node, (list, tuple)):
        return test(node)
    for child in node:
        if _holds(child, test):
            return True
    return False


def _asdf_bytes(tree: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    if _holds(tree, lambda leaf: isinstance(leaf, fits.FITS_rec)):  # else asdf's walk would only copy the tree
        tree = stdatamodels_util.convert_fitsrec_to_array_in_tree(tree)
    asdf.AsdfFile(tree).write_to(buffer)
    return buffer.getvalue()


def _asdf_hdu(tree: dict[str, Any]) -> fits.BinTableHDU:
    """The ASDF extension, as stdatamodels' ``_create_asdf_hdu`` makes it, with the stored slit
    WCSs of the tree (:class:`~spec3c.gwcs_asdf.StoredWcs`) written as their stored YAML."""
    data = np.array(memoryview(splice_stored_wcs(tree, _asdf_bytes)), dtype=np.uint8)[None, :]
    column = fits.Column(array=data, format=f"{data.shape[1]}B", name="ASDF_METADATA")
    return fits.BinTableHDU.from_columns([column], name=fits_support._ASDF_EXTENSION_NAME)


@contextlib.contextmanager
def _card_settings_fixed() -> Iterator[None]:
    """astropy reads two configuration items through its config machinery for every card made
    or read (a seventh of the time of writing a product): give the card module their values
    for the duration of the write (readers elsewhere see the same values)."""
    from astropy.io.fits import card

    live = card.conf
    names = ("strip_header_whitespace", "enable_record_valued_keyword_cards")
    with _CARD_LOCK:
        card.conf = types.SimpleNamespace(**{name: getattr(live, name) for name in names})
        try:
            yield
        finally:
            card.conf = live


_CARD_LOCK = threading.Lock()


def _on_save(model: Any, fileobj: IO[bytes]) -> None:
    """``model.on_save(fileobj)``, without stdatamodels' walk dropping None values from the tree
    when it holds none (the walk would only copy it: a twentieth of writing a 24-exposure ``_cal``)."""
    if (type(model).on_save is not JwstDataModel.on_save or isinstance(fileobj, str)
            or _holds(model._instance, lambda leaf: leaf is None)):
        model.on_save(fileobj)
        return
    # what JwstDataModel.on_save does for a file object, less the walk
    model.meta.model_type = model._model_type
    model.meta.date = astropy_time.Time.now().isot


def write_fits_direct(model: Any, fileobj: IO[bytes]) -> bool:
    """Write ``model`` as FITS to ``fileobj`` as ``model.to_fits`` would; False (nothing
    written) if its schema is one the plan does not model."""
    plan = plan_of(model)
    if plan is None or getattr(model, "_no_asdf_extension", False):
        return False
    _on_save(model, fileobj)  # model_type, date, None values dropped: as to_fits
    with _card_settings_fixed():
        try:
            hdulist = _hdulist(model._instance, plan)
            _write(hdulist, fileobj)  # its only refusal comes before the first byte
        except (_Unsupported, Unwritable):
            return False
    return True


def iter_plan_keywords(plan: Plan) -> Iterator[str]:
    """Every FITS keyword a plan can write (for tests and diagnostics)."""
    kind = plan[0]
    if kind == "keyword":
        yield plan[1]
    elif kind == "all":
        for step in plan[1]:
            yield from iter_plan_keywords(step)
    elif kind == "props":
        for _, node in plan[2]:
            yield from iter_plan_keywords(node)
    elif kind == "items":
        yield from iter_plan_keywords(plan[1])
    elif kind == "tuple":
        for node in plan[1]:
            if node is not None:
                yield from iter_plan_keywords(node)
