"""Writer of the combined 1-D spectrum product (``_c1d``).

jwst 3.0.0's ``combine_1d`` always returns a ``MultiCombinedSpecModel`` for
slit/slitless (non-WFSS) inputs, one ``COMBINE1D`` table per spectral order,
even for a single order; the primary header is copied from the first input;
``meta.wcs`` is the spectral gwcs of the first order's wavelengths.  Each
spectrum carries ``spectral_order`` (SPORDER), ``source_id`` (SOURCEID) and
``source_type`` (SRCTYPE) as keywords, and ``dispersion_direction``,
``source_ra``/``source_dec`` in the ASDF tree only (the multi-spectrum schema
maps no keyword for them).  Column units: ``um`` for WAVELENGTH, the input
flux unit on FLUX/ERROR and the surface-brightness unit on SURF_BRIGHT/SB_ERROR.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from astropy.io import fits
from stdatamodels.jwst import datamodels as dm

from ..algorithms.combine1d import CombinedSpectrum
from ..results import COMPLETE
from .fits_io import atomic_save
from .meta import merge_tree
from .models import new_model, schema_model
from .wcs import spectral_gwcs

__all__ = ["DEFAULT_UNITS", "write_c1d"]

#: column units when ``meta`` names none (the calibrated x1d units)
DEFAULT_UNITS = {"flux_unit": "Jy", "sb_unit": "MJy/sr"}

_SOURCE_TYPES = ("EXTENDED", "POINT", "UNKNOWN")


def _combined_table(spectrum: CombinedSpectrum, flux_unit: str | None, sb_unit: str | None) -> fits.FITS_rec:
    """The COMBINE1D table as a FITS_rec with TUNITn set (stdatamodels casts DQ to uint32)."""
    with schema_model(dm.CombinedSpecModel) as model:  # the table is spec3c's own: not validated here
        model.spec_table = spectrum.table()
        table = model.spec_table
    units = {"WAVELENGTH": "um", "FLUX": flux_unit, "ERROR": flux_unit,
             "SURF_BRIGHT": sb_unit, "SB_ERROR": sb_unit}  # fmt: skip
    for name, unit in units.items():
        if unit:
            table.columns[name].unit = unit
    return table


def _spec_node(order: int, spectrum: CombinedSpectrum, attrs: Mapping[str, Any]) -> dict[str, Any]:
    node: dict[str, Any] = {
        "spec_table": _combined_table(spectrum, attrs.get("flux_unit"), attrs.get("sb_unit")),
        "spectral_order": int(order),
    }
    if attrs.get("source_id") is not None:
        node["source_id"] = int(attrs["source_id"])
    source_type = attrs.get("source_type")
    if source_type is not None:
        if str(source_type).upper() not in _SOURCE_TYPES:
            raise ValueError(f"write_c1d: source_type {source_type!r} is not one of {_SOURCE_TYPES}")
        node["source_type"] = str(source_type).upper()
    if attrs.get("dispersion_direction") is not None:
        node["dispersion_direction"] = int(attrs["dispersion_direction"])
    for key in ("source_ra", "source_dec"):
        if attrs.get(key) is not None:
            node[key] = float(attrs[key])
    return node


def _order_attrs(meta: Mapping[str, Any], order: int) -> dict[str, Any]:
    """Spectrum attributes of ``order``: top-level keys, overridden by ``meta["spec"][order]``."""
    keys = ("source_id", "source_type", "dispersion_direction", "source_ra", "source_dec", "flux_unit", "sb_unit")
    attrs = {**DEFAULT_UNITS, **{k: meta[k] for k in keys if meta.get(k) is not None}}
    per_order = meta.get("spec", {}).get(order, {})
    attrs.update({k: v for k, v in per_order.items() if v is not None})
    return attrs


def write_c1d(
    combined: Mapping[int, CombinedSpectrum], meta: Mapping[str, Any], path: str | os.PathLike[str],
    direct: bool = False,
) -> Path:
    """Write combined spectra as a ``MultiCombinedSpecModel`` (``_c1d.fits``).

    Parameters
    ----------
    combined : dict
        Spectral order -> :class:`~spec3c.algorithms.combine1d.CombinedSpectrum`
        (one ``COMBINE1D`` extension each, in this order).
    meta : dict
        ``instrument`` (INSTRUME), ``exp_type`` (EXP_TYPE), optional
        ``telescope`` (default JWST) and ``tree`` (a datamodel ``meta`` tree
        merged in first, e.g. target or program metadata); spectrum
        attributes ``source_id, source_type, dispersion_direction, source_ra,
        source_dec, flux_unit, sb_unit`` for every order, overridden per order
        by ``meta["spec"][order]`` (e.g. ``StepOutcome.details["spec_meta"]``
        of :func:`spec3c.steps.combine_1d.run`).
    path : path-like
        Destination ``.fits`` file.
    direct : bool
        Write with the direct FITS writer (:func:`~spec3c.products.fits_io.atomic_save`).

    Returns
    -------
    Path
        ``path``.
    """
    if not combined:
        raise ValueError(f"write_c1d: nothing to write to {path}")
    nodes = [_spec_node(order, spec, _order_attrs(meta, order)) for order, spec in combined.items()]
    first_order = next(iter(combined))
    first = _order_attrs(meta, first_order)
    ra = first.get("source_ra")
    dec = first.get("source_dec")
    tree: dict[str, Any] = merge_tree({}, meta.get("tree", {}))
    merge_tree(tree, {
        "telescope": meta.get("telescope", "JWST"),
        "instrument": {"name": meta["instrument"]},
        "exposure": {"type": meta["exp_type"]},
        "cal_step": {"combine_1d": COMPLETE},
        "wcs": spectral_gwcs(math.nan if ra is None else float(ra), math.nan if dec is None else float(dec),
                             combined[first_order].wavelength),
    })  # fmt: skip
    with new_model(dm.MultiCombinedSpecModel, {"spec": nodes}) as model:
        model.instance["meta"] = merge_tree(dict(model.instance.get("meta", {})), tree)
        return atomic_save(model, path, direct=direct)
