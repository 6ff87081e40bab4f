"""NIRSpec IFU mode of :func:`spec3c.simulate.simulate`: ``nirspec-ifu``.

Each exposure of the dither pattern gives two stage-2 ``_cal.fits``
IFUImageModels, NRS1 and NRS2 (G395H/F290LP-like: the band is split between
the detectors), with SCI/ERR/VAR_* in MJy/sr, DQ, the slice map in REGIONS
and the coordinate-based gwcs jwst 3.x writes (:mod:`.ifu_wcs`).  30 slice
images, 30 rows tall, run along the detector rows; everything off the slices
is NaN with DQ ``DO_NOT_USE | NON_SCIENCE``.  The scene (:mod:`.ifu_layout`)
is a target at the field centre (POINT by default) and companions,
alternately EXTENDED and POINT, each a Gaussian on the sky with a continuum
and emission/absorption lines, on a uniform sky; rendering
(:mod:`.ifu_render`) adds Poisson/read/flat noise, static hot and dead
pixels and unflagged cosmic rays.

Options: ``n_exposures`` dither positions (the 4-point CYCLING pattern,
cycled), ``n_sources`` (default 2), ``n_columns`` detector columns (2048 =
full frame; fewer = a scaled-down detector with the same band at a coarser
dispersion and only the rows the slices need), ``moving_target``,
``with_background`` (blank-sky spec2 ``_x1d`` background members).  The sky
stays in the science exposures (``nod_subtracted`` is ignored).

Next to the ASN the simulator writes the truth and the jwst-format reference
files spec3 needs for this data (:mod:`.ifu_reffiles`): CUBEPAR, EXTRACT1D
(IFU ASDF) and APCORR, named by :func:`reference_file_paths`.

Truth (``<asn stem>_truth.asdf``): ``Truth.sources[key]`` holds each source's
type, first-exposure RA/Dec and total flux density spectrum in **Jy** for both
POINT and EXTENDED sources (an IFU sees the whole source); ``exposures[cal
stem]["NRS_IFU"]`` its cosmic-ray pixels ``(y, x)``; ``sky`` the sky (MJy/sr);
the extra node read by :func:`load_ifu_truth` gives each source's Gaussian
sigma and its ideal-frame position in every exposure.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import asdf
import numpy as np

from ..options import Progress, SimOptions, SimulationResult
from ..truth import Truth, TruthSource, write_truth
from ..x1d import write_spec2_x1d
from .ifu_layout import (
    IFU_MODES,
    IfuLayout,
    build_ifu,
    dispersion_um_per_px,
    ifu_config,
    with_motion,
)
from .ifu_reffiles import IfuReferenceFiles, reference_file_paths, write_reference_files
from .ifu_render import (
    DetectorDefects,
    DetectorPixels,
    IfuExposure,
    detector_pixels,
    render_exposure,
    static_defects,
    variances_of_sky,
)
from .ifu_wcs import build_ifu_wcs, ideal_to_sky, regions_map
from .ifu_writer import asn_name, exposure_meta, exposure_stem, s_region, write_asn, write_cal

__all__ = [
    "IFU_MODES",
    "IfuReferenceFiles",
    "IfuTruth",
    "load_ifu_truth",
    "reference_file_paths",
    "simulate_nirspec_ifu",
]


@dataclasses.dataclass(frozen=True)
class IfuTruth:
    """The IFU-specific part of the truth file.

    ``sigma_arcsec[key]``: intrinsic Gaussian sigma of each source (0 = point);
    ``positions[cal stem][key]``: (across, along) ideal-frame arcsec of each
    source in that exposure; ``psf``: the PSF parameters of ``ifu_instrument.json``;
    ``pixel_area_sr``: the nominal pixel (and cube spaxel) solid angle;
    ``warm_pixels[detector]``: ``(n, 2)`` int64 ``(y, x)`` of the unflagged warm
    pixels (the same in every exposure of that detector) and
    ``warm_excess[detector]`` their excess (MJy/sr).
    """

    sigma_arcsec: dict[str, float]
    positions: dict[str, dict[str, tuple[float, float]]]
    psf: dict[str, float]
    pixel_area_sr: float
    warm_pixels: dict[str, np.ndarray]
    warm_excess: dict[str, np.ndarray]


def load_ifu_truth(path: str | Path) -> IfuTruth:
    """The ``ifu`` node of a ``nirspec-ifu`` truth file."""
    with asdf.open(path, lazy_load=False, memmap=False) as af:
        node = af.tree.get("ifu")
        if node is None:
            raise ValueError(f"{path}: not a nirspec-ifu truth file (no 'ifu' node)")
        return IfuTruth(
            {str(k): float(v) for k, v in node["sigma_arcsec"].items()},
            {str(e): {str(k): (float(p[0]), float(p[1])) for k, p in d.items()} for e, d in node["positions"].items()},
            {str(k): float(v) for k, v in node["psf"].items()},
            float(node["pixel_area_sr"]),
            {str(d): np.array(v, dtype=np.int64).reshape(-1, 2) for d, v in node["warm_pixels"].items()},
            {str(d): np.array(v, dtype=np.float64) for d, v in node["warm_excess"].items()},
        )


def _check(mode: str, opt: SimOptions) -> int:
    if mode not in IFU_MODES:
        raise ValueError(f"mode must be one of {IFU_MODES}, got {mode!r}")
    for name in ("channels", "bands"):  # options of other modes
        if getattr(opt, name, None) is not None:
            raise ValueError(f"{name} is an option of miri-mrs, not of {mode}")
    full = ifu_config()["full_frame"]
    return full if opt.n_columns is None else opt.n_columns


def _footprint(layout: IfuLayout, px: DetectorPixels, k: int) -> tuple[str, tuple[float, float]]:
    ra, dec = ideal_to_sky(layout.optics, layout.pointings[k], px.across, px.along)
    return s_region(ra, dec), (float(np.nanmin(px.lam)), float(np.nanmax(px.lam)))


def _truth(layout: IfuLayout, seed: int, rendered: dict[str, IfuExposure], n_columns: int) -> Truth:
    lo, hi = layout.cfg["wavelength_range_um"]
    grid = np.linspace(lo - 0.05, hi + 0.05, int(np.ceil((hi - lo + 0.1) / (0.1 * dispersion_um_per_px(n_columns)))) + 1)
    first = next(iter(rendered.values()))
    sources = {
        s.key: TruthSource(s.source_id, "", s.source_type, "science", s.ra, s.dec, grid.copy(), s.spectrum(grid),
                           first.snr_median if s is layout.target else 0.0)
        for s in layout.sources
    }
    exposures: dict[str, dict[str, dict[str, Any]]] = {}
    for stem, ex in rendered.items():
        k = int(stem.split("_")[2]) - 1
        ra, dec = layout.moved(layout.target.ra, layout.target.dec, k)
        exposures[stem] = {layout.cfg["exp_type"]: {
            "source_key": layout.target.key, "source_ypos": float(ex.positions[layout.target.key][1]),
            "source_ra": ra, "source_dec": dec, "cosmic_rays": ex.cosmic_rays,
        }}
    sky = dict.fromkeys(rendered, layout.sky_mjy_sr)
    ephem = {stem: layout.ephemeris(int(stem.split("_")[2]) - 1) for stem in rendered} if layout.moving_target else {}
    return Truth("nirspec-ifu", seed, False, sources, exposures, sky, ephem)


def _add_ifu_node(path: Path, layout: IfuLayout, rendered: dict[str, IfuExposure],
                  defects: dict[str, DetectorDefects]) -> None:
    with asdf.open(path, mode="rw", lazy_load=False, memmap=False) as af:
        af.tree["ifu"] = {
            "sigma_arcsec": {s.key: float(s.sigma_arcsec) for s in layout.sources},
            "positions": {stem: {k: [float(p[0]), float(p[1])] for k, p in ex.positions.items()}
                          for stem, ex in rendered.items()},
            "psf": {k: float(v) for k, v in layout.cfg["psf"].items()},
            "pixel_area_sr": float(layout.pixel_area_sr),
            "warm_pixels": {d: np.asarray(v.warm) for d, v in defects.items()},
            "warm_excess": {d: np.asarray(v.warm_excess) for d, v in defects.items()},
        }
        af.update(all_array_compression="zlib")


def _background_x1d(layout: IfuLayout, out: Path, n: int, n_columns: int, rng: np.random.Generator) -> list[Path]:
    """Blank-sky spec2 ``_x1d`` files (extended-source extraction of a blank cube).

    SURF_BRIGHT and BACKGROUND hold the sky plus the noise of a mean over the
    field's spaxels, one row per cube plane (the CUBEPAR spectral step).
    """
    lo, hi = layout.cfg["wavelength_range_um"]
    step = dispersion_um_per_px(n_columns)
    lam = np.arange(lo + 0.5 * step, hi, step)
    n_spaxels = ifu_config()["slices"]["count"] * ifu_config()["slices"]["rows_per_slice"]
    paths = []
    first_bkg = len(layout.pointings) + 1
    for j in range(n):
        var = variances_of_sky(layout, lam, step) / n_spaxels
        sb = layout.sky_mjy_sr + rng.standard_normal(lam.size) * np.sqrt(var)
        err = np.sqrt(var)
        to_jy = 1.0e6 * layout.pixel_area_sr * n_spaxels
        # an extended-source IFU extraction reports the clipped plane mean as BACKGROUND too;
        # jwst's master_background reads that column for NRS_IFU EXTENDED members
        columns = {"WAVELENGTH": lam, "SURF_BRIGHT": sb, "SB_ERROR": err, "SB_VAR_POISSON": var,
                   "BACKGROUND": sb, "BKGD_ERROR": err, "BKGD_VAR_POISSON": var,
                   "FLUX": sb * to_jy, "FLUX_ERROR": err * to_jy, "FLUX_VAR_POISSON": var * to_jy**2,
                   "NPIXELS": np.full(lam.size, float(n_spaxels))}
        det = layout.detectors[0].name
        stem = exposure_stem(layout, first_bkg + j - 1, det, "x1d")
        meta = exposure_meta(layout, 0, det, ("", (lo, hi)))
        meta["filename"] = stem + ".fits"
        meta["observation"] = {**meta["observation"], "bkgdtarg": True, "exposure_number": f"{first_bkg + j:05d}"}
        meta["target"] = {**meta["target"], "source_type": "EXTENDED", "type": "FIXED"}
        meta["group_id"] = stem.rsplit("_", 2)[0]
        meta.pop("wcsinfo")
        path = out / f"{stem}.fits"
        write_spec2_x1d(path, meta, [{"columns": columns, "name": layout.cfg["exp_type"], "source_type": "EXTENDED",
                                      "dispersion_direction": 1, "spectral_order": 1}])
        paths.append(path)
    return paths


def simulate_nirspec_ifu(
    mode: str, output_dir: str | Path, options: SimOptions, progress: Progress | None = None,
    *, target_type: str = "POINT", detectors: tuple[str, ...] | None = None,
) -> SimulationResult:
    """Simulate a NIRSpec IFU observation; see :func:`spec3c.simulate.simulate` and this module.

    Keyword only: ``target_type`` ('POINT' or 'EXTENDED') sets the target's
    source type (SRCTYPE of every exposure); ``detectors`` restricts the files
    to some of ``('NRS1', 'NRS2')`` (a medium-resolution grating reaches NRS1
    only); the other detector's data would be the same.
    """
    opt = options
    nx = _check(mode, opt)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    layout_seq, render_seq, bkg_seq = np.random.SeedSequence(opt.seed).spawn(3)
    layout = build_ifu(np.random.default_rng(layout_seq), opt.n_exposures, opt.n_sources, nx, target_type, detectors)
    if opt.moving_target:
        layout = with_motion(layout, float(ifu_config()["moving_target"]["motion_arcsec_per_exposure"]))
    known = [k for k in ifu_config()["detectors"] if not k.startswith("_")]
    det_seqs = dict(zip(known, render_seq.spawn(len(known)), strict=True))  # same data whichever are chosen
    n_files = opt.n_exposures * len(layout.detectors)
    rendered: dict[str, IfuExposure] = {}
    defects: dict[str, DetectorDefects] = {}
    cal_paths: dict[tuple[int, str], Path] = {}
    width = ifu_config()["slices"]["width_arcsec"]
    for det in layout.detectors:
        seq = det_seqs[det.name]
        regions, bboxes = regions_map(det)
        px = detector_pixels(det, regions, width)
        static_seq, *exp_seqs = seq.spawn(1 + opt.n_exposures)
        defects[det.name] = static_defects(np.random.default_rng(static_seq), layout, px, regions)
        for k in range(opt.n_exposures):
            ex = render_exposure(layout, px, defects[det.name], k, np.random.default_rng(exp_seqs[k]))
            stem = exposure_stem(layout, k, det.name)
            wcs = build_ifu_wcs(det, layout.optics, layout.pointings[k], regions, bboxes)
            meta = exposure_meta(layout, k, det.name, _footprint(layout, px, k))
            cal_paths[(k, det.name)] = out / f"{stem}.fits"
            write_cal(cal_paths[(k, det.name)], ex, regions, wcs, meta)
            rendered[stem] = ex
            if progress is not None:
                progress(len(rendered), n_files)
    ordered = [cal_paths[key] for key in sorted(cal_paths)]
    bkg = _background_x1d(layout, out, opt.with_background, nx, np.random.default_rng(bkg_seq))
    asn_path = out / asn_name(layout)
    write_asn(asn_path, layout, [p.name for p in ordered], [p.name for p in bkg])
    truth = _truth(layout, opt.seed, dict(sorted(rendered.items())), nx)
    truth.sky.update(dict.fromkeys((p.stem for p in bkg), layout.sky_mjy_sr))
    truth_path = out / f"{asn_path.stem}_truth.asdf"
    write_truth(truth_path, truth)
    _add_ifu_node(truth_path, layout, rendered, defects)
    write_reference_files(reference_file_paths(asn_path), nx)
    return SimulationResult(asn_path, ordered, truth_path, mode)

