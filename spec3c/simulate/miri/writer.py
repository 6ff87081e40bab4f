"""Write simulated MIRI LRS exposures as stage-2 ``_cal.fits`` ImageModels, the ASN
and the background ``_x1d.fits`` members."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from stdatamodels.jwst import datamodels as dm

from ..asn import asn_document
from ..x1d import write_spec2_x1d
from .layout import LrsLayout, miri_config, source_position
from .render import LrsExposure

__all__ = [
    "asn_name",
    "background_names",
    "exposure_meta",
    "exposure_names",
    "product_name",
    "write_asn",
    "write_background_x1d",
    "write_lrs_exposure",
]

_MJD0 = 60310.25  # 2024-01-01 06:00 UTC
_STEPS_DONE = ("assign_wcs", "flat_field", "srctype", "photom")
_STEPS_SKIPPED = ("targ_centroid", "straylight", "fringe", "residual_fringe", "master_background")


def _stem(c: dict[str, Any], observation: str, k: int, suffix: str) -> str:
    root = f"jw{c['program']}{observation}{c['visit']}"
    return f"{root}_{c['visit_group']}{c['sequence']}{c['activity']}_{k + 1:05d}_mirimage_{suffix}"


def exposure_names(layout: LrsLayout, n: int) -> list[str]:
    """Cal file stems, e.g. ``jw01530005001_03101_00001_mirimage_cal``."""
    return [_stem(layout.cfg, layout.cfg["observation"], k, "cal") for k in range(n)]


def background_names(layout: LrsLayout, n: int) -> list[str]:
    """Background x1d stems (a separate background observation)."""
    obs = layout.cfg["background_observation"]
    return [_stem(layout.cfg, obs, k, "x1d") for k in range(n)]


def asn_name(layout: LrsLayout) -> str:
    """ASN file name, e.g. ``jw01530-o005_spec3_00001_asn.json``."""
    c = layout.cfg
    return f"jw{c['program']}-o{c['observation']}_spec3_00001_asn.json"


def product_name(layout: LrsLayout) -> str:
    """Stage-3 product name (no ``{source_id}`` field for LRS), e.g. ``jw01530-o005_t001_miri_p750l``."""
    c = layout.cfg
    sub = c["subarray"]["name"].lower()
    suffix = f"-{sub}" if layout.slitless else ""  # the FS cutout stands for FULL-frame data
    return f"jw{c['program']}-o{c['observation']}_{c['target']}_miri_{c['filter'].lower()}{suffix}"


def _s_region(exp: LrsExposure) -> str:
    """RA/Dec bounding rectangle of the bounding box (as jwst's spectral footprint)."""
    (x0, x1), (y0, y1) = exp.geom.bounding_box
    y, x = np.mgrid[int(np.ceil(y0)) : int(y1) + 1, int(np.ceil(x0)) : int(x1) + 1]
    ra, dec, _ = exp.wcs(x.astype(float), y.astype(float))
    rc = exp.geom.centre_radec[0]
    ra = (ra - rc + 180.0) % 360.0 - 180.0 + rc
    r0, r1, d0, d1 = np.nanmin(ra) % 360, np.nanmax(ra) % 360, np.nanmin(dec), np.nanmax(dec)
    corners = (r0, d0, r1, d0, r1, d1, r0, d1)
    return "POLYGON ICRS  " + " ".join(f"{v:.9f}" for v in corners)


def _wcsinfo(layout: LrsLayout, exp: LrsExposure, k: int) -> dict[str, Any]:
    det = miri_config()["detector"]
    ra_c, dec_c = exp.geom.centre_radec
    v2, v3 = layout.cfg["v2v3_ref"]
    info = {
        "v2_ref": v2,
        "v3_ref": v3,
        "vparity": det["vparity"],
        "v3yangle": det["v3yangle"],
        "ra_ref": ra_c,
        "dec_ref": dec_c,
        "roll_ref": layout.pointing[2],
        "dispersion_direction": 2,
        "spectral_order": 1,
        "s_region": _s_region(exp),
    }
    if layout.moving_target:
        info["mt_ra"], info["mt_dec"] = source_position(layout, k)
    return info


def _exposure(c: dict[str, Any], k: int) -> dict[str, Any]:
    t = float(c["exposure_time_s"])
    start = _MJD0 + k * (t + 300.0) / 86400.0
    ngroups, frame = int(c["ngroups"]), float(c["frame_time_s"])
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
        "ngroups": ngroups,
        "nframes": 1,
        "groupgap": 0,
        "readpatt": c["readpatt"],
        "frame_time": frame,
        "group_time": frame,
    }


def _dither(layout: LrsLayout, exp: LrsExposure, k: int) -> dict[str, Any]:
    """Nod/dither keywords; ``dithered_ra/dec`` = sky position of the commanded offset."""
    n_pos = len(layout.offsets)
    kind = "NONE" if layout.slitless and n_pos == 1 else layout.cfg.get("nod_pattern", "NONE")
    x_off = exp.alpha - layout.pointing_error
    ra, dec, _ = exp.wcs.get_transform("alpha_beta", "world")(x_off, 0.0, 7.0)
    return {
        "primary_type": kind,
        "position_number": k % n_pos + 1,
        "total_points": n_pos,
        "x_offset": x_off,
        "y_offset": 0.0,
        "dithered_ra": float(ra),
        "dithered_dec": float(dec),
    }


def exposure_meta(
    layout: LrsLayout, exp: LrsExposure, k: int, name: str, nod_subtracted: bool
) -> dict[str, Any]:
    """The ``meta`` tree of exposure ``k`` (file stem ``name``) as nested dicts."""
    c = layout.cfg
    sub = c["subarray"]
    ny, nx = exp.geom.shape
    sr = layout.pixel_area_sr
    cal_step = dict.fromkeys(_STEPS_DONE, "COMPLETE") | dict.fromkeys(_STEPS_SKIPPED, "SKIPPED")
    cal_step["pathloss"] = "SKIPPED" if layout.slitless else "COMPLETE"
    cal_step["bkg_subtract"] = "COMPLETE" if nod_subtracted else "SKIPPED"
    obs = name.split("_")[0][7:10]
    ra0, dec0, pa = layout.pointing
    ra_c, dec_c = exp.geom.centre_radec
    return {
        "filename": name + ".fits",
        "telescope": "JWST",
        "instrument": {"name": "MIRI", "detector": "MIRIMAGE", "filter": c["filter"]},
        "exposure": _exposure(c, k),
        "observation": {
            "program_number": c["program"],
            "observation_number": obs,
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
            "ra": ra0,
            "dec": dec0,
            "type": "MOVING" if layout.moving_target else "FIXED",
            "catalog_name": c["target_name"],
            "proposer_name": c["target_name"],
            "source_type": "POINT",
        },
        "group_id": name.rsplit("_", 2)[0],
        "pointing": {"ra_v1": ra_c, "dec_v1": dec_c, "pa_v3": (pa + 180.0) % 360},
        "wcsinfo": _wcsinfo(layout, exp, k),
        "photometry": {
            "pixelarea_steradians": sr,
            "pixelarea_arcsecsq": sr * (180 / np.pi * 3600) ** 2,
        },
        "dither": _dither(layout, exp, k),
        "subarray": {
            "name": sub["name"],
            "xstart": sub["xstart"],
            "ystart": sub["ystart"],
            "xsize": nx,
            "ysize": ny,
            "fastaxis": 1,
            "slowaxis": 2,
        },
        "bunit_data": "MJy/sr",
        "bunit_err": "MJy/sr",
        "cal_step": cal_step,
    }


def write_lrs_exposure(path: Path, exp: LrsExposure, meta: dict[str, Any]) -> None:
    """Write one exposure as an ImageModel ``_cal.fits`` (validated on save)."""
    err = np.sqrt(exp.var_poisson + exp.var_rnoise + exp.var_flat).astype(np.float32)
    with dm.ImageModel(exp.sci) as model:
        model.dq, model.err = exp.dq, err
        model.var_poisson, model.var_rnoise, model.var_flat = (
            exp.var_poisson,
            exp.var_rnoise,
            exp.var_flat,
        )
        model.meta.instance.update(meta)
        model.meta.wcs = exp.wcs
        model.save(path)


def _row_spectrum(exp: LrsExposure, lam: np.ndarray, area_sr: float) -> dict[str, np.ndarray]:
    """Extended-source extraction of a blank-sky exposure: mean over the slit per row."""
    good = np.isfinite(exp.sci) & np.isfinite(lam)
    n = good.sum(axis=1)
    rows = n > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        sb = np.where(good, exp.sci, 0.0).sum(axis=1) / n
        var = {
            nm: np.where(good, getattr(exp, nm), 0.0).sum(axis=1) / n**2
            for nm in ("var_poisson", "var_rnoise", "var_flat")
        }
    sb_err = np.sqrt(sum(var.values()))
    to_jy = 1.0e6 * area_sr * n
    cols = {
        "WAVELENGTH": lam[:, 0],
        "SURF_BRIGHT": sb,
        "SB_ERROR": sb_err,
        "SB_VAR_POISSON": var["var_poisson"],
        "SB_VAR_RNOISE": var["var_rnoise"],
        "SB_VAR_FLAT": var["var_flat"],
        "FLUX": sb * to_jy,
        "FLUX_ERROR": sb_err * to_jy,
        "FLUX_VAR_POISSON": var["var_poisson"] * to_jy**2,
        "FLUX_VAR_RNOISE": var["var_rnoise"] * to_jy**2,
        "FLUX_VAR_FLAT": var["var_flat"] * to_jy**2,
        "NPIXELS": n.astype(np.float64),
    }
    return {k: np.asarray(v[rows], dtype=np.float64) for k, v in cols.items()}


def write_background_x1d(
    path: Path, exp: LrsExposure, meta: dict[str, Any], lam: np.ndarray, area_sr: float
) -> None:
    """Write a background-target exposure's spec2 ``_x1d.fits`` (MultiSpecModel)."""
    bkg_meta = {k: v for k, v in meta.items() if k != "wcs"}
    bkg_meta["observation"] = {**meta["observation"], "bkgdtarg": True}
    bkg_meta["target"] = {**meta["target"], "source_type": "EXTENDED", "type": "FIXED"}
    bkg_meta["target"]["catalog_name"] = bkg_meta["target"]["proposer_name"] = "SIM-LRS-BACKGROUND"
    (x0, x1), (y0, y1) = exp.geom.bounding_box
    ra_c, dec_c = exp.geom.centre_radec
    spectrum = {
        "columns": _row_spectrum(exp, lam, area_sr),
        "name": meta["exposure"]["type"],
        "source_id": 1,
        "source_type": "EXTENDED",
        "dispersion_direction": 2,
        "spectral_order": 1,
        "extraction_xstart": x0 + 1.5,
        "extraction_xstop": x1 + 0.5,
        "extraction_ystart": y0 + 1.5,
        "extraction_ystop": y1 + 0.5,
        "slit_ra": ra_c,
        "slit_dec": dec_c,
    }
    write_spec2_x1d(path, bkg_meta, [spectrum])


def write_asn(path: Path, layout: LrsLayout, cal_names: list[str], bkg_names: list[str]) -> None:
    """Write the spec3 association: science cal files, then background x1d files."""
    asn = asn_document(layout.cfg["asn_rule"], layout.cfg, product_name(layout), cal_names, bkg_names)
    path.write_text(json.dumps(asn, indent=4) + "\n")
