"""The WFSS products: one ``_x1d`` and one ``_c1d`` file for the whole association.

Layout of jwst 3.0.0 (``jwst.datamodels.utils.wfss_multispec``; the
calwebb_spec3 WFSS branch):

``<product>_x1d.fits`` -- WFSSMultiSpecModel
    one ``EXTRACT1D`` table per exposure group and spectral order (``EXPGRPID``
    = the exposure's group id plus ``_<order>``), in order of first
    appearance over the sources (exp_to_source order) and their spectra;
    every table has one row per source of the association (sorted by
    SOURCE_ID), so a source absent from an exposure keeps the schema defaults
    (NaN, DQ 1, ``N_ALONGDISP`` 0); the spectral columns are vectors padded to
    the table's longest spectrum with NaN; per row ``SOURCE_TYPE``,
    ``SOURCE_XPOS/YPOS``, ``SOURCE_RA/DEC`` and ``EXTRACT2D_XSTART/YSTART/
    XSTOP/YSTOP`` (``XSTOP = XSTART + XSIZE``).  Table headers: FILENAME,
    EXPGRPID, DISPAXIS, SPORDER, EFFEXPTM, EFFINTTM; the first table's
    S_REGION is the footprint of all exposures.
``<product>_c1d.fits`` -- WFSSMultiCombinedSpecModel
    one ``COMBINE1D`` table per spectral order, one row per combined source:
    rows are allocated for every source and sorted by SOURCE_ID, so the rows
    of sources without that order keep SOURCE_ID -999 (the reference's
    layout); ``N_ALONGDISP``, ``SOURCE_TYPE``, ``SOURCE_RA/DEC`` per row.

Two things differ on purpose: each spectrum's EFFEXPTM is its own
exposure's (the reference takes the first exposure of the first source seen
for a whole table); the footprint is the convex hull, per group of
overlapping exposures, of their S_REGIONs in a tangent plane (the reference
unions the polygons in the first exposure's detector pixels).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from stdatamodels.jwst import datamodels as dm

from ..algorithms.combine1d import CombinedSpectrum
from ..modes.wfss.spectra import InputTable, input_tables, spectra_records
from ..naming import ProductNaming, product_filename
from ..results import COMPLETE, STATUS, X1D, CombinedResult, Spectrum1D
from ..store import ExposureRecord, Store
from .fits_io import atomic_save
from .meta import merge_tree, top_level_meta

__all__ = ["WfssSpectrum", "combined_footprint", "group_id", "wfss_c1d_model", "wfss_x1d_model",
           "write_wfss_c1d", "write_wfss_x1d"]

_ROW_ATTRIBUTES = ("source_type", "source_xpos", "source_ypos", "source_ra", "source_dec",
                   "extract2d_xstart", "extract2d_ystart", "extract2d_xstop", "extract2d_ystop")
_VAR_UNITS = {"Jy": "Jy^2", "MJy/sr": "MJy^2 / sr^2", "DN/s": "DN^2 / s^2", "MJy": "MJy^2"}
_FLUX_COLUMNS = {"FLUX": "flux", "FLUX_ERROR": "flux", "FLUX_VAR_POISSON": "flux_var", "FLUX_VAR_RNOISE": "flux_var",
                 "FLUX_VAR_FLAT": "flux_var", "SURF_BRIGHT": "sb", "SB_ERROR": "sb", "SB_VAR_POISSON": "sb_var",
                 "SB_VAR_RNOISE": "sb_var", "SB_VAR_FLAT": "sb_var", "BACKGROUND": "sb", "BKGD_ERROR": "sb",
                 "BKGD_VAR_POISSON": "sb_var", "BKGD_VAR_RNOISE": "sb_var", "BKGD_VAR_FLAT": "sb_var",
                 "WAVELENGTH": "wavelength", "ERROR": "flux"}


@dataclass
class WfssSpectrum:
    """One extracted spectrum as the x1d product holds it (a row of one exposure group's table)."""

    source_id: int
    group_id: str
    spectral_order: int
    columns: Mapping[str, np.ndarray]  # spectable columns (upper case), one length
    filename: str | None = None
    exposure_time: float | None = None
    integration_time: float | None = None
    dispersion_direction: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)  # _ROW_ATTRIBUTES
    flux_unit: str = "Jy"
    sb_unit: str = "MJy/sr"


def group_id(exposure_meta: Mapping[str, Any], order: int) -> str:
    """The exposure group id of one spectral order, as jwst's extract_1d makes it for WFSS."""
    o = {k: exposure_meta.get(f"meta.observation.{k}") for k in
         ("program_number", "observation_number", "visit_number", "visit_group", "sequence_id",
          "activity_id", "exposure_number")}
    return (f"jw{o['program_number']}{o['observation_number']}{o['visit_number']}_{o['visit_group']}"
            f"{o['sequence_id']}{o['activity_id']}_{o['exposure_number']}_{int(order)}")


def _schema_table(model: Any) -> tuple[list[tuple[str, np.dtype, bool]], list[Any]]:
    """(name, dtype, is vector) of a WFSS table's columns and their schema defaults."""
    from asdf.tags.core.ndarray import asdf_datatype_to_numpy_dtype

    props = model.schema["properties"]
    table = props["spec_table"] if "spec_table" in props else props["spec"]["items"]["properties"]["spec_table"]
    vector_source = dm.SpecModel if "spec_table" in props else dm.CombinedSpecModel
    vectors = {c["name"] for c in vector_source().schema["properties"]["spec_table"]["datatype"]}
    columns = [(c["name"], np.dtype(asdf_datatype_to_numpy_dtype(c["datatype"])), c["name"] in vectors)
               for c in table["datatype"]]
    return columns, list(table["default"])


def _empty_table(columns: list[tuple[str, np.dtype, bool]], defaults: list[Any], n_rows: int,
                 width: int) -> np.ndarray:
    dtype = [(name, dt, (width,)) if vector else (name, dt) for name, dt, vector in columns]
    out = np.empty(n_rows, dtype=dtype)
    for (name, _, _), default in zip(columns, defaults, strict=True):
        out[name] = default
    return out


def _set_units(table: Any, model: Any, units: Mapping[str, str | None]) -> None:
    """Schema units first (pix, deg), then the spectral columns' units."""
    props = model.schema["properties"]
    schema = props["spec_table"] if "spec_table" in props else props["spec"]["items"]["properties"]["spec_table"]
    for col in schema["datatype"]:
        if "unit" in col:
            table.columns[col["name"]].unit = col["unit"]
    for name in table.columns.names:
        kind = _FLUX_COLUMNS.get(name)
        unit = "um" if kind == "wavelength" else units.get(kind) if kind else None
        if unit:
            table.columns[name].unit = unit


def _units(flux_unit: str | None, sb_unit: str | None) -> dict[str, str | None]:
    flux, sb = flux_unit or "Jy", sb_unit or "MJy/sr"
    return {"flux": flux, "flux_var": _VAR_UNITS.get(flux), "sb": sb, "sb_var": _VAR_UNITS.get(sb)}


def _fill_row(row: Any, s: WfssSpectrum, columns: list[tuple[str, np.dtype, bool]]) -> None:
    n = len(s.columns["WAVELENGTH"])
    for name, _, vector in columns:
        if vector and name in s.columns:
            row[name][:n] = s.columns[name]
    for attr in _ROW_ATTRIBUTES:
        if s.attributes.get(attr) is not None:
            row[attr.upper()] = s.attributes[attr]
    row["N_ALONGDISP"] = n


def _exposure_table(gid: str, members: Sequence[WfssSpectrum], ids: np.ndarray, example: WfssSpectrum) -> Any:
    """One EXTRACT1D table: a row per source of the association, the members' rows filled."""
    columns, defaults = _schema_table(dm.WFSSSpecModel())
    row_of = {int(sid): i for i, sid in enumerate(ids)}
    table = _empty_table(columns, defaults, len(ids), max(len(s.columns["WAVELENGTH"]) for s in members))
    table["SOURCE_ID"] = ids
    for s in members:
        _fill_row(table[row_of[s.source_id]], s, columns)
    ext = dm.WFSSSpecModel(validate_on_assignment=False)
    ext.spec_table = table
    _set_units(ext.spec_table, ext, _units(example.flux_unit, example.sb_unit))
    first = members[0]
    ext.group_id = gid
    ext.spectral_order = int(first.spectral_order)
    if first.filename:
        ext.filename = first.filename
    if example.dispersion_direction is not None:
        ext.dispersion_direction = int(example.dispersion_direction)
    for attr in ("exposure_time", "integration_time"):
        if getattr(first, attr) is not None:
            setattr(ext, attr, float(getattr(first, attr)))
    return ext


def wfss_x1d_model(spectra: Sequence[WfssSpectrum], tree: Mapping[str, Any] | None = None) -> Any:
    """The WFSSMultiSpecModel of ``spectra`` (given in the reference's order; see the module notes)."""
    if not spectra:
        raise ValueError("wfss_x1d_model: no spectra")
    groups: dict[str, list[WfssSpectrum]] = {}
    for s in spectra:
        groups.setdefault(s.group_id, []).append(s)
    ids = np.unique([s.source_id for s in spectra])
    model = dm.WFSSMultiSpecModel(validate_on_assignment=False)  # validated when saved
    for gid, members in groups.items():
        model.spec.append(_exposure_table(gid, members, ids, spectra[0]))
    if tree:
        model.instance["meta"] = merge_tree(dict(model.instance.get("meta", {})), dict(tree))
    return model


@dataclass
class _Combined:
    source_id: int
    orders: Mapping[int, CombinedSpectrum]
    spec_meta: Mapping[int, Mapping[str, Any]]


def _order_table(order: int, width: int, items: Sequence[_Combined]) -> np.ndarray:
    """One COMBINE1D table: a row per combined source (-999 where the source lacks the order), sorted."""
    columns, defaults = _schema_table(dm.WFSSMultiCombinedSpecModel())
    table = _empty_table(columns, defaults, len(items), width)
    for j, item in enumerate(items):
        spec = item.orders.get(order)
        if spec is None:
            continue
        row, n = table[j], len(spec)
        for name, _, vector in columns:
            if vector:
                row[name][:n] = spec.column(name)
        attrs = item.spec_meta.get(order, {})
        row["SOURCE_ID"] = item.source_id
        row["N_ALONGDISP"] = n
        for attr in ("source_type", "source_ra", "source_dec"):
            if attrs.get(attr) is not None:
                row[attr.upper()] = attrs[attr]
    table.sort(order=["SOURCE_ID"])
    return table


def wfss_c1d_model(combined: Sequence[tuple[int, Mapping[int, CombinedSpectrum], Mapping[int, Mapping[str, Any]]]],
                   tree: Mapping[str, Any] | None = None) -> Any:
    """The WFSSMultiCombinedSpecModel of every source's combined orders (``(source_id, {order:
    spectrum}, {order: spectrum attributes})`` in processing order)."""
    items = [_Combined(int(sid), orders, meta) for sid, orders, meta in combined if orders]
    if not items:
        raise ValueError("wfss_c1d_model: no combined spectra")
    model = dm.WFSSMultiCombinedSpecModel(validate_on_assignment=False)  # validated when saved
    widths: dict[int, int] = {}
    for item in items:
        for order, spec in item.orders.items():
            widths[order] = max(widths.get(order, 0), len(spec))
    first_meta = next(iter(items[0].spec_meta.values()), {})
    units = _units(first_meta.get("flux_unit"), first_meta.get("sb_unit"))
    for order, width in widths.items():
        spec_model = dm.WFSSCombinedSpecModel(validate_on_assignment=False)
        spec_model.spec_table = _order_table(order, width, items)
        _set_units(spec_model.spec_table, spec_model, units)
        spec_model.spectral_order = int(order)
        if first_meta.get("dispersion_direction") is not None:
            spec_model.dispersion_direction = int(first_meta["dispersion_direction"])
        model.spec.append(spec_model)
    if tree:
        model.instance["meta"] = merge_tree(dict(model.instance.get("meta", {})), dict(tree))
    return model


# -- from the store --------------------------------------------------------------------------


def _complete(store: Store, sources: Iterable[str] | None) -> dict[str, dict[str, Any]]:
    """Status of every processed source (failed ones left out), restricted to ``sources`` if given."""
    wanted = None if sources is None else set(sources)
    out = {}
    for (source, _), (_, meta) in store.get_results(STATUS).items():
        if (wanted is None or source in wanted) and "error" not in meta and source != "_association":
            out[source] = meta
    return out


def _source_order(store: Store, records: Sequence[ExposureRecord]) -> tuple[list[str], dict[tuple[str, str, str], Any]]:
    """Sources in exp_to_source order (exposures in order, slits in file order) and the cutout infos."""
    infos = store.list_cutouts()
    rank = {r.name: i for i, r in enumerate(records)}
    ordered = sorted((i for i in infos if i.exposure in rank),
                     key=lambda i: (rank[i.exposure], int(i.meta.get("slit_index", 0))))
    return list(dict.fromkeys(i.source for i in ordered)), {(i.source, i.exposure, i.slit): i for i in ordered}


def _science(store: Store) -> list[ExposureRecord]:
    return [r for r in store.list_exposures() if r.role == "science"]


def _from_results(store: Store, sources: Iterable[str] | None) -> list[WfssSpectrum]:
    """The spectra extract_1d saved (cal inputs), in the reference's order."""
    records = _science(store)
    by_name = {r.name: r for r in records}
    order, infos = _source_order(store, records)
    done = _complete(store, sources)
    saved: dict[str, list[Spectrum1D]] = {}
    for (source, _), (arrays, meta) in store.get_results(X1D).items():
        if source in done:
            saved.setdefault(source, []).append(Spectrum1D(dict(arrays), meta))
    rank = {r.name: i for i, r in enumerate(records)}
    out = []
    for source in (s for s in order if s in saved):
        spectra = saved[source]
        spectra.sort(key=lambda s: (rank.get(str(s.meta["exposure"]), 0),
                                    int(infos[(source, str(s.meta["exposure"]), str(s.meta["slit"]))]
                                        .meta.get("slit_index", 0))))
        for s in spectra:
            exposure, slit = str(s.meta["exposure"]), str(s.meta["slit"])
            out.append(_from_extracted(s, by_name[exposure], infos[(source, exposure, slit)].meta))
    return out


def _from_extracted(s: Spectrum1D, record: ExposureRecord, slit: Mapping[str, Any]) -> WfssSpectrum:
    order = int(s.meta.get("spectral_order") or 1)
    attrs = {k: s.meta.get(k) for k in ("source_type", "source_xpos", "source_ypos", "source_ra", "source_dec")}
    if slit.get("xstart") is not None and slit.get("ystart") is not None:
        attrs.update(extract2d_xstart=int(slit["xstart"]), extract2d_ystart=int(slit["ystart"]),
                     extract2d_xstop=int(slit["xstart"]) + int(slit.get("xsize") or 0),
                     extract2d_ystop=int(slit["ystart"]) + int(slit.get("ysize") or 0))
    m = record.meta
    return WfssSpectrum(
        source_id=int(s.meta.get("source_id") or slit["source_id"]), group_id=group_id(m, order),
        spectral_order=order, columns=s.columns, filename=Path(record.filename).name,
        exposure_time=m.get("meta.exposure.exposure_time"), integration_time=m.get("meta.exposure.integration_time"),
        dispersion_direction=s.meta.get("dispersion_direction"), attributes=attrs,
        flux_unit=s.meta.get("flux_unit", "Jy"), sb_unit=s.meta.get("sb_unit", "MJy/sr"))


def _from_tables(tables: Sequence[InputTable], sources: Iterable[str] | None) -> list[WfssSpectrum]:
    """The spec2 x1d inputs' spectra, tables in order (x1d inputs)."""
    wanted = None if sources is None else {int(s) for s in sources}
    out = []
    for table in tables:
        a = table.attributes
        for sid, s in table.rows():
            if wanted is not None and sid not in wanted:
                continue
            out.append(WfssSpectrum(
                source_id=sid, group_id=str(a.get("group_id") or f"{table.exposure}_{table.spectral_order}"),
                spectral_order=table.spectral_order, columns=s.columns, filename=a.get("filename"),
                exposure_time=a.get("exposure_time"), integration_time=a.get("integration_time"),
                dispersion_direction=a.get("dispersion_direction"),
                attributes={k: s.meta.get(k) for k in _ROW_ATTRIBUTES},
                flux_unit=a.get("flux_unit") or "Jy", sb_unit=a.get("sb_unit") or "MJy/sr"))
    return out


def _primary(store: Store, naming: ProductNaming, step: str) -> dict[str, Any]:
    """Primary metadata: the first science exposure's, the association's, the step status."""
    first = _science(store)[0]
    tree = top_level_meta(first)
    asn: dict[str, Any] = {}
    if naming.asn_table_name:
        asn["table_name"] = naming.asn_table_name
    if naming.asn_pool:
        asn["pool_name"] = naming.asn_pool
    if asn:
        tree["asn"] = asn
    tree.setdefault("cal_step", {})[step] = COMPLETE
    return tree


def combined_footprint(s_regions: Sequence[str]) -> str | None:
    """``POLYGON ICRS ...`` of the exposures' footprints: the convex hull of each group of
    overlapping S_REGION polygons, in a tangent plane about the first polygon (None if none)."""
    polygons = [p for p in (_polygon(s) for s in s_regions if s) if p is not None]
    if not polygons:
        return None
    ra0, dec0 = (float(v) for v in polygons[0].mean(axis=0))
    planes = [_to_plane(p, ra0, dec0) for p in polygons]
    groups = _overlapping(planes)
    parts = []
    for members in groups:
        hull = _convex_hull(np.vstack([planes[i] for i in members]))
        ra, dec = _from_plane(hull, ra0, dec0)
        parts.append("POLYGON ICRS  " + " ".join(f"{r % 360.0:.9f} {d:.9f}" for r, d in zip(ra, dec, strict=True)))
    return " ".join(parts)


def _polygon(s_region: str) -> np.ndarray | None:
    words = s_region.replace("POLYGON", " ").replace("ICRS", " ").split()
    try:
        values = np.array([float(w) for w in words])
    except ValueError:
        return None
    return values.reshape(-1, 2) if values.size >= 6 and values.size % 2 == 0 else None


def _to_plane(p: np.ndarray, ra0: float, dec0: float) -> np.ndarray:
    ra, dec = np.deg2rad(p[:, 0]), np.deg2rad(p[:, 1])
    a0, d0 = np.deg2rad(ra0), np.deg2rad(dec0)
    cos_c = np.sin(d0) * np.sin(dec) + np.cos(d0) * np.cos(dec) * np.cos(ra - a0)
    x = np.cos(dec) * np.sin(ra - a0) / cos_c
    y = (np.cos(d0) * np.sin(dec) - np.sin(d0) * np.cos(dec) * np.cos(ra - a0)) / cos_c
    return np.column_stack([x, y])


def _from_plane(p: np.ndarray, ra0: float, dec0: float) -> tuple[np.ndarray, np.ndarray]:
    x, y = p[:, 0], p[:, 1]
    a0, d0 = np.deg2rad(ra0), np.deg2rad(dec0)
    rho = np.hypot(x, y)
    c = np.arctan(rho)
    with np.errstate(invalid="ignore", divide="ignore"):
        dec = np.arcsin(np.cos(c) * np.sin(d0) + np.where(rho > 0, y * np.sin(c) * np.cos(d0) / rho, 0.0))
    ra = a0 + np.arctan2(x * np.sin(c), rho * np.cos(d0) * np.cos(c) - y * np.sin(d0) * np.sin(c))
    return np.rad2deg(ra), np.rad2deg(dec)


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Counter-clockwise convex hull (monotone chain)."""
    pts = sorted(map(tuple, points))

    def half(seq: list[tuple[float, float]]) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        for p in seq:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (p[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(p)
        return out

    lower, upper = half(pts), half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1])


def _separated(a: np.ndarray, b: np.ndarray) -> bool:
    """Two convex polygons do not overlap: an edge normal of one separates them."""
    for poly in (a, b):
        edges = np.roll(poly, -1, axis=0) - poly
        for nx, ny in np.column_stack([-edges[:, 1], edges[:, 0]]):
            pa, pb = a @ (nx, ny), b @ (nx, ny)
            if pa.max() < pb.min() or pb.max() < pa.min():
                return True
    return False


def _overlapping(planes: Sequence[np.ndarray]) -> list[list[int]]:
    """Groups of overlapping (convex) footprints: connected components."""
    parent = list(range(len(planes)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(len(planes)):
        for j in range(i):
            if not _separated(planes[i], planes[j]):
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(planes)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def _s_regions(store: Store) -> list[str]:
    """The first slit's (cal) or first table's (x1d) S_REGION of every science exposure."""
    out = []
    first_slit: dict[str, str] = {}
    for info in store.list_cutouts():
        if int(info.meta.get("slit_index", -1)) == 0 and info.meta.get("meta.wcsinfo.s_region"):
            first_slit[info.exposure] = info.meta["meta.wcsinfo.s_region"]
    for r in _science(store):
        region = first_slit.get(r.name) or r.meta.get("spec.0.s_region") or r.meta.get("meta.wcsinfo.s_region")
        if region:
            out.append(str(region))
    return out


def write_wfss_x1d(store: Store, naming: ProductNaming, out_dir: str | os.PathLike[str],
                   sources: Sequence[str] | None = None) -> list[Path]:
    """Write ``<product>_x1d.fits``: the extracted spectra of every source (or ``sources``)."""
    spectra_inputs = spectra_records(store)
    spectra = (_from_tables(input_tables(store, spectra_inputs), sources) if spectra_inputs
               else _from_results(store, sources))
    if not spectra:
        return []
    model = wfss_x1d_model(spectra, _primary(store, naming, "extract_1d"))
    with model:
        footprint = combined_footprint(_s_regions(store))
        if footprint:
            model.spec[0].s_region = footprint
        return [atomic_save(model, Path(out_dir) / product_filename(naming.template, "x1d"))]


def write_wfss_c1d(store: Store, naming: ProductNaming, out_dir: str | os.PathLike[str],
                   sources: Sequence[str] | None = None) -> list[Path]:
    """Write ``<product>_c1d.fits``: every combined source (or ``sources``), one row each."""
    done = _complete(store, sources)
    stored = {source: CombinedResult(*_combined(arrays, meta)) for (source, _), (arrays, meta)
              in store.get_results("c1d").items() if source in done}
    records = _science(store)
    if spectra_records(store):
        order = list(stored)
    else:
        order = [s for s in _source_order(store, records)[0] if s in stored]
    items = [(int(s), stored[s].orders, stored[s].spec_meta) for s in order]
    if not items:
        return []
    model = wfss_c1d_model(items, _primary(store, naming, "combine_1d"))
    with model:
        return [atomic_save(model, Path(out_dir) / product_filename(naming.template, "c1d"))]


def _combined(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> tuple[dict[int, Any], dict[int, Any]]:
    """A stored ``c1d`` result back as (orders, spectrum attributes) (what :class:`CombinedResult` holds)."""
    from ..algorithms.combine1d import COLUMNS

    orders = {int(o): CombinedSpectrum(*(arrays[f"{o}.{name}"] for name in COLUMNS)) for o in meta["orders"]}
    return orders, {int(k): v for k, v in meta.get("spec_meta", {}).items()}
