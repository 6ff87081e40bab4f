"""NIRISS SOSS mode of :func:`spec3c.simulate.simulate`: ``niriss-soss``.

One time-series exposure as calwebb_spec2 leaves it: ``<exposure>_calints.fits``
(CubeModel, one plane per integration, DN/s; SCI/ERR/DQ/VAR_POISSON/
VAR_RNOISE/VAR_FLAT and the INT_TIMES table) of a star seen through
GR700XD+CLEAR on SUBSTRIP256 (orders 1, 2, 3) or SUBSTRIP96 (order 1 and the
red end of order 2), the background already removed; a transit of
:data:`TRANSIT_DEPTH` across the middle integrations; Poisson and read noise;
reference pixels (DO_NOT_USE, NaN), a few pixels dead in every integration
and cosmic-ray pixels flagged and NaN in single integrations.  Plus the
spec3 association, the PASTASOSS, SPECPROFILE and SPECKERNEL files jwst
3.0.0's extract_1d reads and a PHOTOM file for its photom
(:mod:`.soss_reffiles`), and the truth file
``<asn stem>_truth.asdf``: per order the trace (x, y, wavelength), the true
flux per integration and column (DN/s, the whole profile) and the
contamination of its 40-pixel box by the other orders.  The instrument model
is :mod:`.soss`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asdf
import numpy as np
from stdatamodels.jwst import datamodels as dm

from ...dqflags import DO_NOT_USE, REFERENCE_PIXEL
from ..asn import asn_document
from ..options import Progress, SimOptions, SimulationResult
from .soss import ORDERS, SUBARRAYS, order_flux, order_profile, render_orders, trace_model
from .soss_reffiles import write_reference_files

__all__ = ["SOSS_MODES", "TRANSIT_DEPTH", "simulate_soss"]

SOSS_MODES = ("niriss-soss",)
TRANSIT_DEPTH = 0.01
PWCPOS = 245.79
INTEGRATION_TIME = 10.0  # s
GAIN = 1.6  # e-/DN
READ_NOISE = 12.0  # DN per read difference
_CFG = {"program": "01091", "observation": "002", "target": "t001"}
_MJD0 = 60310.25
_DEAD_PIXELS = 12
_COSMIC_RAYS_PER_INT = 15


def _orders(subarray: str) -> tuple[int, ...]:
    return (1, 2) if subarray == "SUBSTRIP96" else (1, 2, 3)


def light_curve(n: int) -> np.ndarray:
    """Relative flux per integration: a box-shaped transit over the middle third."""
    lc = np.ones(n)
    if n >= 3:
        lc[n // 3 : n - n // 3] -= TRANSIT_DEPTH
    return lc


def _contamination(order: int, subarray: str, images: dict[int, np.ndarray], width: float = 40.0) -> np.ndarray:
    """Light of the other orders inside ``order``'s box (noiseless) over its own light there, per column."""
    t = trace_model(order, PWCPOS, subarray)
    rows = np.arange(images[order].shape[0])[:, None]
    box = (np.abs(rows - t.y[None, :]) <= width / 2).astype(float)
    own = (images[order][:, : len(t.x)] * box).sum(0)
    other = np.sum([(images[o][:, : len(t.x)] * box).sum(0) for o in images if o != order], axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(own > 0, other / np.where(own > 0, own, 1.0), np.inf)


def _int_times(n: int) -> np.ndarray:
    dtype = dm.CubeModel().get_dtype("int_times")
    table = np.zeros(n, dtype=dtype)
    start = _MJD0 + np.arange(n) * INTEGRATION_TIME / 86400.0
    table["integration_number"] = np.arange(1, n + 1)
    for col, off in (("start", 0.0), ("mid", 0.5), ("end", 1.0)):
        table[f"int_{col}_MJD_UTC"] = start + off * INTEGRATION_TIME / 86400.0
        table[f"int_{col}_BJD_TDB"] = start + off * INTEGRATION_TIME / 86400.0 + 0.0005
    return table


def _meta(name: str, subarray: str, n: int) -> dict[str, Any]:
    ny, ystart, _ = SUBARRAYS[subarray]
    t_total = n * INTEGRATION_TIME
    return {
        "filename": f"{name}.fits", "bunit_data": "DN/s", "bunit_err": "DN/s",
        "telescope": "JWST", "model_type": "CubeModel",
        "instrument": {"name": "NIRISS", "detector": "NIS", "filter": "CLEAR", "pupil": "GR700XD",
                       "pupil_position": PWCPOS},
        "subarray": {"name": subarray, "xstart": 1, "ystart": ystart, "xsize": 2048, "ysize": ny,
                     "fastaxis": -2, "slowaxis": -1},
        "exposure": {"type": "NIS_SOSS", "nints": n, "integration_start": 1, "integration_end": n,
                     "ngroups": 5, "nframes": 1, "groupgap": 0, "readpatt": "NISRAPID",
                     "frame_time": INTEGRATION_TIME / 5, "group_time": INTEGRATION_TIME / 5,
                     "integration_time": INTEGRATION_TIME, "effective_exposure_time": t_total,
                     "exposure_time": t_total, "duration": t_total, "measurement_time": t_total,
                     "start_time": _MJD0, "mid_time": _MJD0 + 0.5 * t_total / 86400,
                     "end_time": _MJD0 + t_total / 86400, "segment_number": 1},
        "visit": {"tsovisit": True},
        "observation": {"program_number": _CFG["program"], "observation_number": _CFG["observation"],
                        "visit_number": "001", "visit_group": "03", "sequence_id": "1", "activity_id": "01",
                        "exposure_number": "00001", "date": "2024-01-01", "time": "06:00:00.000"},
        "target": {"catalog_name": "SIM-SOSS-STAR", "proposer_name": "sim star", "ra": 150.0, "dec": 20.0,
                   "source_type": "POINT", "type": "FIXED"},
        "cal_step": {"assign_wcs": "COMPLETE", "extract_2d": "SKIPPED", "flat_field": "COMPLETE",
                     "srctype": "COMPLETE", "photom": "SKIPPED", "bkg_subtract": "COMPLETE"},
    }


def _set_meta(model: dm.CubeModel, tree: dict[str, Any], prefix: str = "meta") -> None:
    for key, value in tree.items():
        if isinstance(value, dict):
            _set_meta(model, value, f"{prefix}.{key}")
        else:
            model[f"{prefix}.{key}"] = value


def _write_calints(path: Path, subarray: str, n: int, rng: np.random.Generator) -> dict[str, Any]:
    """Render, add noise and flags, write the cube; returns the truth tree."""
    orders = _orders(subarray)
    images = render_orders(PWCPOS, subarray, orders)
    noiseless = np.sum(list(images.values()), axis=0)
    lc = light_curve(n)
    ny = noiseless.shape[0]
    var_rn = np.full((ny, 2048), 1.2 * READ_NOISE**2 / INTEGRATION_TIME**2, np.float32)
    sci = np.empty((n, ny, 2048), np.float32)
    var_p = np.empty_like(sci)
    dq = np.zeros(sci.shape, np.uint32)
    for i in range(n):
        signal = noiseless * lc[i]
        var_p[i] = signal / (GAIN * INTEGRATION_TIME)
        sci[i] = signal + rng.normal(0.0, 1.0, signal.shape) * np.sqrt(var_p[i] + var_rn)
    ref = np.zeros((ny, 2048), bool)
    ref[:, :4] = ref[:, -4:] = True
    if subarray == "SUBSTRIP256":
        ref[-4:, :] = True
    dq[:, ref] |= DO_NOT_USE | REFERENCE_PIXEL
    dead = (rng.integers(0, ny, _DEAD_PIXELS), rng.integers(4, 2044, _DEAD_PIXELS))
    dq[:, dead[0], dead[1]] |= DO_NOT_USE
    hits = []
    for i in range(n):
        y, x = rng.integers(0, ny, _COSMIC_RAYS_PER_INT), rng.integers(4, 2044, _COSMIC_RAYS_PER_INT)
        dq[i, y, x] |= DO_NOT_USE | 4  # JUMP_DET
        hits.append(np.column_stack([np.full(len(x), i), y, x]))
    bad = (dq & DO_NOT_USE) != 0
    sci[bad] = np.nan
    err = np.sqrt(var_p + var_rn[None]).astype(np.float32)
    err[bad] = np.nan
    model = dm.CubeModel(data=sci, err=err, dq=dq, var_poisson=var_p, var_rnoise=np.repeat(var_rn[None], n, 0),
                         var_flat=np.zeros_like(sci), int_times=_int_times(n))
    model.var_poisson[bad] = np.nan
    model.var_rnoise[bad] = np.nan
    _set_meta(model, _meta(path.name.removesuffix(".fits"), subarray, n))
    model.save(path)
    return {"orders": {o: {"x": trace_model(o, PWCPOS, subarray).x, "y": trace_model(o, PWCPOS, subarray).y,
                           "wavelength": trace_model(o, PWCPOS, subarray).wavelength,
                           "flux": lc[:, None] * order_flux(o, PWCPOS, subarray)[None, :],
                           "on_array": order_profile(o, PWCPOS, subarray).sum(0)[: ORDERS[o].cutoff],
                           "contamination": _contamination(o, subarray, images)} for o in orders},
            "light_curve": lc, "pupil_position": PWCPOS, "subarray": subarray,
            "dead_pixels": np.column_stack(dead), "cosmic_rays": np.concatenate(hits)}


def simulate_soss(mode: str, output_dir: str | Path, options: SimOptions,
                  progress: Progress | None = None) -> SimulationResult:
    """Write the calints exposure, the spec3 ASN, the truth and the three reference files into ``output_dir``."""
    if mode not in SOSS_MODES:
        raise ValueError(f"mode must be one of {SOSS_MODES}, got {mode!r}")
    subarray = options.subarray or "SUBSTRIP256"
    if subarray not in SUBARRAYS:
        raise ValueError(f"subarray must be one of {sorted(SUBARRAYS)}, got {subarray!r}")
    if options.n_exposures != SimOptions().n_exposures and options.n_exposures != 1:
        raise ValueError(f"{mode}: one time-series exposure is simulated; use n_integrations")
    n = options.n_integrations or 5
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(options.seed)
    stem = f"jw{_CFG['program']}{_CFG['observation']}001_03101_00001-seg001_nis_calints"
    cal = out / f"{stem}.fits"
    truth = _write_calints(cal, subarray, n, rng)
    if progress is not None:
        progress(1, 1)
    product = f"jw{_CFG['program']}-o{_CFG['observation']}_{_CFG['target']}_niriss_clear-gr700xd-{subarray.lower()}"
    asn = out / f"jw{_CFG['program']}-o{_CFG['observation']}_spec3_00001_asn.json"
    doc = asn_document("candidate_Asn_Lv3SpecAux", _CFG, product, [cal.name])
    doc["asn_rule"] = "Asn_Lv3TSO"
    asn.write_text(json.dumps(doc, indent=2))
    refs = write_reference_files(out, PWCPOS, subarray)
    truth_path = out / f"{asn.name.removesuffix('.json')}_truth.asdf"
    asdf.AsdfFile(truth).write_to(truth_path)
    return SimulationResult(asn, [cal], truth_path, mode,
                            reference_files={"pastasoss": refs.pastasoss, "specprofile": refs.specprofile,
                                             "speckernel": refs.speckernel, "photom": refs.photom})
