"""Stage-3 product and exposure file names.

The rules reproduce those of ``calwebb_spec3`` (jwst 3.0, ALGORITHMS §2.2-2.3):

* the association's product name is a *template* that may keep the literal
  fields ``{source_id}`` and ``{slit_name}``; the pipeline fills them per
  source (:func:`product_name`) with a partial format fill
  (:func:`fill_product_name`);
* the source field is a letter plus the id right-justified to 9 characters
  with ``0`` (:func:`source_token`); NIRSpec fixed-slit products also get the
  source's slit names (:func:`fs_slit_token`);
* per-source products are ``<base>_<suffix>.fits`` (:func:`product_filename`),
  exposure-based products (``crf``) are ``<exposure root>_<asn_id>_<suffix>.fits``
  (:func:`exposure_product_filename`).

Nothing here touches files.
"""

from __future__ import annotations

import operator
import os
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "KNOWN_SUFFIXES",
    "ProductNaming",
    "SourceNaming",
    "exposure_product_filename",
    "fill_product_name",
    "fs_slit_token",
    "product_filename",
    "product_name",
    "source_token",
    "strip_known_suffix",
]

#: Width of the numeric part of a source token.
_SOURCE_DIGITS = 9

#: File-name suffixes stripped from an input name before a new suffix is added
#: (stpipe ``remove_suffix``).  The reference list (``jwst.lib.suffix``) has
#: ~160 entries generated from every step and pipeline name; this is the part
#: that can reach a stage-3 spectroscopic step: stage-1/2/3 product suffixes
#: and the aliases of the spec2/spec3 steps.  Matching is case-sensitive, as in
#: the reference.
KNOWN_SUFFIXES: frozenset[str] = frozenset(
    {
        # products
        "uncal", "ramp", "rate", "rateints", "cal", "calints", "bsub", "bsubints",
        "crf", "crfints", "s2d", "s3d", "x1d", "x1dints", "c1d", "i2d", "mbsub",
        "median", "blot", "whtlt", "cat", "phot",
        # spec2 / spec3 step aliases
        "assign_wcs", "assign_mtwcs", "bkg_subtract", "extract_2d", "flat_field",
        "pathloss", "photom", "imprint", "fringe", "straylight", "residual_fringe",
        "srctype", "master_background", "outlier_detection", "resample",
        "resample_spec", "cube_build", "extract_1d", "combine_1d", "spectral_leak",
        "adaptive_trace_model",
        # pipelines
        "spec2pipeline", "spec3pipeline",
        # outputs of spec3 steps run alone (``spec3c step``; stpipe: the class name in lower case)
        "assignmtwcsstep", "masterbackgroundstep", "outlierdetectionstep", "pixelreplacestep",
        "resamplespecstep", "cubebuildstep", "extract1dstep", "combine1dstep", "spectralleakstep",
    }
)  # fmt: skip

_SUFFIX_SEPARATORS = "_-"
_FORMATTER = string.Formatter()


def source_token(source_id: int, source_name: str | None = None, *, mos: bool = False) -> str:
    """Return the source field of a per-source product name.

    Parameters
    ----------
    source_id : int
        The slit's ``source_id`` (of the first exposure of the source).
    source_name : str or None
        The slit's ``source_name``; only used with ``mos``.
    mos : bool
        The mode distinguishes source, background and virtual slits (NIRSpec MOS).

    Returns
    -------
    str
        ``s`` + id padded to 9 characters; with ``mos``: ``b`` + 9
        characters when ``BKG`` is in ``source_name`` (background slitlet),
        else ``v`` + 9 digits of ``|source_id|`` when the id is negative
        (virtual slit), else ``s`` + 9 characters.

    Notes
    -----
    As in the reference the padding is a text right-justification with ``0``,
    not a numeric format: ids of more than 9 digits are kept whole, and a
    negative id outside MOS keeps its sign after the zeros
    (``-5`` -> ``s0000000-5``).
    """
    sid = operator.index(source_id)
    if mos:
        if source_name is not None and "BKG" in source_name:
            return "b" + _pad(str(sid))
        if sid < 0:
            return "v" + _pad(str(sid)[1:])
    return "s" + _pad(str(sid))


def _pad(text: str) -> str:
    return text.rjust(_SOURCE_DIGITS, "0")


def fs_slit_token(slit_names: Iterable[str]) -> str:
    """Return the ``{slit_name}`` field of a NIRSpec fixed-slit product.

    Parameters
    ----------
    slit_names : iterable of str
        Slit name of every exposure of the source, in exposure order.

    Returns
    -------
    str
        Unique lower-cased names, in order of first appearance, joined by ``-``
        (``["S200A2", "S200A2"]`` -> ``"s200a2"``).
    """
    unique: dict[str, None] = {}
    for name in slit_names:
        unique.setdefault(name.lower(), None)
    if not unique:
        raise ValueError("fs_slit_token needs at least one slit name")
    return "-".join(unique)


def fill_product_name(template: str, /, *, lowercase: bool = True, **fields: object) -> str:
    """Fill the named fields of a product-name template, leaving the others.

    Parameters
    ----------
    template : str
        Name with ``{field}`` replacement fields (format-string syntax).
    lowercase : bool
        Lower-case the result.  The reference does not; product names made by
        the association rules are already lower case so this only matters for
        hand-written associations.
    **fields
        Values to insert (``str()`` of the value).  A field absent from
        ``fields`` is left in the result as written; a value of ``None``
        fills its field with nothing.  Values whose field is not in the
        template are appended, each after ``_``, in sorted field order
        (``None`` values are not appended).

    Returns
    -------
    str
        The filled name.

    Raises
    ------
    ValueError
        The template is not valid format syntax (e.g. a lone ``{``).
    """
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise ValueError(f"malformed name template {template!r}: {exc}") from exc
    used: set[str] = set()
    parts: list[str] = []
    for literal, field, spec, conversion in parsed:
        parts.append(literal)
        if field is None:
            continue
        if field not in fields:
            parts.append(_field_text(field, conversion, spec))
            continue
        used.add(field)
        value = fields[field]
        text = "" if value is None else str(value)
        if conversion:
            text = str(_FORMATTER.convert_field(text, conversion))
        parts.append(format(text, spec or ""))
    extra = [str(fields[k]) for k in sorted(fields) if k not in used and fields[k] is not None]
    result = "_".join(["".join(parts), *extra])
    return result.lower() if lowercase else result


def _field_text(field: str, conversion: str | None, spec: str | None) -> str:
    """Re-create a replacement field as it was written."""
    conv = f"!{conversion}" if conversion else ""
    fmt = f":{spec}" if spec else ""
    return "{" + field + conv + fmt + "}"


def product_name(
    asn_product_name: str,
    source_token: str | None = None,
    slit_token: str | None = None,
    *,
    lowercase: bool = True,
) -> str:
    """Return the base name of a stage-3 product.

    Parameters
    ----------
    asn_product_name : str
        ``products[0].name`` of the association (a template).
    source_token : str or None
        From :func:`source_token`; ``None`` for single-source modes, whose
        product name is the association's name as is.
    slit_token : str or None
        From :func:`fs_slit_token` (NIRSpec fixed slit only).
    lowercase : bool
        See :func:`fill_product_name`.

    Returns
    -------
    str
        E.g. ``jw01345-o066_s000004385_nirspec_f170lp-g235m``.  As in the
        reference, a token whose field is missing from the template is
        appended after ``_``.
    """
    fields: dict[str, object] = {}
    if source_token is not None:
        fields["source_id"] = source_token
    if slit_token is not None:
        fields["slit_name"] = slit_token
    return fill_product_name(asn_product_name, lowercase=lowercase, **fields)


def product_filename(base: str, suffix: str) -> str:
    """Return ``f"{base}_{suffix}.fits"`` (e.g. ``..._x1d.fits``)."""
    if not base:
        raise ValueError("product base name is empty")
    if not suffix or any(sep in suffix for sep in ("/", os.sep)):
        raise ValueError(f"invalid product suffix {suffix!r}")
    return f"{base}_{suffix}.fits"


def strip_known_suffix(root: str) -> tuple[str, str]:
    """Split a known suffix off a file root (no extension).

    Returns
    -------
    root, separator : str, str
        The root without its suffix and the separator that preceded it
        (``_`` or ``-``); ``(root, "_")`` when no known suffix ends the name.
        When several suffixes could match, the longest one wins (shortest
        root), as with the reference's non-greedy regular expression.
    """
    for i in range(1, len(root) - 1):
        if root[i] in _SUFFIX_SEPARATORS and root[i + 1 :] in KNOWN_SUFFIXES:
            return root[:i], root[i]
    return root, "_"


def exposure_product_filename(input_filename: str, asn_id: str | None, suffix: str) -> str:
    """Return the name of an exposure-based stage-3 product.

    Parameters
    ----------
    input_filename : str
        The exposure's file name or path (only the file name is used).
    asn_id : str or None
        Association id, inserted as a name component; ``None`` leaves it out.
    suffix : str
        New suffix, e.g. ``"crf"``.

    Returns
    -------
    str
        ``jw01249005001_03101_00001_nrs1_cal.fits`` with ``asn_id="o005"`` and
        ``suffix="crf"`` -> ``jw01249005001_03101_00001_nrs1_o005_crf.fits``.
        A known suffix is replaced; the separator before it is kept (a ``-cal``
        input gives ``..._o005-crf``, as in the reference).
    """
    root = os.path.splitext(os.path.basename(input_filename))[0]
    if not root:
        raise ValueError(f"no file name in {input_filename!r}")
    root, sep = strip_known_suffix(root)
    components = f"_{asn_id}" if asn_id is not None else ""
    return f"{root}{components}{sep}{suffix}.fits"


@dataclass(frozen=True)
class SourceNaming:
    """How a mode's per-source product names carry the source (ALGORITHMS §2.2).

    Attributes
    ----------
    whole_association : bool
        One source is the whole association: the product name is the
        association's, as is (the reference runs no exp_to_source).
    mos_tokens : bool
        The source field is ``s``/``b``/``v`` + 9 characters from the first
        cutout's ``source_id`` and ``source_name`` (:func:`source_token`);
        otherwise ``s`` + the exp_to_source key padded to 9.
    slit_field : bool
        ``{slit_name}`` is filled with the source's slit names (:func:`fs_slit_token`).
    """

    whole_association: bool = False
    mos_tokens: bool = False
    slit_field: bool = False

    def product_base(self, template: str, source_key: str, cutout_metas: Sequence[Mapping[str, Any]]) -> str:
        """Base name (no suffix) of the products of one source.

        ``cutout_metas`` are the source's cutout metadata in (exposure, slit)
        order: the first gives the MOS ``source_id``/``source_name``, all give
        the fixed-slit names (``name``).  A token whose field is missing from
        the template is appended after ``_``, as the reference's ``format_product``.
        """
        if self.whole_association:
            return template
        slit = fs_slit_token(str(m.get("name")) for m in cutout_metas) if self.slit_field else None
        return product_name(template, self._token(source_key, cutout_metas), slit)

    def _token(self, source_key: str, cutout_metas: Sequence[Mapping[str, Any]]) -> str:
        first = cutout_metas[0] if cutout_metas else {}
        if self.mos_tokens:
            sid = first.get("source_id")
            if sid is None:
                raise ValueError(f"source {source_key!r}: MOS slit without source_id")
            return source_token(int(sid), first.get("source_name"), mos=True)
        try:  # the exp_to_source key itself (the source id, as text)
            return source_token(int(source_key))
        except ValueError:
            return "s" + _pad(source_key)


@dataclass(frozen=True)
class ProductNaming:
    """What product names and association keywords are made from.

    Attributes
    ----------
    template : str
        ``products[0].name`` of the association, e.g.
        ``jw01345-o066_{source_id}_nirspec_f170lp-g235m``.
    asn_id : str or None
        Association id (``o066``); exposure-based products carry it.
    exp_type : str or None
        EXP_TYPE of the science exposures; ``None`` takes it from the store.
    asn_table_name : str or None
        File name of the association (``ASNTABLE`` keyword of every product).
    asn_pool : str or None
        Association pool name (``ASNPOOL``).
    source_naming : SourceNaming or None
        The mode's naming rules; filled from ``exp_type`` by the exporter.
    """

    template: str
    asn_id: str | None = None
    exp_type: str | None = None
    asn_table_name: str | None = None
    asn_pool: str | None = None
    source_naming: SourceNaming | None = None

    @classmethod
    def from_association(cls, asn: Any) -> ProductNaming:
        """From a :class:`spec3c.asn.Association`."""
        return cls(asn.product_name, asn.asn_id, asn.exp_type or None, Path(asn.path).name)

    def source_base(self, source_key: str, cutout_metas: Sequence[Mapping[str, Any]]) -> str:
        """Base name of one source's products (needs :attr:`source_naming`)."""
        if self.source_naming is None:
            raise ValueError("ProductNaming.source_naming is not set: resolve the naming for the store's mode first")
        return self.source_naming.product_base(self.template, source_key, cutout_metas)
