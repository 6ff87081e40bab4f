"""Write simulated exposures as stage-2 ``_cal.fits`` MultiSlitModels and a spec3 ASN."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from stdatamodels.jwst import datamodels as dm

from spec3c.fitsio import indexed_hdus

from ..asn import asn_document
from .layout import Layout, ephemeris, source_position
from .render import RenderedSlit

__all__ = ["exposure_meta_tree", "exposure_names", "asn_name", "product_name", "write_exposure", "write_asn"]

_MJD0 = 60310.25  # 2024-01-01 06:00 UTC
_STEPS_DONE = (
    "assign_wcs",
    "extract_2d",
    "srctype",
    "flat_field",
    "pathloss",
    "photom",
    "barshadow",
    "wavecorr",
    "msa_flagging",
)


def _ids(layout: Layout) -> tuple[str, str]:
    c = layout.cfg
    root = f"jw{c['program']}{c['observation']}{c['visit']}"
    return root, f"{c['visit_group']}{c['sequence']}{c['activity']}"


def exposure_names(layout: Layout, n_exposures: int) -> list[str]:
    """Cal file stems, e.g. ``jw01345066001_03101_00001_nrs1_cal``."""
    root, vsa = _ids(layout)
    return [f"{root}_{vsa}_{k + 1:05d}_nrs1_cal" for k in range(n_exposures)]


def asn_name(layout: Layout) -> str:
    """ASN file name, e.g. ``jw01345-o066_spec3_00001_asn.json``."""
    c = layout.cfg
    return f"jw{c['program']}-o{c['observation']}_spec3_00001_asn.json"


def product_name(layout: Layout) -> str:
    """Stage-3 product template with the literal ``{source_id}`` placeholder."""
    c = layout.cfg
    opt = f"{c['filter']}-{c['grating']}".lower()
    base = f"jw{c['program']}-o{c['observation']}"
    if layout.mode == "nirspec-fs":
        return f"{base}_{c['target']}-{{source_id}}_nirspec_{opt}-{{slit_name}}"
    return f"{base}_{{source_id}}_nirspec_{opt}"


def _wcsinfo(layout: Layout, k: int) -> dict[str, Any]:
    """Exposure ``k``'s wcsinfo; the pointing follows the ephemeris of a moving target."""
    ra0, dec0 = ephemeris(layout, k)
    pa = layout.pointing[2]
    lo, hi = layout.cfg["wavelength_range_um"]
    extra = {"mt_ra": ra0, "mt_dec": dec0} if layout.moving_target else {}
    return {
        "v2_ref": 378.563,
        "v3_ref": -428.402,
        "vparity": -1,
        "v3yangle": 138.5,
        "ra_ref": ra0,
        "dec_ref": dec0,
        "roll_ref": pa,
        "dispersion_direction": 1,
        "spectral_order": 1,
        "waverange_start": lo * 1e-6,
        "waverange_end": hi * 1e-6,
        **extra,
    }


def _photometry(layout: Layout) -> dict[str, float]:
    sr = layout.pixel_area_sr
    return {"pixelarea_steradians": sr, "pixelarea_arcsecsq": sr * (180 / np.pi * 3600) ** 2}


def _exposure_meta(model: dm.MultiSlitModel, layout: Layout, k: int, n: int, name: str) -> None:
    c = layout.cfg
    ra0, dec0, pa = layout.pointing
    ra_k, dec_k = ephemeris(layout, k)
    meta = model.meta
    meta.filename = name + ".fits"
    meta.telescope = "JWST"
    meta.instrument.name = "NIRSPEC"
    meta.instrument.detector = "NRS1"
    meta.instrument.filter = c["filter"]
    meta.instrument.grating = c["grating"]
    if layout.mode == "nirspec-mos":
        meta.instrument.msa_metadata_file = f"jw{c['program']}{c['observation']}001_01_msa.fits"
        meta.instrument.msa_metadata_id = 1
    else:
        meta.instrument.fixed_slit = layout.slits[0].name
    t = float(c["exposure_time_s"])
    start = _MJD0 + k * (t + 300.0) / 86400.0
    e = meta.exposure
    e.type = c["exp_type"]
    e.exposure_time = e.effective_exposure_time = e.measurement_time = t
    e.duration = e.integration_time = t
    e.start_time, e.mid_time, e.end_time = start, start + 0.5 * t / 86400, start + t / 86400
    e.nints, e.ngroups, e.nframes, e.groupgap = 1, 20, 1, 0
    e.readpatt, e.frame_time, e.group_time = "NRSIRS2RAPID", 14.58889, 14.58889
    o = meta.observation
    o.program_number, o.observation_number, o.visit_number = (
        c["program"],
        c["observation"],
        c["visit"],
    )
    o.visit_group, o.sequence_id, o.activity_id = c["visit_group"], c["sequence"], c["activity"]
    o.exposure_number = f"{k + 1:05d}"
    o.date, o.time = "2024-01-01", "06:00:00.000"
    meta.target.ra, meta.target.dec = ra0, dec0
    meta.target.type = "MOVING" if layout.moving_target else "FIXED"
    meta.target.catalog_name = c["target_name"]
    meta.target.proposer_name = c["target_name"]
    # not in the MultiSlitModel schema: kept in the ASDF tree (and per slit, see _slit_model)
    meta.group_id = name.rsplit("_", 2)[0]
    meta.pointing = {"ra_v1": ra_k, "dec_v1": dec_k, "pa_v3": (pa + 138.5) % 360}
    meta.wcsinfo = _wcsinfo(layout, k)
    meta.photometry = _photometry(layout)
    d = meta.dither
    d.position_number, d.total_points = k % len(layout.slits[0].nod_offsets) + 1, n
    if layout.mode == "nirspec-fs":
        d.primary_type = c["nod_pattern"]
    else:
        d.primary_type, d.nod_type = "NONE", c["nod_pattern"]
    meta.subarray.name, meta.subarray.xstart, meta.subarray.ystart = "FULL", 1, 1
    meta.subarray.xsize = meta.subarray.ysize = 2048


def _cal_steps(model: dm.MultiSlitModel, nod_subtracted: bool) -> None:
    for step in _STEPS_DONE:
        setattr(model.meta.cal_step, step, "COMPLETE")
    model.meta.cal_step.bkg_subtract = "COMPLETE" if nod_subtracted else "SKIPPED"
    model.meta.cal_step.master_background = "SKIPPED"


def _slit_tree(rs: RenderedSlit, k: int, layout: Layout) -> dict[str, Any]:
    """Plain-dict slit node (building SlitModel objects is ~100x slower)."""
    lay, ex, src = rs.layout, rs.exposures[k], rs.layout.source
    err = np.sqrt(ex.var_poisson + ex.var_rnoise + ex.var_flat).astype(np.float32)
    ny, nx = ex.sci.shape
    unit = "MJy" if src.source_type == "POINT" else "MJy/sr"
    src_ra, src_dec = source_position(layout, src, k)
    s: dict[str, Any] = {
        "data": ex.sci,
        "dq": ex.dq,
        "err": err,
        "var_poisson": ex.var_poisson,
        "var_rnoise": ex.var_rnoise,
        "var_flat": ex.var_flat,
        "wavelength": rs.wavelength,
        "pathloss_point": rs.pathloss_point,
        "pathloss_uniform": rs.pathloss_uniform,
        "name": lay.name,
        "slitlet_id": lay.slitlet_id,
        "source_id": src.source_id,
        "source_name": src.source_name,
        "source_alias": src.source_alias,
        "source_type": src.source_type,
        "stellarity": src.stellarity,
        "source_xpos": src.xpos,
        "source_ypos": ex.source_ypos,
        "source_ra": src_ra,
        "source_dec": src_dec,
        "xstart": lay.xstart,
        "ystart": lay.ystart,
        "xsize": nx,
        "ysize": ny,
        "slit_ymin": -lay.half_height,
        "slit_ymax": lay.half_height,
        "slit_xscale": lay.geom.slit_scale_arcsec[0],
        "slit_yscale": lay.geom.slit_scale_arcsec[1],
        "pathloss_correction_type": "POINT" if src.source_type == "POINT" else "UNIFORM",
        "wavelength_corrected": src.source_type == "POINT",
        "meta": {
            "model_type": "SlitModel",
            "wcs": ex.wcs,
            "bunit_data": unit,
            "bunit_err": unit,
            "wcsinfo": _wcsinfo(layout, k),
            "photometry": _photometry(layout),
        },
    }
    if layout.mode == "nirspec-fs":
        ones = np.where(np.isfinite(rs.wavelength), 1.0, np.nan).astype(np.float32)
        s.update(
            photom_point=rs.photom_point,
            photom_uniform=rs.photom_uniform,
            flatfield_point=ones,
            flatfield_uniform=ones.copy(),
            source_name="",
            source_alias="",
        )
    else:
        s.update(
            shutter_state=lay.shutter_state[k % len(lay.shutter_state)],
            quadrant=lay.quadrant,
            xcen=lay.xcen,
            ycen=lay.ycen,
            barshadow_corrected=True,
        )
    return s


def exposure_meta_tree(layout: Layout, k: int, n: int, name: str, nod_subtracted: bool) -> dict[str, Any]:
    """The nested ``meta`` tree :func:`write_exposure` gives exposure ``k`` (for derived files)."""
    with dm.MultiSlitModel() as model:
        _exposure_meta(model, layout, k, n, name)
        _cal_steps(model, nod_subtracted)
        return dict(model.meta.instance)


def write_exposure(
    path: Path, layout: Layout, slits: list[RenderedSlit], k: int, n: int, nod_subtracted: bool
) -> None:
    """Write exposure ``k`` (0-based) of ``n`` as a MultiSlitModel ``_cal.fits``."""
    tree = {"slits": [_slit_tree(rs, k, layout) for rs in slits]}
    with dm.MultiSlitModel(tree, validate_on_assignment=False) as model:
        _exposure_meta(model, layout, k, n, path.name.removesuffix(".fits"))
        _cal_steps(model, nod_subtracted)
        with indexed_hdus():
            model.save(path)  # validates against the schema


def write_asn(path: Path, layout: Layout, cal_names: list[str], background_names: Sequence[str] = ()) -> None:
    """Write the spec3 level-3 association (members in the same folder)."""
    rule = "Asn_Lv3NRSMSA" if layout.mode == "nirspec-mos" else "Asn_Lv3NRSFSS"
    asn = asn_document(rule, layout.cfg, product_name(layout), cal_names, background_names)
    path.write_text(json.dumps(asn, indent=4) + "\n")
