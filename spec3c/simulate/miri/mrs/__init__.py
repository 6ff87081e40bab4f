"""MIRI MRS mode of :func:`spec3c.simulate.simulate`: ``miri-mrs`` (EXP_TYPE ``MIR_MRS``).

Public entry::

    from spec3c.simulate import SimOptions, simulate
    res = simulate("miri-mrs", "out", SimOptions(seed=1, n_exposures=4, channels=(1, 2), bands=("SHORT",)))
    # res.cal_paths: 4 files jw01050003001_03102_0000{1..4}_mirifushort_cal.fits, res.asn_path, res.truth_path
    from spec3c.simulate.miri.mrs import load_mrs_truth
    mt = load_mrs_truth(res.truth_path)        # PSF, line fluxes, sky, leak, per-exposure alpha/beta

Options: ``channels`` (1-4; a detector always records its two channels, so
``(1,)`` writes the same files as ``(1, 2)``; default all four), ``bands``
(``SHORT``/``MEDIUM``/``LONG``, default ``("SHORT",)``), ``n_exposures`` = the
number of dither positions (the 4-point pattern of ``mrs_instrument.json``,
cycled), ``n_sources`` 1 (the point source) or 2 (default: point source and
nebula), ``nod_subtracted`` (default True): the sky is removed as calwebb_spec2's
background subtraction with dedicated background exposures does (``S_BKDSUB``
COMPLETE; the sky's noise stays), False keeps it in the data.
``with_background`` N: the sky stays in the science data and N blank-sky
exposures per detector and band are written as spec2 ``_x1d`` files
(``..._0000{n+1}_mirifushort_x1d.fits``) and listed as ``background`` members
of the ASN (:mod:`.background`), for spec3's master_background.
``n_columns`` and ``moving_target`` are not supported.

Data layout of each ``_cal.fits`` (an IFUImageModel as calwebb_spec2 leaves
MRS data): SCI, ERR, DQ, VAR_POISSON, VAR_RNOISE, VAR_FLAT of the 1032 x 1024
full frame in MJy/sr; one detector (``MIRIFUSHORT``: channels 1+2,
``MIRIFULONG``: 4+3, ``meta.instrument.channel`` ``'12'``/``'34'``) and one band
(``meta.instrument.band``) per file.  Channel 1/4 slices lie in x < 512,
channel 2/3 slices in 513 <= x < 1031, each a vertical strip dispersed along
+y; pixels between slices are NaN with DQ ``DO_NOT_USE | NON_SCIENCE``.  The
slice map (labels ``100 * channel + slice``) lives in the gwcs as
``meta.wcs.get_transform('detector', 'alpha_beta').label_mapper.mapper`` (no
REGIONS extension, as in real MRS cal files).  The gwcs has frames
``detector -> alpha_beta -> v2v3 -> v2v3vacorr -> world`` (:mod:`.wcs`),
``meta.wcsinfo`` carries the pointing (``v2_ref, v3_ref, roll_ref, ra_ref,
dec_ref, v3yangle, vparity``), ``s_region`` and ``spectral_region``;
``meta.dither`` the 4-point pattern offsets and ``dithered_ra/dec``;
``meta.target.ra/dec`` the commanded target (the point source lies within
``source_offset_arcsec`` of it).  Noise: Poisson + read noise + flat-field,
a few hot/dead pixels, and unflagged cosmic rays (in the truth).

The scene (:mod:`.scene`): a point source (power law in F_nu plus two
emission lines per band) with a circular double-Gaussian PSF, optionally a
Gaussian nebula with one line per band, a uniform sky rising with
wavelength, and channel 3A's spectral leak (second-order light at lambda/2).
The nebula lies 1.5-2" from the point source and is broad, so an annulus
removes it to ~0.3 % in channels 1-2; the larger channel 3-4 apertures still
see it (``n_sources=1`` gives clean point-source photometry everywhere).

Truth (``<asn stem>_truth.asdf``): :func:`spec3c.simulate.load_truth` gives
sources ``'1'`` (POINT, flux in Jy) and ``'2'`` (EXTENDED, peak surface
brightness in MJy/sr) sampled on a fine grid, and per exposure and channel
(``exposures[name]['ch1']``) the point source's sky position, its beta
(``source_ypos``) and the cosmic-ray pixels ``(y, x)``; :func:`load_mrs_truth`
the exact line fluxes and the rest.  The jwst-format reference files that go
with the data (CUBEPAR, EXTRACT1D, APCORR, MRSPTCORR; :mod:`spec3c.simulate.miri.reffiles`)
are written beside the ASN, ``<asn stem>_cubepar.fits`` etc.
(:func:`reference_file_paths`; ``.jwst_overrides()`` gives the calwebb_spec3 step
parameters that use them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...options import Progress, SimOptions, SimulationResult
from ...truth import Truth, TruthSource, write_truth
from ..reffiles import MrsReferenceFiles, reference_file_paths, write_reference_files
from .background import background_spectrum, write_background_x1d
from .instrument import BAND_NAMES, channel_spec, detector_of_channel, detector_spec, mrs_config
from .render import render_exposure
from .scene import MrsScene, build_scene
from .truth import MrsTruth, MrsTruthExposure, add_to_truth_file, load_mrs_truth, mrs_truth_tree
from .wcs import Pointing, build_mrs_wcs, detector_to_abl, solve_pointing
from .writer import asn_name, exposure_meta, exposure_stem, write_asn, write_exposure

__all__ = ["MRS_MODES", "MrsReferenceFiles", "MrsTruth", "load_mrs_truth", "reference_file_paths", "simulate_mrs"]

MRS_MODES: tuple[str, ...] = ("miri-mrs",)
_DETECTORS = ("MIRIFUSHORT", "MIRIFULONG")
_TRUTH_R = 60000.0  # resolving power of the truth spectra's wavelength grid


def _check(mode: str, opt: SimOptions) -> tuple[tuple[str, ...], tuple[str, ...], int]:
    """The MRS checks; returns (detectors, bands, number of sources)."""
    if mode not in MRS_MODES:
        raise ValueError(f"mode must be one of {MRS_MODES}, got {mode!r}")
    if opt.n_sources not in (None, 1, 2):
        raise ValueError(f"{mode} has 1 (point source) or 2 (plus nebula) sources, got n_sources={opt.n_sources}")
    for name, bad in (("n_columns", opt.n_columns is not None), ("moving_target", opt.moving_target)):
        if bad:
            raise ValueError(f"{name} is not supported by {mode}")
    channels = opt.channels if opt.channels is not None else (1, 2, 3, 4)
    for c in channels:
        if c not in (1, 2, 3, 4):
            raise ValueError(f"channels must be among 1, 2, 3, 4, got {channels!r}")
    bands = opt.bands if opt.bands is not None else ("SHORT",)
    for b in bands:
        if b not in BAND_NAMES:
            raise ValueError(f"bands must be among {BAND_NAMES}, got {bands!r}")
    if not channels or not bands:
        raise ValueError("channels and bands must not be empty")
    wanted = {detector_of_channel(c) for c in channels}
    dets = tuple(d for d in _DETECTORS if d in wanted)
    return dets, tuple(b for b in BAND_NAMES if b in bands), 2 if opt.n_sources is None else opt.n_sources


def _pointings(rng: np.random.Generator, n: int, target: tuple[float, float]) -> list[Pointing]:
    """One pointing per dither position (the same for every detector and band)."""
    pc = mrs_config()["pointing"]
    roll = float(rng.uniform(0.0, 360.0))
    offsets = pc["dither"]["offsets_arcsec"]
    v2v3 = (float(pc["v2v3_ref"][0]), float(pc["v2v3_ref"][1]))
    return [solve_pointing(target, tuple(offsets[k % len(offsets)]), v2v3, roll, float(pc["v3yangle"]),
                           int(pc["vparity"])) for k in range(n)]


def _truth_grid() -> np.ndarray:
    lo, hi = mrs_config()["reference_files"]["wavelength_um"]
    n = int(np.ceil(np.log(hi / lo) * _TRUTH_R))
    return np.exp(np.linspace(np.log(lo), np.log(hi), n + 1))


def _generic_truth(seed: int, scene: MrsScene, exposures: dict[str, tuple[MrsTruthExposure, np.ndarray]],
                   snr: float, sky_subtracted: bool) -> Truth:
    grid = _truth_grid()
    sources = {
        s.key: TruthSource(s.source_id, "", s.source_type, "science", s.ra, s.dec, grid, s.spectrum(grid),
                           snr if s.kind == "point" else 0.0)
        for s in scene.sources
    }
    point = scene.sources[0]
    per_exp: dict[str, dict[str, dict]] = {}
    sky: dict[str, float] = {}
    for name, (e, cosmic) in exposures.items():
        per_exp[name] = {}
        for number in e.channels:
            x0, x1 = channel_spec(number).x_range
            crs = cosmic[(cosmic[:, 1] >= x0) & (cosmic[:, 1] < x1)]
            per_exp[name][f"ch{number}"] = {
                "source_key": point.key, "source_ypos": e.alpha_beta[number][point.key][1],
                "source_ra": point.ra, "source_dec": point.dec, "cosmic_rays": crs,
            }
        lo, hi = channel_spec(e.channels[0]).bands[e.band].wavelength
        sky[name] = float(scene.sky(0.5 * (lo + hi)))
    return Truth("miri-mrs", seed, sky_subtracted, sources, per_exp, sky, {})


def _background_members(out: Path, scene: MrsScene, det, band: str, meta: dict,  # type: ignore[no-untyped-def]
                        n_dith: int, options: SimOptions, exptime: float) -> list[Path]:
    """``options.with_background`` blank-sky ``_x1d`` members of ``det`` in ``band``, numbered
    after the dithers (:mod:`.background`)."""
    paths = []
    for j in range(options.with_background):
        rng = np.random.default_rng([options.seed, BAND_NAMES.index(band), _DETECTORS.index(det.name), 1000 + j])
        name = exposure_stem(det, band, n_dith + j).replace("_cal", "_x1d")
        columns = background_spectrum(det, band, scene, exptime, rng)
        paths.append(write_background_x1d(out / f"{name}.fits", meta, n_dith + j + 1, columns))
    return paths


def simulate_mrs(
    mode: str, output_dir: str | Path, options: SimOptions, progress: Progress | None = None
) -> SimulationResult:
    """Simulate a MIRI MRS observation; see the module docstring and :func:`spec3c.simulate.simulate`."""
    detectors, bands, n_src = _check(mode, options)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_dith = options.n_exposures
    scene_seq, point_seq = np.random.SeedSequence(options.seed).spawn(2)
    ra_t, dec_t = (float(v) for v in mrs_config()["pointing"]["target_radec"])
    target = (ra_t, dec_t)
    scene = build_scene(np.random.default_rng(scene_seq), target, n_src)
    pointings = _pointings(np.random.default_rng(point_seq), n_dith, target)
    exptime = float(mrs_config()["exposure"]["exposure_time_s"])
    total = len(bands) * len(detectors) * n_dith
    sky_subtracted = options.nod_subtracted and options.with_background == 0
    cal_paths: list[Path] = []
    bkg_paths: list[Path] = []
    records: dict[str, tuple[MrsTruthExposure, np.ndarray]] = {}
    snr = 0.0
    for band in bands:
        for det_name in detectors:
            det = detector_spec(det_name)
            d2ab = detector_to_abl(det, band)
            for k, p in enumerate(pointings):
                # one stream per (band, detector, dither): a file does not depend on the others chosen
                rng = np.random.default_rng([options.seed, BAND_NAMES.index(band), _DETECTORS.index(det_name), k])
                exp = render_exposure(det, band, p, build_mrs_wcs(det, band, p, d2ab), scene, rng, exptime,
                                      sky_subtracted=sky_subtracted)
                meta = exposure_meta(exp, k, n_dith, BAND_NAMES.index(band) * max(n_dith, 4) + k, target,
                                     sky_subtracted)
                name = exposure_stem(det, band, k)
                write_exposure(out / f"{name}.fits", exp, meta)
                cal_paths.append(out / f"{name}.fits")
                snr = snr or exp.snr
                records[name] = (MrsTruthExposure(
                    det.name, band, tuple(ch.number for ch in det.channels), meta["dither"]["position_number"],
                    meta["dither"]["x_offset"], meta["dither"]["y_offset"], p.ra_ref, p.dec_ref, p.roll_ref,
                    exp.alpha_beta,
                ), exp.cosmic_rays)
                del exp
                if progress is not None:
                    progress(len(cal_paths), total)
                if k == 0:
                    bkg_paths += _background_members(out, scene, det, band, meta, n_dith, options, exptime)
    asn_path = out / asn_name()
    write_asn(asn_path, [p.name for p in cal_paths], [p.name for p in bkg_paths])
    write_reference_files(reference_file_paths(asn_path))
    truth_path = out / f"{asn_path.stem}_truth.asdf"
    write_truth(truth_path, _generic_truth(options.seed, scene, records, snr, sky_subtracted))
    add_to_truth_file(truth_path, mrs_truth_tree(scene, {k: v[0] for k, v in records.items()}))
    return SimulationResult(asn_path, cal_paths, truth_path, mode)

