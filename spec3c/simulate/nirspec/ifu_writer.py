"""Write simulated NIRSpec IFU exposures as stage-2 ``_cal.fits`` IFUImageModels and a spec3 ASN."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gwcs import WCS
from stdatamodels.jwst import datamodels as dm

from ..asn import asn_document
from .ifu_layout import IfuLayout
from .ifu_render import IfuExposure
from .ifu_wcs import ideal_to_sky

__all__ = ["asn_name", "exposure_meta", "exposure_stem", "product_name", "s_region", "write_asn", "write_cal"]

_MJD0 = 60310.25  # 2024-01-01 06:00 UTC
_STEPS_DONE = ("assign_wcs", "msa_flagging", "nsclean", "flat_field", "srctype", "pathloss", "photom")
_STEPS_SKIPPED = ("bkg_subtract", "imprint", "master_background", "residual_fringe", "pixel_replace")


def exposure_stem(layout: IfuLayout, k: int, detector: str, suffix: str = "cal") -> str:
    """Cal file stem, e.g. ``jw01249005001_03101_00001_nrs1_cal``."""
    c = layout.cfg
    root = f"jw{c['program']}{c['observation']}{c['visit']}"
    return f"{root}_{c['visit_group']}{c['sequence']}{c['activity']}_{k + 1:05d}_{detector.lower()}_{suffix}"


def asn_name(layout: IfuLayout) -> str:
    """ASN file name, e.g. ``jw01249-o005_spec3_00001_asn.json``."""
    c = layout.cfg
    return f"jw{c['program']}-o{c['observation']}_spec3_00001_asn.json"


def product_name(layout: IfuLayout) -> str:
    """Stage-3 product name as ``Asn_Lv3NRSIFU`` forms it (opt_elem = grating), e.g.
    ``jw01249-o005_t001_nirspec_g395h``; cube_build replaces the grating by ``g395h-f290lp``."""
    c = layout.cfg
    return f"jw{c['program']}-o{c['observation']}_{c['target']}_nirspec_{c['grating'].lower()}"


def s_region(ra: np.ndarray, dec: np.ndarray) -> str:
    """RA/Dec bounding rectangle of the on-slice pixels, formatted as jwst's assign_wcs writes it."""
    r0 = float(np.nanmedian(ra))
    wrapped = (ra - r0 + 180.0) % 360.0 - 180.0 + r0
    ra_lo, ra_hi = np.nanmin(wrapped) % 360.0, np.nanmax(wrapped) % 360.0
    dec_lo, dec_hi = float(np.nanmin(dec)), float(np.nanmax(dec))
    corners = (ra_lo, dec_lo, ra_hi, dec_lo, ra_hi, dec_hi, ra_lo, dec_hi)
    return "POLYGON ICRS  " + " ".join(f"{v:.9f}" for v in corners)


def _position_angle(layout: IfuLayout, k: int) -> float:
    """Sky position angle (deg E of N) of the +along-slice axis at the field centre."""
    ra, dec = ideal_to_sky(layout.optics, layout.pointings[k], np.array([0.0, 0.0]), np.array([0.0, 1.0]))
    d_east = (ra[1] - ra[0]) * np.cos(np.deg2rad(dec[0]))
    return float(np.degrees(np.arctan2(d_east, dec[1] - dec[0])) % 360.0)


def _wcsinfo(layout: IfuLayout, k: int, footprint: tuple[str, tuple[float, float]]) -> dict[str, Any]:
    o, p = layout.optics, layout.pointings[k]
    lo, hi = layout.cfg["wavelength_range_um"]
    info: dict[str, Any] = {
        "v2_ref": o.v2_ref,
        "v3_ref": o.v3_ref,
        "vparity": o.vparity,
        "v3yangle": o.v3yangle,
        "ra_ref": p.ra_ref,
        "dec_ref": p.dec_ref,
        "roll_ref": p.roll_ref,
        "dispersion_direction": 1,
        "spectral_order": 1,
        "waverange_start": lo * 1e-6,
        "waverange_end": hi * 1e-6,
        "s_region": footprint[0],
        "spectral_region": [float(footprint[1][0]), float(footprint[1][1])],
    }
    if layout.moving_target:
        info["mt_ra"], info["mt_dec"] = layout.ephemeris(k)
    return info


def _exposure(c: dict[str, Any], k: int) -> dict[str, Any]:
    t = float(c["exposure_time_s"])
    start = _MJD0 + k * (t + 300.0) / 86400.0
    return {
        "type": c["exp_type"],
        "exposure_time": t,
        "effective_exposure_time": t,
        "measurement_time": t,
        "duration": t,
        "integration_time": t,
        "start_time": start,
        "mid_time": start + 0.5 * t / 86400,
        "end_time": start + t / 86400,
        "nints": 1,
        "ngroups": 20,
        "nframes": 1,
        "groupgap": 0,
        "readpatt": c["readpatt"],
        "frame_time": 14.58889,
        "group_time": 14.58889,
    }


def exposure_meta(layout: IfuLayout, k: int, detector: str, footprint: tuple[str, tuple[float, float]]) -> dict[str, Any]:
    """The ``meta`` tree of exposure ``k`` on ``detector`` as nested dicts (no WCS)."""
    c = layout.cfg
    p = layout.pointings[k]
    ny, nx = next(d.shape for d in layout.detectors if d.name == detector)
    stem = exposure_stem(layout, k, detector)
    sr = layout.pixel_area_sr
    tra, tdec = layout.ephemeris(k) if layout.moving_target else layout.target_radec
    return {
        "filename": stem + ".fits",
        "telescope": "JWST",
        "instrument": {"name": "NIRSPEC", "detector": detector, "grating": c["grating"], "filter": c["filter"]},
        "exposure": _exposure(c, k),
        "observation": {
            "program_number": c["program"],
            "observation_number": c["observation"],
            "visit_number": c["visit"],
            "visit_group": c["visit_group"],
            "sequence_id": c["sequence"],
            "activity_id": c["activity"],
            "exposure_number": f"{k + 1:05d}",
            "date": "2024-01-01",
            "time": "06:00:00.000",
            "bkgdtarg": False,
        },
        "visit": {"tsovisit": False},
        "target": {
            "ra": tra,
            "dec": tdec,
            "type": "MOVING" if layout.moving_target else "FIXED",
            "catalog_name": c["target_name"],
            "proposer_name": c["target_name"],
            "source_type": layout.target.source_type,
        },
        "aperture": {"name": c["aperture"], "position_angle": _position_angle(layout, k)},
        "group_id": stem.rsplit("_", 2)[0],
        "pointing": {"ra_v1": p.ra_ref, "dec_v1": p.dec_ref, "pa_v3": p.roll_ref},
        "wcsinfo": _wcsinfo(layout, k, footprint),
        "photometry": {"pixelarea_steradians": sr, "pixelarea_arcsecsq": sr * (180 / np.pi * 3600) ** 2},
        "dither": {
            "primary_type": c["dither"]["pattern"],
            "position_number": k % len(c["dither"]["offsets_arcsec"]) + 1,
            "total_points": len(layout.pointings),
            "x_offset": layout.dithers[k][0],
            "y_offset": layout.dithers[k][1],
        },
        "subarray": {"name": "FULL", "xstart": 1, "ystart": 1, "xsize": nx, "ysize": ny, "fastaxis": 1, "slowaxis": 2},
        "bunit_data": "MJy/sr",
        "bunit_err": "MJy/sr",
        "cal_step": dict.fromkeys(_STEPS_DONE, "COMPLETE") | dict.fromkeys(_STEPS_SKIPPED, "SKIPPED"),
    }


def write_cal(path: Path, exp: IfuExposure, regions: np.ndarray, wcs: WCS, meta: dict[str, Any]) -> None:
    """Write one IFUImageModel ``_cal.fits`` (SCI, ERR, DQ, VAR_*, REGIONS, ASDF with the gwcs)."""
    err = np.sqrt(exp.var_poisson + exp.var_rnoise + exp.var_flat).astype(np.float32)
    # validated once, by save (validating each assignment re-checks the whole gwcs tree)
    with dm.IFUImageModel(data=exp.sci, dq=exp.dq, err=err, validate_on_assignment=False) as model:
        model.var_poisson = exp.var_poisson
        model.var_rnoise = exp.var_rnoise
        model.var_flat = exp.var_flat
        model.regions = regions
        model.meta.instance.update(meta)
        model.meta.wcs = wcs
        model.save(path)  # validates against the schema


def write_asn(path: Path, layout: IfuLayout, cal_names: Sequence[str], background_names: Sequence[str] = ()) -> None:
    """Write the spec3 level-3 association (members in the same folder)."""
    asn = asn_document("Asn_Lv3NRSIFU", layout.cfg, product_name(layout), cal_names, background_names)
    path.write_text(json.dumps(asn, indent=4) + "\n")
