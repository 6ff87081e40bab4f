"""WFSS modes of :func:`spec3c.simulate.simulate`: ``niriss-wfss`` and ``nircam-wfss``.

Each exposure is written as calwebb_spec2 leaves WFSS data:

* ``<exposure>_cal.fits``: a MultiSlitModel with one slit per source and
  spectral order, cut out of a rendered detector image as extract_2d cuts
  (sources sorted by brightness, orders adjacent; ``SLTNAME`` the source id),
  each with SCI/ERR/DQ/VAR_* in MJy/sr, the WAVELENGTH plane and the gwcs
  ``grism_slit -> grism_detector -> detector -> v2v3 -> v2v3vacorr -> world``
  (:mod:`.wcs`);
* ``<exposure>_x1d.fits``: its spec2 extract_1d product (WFSSMultiSpecModel,
  one table per order, one row per source), extracted from the cal file by
  spec3c's extract_1d, which reproduces jwst's;

plus two spec3 associations with the same product name: one of the cal
files (``..._spec3_00001_asn.json``, ``SimulationResult.asn_path``) and one of
the x1d files (``..._spec3_x1d_00001_asn.json``, ``x1d_asn_path``).

The field (:mod:`.layout`): ``n_sources`` (default ``default_sources`` of
``instrument.json``) point and extended sources with smooth spectra, some
as overlapping pairs (truth ``kind == "blended"``), some near or past the
detector edges so their traces are cut or absent in some exposures.
NIRISS: ``grism`` ``"C"`` (GR150C, dispersion along rows, default) or
``"R"`` (GR150R, along columns), orders 1 and 2.  NIRCam: ``grism`` ``"R"``
(GRISMR, rows; module B disperses the other way) or ``"C"`` (GRISMC,
columns), order 1; exposures alternate modules A and B (half the sources
each) unless ``module`` is given.  Exposures cycle through
``dither_offsets_arcsec``.

Truth (``<asn stem>_truth.asdf``): per source the true spectrum (Jy, its
flux density at the wavelength of each dispersion column) and the median
per-column S/N of its order-1 cutouts; per exposure and cutout
(``<source id>:<order>``) the spectral order, the trace centre across the
dispersion (``source_ypos``, cutout pixels), the contamination (light of
other sources / own light in the cutout, noiseless) and the cutout's S/N.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..options import Progress, SimOptions, SimulationResult
from ..truth import Truth, TruthSource, write_truth
from .layout import WFSS_MODES, WfssLayout, build_layout
from .render import RenderedExposure, render_exposure
from .writer import asn_name, write_asn, write_cal
from .x1d import write_spec2_x1d

__all__ = ["WFSS_MODES", "simulate_wfss"]


def _check(mode: str, opt: SimOptions) -> None:
    if mode not in WFSS_MODES:
        raise ValueError(f"mode must be one of {WFSS_MODES}, got {mode!r}")
    if opt.with_background:
        raise ValueError(f"{mode}: with_background does not apply (WFSS backgrounds belong to stage 2)")
    if opt.moving_target:
        raise ValueError(f"{mode}: moving_target is not simulated for WFSS")


def _truth(layout: WfssLayout, rendered: list[RenderedExposure], seed: int) -> Truth:
    lo, hi = layout.filter_cfg["wavelength_range_um"]
    pad = 0.1 * (hi - lo)
    grid = np.linspace(lo - pad, hi + pad, 4001)
    snr: dict[int, list[float]] = {}
    exposures: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rendered:
        entry = exposures.setdefault(r.exposure.name, {})
        for cut in r.cutouts:
            sid = cut.source.source_id
            entry[f"{sid}:{cut.order}"] = {
                "source_key": str(sid), "source_ypos": float(cut.trace_offset), "source_ra": cut.source.ra,
                "source_dec": cut.source.dec, "cosmic_rays": np.zeros((0, 2), np.int64),
                "spectral_order": cut.order, "contamination": float(cut.contamination), "snr": float(cut.snr),
            }
            if cut.order == 1:
                snr.setdefault(sid, []).append(cut.snr)
    sources = {
        str(s.source_id): TruthSource(s.source_id, "", s.source_type, s.kind, s.ra, s.dec, grid,
                                      s.spectrum(grid), float(np.median(snr[s.source_id])) if s.source_id in snr else 0.0)
        for s in layout.sources
    }
    return Truth(layout.mode, seed, False, sources, exposures)


def simulate_wfss(mode: str, output_dir: str | Path, options: SimOptions,
                  progress: Progress | None = None) -> SimulationResult:
    """Simulate a NIRISS or NIRCam WFSS observation; see :func:`spec3c.simulate.simulate`.

    ``options.grism`` / ``options.module`` choose the grism and NIRCam module;
    ``n_columns`` and ``nod_subtracted`` do not apply.
    """
    _check(mode, options)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    layout_seq, render_seq = np.random.SeedSequence(options.seed).spawn(2)
    n_sources = options.n_sources or 0
    layout = build_layout(mode, np.random.default_rng(layout_seq), n_sources or _default_sources(mode),
                          options.n_exposures, options.grism, options.module)
    rng = np.random.default_rng(render_seq)
    cal_paths, x1d_paths, rendered = [], [], []
    total = 2 * len(layout.exposures)
    for k, exp in enumerate(layout.exposures):
        r = render_exposure(layout, exp, rng)
        if not r.cutouts:
            raise ValueError(f"{mode}: no source falls on exposure {exp.name}; use more sources")
        cal = out / f"{exp.name}.fits"
        write_cal(cal, layout, r)
        x1d = out / f"{exp.name.removesuffix('_cal')}_x1d.fits"
        write_spec2_x1d(cal, x1d)
        cal_paths.append(cal)
        x1d_paths.append(x1d)
        rendered.append(_summary(r))
        if progress is not None:
            progress(2 * (k + 1), total)
    asn_path = out / asn_name(layout)
    write_asn(asn_path, layout, [p.name for p in cal_paths])
    x1d_asn = out / asn_name(layout, "x1d")
    write_asn(x1d_asn, layout, [p.name for p in x1d_paths])
    truth_path = out / f"{asn_path.stem}_truth.asdf"
    write_truth(truth_path, _truth(layout, rendered, options.seed))
    return SimulationResult(asn_path, cal_paths, truth_path, mode, x1d_asn_path=x1d_asn)


def _default_sources(mode: str) -> int:
    from .layout import wfss_config

    return int(wfss_config()[mode]["default_sources"])


def _summary(r: RenderedExposure) -> RenderedExposure:
    """The exposure's cutouts without their planes (all the truth needs), so memory stays one exposure."""
    for cut in r.cutouts:
        for name in ("sci", "err", "dq", "var_poisson", "var_rnoise", "var_flat", "wavelength"):
            setattr(cut, name, np.zeros((0, 0), np.float32))
    return r
