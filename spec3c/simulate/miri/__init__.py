"""MIRI LRS modes of :func:`spec3c.simulate.simulate`: ``miri-lrs-fs`` and ``miri-lrs-slitless``.

Each exposure is a stage-2 ``_cal.fits`` ImageModel as calwebb_spec2 leaves
MIRI LRS data: SCI in MJy/sr, dispersion along detector ``y`` (wavelength
decreasing with ``y``), a ``detector -> alpha_beta -> world`` gwcs
(:mod:`.wcs`) whose bounding box is the slit (FS) or spectral (slitless)
region, NaN and ``DO_NOT_USE | NON_SCIENCE`` outside it.

* ``miri-lrs-fs`` (``MIR_LRS-FIXEDSLIT``): a point source nodded along the
  slit (``ALONG-SLIT-NOD``, ``nod_offsets_arcsec``) plus a uniform sky; by
  default each exposure has the other nod subtracted (``S_BKDSUB``
  COMPLETE).  ``with_background=N`` adds N blank-sky exposures written as
  spec2 ``_x1d`` files (ASN ``background`` members, ``BKGDTARG`` true) and
  leaves the sky in the science exposures.
* ``miri-lrs-slitless`` (``MIR_LRS-SLITLESS``, non-TSO, ``SLITLESSPRISM``
  subarray, NINTS 1): the source and sky, no nods.

The spectral rows are ``n_columns`` (default ``default_rows``) detector rows
centred in the (sub)array.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from ..options import Progress, SimOptions, SimulationResult
from ..truth import Truth, TruthSource, write_truth
from .layout import (
    MIRI_MODES,
    LrsLayout,
    build_lrs,
    miri_config,
    offset_radec,
    source_position,
    with_motion,
)
from .render import LrsExposure, lrs_grid, render_lrs
from .writer import (
    asn_name,
    background_names,
    exposure_meta,
    exposure_names,
    write_asn,
    write_background_x1d,
    write_lrs_exposure,
)

__all__ = ["MIRI_MODES", "simulate_miri", "slitless_aperture"]

_BACKGROUND_OFFSET_ARCSEC = 60.0  # background target north of the science target


def _check(mode: str, opt: SimOptions) -> None:
    """The MIRI-specific checks (the shared ones ran when ``opt`` was made)."""
    if mode not in MIRI_MODES:
        raise ValueError(f"mode must be one of {MIRI_MODES}, got {mode!r}")
    if opt.n_sources not in (None, 1):
        raise ValueError(f"{mode} has exactly one source, got n_sources={opt.n_sources}")
    if opt.with_background and mode != "miri-lrs-fs":
        raise ValueError(f"with_background is implemented for miri-lrs-fs only, not {mode}")


def _background_layout(layout: LrsLayout) -> LrsLayout:
    """The same slit on a blank field north of the science target (fixed target)."""
    ra, dec, pa = layout.pointing
    ra_b, dec_b = offset_radec(ra, dec, 0.0, _BACKGROUND_OFFSET_ARCSEC)
    src = dataclasses.replace(layout.source, ra=ra_b, dec=dec_b)
    return dataclasses.replace(
        layout, source=src, pointing=(ra_b, dec_b, pa), moving_target=False, motion_deg=(0.0, 0.0)
    )


def _write_backgrounds(
    layout: LrsLayout, out: Path, n: int, rng: np.random.Generator
) -> list[Path]:
    """Render ``n`` blank-sky exposures and write their spec2 ``_x1d`` files."""
    bl = _background_layout(layout)
    exposures, _ = render_lrs(bl, n, False, rng, with_source=False, with_cosmic_rays=False)
    lam = lrs_grid(bl).lam
    paths = []
    for k, (name, exp) in enumerate(zip(background_names(bl, n), exposures, strict=True)):
        meta = exposure_meta(bl, exp, k, name, False)
        path = out / f"{name}.fits"
        write_background_x1d(path, exp, meta, lam, bl.pixel_area_sr)
        paths.append(path)
    return paths


def _truth(
    layout: LrsLayout,
    exposures: list[LrsExposure],
    names: list[str],
    seed: int,
    nod_subtracted: bool,
    snr: float,
) -> Truth:
    lo, hi = layout.cfg["wavelength_range_um"]
    pad = 0.2 * (hi - lo)
    grid = np.linspace(lo - pad, hi + pad, 10 * layout.geom.n_rows + 1)
    src = layout.source
    sources = {
        src.key: TruthSource(
            src.source_id, src.source_name, src.source_type, src.kind, src.ra, src.dec,
            grid, src.spectrum(grid), snr,
        )
    }
    exp_type = layout.cfg["exp_type"]
    per_exp = {}
    for k, (nm, ex) in enumerate(zip(names, exposures, strict=True)):
        ra, dec = source_position(layout, k)
        per_exp[nm] = {
            exp_type: {
                "source_key": src.key,
                "source_ypos": float(ex.alpha),
                "source_ra": float(ra),
                "source_dec": float(dec),
                "cosmic_rays": ex.cosmic_rays,
            }
        }
    sky = dict.fromkeys(names, layout.sky_mjy_sr)
    ephem = (
        {nm: source_position(layout, k) for k, nm in enumerate(names)}
        if layout.moving_target
        else {}
    )
    return Truth(layout.mode, seed, nod_subtracted, sources, per_exp, sky, ephem)


def simulate_miri(
    mode: str, output_dir: str | Path, options: SimOptions, progress: Progress | None = None
) -> SimulationResult:
    """Simulate a MIRI LRS observation; see :func:`spec3c.simulate.simulate`.

    ``options.n_columns`` is the number of spectral detector rows;
    ``options.n_sources`` must be None or 1; ``options.nod_subtracted`` applies
    to ``miri-lrs-fs`` only and is forced False when ``with_background > 0``.
    Background exposures (``miri-lrs-fs`` only) are written as ``_x1d`` files
    and listed last in the ASN; their sky level is in ``Truth.sky``.
    """
    opt = options
    _check(mode, opt)
    cfg = miri_config()["modes"][mode]
    n_rows = cfg["default_rows"] if opt.n_columns is None else opt.n_columns
    n_exp, n_bkg = opt.n_exposures, opt.with_background
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_pos = len(cfg.get("nod_offsets_arcsec", [0.0]))
    nod = bool(opt.nod_subtracted) and mode == "miri-lrs-fs" and n_exp > 1 and n_pos > 1
    nod = nod and not n_bkg
    layout_seq, render_seq, bkg_seq = np.random.SeedSequence(opt.seed).spawn(3)
    layout = build_lrs(mode, np.random.default_rng(layout_seq), n_rows)
    if opt.moving_target:
        rate = miri_config()["moving_target"]["motion_arcsec_per_exposure"]
        layout = with_motion(layout, float(rate))
    exposures, snr = render_lrs(layout, n_exp, nod, np.random.default_rng(render_seq))
    names = exposure_names(layout, n_exp)
    cal_paths = [out / f"{nm}.fits" for nm in names]
    total = n_exp + n_bkg
    for k, (path, exp) in enumerate(zip(cal_paths, exposures, strict=True)):
        write_lrs_exposure(path, exp, exposure_meta(layout, exp, k, names[k], nod))
        if progress is not None:
            progress(k + 1, total)
    bkg_paths = _write_backgrounds(layout, out, n_bkg, np.random.default_rng(bkg_seq)) if n_bkg else []
    if progress is not None and bkg_paths:
        progress(total, total)
    asn_path = out / asn_name(layout)
    write_asn(asn_path, layout, [p.name for p in cal_paths], [p.name for p in bkg_paths])
    truth = _truth(layout, exposures, names, opt.seed, nod, snr)
    truth.sky.update(dict.fromkeys((p.stem for p in bkg_paths), layout.sky_mjy_sr))
    truth_path = out / f"{asn_path.stem}_truth.asdf"
    write_truth(truth_path, truth)
    return SimulationResult(asn_path, cal_paths, truth_path, mode)


def slitless_aperture(truth: Truth, half_width: float = 4.0,
                      sky: tuple[float, float] = (10.5, 25.5)) -> dict[str, Any]:
    """An EXTRACT1D box aperture on the true source column of a ``miri-lrs-slitless`` simulation.

    extract_1d cannot locate a slitless source, so the box is placed from the truth: the
    subarray's reference column plus the source's offset along x (first exposure), ±
    ``half_width`` columns, with sky bands ``sky`` columns away on both sides (order-0 fit).
    """
    cfg = miri_config()["modes"]["miri-lrs-slitless"]
    xref = cfg["reference_pixel"][0] - cfg["subarray"]["xstart"]  # 1-based full frame -> 0-based
    first = next(iter(truth.exposures.values()))
    offset = next(iter(first.values()))["source_ypos"] / miri_config()["detector"]["pixel_scale_arcsec"]
    c = xref + offset
    near, far = sky
    return {"id": "MIR_LRS-SLITLESS", "disp_axis": 2, "xstart": c - half_width, "xstop": c + half_width,
            "bkg_coeff": [[c - far], [c - near], [c + near], [c + far]], "bkg_order": 0}
