"""Per-source product names (``calwebb_spec3`` rules, ALGORITHMS §2.2)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import naming as _naming
from ..store.base import Cutout, CutoutInfo

__all__ = ["FS_EXP_TYPE", "MOS_EXP_TYPE", "ProductNaming", "source_product_base"]

MOS_EXP_TYPE = "NRS_MSASPEC"
FS_EXP_TYPE = "NRS_FIXEDSLIT"


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
    """

    template: str
    asn_id: str | None = None
    exp_type: str | None = None
    asn_table_name: str | None = None
    asn_pool: str | None = None

    @classmethod
    def from_association(cls, asn) -> ProductNaming:  # type: ignore[no-untyped-def]
        """From a :class:`spec3c.asn.Association`."""
        return cls(asn.product_name, asn.asn_id, asn.exp_type or None, Path(asn.path).name)


def _token_for(source_key: str, cutouts: Sequence[Cutout | CutoutInfo], exp_type: str) -> str:
    first = cutouts[0].meta if cutouts else {}
    if exp_type == MOS_EXP_TYPE:
        sid = first.get("source_id")
        if sid is None:
            raise ValueError(f"source {source_key!r}: MOS slit without source_id")
        return _naming.source_token(int(sid), first.get("source_name"), exp_type)
    # every other mode: the exp_to_source key itself (the source id, as text)
    try:
        return _naming.source_token(int(source_key), None, exp_type)
    except ValueError:
        return "s" + source_key.rjust(9, "0")


#: modes the reference processes as one source (ImageModel inputs, no exp_to_source)
WHOLE_ASSOCIATION_EXP_TYPES = ("MIR_LRS-FIXEDSLIT", "MIR_LRS-SLITLESS")


def source_product_base(
    naming: ProductNaming, source_key: str, cutouts: Sequence[Cutout | CutoutInfo]
) -> str:
    """Base name (no suffix) of the products of one source.

    Parameters
    ----------
    naming : ProductNaming
        ``naming.exp_type`` must be set.
    source_key : str
        The store's source key (exp_to_source key).
    cutouts : sequence of Cutout or CutoutInfo
        The source's cutouts in (exposure, slit) order; the first gives the
        MOS ``source_id``/``source_name``, all give the FS slit names.

    Returns
    -------
    str
        MOS: ``s``/``b``/``v`` + 9 digits filled into ``{source_id}``
        (``jw01345-o066_s000002670_nirspec_f170lp-g235m``); FS: ``s`` + 9
        digits and the source's lower-cased slit names joined by ``-`` into
        ``{slit_name}``; other modes: ``s`` + 9 digits.  A token whose field
        is missing from the template is appended after ``_`` (as the
        reference's ``format_product``).
    """
    exp_type = naming.exp_type or ""
    if exp_type in WHOLE_ASSOCIATION_EXP_TYPES:  # no exp_to_source: the ASN product name as is
        return naming.template
    token = _token_for(source_key, cutouts, exp_type)
    slit = None
    if exp_type == FS_EXP_TYPE:
        slit = _naming.fs_slit_token(str(c.meta.get("name", c.slit)) for c in cutouts)
    return _naming.product_name(naming.template, token, slit)
