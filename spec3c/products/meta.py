"""Metadata of exported products, rebuilt from the store's flat records.

The store keeps metadata flat (``"meta.exposure.type" -> <EXP_TYPE>``);
datamodels want nested trees.  This module converts between the two, merges
an exposure's metadata with a slit's the way the reference's
``exp_to_source`` does (ALGORITHMS §4), and reads step statuses and
parameters out of a source's ``status`` result.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import __version__
from ..provenance import KEY_PARTS, reference_type
from ..results import COMPLETE, FAILED, SKIPPED
from ..store.records import Cutout, ExposureRecord

__all__ = [
    "CAL_STEP_KEYS",
    "PROVENANCE_EXTNAME",
    "ProductStamp",
    "ProductProvenance",
    "SLIT_ATTRIBUTES",
    "cal_steps_for",
    "exposure_slit_meta",
    "flat_to_tree",
    "merge_tree",
    "primary_meta",
    "product_stamp",
    "read_provenance",
    "schema_fits_hdus",
    "stamp_model",
    "stamping",
    "slit_attributes",
    "step_params",
    "step_statuses",
    "top_level_meta",
]

#: slit attributes of the stdatamodels ``slitmeta`` schema
SLIT_ATTRIBUTES = (
    "name", "xstart", "xsize", "ystart", "ysize", "slitlet_id", "shutter_id", "source_id",
    "source_name", "source_alias", "stellarity", "source_type", "is_extended", "ta_xpos",
    "ta_ypos", "source_xpos", "source_ypos", "shutter_state", "quadrant", "xcen", "ycen",
    "source_ra", "source_dec", "slit_ymin", "slit_ymax", "slit_xscale", "slit_yscale",
    "wavelength_corrected", "pathloss_correction_type", "barshadow_corrected",
)  # fmt: skip

#: spec3 step name -> ``meta.cal_step`` attribute (S_<STEP> keyword)
CAL_STEP_KEYS = {
    "assign_mtwcs": "assign_mtwcs",
    "master_background": "master_background",
    "outlier_detection": "outlier_detection",
    "adaptive_trace_model": "adaptive_trace_model",
    "pixel_replace": "pixel_replace",
    "resample_spec": "resample",
    "resample": "resample",
    "cube_build": "cube_build",
    "extract_1d": "extract_1d",
    "spectral_leak": "spectral_leak",
    "combine_1d": "combine_1d",
}

#: steps whose status each product carries (a product records what ran before it)
_PRODUCT_STEPS = {
    "cal": ("assign_mtwcs", "master_background"),
    "crf": ("assign_mtwcs", "master_background", "outlier_detection"),
    "s2d": (
        "assign_mtwcs", "master_background", "outlier_detection", "adaptive_trace_model",
        "pixel_replace", "resample_spec", "resample",
    ),
    "x1d": (
        "assign_mtwcs", "master_background", "outlier_detection", "adaptive_trace_model",
        "pixel_replace", "resample_spec", "resample", "extract_1d",
    ),
}  # fmt: skip

_STATUSES = (COMPLETE, SKIPPED, FAILED)

#: metadata nodes that stdatamodels writes to a SCI header; kept per exposure /
#: slit, dropped from the top level of multi-extension and table products
_SCI_HDU_NODES = ("wcsinfo", "photometry", "bunit_data", "bunit_err")


def flat_to_tree(flat: Mapping[str, Any], prefix: str = "meta.") -> dict[str, Any]:
    """``{"meta.a.b": v}`` -> ``{"a": {"b": v}}`` for the keys under ``prefix``.

    ``None`` values are dropped (stdatamodels treats None as absent).
    """
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        if not key.startswith(prefix) or value is None:
            continue
        parts = key[len(prefix) :].split(".")
        node = tree
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):  # a scalar and a node of one name: keep the node
                child = node[part] = {}
            node = child
        if not isinstance(node.get(parts[-1]), dict):
            node[parts[-1]] = value
    return tree


def merge_tree(base: dict[str, Any], other: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``other`` into ``base`` in place (``other`` wins), recursing into dicts."""
    for key, value in other.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            merge_tree(base[key], value)
        elif isinstance(value, Mapping):
            base[key] = merge_tree({}, value)
        else:
            base[key] = value
    return base


def slit_attributes(meta: Mapping[str, Any], names: Iterable[str] | None = None) -> dict[str, Any]:
    """Slit attributes (``name``, ``source_id`` ...) present and not None in ``meta``."""
    keys = SLIT_ATTRIBUTES if names is None else tuple(names)
    return {k: meta[k] for k in keys if meta.get(k) is not None}


def exposure_slit_meta(record: ExposureRecord, cutout: Cutout) -> dict[str, Any]:
    """Metadata tree of one exposure of a source, as ``exp_to_source`` builds it.

    The exposure's metadata is merged over the slit's own, then the slit's
    ``bunit_data``/``bunit_err``, ``model_type`` and ``wcsinfo`` are restored
    and a slit-level EXP_TYPE (fixed slits in an MSA exposure) wins.
    """
    slit = flat_to_tree(cutout.meta)
    meta = merge_tree(merge_tree({}, slit), flat_to_tree(record.meta))
    for key in ("bunit_data", "bunit_err", "model_type", "wcsinfo"):
        if key in slit:
            meta[key] = slit[key]
        else:
            meta.pop(key, None)
    slit_exp_type = slit.get("exposure", {}).get("type")
    if slit_exp_type:
        meta.setdefault("exposure", {})["type"] = slit_exp_type
    meta["model_type"] = "SlitModel"
    return meta


def top_level_meta(
    record: ExposureRecord, cutout: Cutout | None = None, *, keep_sci: bool = False
) -> dict[str, Any]:
    """Primary metadata of a source product, from its first exposure.

    ``keep_sci`` keeps the nodes stdatamodels writes to the SCI header
    (wanted for single-slit products such as ``s2d``).
    """
    meta = exposure_slit_meta(record, cutout) if cutout is not None else flat_to_tree(record.meta)
    for key in ("model_type", "filename", "date"):
        meta.pop(key, None)
    if not keep_sci:
        for key in _SCI_HDU_NODES:
            meta.pop(key, None)
        meta.get("target", {}).pop("source_type", None)
    return meta


def step_statuses(status: Mapping[str, Any]) -> dict[str, str]:
    """Step name -> COMPLETE/SKIPPED/FAILED from the ``status`` result ``process`` writes
    (``{"steps": {step: {"status": ..., "message": ..., "seconds": ...}}, "params": {...}}``)."""
    return {name: str(entry["status"]).upper() for name, entry in status.get("steps", {}).items()
            if isinstance(entry, Mapping) and str(entry.get("status", "")).upper() in _STATUSES}


def step_params(status: Mapping[str, Any], step: str) -> dict[str, Any]:
    """Resolved parameters of ``step`` from the ``status`` result."""
    return dict(status.get("params", {}).get(step, {}))


def cal_steps_for(product: str, status: Mapping[str, Any]) -> dict[str, str]:
    """``meta.cal_step`` entries a product gets from the source's step statuses."""
    statuses = step_statuses(status)
    if statuses.get("assign_mtwcs") == SKIPPED:
        del statuses["assign_mtwcs"]  # the reference runs it on moving targets only (no S_MTWCS otherwise)
    if "outlier_detection" in statuses and "adaptive_trace_model" in _PRODUCT_STEPS[product]:
        # jwst 3.0.0 runs adaptive_trace_model (skip=True by default) after outlier_detection
        # (not for WFSS); spec3c has no such step, so it is always SKIPPED
        statuses.setdefault("adaptive_trace_model", SKIPPED)
    out: dict[str, str] = {}
    for step in _PRODUCT_STEPS[product]:
        if step in statuses:
            out[CAL_STEP_KEYS[step]] = statuses[step]
    return out


def schema_fits_hdus(schema: Mapping[str, Any]) -> dict[str, str]:
    """``"a.b"`` -> FITS HDU name of every ``meta`` keyword a (resolved) model schema maps."""
    found: dict[str, str] = {}

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if not isinstance(node, Mapping):
            return
        if "fits_keyword" in node and path[:1] == ("meta",):
            found[".".join(path[1:])] = str(node.get("fits_hdu", "PRIMARY"))
        for combiner in ("allOf", "anyOf", "oneOf"):
            for sub in node.get(combiner, []):
                walk(sub, path)
        for key, sub in node.get("properties", {}).items():
            walk(sub, (*path, key))

    walk(schema, ())
    return found


def primary_meta(
    meta: Mapping[str, Any], schema: Mapping[str, Any], *, keep_unmapped: bool
) -> dict[str, Any]:
    """The part of a metadata tree that belongs in the primary header of a model.

    Leaves the schema maps to another HDU (e.g. SCI) are dropped, so that a
    table product gets no empty SCI extension; leaves the schema does not map
    to FITS (ASDF-only) are kept when ``keep_unmapped`` (the reference's
    ``update(..., only="PRIMARY")`` drops them).
    """
    hdus = schema_fits_hdus(schema)

    def keep(node: Mapping[str, Any], prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            path = f"{prefix}{key}"
            if isinstance(value, Mapping) and not hasattr(value, "forward_transform"):
                sub = keep(value, path + ".")
                if sub:
                    out[key] = sub
            elif hdus.get(path) == "PRIMARY" or (path not in hdus and keep_unmapped):
                out[key] = value
        return out

    return keep(meta, "")


# -- provenance: what made a product ---------------------------------------------------

#: the product extension with what the primary keywords cannot hold (one row per fact)
PROVENANCE_EXTNAME = "PROVENANCE"
#: columns of the PROVENANCE table
_PROVENANCE_COLUMNS = ("KIND", "NAME", "VALUE", "SHA256")
#: header cards of the PROVENANCE extension
SOURCE_CARD, KEY_CARD = "S3CSRC", "S3CKEY"


@dataclass(frozen=True)
class ProductStamp:
    """What every product of one source records of what made it.

    Primary keywords where the reference has them (``CAL_VER``/``CAL_VCS``,
    ``R_<REFTYPE>`` = ``meta.ref_file.<reftype>.name`` of each reference file
    when the product's schema has that keyword); the rest in a ``PROVENANCE``
    table (columns KIND, NAME, VALUE, SHA256; kinds ``software``, ``input``,
    ``reference``, ``association``, ``parameter`` (VALUE is JSON), ``note``
    (NAME the step, VALUE a caveat of its result, e.g. an aperture correction
    asked for without an APCORR file), ``selection`` (how the reference files
    were chosen, :mod:`spec3c.reffiles`: NAME a reference parameter, VALUE its
    ``R_<REFTYPE>`` name ``crds://<file>`` or ``N/A``; or NAME ``crds_context`` /
    ``crds_version``), ``key``)
    whose header names the source (``S3CSRC``) and its key (``S3CKEY``).
    Files CRDS chose are named as jwst names them, with the context
    (``CRDS_CTX``) and crds version (``CRDS_VER``).
    """

    version: str
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    references: dict[str, str] = field(default_factory=dict)  # reftype -> path, crds://<file> or N/A
    cards: list[tuple[str, str, str]] = field(default_factory=list)
    crds: dict[str, str] = field(default_factory=dict)  # meta.ref_file.crds: context_used, sw_version

    def table(self) -> np.ndarray:
        widths = [max([1, *(len(row[i]) for row in self.rows)]) for i in range(len(_PROVENANCE_COLUMNS))]
        dtype = [(name, f"U{width}") for name, width in zip(_PROVENANCE_COLUMNS, widths, strict=True)]
        return np.array(self.rows, dtype=dtype)

    def apply(self, model: Any) -> None:
        """Set the keywords and add the extension to a datamodel about to be saved."""
        meta = model.instance.setdefault("meta", {})
        merge_tree(meta, {"calibration_software_version": self.version,
                          "calibration_software_revision": f"spec3c-{self.version}"})
        mapped = _schema_keywords(model)
        refs = {kind: {"name": path} for kind, path in self.references.items() if f"ref_file.{kind}.name" in mapped}
        crds = {name: value for name, value in self.crds.items() if f"ref_file.crds.{name}" in mapped}
        if crds:
            refs["crds"] = crds
        if refs:
            merge_tree(meta, {"ref_file": refs})
        extra = model.instance.setdefault("extra_fits", {})
        extra[PROVENANCE_EXTNAME] = {"data": self.table(), "header": [list(card) for card in self.cards]}


_KEYWORDS: dict[type, frozenset[str]] = {}


def _schema_keywords(model: Any) -> frozenset[str]:
    """Metadata paths a model's schema maps to FITS keywords (cached per model class)."""
    kind = type(model)
    if kind not in _KEYWORDS:
        _KEYWORDS[kind] = frozenset(schema_fits_hdus(model.schema))
    return _KEYWORDS[kind]


def product_stamp(status: Mapping[str, Any] | None, source: str | None = None) -> ProductStamp:
    """The stamp of a source's products, from the ``status`` result ``process`` wrote
    (without a status: the software versions only)."""
    from ..provenance import dependency_versions

    status = status or {}
    prov = status.get("provenance", {})
    software = prov.get("software") or {"spec3c": __version__, **dependency_versions()}
    version = str(software.get("spec3c", __version__))
    # sorted everywhere: a status read back from a store has its keys sorted, one still in memory not
    rows = [("software", name, str(value), "") for name, value in sorted(software.items())]
    rows += [("input", f["filename"], f"{f['exposure']}/{f['slit']}", f["sha256"])
             for f in sorted(prov.get("inputs", []), key=lambda f: (f["exposure"], f["slit"]))]
    refs = prov.get("references", {})
    rows += [("reference", name, ref["path"], ref["sha256"]) for name, ref in sorted(refs.items())]
    rows += [("association", name, "", digest) for name, digest in sorted(prov.get("association", {}).items())]
    ran = status.get("steps", {})  # the plan's steps: other steps' parameters did not shape the product
    rows += [("parameter", f"{step}.{name}", json.dumps(value), "")
             for step, params in sorted(status.get("params", {}).items()) if step in ran
             for name, value in sorted(params.items())]
    rows += [("note", step, str(note), "") for step, entry in sorted(ran.items()) if isinstance(entry, Mapping)
             for note in entry.get("notes") or ()]
    key = status.get("key", {})
    rows += [("key", part, key[part] if part == "version" else "", "" if part == "version" else key[part])
             for part in (*KEY_PARTS, "digest") if part in key]
    cards = [(SOURCE_CARD, source, "spec3c source key")] if source is not None else []
    if "digest" in key:
        cards.append((KEY_CARD, key["digest"], "sha256 of what the product was computed from"))
    selection = prov.get("reference_selection", {})
    names: dict[str, str] = selection.get("names", {})
    rows += [("selection", name, str(value), "") for name, value in sorted(names.items())]
    rows += [("selection", name, str(selection[name]), "") for name in _CRDS_FIELDS if selection.get(name)]
    references = {kind: names.get(name, ref["path"]) for name, ref in refs.items()
                  if (kind := reference_type(name.rpartition(".")[2]))}
    references.update({kind: value for name, value in names.items() if name not in refs
                       and (kind := reference_type(name.rpartition(".")[2]))})
    crds = {attr: str(selection[name]) for name, attr in _CRDS_FIELDS.items() if selection.get(name)}
    return ProductStamp(version, rows, references, cards, crds)


#: the CRDS facts of a reference selection -> their ``meta.ref_file.crds`` field (CRDS_CTX, CRDS_VER)
_CRDS_FIELDS = {"crds_context": "context_used", "crds_version": "sw_version"}


_STAMP: ContextVar[ProductStamp | None] = ContextVar("spec3c_product_stamp", default=None)


@contextmanager
def stamping(stamp: ProductStamp | None) -> Iterator[None]:
    """Every product saved inside the block (:func:`spec3c.products.fits_io.atomic_save`) gets ``stamp``."""
    token = _STAMP.set(stamp)
    try:
        yield
    finally:
        _STAMP.reset(token)


def stamp_model(model: Any) -> None:
    """Apply the stamp of the enclosing :func:`stamping` block (none outside one)."""
    stamp = _STAMP.get()
    if stamp is not None:
        stamp.apply(model)


@dataclass(frozen=True)
class ProductProvenance:
    """A product's PROVENANCE extension, read back."""

    source: str | None
    key: str | None
    rows: list[tuple[str, str, str, str]]

    def of_kind(self, kind: str) -> list[tuple[str, str, str]]:
        return [(name, value, sha) for k, name, value, sha in self.rows if k == kind]

    def reference_selection(self) -> dict[str, Any]:
        """How the reference files were chosen (:meth:`spec3c.reffiles.ReferenceSelection.record`),
        empty when the product does not say."""
        rows = {name: value for name, value, _ in self.of_kind("selection")}
        if not rows:
            return {}
        return {"names": {name: value for name, value in rows.items() if name not in _CRDS_FIELDS},
                **{name: rows.get(name) for name in _CRDS_FIELDS}}

    def notes(self) -> dict[str, list[str]]:
        """The caveats the steps recorded: ``{step: [note, ...]}``."""
        out: dict[str, list[str]] = {}
        for step, note, _ in self.of_kind("note"):
            out.setdefault(step, []).append(note)
        return out

    def parameters(self) -> dict[str, dict[str, Any]]:
        """The resolved parameters the source was processed with: ``{step: {param: value}}``."""
        out: dict[str, dict[str, Any]] = {}
        for name, value, _ in self.of_kind("parameter"):
            step, _, param = name.partition(".")
            out.setdefault(step, {})[param] = json.loads(value)
        return out


def read_provenance(hdul: Any) -> ProductProvenance | None:
    """The PROVENANCE extension of an open FITS product (astropy HDUList), None if it has none."""
    if PROVENANCE_EXTNAME not in hdul:
        return None
    hdu = hdul[PROVENANCE_EXTNAME]
    rows = [tuple(str(row[c]) for c in _PROVENANCE_COLUMNS) for row in hdu.data]
    return ProductProvenance(hdu.header.get(SOURCE_CARD), hdu.header.get(KEY_CARD), rows)  # type: ignore[arg-type]
