"""Write simulated WFSS exposures as calwebb_spec2 leaves them: ``_cal.fits`` MultiSlitModels
(one slit per source and order, as extract_2d makes them), plus the spec3 associations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from stdatamodels.jwst import datamodels as dm

from spec3c.fitsio import asdf_write_unvalidated, indexed_hdus

from ..asn import asn_document
from .layout import WfssExposure, WfssLayout
from .render import Cutout2D, RenderedExposure
from .wcs import cutout_wcs

__all__ = ["asn_name", "exposure_meta", "product_name", "s_region", "write_asn", "write_cal"]

_MJD0 = 60310.25  # 2024-01-01 06:00 UTC
_STEPS_DONE = ("assign_wcs", "bkg_subtract", "flat_field", "extract_2d", "srctype", "photom")
_STEPS_SKIPPED = ("wfss_contam", "imprint", "straylight")


def asn_name(layout: WfssLayout, suffix: str = "") -> str:
    """ASN file name, e.g. ``jw02079-o004_spec3_00001_asn.json`` (``suffix`` tells variants apart)."""
    c = layout.cfg
    tag = f"_{suffix}" if suffix else ""
    return f"jw{c['program']}-o{c['observation']}_spec3{tag}_00001_asn.json"


def product_name(layout: WfssLayout) -> str:
    """The stage-3 product name (WFSS products hold every source: no ``{source_id}`` field).

    The optical elements are sorted and joined as the association rules do,
    e.g. ``jw02079-o004_t001_niriss_f150w-gr150c``.
    """
    c = layout.cfg
    filt, pupil = _filter_pupil(layout)
    opt = "-".join(sorted((filt.lower(), pupil.lower())))
    return f"jw{c['program']}-o{c['observation']}_{c['target']}_{c['instrument'].lower()}_{opt}"


def _filter_pupil(layout: WfssLayout) -> tuple[str, str]:
    """(FILTER, PUPIL): NIRISS has the grism in the filter wheel, NIRCam in the pupil wheel."""
    grism = layout.grism_cfg["name"]
    if layout.instrument == "NIRISS":
        return grism, layout.cfg["filter"]
    return layout.cfg["filter"], grism


def s_region(exp: WfssExposure) -> str:
    """The detector's footprint on the sky (corners of the pixel grid)."""
    ny, nx = exp.geom.shape
    x = np.array([-0.5, nx - 0.5, nx - 0.5, -0.5])
    y = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5])
    ra, dec = exp.wcs.det2sky(x, y)
    return "POLYGON ICRS  " + " ".join(f"{r % 360.0:.9f} {d:.9f}" for r, d in zip(ra, dec, strict=True))


def _wcsinfo(layout: WfssLayout, exp: WfssExposure) -> dict[str, Any]:
    ra_ref, dec_ref = (float(v) for v in exp.wcs.det2sky(1023.5, 1023.5))
    return {
        "v2_ref": exp.geom.v2v3_ref[0], "v3_ref": exp.geom.v2v3_ref[1], "vparity": exp.geom.vparity,
        "v3yangle": exp.geom.v3yangle, "ra_ref": ra_ref % 360.0, "dec_ref": dec_ref,
        "roll_ref": exp.attitude.roll, "dispersion_direction": layout.dispersion_axis, "specsys": "BARYCENT",
        "s_region": s_region(exp),
    }


def _instrument(layout: WfssLayout, exp: WfssExposure) -> dict[str, Any]:
    filt, pupil = _filter_pupil(layout)
    node: dict[str, Any] = {"name": layout.instrument, "detector": exp.geom.name, "filter": filt, "pupil": pupil}
    if layout.instrument == "NIRISS":
        node["filter_position"] = float(layout.cfg["fwcpos"])
    else:
        node["module"] = exp.module
        node["channel"] = "LONG"
    return node


def _exposure(c: dict[str, Any], number: int) -> dict[str, Any]:
    t = float(c["exposure_time_s"])
    start = _MJD0 + number * (t + 300.0) / 86400.0
    return {
        "type": c["exp_type"], "exposure_time": t, "effective_exposure_time": t, "measurement_time": t,
        "duration": t, "integration_time": t, "start_time": start, "mid_time": start + 0.5 * t / 86400,
        "end_time": start + t / 86400, "nints": 1, "ngroups": int(c["ngroups"]), "nframes": 1, "groupgap": 0,
        "readpatt": c["readpatt"], "frame_time": float(c["frame_time_s"]), "group_time": float(c["frame_time_s"]),
    }


def exposure_meta(layout: WfssLayout, exp: WfssExposure, name: str) -> dict[str, Any]:
    """The top-level ``meta`` tree of one exposure as nested dicts (``name``: the file stem)."""
    c = layout.cfg
    number = int(name.split("_")[2])
    ra0, dec0 = c["pointing_radec"]
    cal_step = dict.fromkeys(_STEPS_DONE, "COMPLETE") | dict.fromkeys(_STEPS_SKIPPED, "SKIPPED")
    n_dither = len(c["dither_offsets_arcsec"])
    return {
        "filename": name + ".fits",
        "telescope": "JWST",
        "instrument": _instrument(layout, exp),
        "exposure": _exposure(c, number - 1),
        "observation": {
            "program_number": c["program"], "observation_number": c["observation"], "visit_number": c["visit"],
            "visit_group": c["visit_group"], "sequence_id": c["sequence"], "activity_id": c["activity"],
            "exposure_number": f"{number:05d}", "date": "2024-01-01", "time": "06:00:00.000",
        },
        "visit": {"tsovisit": False},
        "target": {"ra": float(ra0), "dec": float(dec0), "type": "FIXED", "catalog_name": c["target_name"],
                   "proposer_name": c["target_name"]},
        "group_id": name.rsplit("_", 2)[0],
        "source_catalog": f"jw{c['program']}-o{c['observation']}_{c['target']}_{c['instrument'].lower()}_cat.ecsv",
        "pointing": {"ra_v1": exp.attitude.ra, "dec_v1": exp.attitude.dec, "pa_v3": exp.attitude.roll},
        "aperture": {"name": f"{exp.geom.name}_WFSS", "position_angle": float(c["position_angle"])},
        "wcsinfo": _wcsinfo(layout, exp),
        "dither": {"primary_type": "NONE", "position_number": exp.dither % n_dither + 1,
                   "total_points": n_dither},
        "subarray": {"name": "FULL", "xstart": 1, "ystart": 1, "xsize": exp.geom.shape[1],
                     "ysize": exp.geom.shape[0], "fastaxis": 1, "slowaxis": 2},
        "cal_step": cal_step,
    }


def _slit_node(layout: WfssLayout, exp: WfssExposure, cut: Cutout2D, first: bool) -> dict[str, Any]:
    """Plain-dict slit node as extract_2d + photom leave it (building SlitModel objects is much slower)."""
    ny, nx = cut.shape
    src = cut.source
    sr = layout.pixel_area_sr
    wcsinfo: dict[str, Any] = {"spectral_order": cut.order, "dispersion_direction": layout.dispersion_axis,
                               "specsys": "BARYCENT"}
    if first:
        wcsinfo["s_region"] = s_region(exp)  # extract_2d copies the exposure's footprint to the first slit
    return {
        "data": cut.sci, "dq": cut.dq, "err": cut.err, "var_poisson": cut.var_poisson,
        "var_rnoise": cut.var_rnoise, "var_flat": cut.var_flat, "wavelength": cut.wavelength,
        "name": str(src.source_id), "source_id": int(src.source_id), "source_type": src.source_type,
        "is_extended": src.source_type == "EXTENDED",
        "source_xpos": float(cut.centre[0]), "source_ypos": float(cut.centre[1]),
        "source_ra": float(src.ra), "source_dec": float(src.dec),
        "xstart": cut.xmin + 1, "xsize": nx, "ystart": cut.ymin + 1, "ysize": ny,
        "meta": {
            "model_type": "SlitModel",
            "wcs": cutout_wcs(exp.wcs, cut.xmin, cut.ymin, cut.centre, cut.order, (ny, nx)),
            "bunit_data": "MJy/sr", "bunit_err": "MJy/sr", "wcsinfo": wcsinfo,
            "photometry": {"pixelarea_steradians": sr, "pixelarea_arcsecsq": sr * (180 / np.pi * 3600) ** 2},
        },
    }


def write_cal(path: Path, layout: WfssLayout, rendered: RenderedExposure) -> None:
    """Write one exposure's cutouts as a MultiSlitModel ``_cal.fits`` (validated on save)."""
    exp = rendered.exposure
    slits = [_slit_node(layout, exp, cut, i == 0) for i, cut in enumerate(rendered.cutouts)]
    with dm.MultiSlitModel({"slits": slits}, validate_on_assignment=False) as model:
        model.meta.instance.update(exposure_meta(layout, exp, path.name.removesuffix(".fits")))
        with indexed_hdus(), asdf_write_unvalidated():
            model.save(path)


def write_asn(path: Path, layout: WfssLayout, members: list[str]) -> None:
    """Write a spec3 association of ``members`` (cal or x1d files in the same folder)."""
    asn = asn_document(layout.cfg["asn_rule"], layout.cfg, product_name(layout), members)
    path.write_text(json.dumps(asn, indent=4) + "\n")
