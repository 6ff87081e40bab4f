"""Write simulated MRS exposures as stage-2 ``_cal.fits`` IFUImageModels and the spec3 ASN.

Names follow the JWST convention: ``jw{program}{obs}{visit}_{visit group}{sequence}{activity}_
{exposure}_{detector}_cal.fits`` with one activity (exposure sequence) per band and the
exposure number counting the dither positions; both detectors of one exposure share
``meta.group_id``.  The level-3 product is ``jw{program}-o{obs}_{target}_miri``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from stdatamodels.jwst import datamodels as dm

from ...asn import asn_document
from .instrument import ARCSEC2_TO_SR, DetectorSpec, detector_maps, mrs_config
from .render import MrsExposure
from .wcs import channel_affine, ideal_to_v2v3, v2v3_to_sky

__all__ = ["asn_name", "exposure_meta", "exposure_stem", "product_name", "write_asn", "write_exposure"]

_MJD0 = 60310.25  # 2024-01-01 06:00 UTC
_STEPS_DONE = ("assign_wcs", "flat_field", "srctype", "straylight", "fringe", "photom")
_STEPS_SKIPPED = ("bkg_subtract", "residual_fringe", "pixel_replace", "master_background")


def _obs() -> dict[str, Any]:
    return dict(mrs_config()["observation"])


def exposure_stem(det: DetectorSpec, band: str, k: int) -> str:
    """``jw01050003001_03102_00001_mirifushort_cal`` for dither ``k`` (0-based) of ``band``."""
    return f"{group_id(band, k)}_{det.file_name}_cal"


def group_id(band: str, k: int) -> str:
    """``meta.group_id`` shared by the two detectors of one exposure."""
    c = _obs()
    act = mrs_config()["bands"][band]["activity"]
    return f"jw{c['program']}{c['observation']}{c['visit']}_{c['visit_group']}{c['sequence']}{act}_{k + 1:05d}"


def product_name() -> str:
    """Stage-3 product name, e.g. ``jw01050-o003_t001_miri`` (cube_build appends ``_ch1-short``)."""
    c = _obs()
    return f"jw{c['program']}-o{c['observation']}_{c['target']}_miri"


def asn_name() -> str:
    c = _obs()
    return f"jw{c['program']}-o{c['observation']}_spec3_00001_asn.json"


def _footprint(exp: MrsExposure) -> tuple[str, list[float]]:
    """S_REGION (RA/Dec bounding rectangle of every illuminated pixel, as assign_wcs computes it)
    and SPECTRAL_REGION; evaluated through the channels' transforms (the gwcs without its selectors)."""
    maps = detector_maps(exp.detector.name, exp.band)
    tel2sky = v2v3_to_sky(exp.pointing)
    ra_l, dec_l = [], []
    for ch in exp.detector.channels:
        sel = maps.channel == ch.number
        r, d = tel2sky(*channel_affine(ch, exp.pointing)(maps.alpha[sel], maps.beta[sel]))
        ra_l.append(r)
        dec_l.append(d)
    ra, dec = np.concatenate(ra_l), np.concatenate(dec_l)
    rc = exp.pointing.ra_ref
    ra = (ra - rc + 180.0) % 360.0 - 180.0 + rc
    r0, r1, d0, d1 = np.min(ra) % 360, np.max(ra) % 360, np.min(dec), np.max(dec)
    corners = (r0, d0, r1, d0, r1, d1, r0, d1)
    lam = maps.lam[maps.valid]
    return "POLYGON ICRS  " + " ".join(f"{v:.9f}" for v in corners), [float(lam.min()), float(lam.max())]


def _position_angle(exp: MrsExposure) -> float:
    """Position angle (deg E of N) of the aperture's ideal +y axis."""
    tel2sky = v2v3_to_sky(exp.pointing)
    r0, d0 = tel2sky(*ideal_to_v2v3(exp.pointing, 0.0, 0.0))
    r1, d1 = tel2sky(*ideal_to_v2v3(exp.pointing, 0.0, 10.0))
    dra = ((float(r1) - float(r0) + 180.0) % 360.0 - 180.0) * np.cos(np.deg2rad(float(d0)))
    return float(np.rad2deg(np.arctan2(dra, float(d1) - float(d0))) % 360.0)


def _exposure_block(exp_type: str, index: int) -> dict[str, Any]:
    e = mrs_config()["exposure"]
    t = float(e["exposure_time_s"])
    start = _MJD0 + index * (t + 300.0) / 86400.0
    return {
        "type": exp_type,
        "exposure_time": t,
        "effective_exposure_time": t,
        "measurement_time": t,
        "duration": t,
        "integration_time": t / int(e["nints"]),
        "start_time": start,
        "mid_time": start + 0.5 * t / 86400,
        "end_time": start + t / 86400,
        "nints": int(e["nints"]),
        "ngroups": int(e["ngroups"]),
        "nframes": 1,
        "groupgap": 0,
        "readpatt": e["readpatt"],
        "frame_time": float(e["frame_time_s"]),
        "group_time": float(e["frame_time_s"]),
    }


def _dither(exp: MrsExposure, k: int, offset: tuple[float, float], n: int) -> dict[str, Any]:
    d = mrs_config()["pointing"]["dither"]
    ra, dec = v2v3_to_sky(exp.pointing)(*ideal_to_v2v3(exp.pointing, *offset))
    return {
        "primary_type": d["primary_type"],
        "optimized_for": d["optimized_for"],
        "direction": d["direction"],
        "primary_channel": d["primary_channel"],
        "position_number": k % len(d["offsets_arcsec"]) + 1,
        "total_points": min(n, len(d["offsets_arcsec"])),
        "x_offset": float(offset[0]),
        "y_offset": float(offset[1]),
        "dithered_ra": float(ra),
        "dithered_dec": float(dec),
    }


def exposure_meta(
    exp: MrsExposure, k: int, n_dithers: int, sequence_index: int, target: tuple[float, float],
    sky_subtracted: bool = False,
) -> dict[str, Any]:
    """The ``meta`` tree of dither ``k`` of ``exp`` (``sequence_index`` orders the exposures in time;
    ``sky_subtracted`` marks spec2's background subtraction done)."""
    c = _obs()
    det = exp.detector
    p = exp.pointing
    offsets = mrs_config()["pointing"]["dither"]["offsets_arcsec"]
    offset = (float(offsets[k % len(offsets)][0]), float(offsets[k % len(offsets)][1]))
    s_region, spectral_region = _footprint(exp)
    first = det.channels[0]
    area = first.pixel_scale * first.slice_width
    cal_step = dict.fromkeys(_STEPS_DONE, "COMPLETE") | dict.fromkeys(_STEPS_SKIPPED, "SKIPPED")
    cal_step["bkg_subtract"] = "COMPLETE" if sky_subtracted else "SKIPPED"
    ra_v1, dec_v1 = v2v3_to_sky(p)(0.0, 0.0)
    gid = group_id(exp.band, k)
    return {
        "filename": f"{gid}_{det.file_name}_cal.fits",
        "telescope": "JWST",
        "instrument": {
            "name": "MIRI",
            "detector": det.name,
            "channel": "".join(sorted(str(ch.number) for ch in det.channels)),
            "band": exp.band,
        },
        "exposure": _exposure_block(c["exp_type"], sequence_index),
        "observation": {
            "program_number": c["program"],
            "observation_number": c["observation"],
            "visit_number": c["visit"],
            "visit_group": c["visit_group"],
            "sequence_id": c["sequence"],
            "activity_id": mrs_config()["bands"][exp.band]["activity"],
            "exposure_number": f"{k + 1:05d}",
            "date": "2024-01-01",
            "time": "06:00:00.000",
            "bkgdtarg": False,
        },
        "visit": {"tsovisit": False},
        "target": {
            "ra": target[0],
            "dec": target[1],
            "type": "FIXED",
            "catalog_name": c["target_name"],
            "proposer_name": c["target_name"],
            "source_type": "POINT",
        },
        "group_id": gid,
        "pointing": {"ra_v1": float(ra_v1), "dec_v1": float(dec_v1), "pa_v3": p.roll_ref},
        "aperture": {"name": mrs_config()["pointing"]["aperture"], "position_angle": _position_angle(exp)},
        "wcsinfo": {
            "v2_ref": p.v2_ref,
            "v3_ref": p.v3_ref,
            "vparity": p.vparity,
            "v3yangle": p.v3yangle,
            "ra_ref": p.ra_ref,
            "dec_ref": p.dec_ref,
            "roll_ref": p.roll_ref,
            "dispersion_direction": 2,
            "s_region": s_region,
            "spectral_region": spectral_region,
        },
        "photometry": {"pixelarea_steradians": area * ARCSEC2_TO_SR, "pixelarea_arcsecsq": area},
        "dither": _dither(exp, k, offset, n_dithers),
        "subarray": {"name": "FULL", "xstart": 1, "ystart": 1, "xsize": det.shape[1], "ysize": det.shape[0],
                     "fastaxis": 1, "slowaxis": 2},
        "bunit_data": "MJy/sr",
        "bunit_err": "MJy/sr",
        "cal_step": cal_step,
    }


def write_exposure(path: Path, exp: MrsExposure, meta: dict[str, Any]) -> None:
    """Write one exposure as an IFUImageModel ``_cal.fits`` (validated on save)."""
    err = np.sqrt(exp.var_poisson + exp.var_rnoise + exp.var_flat).astype(np.float32)
    with dm.IFUImageModel(exp.sci) as model:
        model.dq, model.err = exp.dq, err
        model.var_poisson, model.var_rnoise, model.var_flat = exp.var_poisson, exp.var_rnoise, exp.var_flat
        model.meta.instance.update(meta)
        model.meta.wcs = exp.wcs
        model.save(path)


def write_asn(path: Path, cal_names: list[str], background_names: list[str] | None = None) -> None:
    """Write the spec3 association of the science cal files (and background ``_x1d`` members)."""
    c = _obs()
    asn = asn_document(c["asn_rule"], c, product_name(), cal_names, background_names or ())
    path.write_text(json.dumps(asn, indent=4) + "\n")
