"""NIRSpec modes of :func:`spec3c.simulate.simulate`: ``nirspec-fs`` and ``nirspec-mos``.

Each exposure is a stage-2 ``_cal.fits`` MultiSlitModel: one cutout per slit
with its ``detector -> slit_frame -> world`` gwcs (:mod:`.wcs`), laid out by
:mod:`.layout` from ``spec3c/simulate/nirspec/instrument.json``, rendered by
:mod:`.render` and written by :mod:`.writer`; ``with_background`` exposures
are written as spec2 ``_x1d`` files by :mod:`.background`.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..options import Progress, SimOptions, SimulationResult
from ..truth import Truth, TruthSource, write_truth
from .background import background_names, write_background_members
from .layout import (
    Layout,
    build_fs,
    build_mos,
    ephemeris,
    instrument_config,
    source_position,
    with_motion,
)
from .render import RenderedSlit, render_slit
from .writer import asn_name, exposure_meta_tree, exposure_names, write_asn, write_exposure

__all__ = ["BUILDERS", "NIRSPEC_MODES", "simulate_nirspec"]

Builder = Callable[[np.random.Generator, "int | None", int], Layout]

#: mode name -> layout builder ``(rng, n_sources, n_columns) -> Layout``
BUILDERS: dict[str, Builder] = {"nirspec-fs": build_fs, "nirspec-mos": build_mos}
NIRSPEC_MODES: tuple[str, ...] = tuple(BUILDERS)


def _truth(
    layout: Layout, rendered: list[RenderedSlit], names: list[str], seed: int, nod_subtracted: bool
) -> Truth:
    lo, hi = layout.cfg["wavelength_range_um"]
    pad = 0.2 * (hi - lo)
    grid = np.linspace(lo - pad, hi + pad, 10 * layout.cfg["_nx"] + 1)
    sources: dict[str, TruthSource] = {}
    exposures: dict[str, dict[str, dict]] = {nm: {} for nm in names}
    for rs in rendered:
        src = rs.layout.source
        sources[src.key] = TruthSource(
            src.source_id,
            src.source_name,
            src.source_type,
            src.kind,
            src.ra,
            src.dec,
            grid.copy(),
            src.spectrum(grid),
            rs.snr_median,
        )
        for k, (nm, ex) in enumerate(zip(names, rs.exposures, strict=True)):
            ra, dec = source_position(layout, src, k)
            exposures[nm][rs.layout.name] = {
                "source_key": src.key,
                "source_ypos": float(ex.source_ypos),
                "source_ra": float(ra),
                "source_dec": float(dec),
                "cosmic_rays": ex.cosmic_rays,
            }
    sky = {nm: layout.sky_mjy_sr for nm in names}
    ephem = {nm: ephemeris(layout, k) for k, nm in enumerate(names)} if layout.moving_target else {}
    return Truth(layout.mode, seed, nod_subtracted, sources, exposures, sky, ephem)


_PARALLEL_MIN_SLIT_EXPOSURES = 120
_SHARED: dict[str, Any] = {}


def _write_one(k: int) -> int:
    """Worker: write exposure ``k`` from the state inherited through fork."""
    sh = _SHARED
    write_exposure(sh["paths"][k], sh["layout"], sh["rendered"], k, len(sh["paths"]), sh["nod"])
    return k


def _write_all(
    layout: Layout,
    rendered: list[RenderedSlit],
    paths: list[Path],
    nod: bool,
    tick: Callable[[], None],
) -> None:
    """Write every exposure; large jobs use forked worker processes (POSIX only)."""
    workers = min(os.cpu_count() or 1, len(paths))
    big = len(rendered) * len(paths) >= _PARALLEL_MIN_SLIT_EXPOSURES
    if workers < 2 or not big or sys.platform == "win32":
        for k, path in enumerate(paths):
            write_exposure(path, layout, rendered, k, len(paths), nod)
            tick()
        return
    _SHARED.update(layout=layout, rendered=rendered, paths=paths, nod=nod)
    try:
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            for _ in pool.map(_write_one, range(len(paths))):
                tick()
    finally:
        _SHARED.clear()


def simulate_nirspec(
    mode: str, output_dir: str | Path, options: SimOptions, progress: Progress | None = None
) -> SimulationResult:
    """Simulate a NIRSpec FS or MOS observation; see :func:`spec3c.simulate.simulate`.

    ``options.nod_subtracted`` is forced False when ``n_exposures == 1`` or
    ``with_background > 0``.  Background exposures are written as ``_x1d``
    files and listed last in the ASN; their sky level is in ``Truth.sky``.
    """
    if mode not in BUILDERS:
        raise ValueError(f"mode must be one of {NIRSPEC_MODES}, got {mode!r}")
    opt = options
    nx = instrument_config()["modes"][mode]["default_columns"] if opt.n_columns is None else opt.n_columns
    n_exp = opt.n_exposures
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    nod_subtracted = bool(opt.nod_subtracted) and n_exp > 1 and not opt.with_background
    seq = np.random.SeedSequence(opt.seed)
    layout = BUILDERS[mode](np.random.default_rng(seq.spawn(1)[0]), opt.n_sources, nx)
    if opt.moving_target:
        rate = instrument_config()["moving_target"]["motion_arcsec_per_exposure"]
        layout = with_motion(layout, float(rate))
    total = len(layout.slits) + n_exp
    rendered = []
    for i, (slit, child) in enumerate(zip(layout.slits, seq.spawn(len(layout.slits)), strict=True)):
        rendered.append(render_slit(layout, slit, n_exp, nod_subtracted, np.random.default_rng(child)))
        if progress is not None:
            progress(i + 1, total)
    names = exposure_names(layout, n_exp)
    cal_paths = [out / f"{nm}.fits" for nm in names]
    done = [len(layout.slits)]

    def tick() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    _write_all(layout, rendered, cal_paths, nod_subtracted, tick)
    bkg_names = background_names(names, opt.with_background)
    bkg_paths = write_background_members(
        layout, exposure_meta_tree(layout, 0, n_exp, names[0], False), bkg_names, out,
        np.random.default_rng(seq.spawn(1)[0]),
    ) if opt.with_background else []
    asn_path = out / asn_name(layout)
    write_asn(asn_path, layout, [p.name for p in cal_paths], [p.name for p in bkg_paths])
    truth_path = out / f"{asn_path.stem}_truth.asdf"
    truth = _truth(layout, rendered, names, opt.seed, nod_subtracted)
    truth.sky.update({nm: layout.sky_mjy_sr for nm in bkg_names})
    write_truth(truth_path, truth)
    return SimulationResult(asn_path, cal_paths, truth_path, mode)
