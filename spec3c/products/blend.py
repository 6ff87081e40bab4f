"""Metadata of a product combined from several inputs (the ``s2d``), as the reference blends it.

jwst 3.0.0's resample (``model_blender``) gives a combined product the first
input's metadata with some keywords combined over all inputs (the schema's
``blend_rule``: ``multi`` -> the common value or ``MULTIPLE``, ``min``/``max``/
``mean``/``sum``), and an ``HDRTAB`` table extension with one row per input
and one column per keyword the schema marks ``blend_table`` (columns no input
has are left out, a value one input lacks is NaN).  It also sets the
footprint of the output as ``S_REGION`` (``compute_footprint_spectral``).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gwcs.wcstools import grid_from_bounding_box
from stdatamodels import schema as dm_schema
from stdatamodels.jwst import datamodels as dm

from .fits_image import fits_table_dtype
from .models import class_schema

__all__ = ["HDRTAB", "attach_hdrtab", "blend_rules", "blended_values", "hdrtab_columns", "hdrtab_table",
           "s_region_slit_band"]

#: the extension with one row of keywords per input
HDRTAB = "HDRTAB"


@functools.cache
def _schema_blending(model_type: str = "SlitModel") -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """(metadata path, column) of every ``blend_table`` keyword and (path, rule) of every
    non-``first`` ``blend_rule`` of the schema of the inputs' datamodel (``model_type``: the
    reference's blender reads the first input's schema), in schema order."""
    columns: dict[str, str] = {}
    rules: dict[str, str] = {}

    def visit(sub: Mapping[str, Any], path: Sequence[Any], _combiner: Any, _ctx: Any, _recurse: Any) -> None:
        if len(path) <= 1 or path[0] != "meta" or "items" in path or sub.get("properties"):
            return
        for combiner in ("anyOf", "oneOf"):
            if combiner in path:
                path = path[: list(path).index(combiner)]
                break
        if sub.get("type") == "array":
            return
        attr = ".".join(str(p) for p in path[1:])
        if sub.get("blend_rule", "first") != "first":
            rules[attr] = str(sub["blend_rule"])
        if sub.get("blend_table"):
            columns[attr] = str(sub.get("fits_keyword", attr))

    dm_schema.walk_schema(class_schema(getattr(dm, model_type)), visit, None)
    return tuple(columns.items()), tuple(rules.items())


def hdrtab_columns(model_type: str = "SlitModel") -> tuple[tuple[str, str], ...]:
    """``(meta path, column name)`` of the HDRTAB columns of inputs of ``model_type``, in the reference's order."""
    return _schema_blending(model_type)[0]


def blend_rules() -> dict[str, str]:
    """``meta path -> rule`` of the keywords combined over the inputs."""
    return dict(_schema_blending()[1])


def _lookup(tree: Mapping[str, Any], path: str) -> Any:
    node: Any = tree
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return None if isinstance(node, Mapping) else node


def _combine(rule: str, values: list[Any]) -> Any:
    if rule == "multi":
        unique = list(dict.fromkeys(values))
        return unique[0] if len(unique) == 1 else "MULTIPLE"
    if rule == "wheeltol":
        bad = "outside calibration tolerance"
        return bad if bad in values else "within commanded tolerance"
    if rule in ("min", "mintime", "mindate", "mindatetime"):
        return min(values)
    if rule in ("max", "maxtime", "maxdate", "maxdatetime"):
        return max(values)
    if rule == "mean":
        return float(np.mean(values))
    if rule == "sum":
        return float(np.sum(values))
    raise ValueError(f"unknown blend rule {rule!r}")


def blended_values(metas: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``meta path -> combined value`` over the input metadata trees (keys no input has are left out)."""
    out: dict[str, Any] = {}
    for path, rule in blend_rules().items():
        values = [v for m in metas if (v := _lookup(m, path)) is not None]
        if values:
            out[path] = _combine(rule, values)
    return out


def hdrtab_table(metas: Sequence[Mapping[str, Any]], model_type: str = "SlitModel") -> np.ndarray | None:
    """The HDRTAB rows of the inputs (their metadata trees, as they entered resampling or
    cube_build; ``model_type`` their datamodel: SlitModel for s2d, IFUImageModel for s3d)."""
    arrays: list[np.ndarray] = []
    names: list[str] = []
    for path, column in hdrtab_columns(model_type):
        values = [_lookup(m, path) for m in metas]
        if all(v is None for v in values):
            continue
        array = np.array([np.nan if v is None else v for v in values])
        if array.dtype == bool:
            array = array.astype(np.int8)
        arrays.append(array)
        names.append(column)
    if not arrays:
        return None
    return np.rec.fromarrays(arrays, dtype=[(n, a.dtype) for n, a in zip(names, arrays, strict=True)])


def s_region_slit_band(first_s_region: str, wcs: Any) -> str | None:
    """``S_REGION`` of a resampled MIRI LRS slit, as the reference builds it: a band as wide as the
    narrowest side of the first input's S_REGION polygon, along the line between the world
    positions of the first and the last pixel of the output's bounding box."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    parts = first_s_region.split()
    try:
        values = [float(v) for v in parts[2:10]]
    except ValueError:
        return None
    if len(values) != 8:
        return None
    corners = SkyCoord(values[0::2], values[1::2], unit="deg")
    width = min(corners[i].separation(corners[(i + 1) % 4]).deg for i in range(4)) * u.deg
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        world = wcs(*grid_from_bounding_box(wcs.bounding_box))
    ra, dec = np.ravel(world[0]), np.ravel(world[1])
    start = SkyCoord(ra[0] * u.deg, dec[0] * u.deg, frame="icrs")
    end = SkyCoord(ra[-1] * u.deg, dec[-1] * u.deg, frame="icrs")
    across = start.position_angle(end).to(u.deg) - 90.0 * u.deg
    c1, c2 = start.directional_offset_by(across, width / 2), start.directional_offset_by(across, -width / 2)
    c3, c4 = end.directional_offset_by(across, width / 2), end.directional_offset_by(across, -width / 2)
    footprint = [c1.ra.deg, c1.dec.deg, c3.ra.deg, c3.dec.deg, c4.ra.deg, c4.dec.deg, c2.ra.deg, c2.dec.deg]
    if not np.all(np.isfinite(footprint)):
        return None
    return "POLYGON ICRS  " + " ".join(f"{v:.9f}" for v in footprint)


#: (model class, HDRTAB entry) -> the class's schema extended by the entry
_HDRTAB_SCHEMAS: dict[tuple[type, str], Any] = {}


def attach_hdrtab(model: Any, table: np.ndarray) -> None:
    """Give a datamodel the HDRTAB extension the way the reference does (a schema entry, so the
    table is written as its own HDU with EXTNAME/EXTVER and kept in the ASDF tree).

    As ``model.add_schema_entry("hdrtab", ...)`` on a new model, but the extended schema is made
    once per model class and table layout and shared, and the model is not validated here
    (:func:`~spec3c.products.fits_io.atomic_save` does, when asked).
    """
    from astropy.io import fits
    from stdatamodels import fits_support
    from stdatamodels import schema as mschema

    def datatype(dtype: np.dtype) -> Any:
        return ["ascii", int(dtype.itemsize // 4)] if dtype.kind == "U" else str(dtype)

    schema = {
        "title": "Combined header table",
        "fits_hdu": HDRTAB,
        "datatype": [{"name": name, "datatype": datatype(table.dtype[name])} for name in table.dtype.names or ()],
    }
    key = (type(model), repr(schema))
    if key not in _HDRTAB_SCHEMAS:
        entry = {"type": "object", "properties": {"hdrtab": schema}}
        if len(_HDRTAB_SCHEMAS) >= 64:
            _HDRTAB_SCHEMAS.pop(next(iter(_HDRTAB_SCHEMAS)))
        _HDRTAB_SCHEMAS[key] = mschema.merge_property_trees({"allOf": [model._schema, entry]})
    model._schema = _HDRTAB_SCHEMAS[key]  # shared: models treat their schema as read-only
    dtype = fits_table_dtype(table.dtype)
    if dtype is not None:  # the FITS_rec's columns as a plain array: no Column objects (40 ms a table)
        model.instance["hdrtab"] = np.asarray(table, dtype=dtype)  # (not cast to a FITS_rec on assignment)
    else:
        model.hdrtab = fits_support.from_fits_hdu(fits.BinTableHDU.from_columns(table), schema)
