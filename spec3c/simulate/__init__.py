"""Synthetic stage-2 NIRSpec slit and MIRI LRS exposures with known truth.

>>> from spec3c.simulate import simulate, load_truth
>>> res = simulate("nirspec-mos", "out", seed=1, n_sources=10)   # doctest: +SKIP
>>> truth = load_truth(res.truth_path)                            # doctest: +SKIP

Each call writes one ``_cal.fits`` per exposure (a MultiSlitModel for NIRSpec,
an ImageModel for MIRI LRS, see :mod:`.miri`), a spec3 association JSON and
``<asn stem>_truth.asdf``.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .background import background_names, write_background_members
from .miri import MIRI_MODES, simulate_miri
from .nirspec import (
    Layout,
    build_fs,
    build_mos,
    ephemeris,
    instrument_config,
    source_position,
    with_motion,
)
from .render import RenderedSlit, render_slit
from .truth import Truth, TruthSource, load_truth, write_truth
from .writer import asn_name, exposure_meta_tree, exposure_names, write_asn, write_exposure

__all__ = [
    "MODES",
    "BUILDERS",
    "SimulationResult",
    "Truth",
    "TruthSource",
    "load_truth",
    "simulate",
]

Builder = Callable[[np.random.Generator, "int | None", int], Layout]

#: mode name -> layout builder ``(rng, n_sources, n_columns) -> Layout``
BUILDERS: dict[str, Builder] = {"nirspec-fs": build_fs, "nirspec-mos": build_mos}
MODES: tuple[str, ...] = tuple(BUILDERS) + MIRI_MODES


@dataclass(frozen=True)
class SimulationResult:
    """Paths written by :func:`simulate`."""

    asn_path: Path
    cal_paths: list[Path]
    truth_path: Path
    mode: str


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


def simulate(  # noqa: PLR0913 - each is a user option (spec3c simulate flags)
    mode: str,
    output_dir: str | Path,
    *,
    seed: int = 0,
    n_exposures: int = 3,
    n_sources: int | None = None,
    n_columns: int | None = None,
    nod_subtracted: bool = True,
    moving_target: bool = False,
    with_background: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> SimulationResult:
    """Simulate a calibrated (stage-2) observation and its spec3 association.

    Parameters
    ----------
    mode : str
        One of :data:`MODES`.
    output_dir : str or Path
        Folder for the cal files, the ASN and the truth file (created).
    seed : int
        Random seed; equal seeds give identical files.
    n_exposures : int
        Number of exposures (>= 1); nod positions are cycled.
    n_sources : int, optional
        Number of slits/sources (mode default when None).
    n_columns : int, optional
        Cutout length along the dispersion (mode default when None); for
        MIRI LRS the number of spectral detector rows.
    nod_subtracted : bool
        Subtract the mean of the other nod positions (needs two nod positions,
        so it is ignored when ``n_exposures == 1``).
    moving_target : bool
        Observe a tracked moving target (TARGTYPE ``MOVING``): the whole scene
        moves along the slits by ``moving_target.motion_arcsec_per_exposure``
        (``nirspec_sim.json``) between exposures while the pointing follows
        it, so every source stays at its planned slit position but its sky
        coordinates differ per exposure.  ``meta.wcsinfo.mt_ra/mt_dec`` (file
        and every slit) hold the target ephemeris, also in ``Truth.ephemeris``.
    with_background : int
        Add this many dedicated background exposures (blank sky through the
        same slits) as ``background`` members of the ASN, written as the
        spec2 ``_x1d`` files a spec3 ASN lists.  The science exposures then
        keep their sky (``nod_subtracted`` is forced False) so that
        master_background has something to remove.
    progress : callable, optional
        Called as ``progress(done, total)`` after each slit and each file.

    Returns
    -------
    SimulationResult
    """
    if mode in MIRI_MODES:  # ImageModel exposures: spec3c.simulate.miri
        return simulate_miri(
            mode, output_dir, seed=seed, n_exposures=n_exposures, n_sources=n_sources,
            n_columns=n_columns, nod_subtracted=nod_subtracted, moving_target=moving_target,
            with_background=with_background, progress=progress,
        )
    if mode not in BUILDERS:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if n_exposures < 1:
        raise ValueError(f"n_exposures must be >= 1, got {n_exposures}")
    nx = instrument_config()["modes"][mode]["default_columns"] if n_columns is None else n_columns
    if nx < 50:
        raise ValueError(f"n_columns must be >= 50, got {nx}")
    if with_background < 0:
        raise ValueError(f"with_background must be >= 0, got {with_background}")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    nod_subtracted = bool(nod_subtracted) and n_exposures > 1 and not with_background
    seq = np.random.SeedSequence(seed)
    layout = BUILDERS[mode](np.random.default_rng(seq.spawn(1)[0]), n_sources, nx)
    if moving_target:
        rate = instrument_config()["moving_target"]["motion_arcsec_per_exposure"]
        layout = with_motion(layout, float(rate))
    total = len(layout.slits) + n_exposures
    rendered = []
    for i, (slit, child) in enumerate(zip(layout.slits, seq.spawn(len(layout.slits)), strict=True)):
        rendered.append(
            render_slit(layout, slit, n_exposures, nod_subtracted, np.random.default_rng(child))
        )
        if progress is not None:
            progress(i + 1, total)
    names = exposure_names(layout, n_exposures)
    cal_paths = [out / f"{nm}.fits" for nm in names]
    done = [len(layout.slits)]

    def tick() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    _write_all(layout, rendered, cal_paths, nod_subtracted, tick)
    bkg_names = background_names(names, with_background)
    bkg_paths = write_background_members(
        layout, exposure_meta_tree(layout, 0, n_exposures, names[0], False), bkg_names, out,
        np.random.default_rng(seq.spawn(1)[0]),
    ) if with_background else []
    asn_path = out / asn_name(layout)
    write_asn(asn_path, layout, [p.name for p in cal_paths], [p.name for p in bkg_paths])
    truth_path = out / f"{asn_path.stem}_truth.asdf"
    truth = _truth(layout, rendered, names, seed, nod_subtracted)
    truth.sky.update({nm: layout.sky_mjy_sr for nm in bkg_names})
    write_truth(truth_path, truth)
    return SimulationResult(asn_path, cal_paths, truth_path, mode)
