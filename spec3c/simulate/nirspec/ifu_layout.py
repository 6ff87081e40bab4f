"""NIRSpec IFU layout: detectors and slice images, the scene, dithers and pointing.

Instrument numbers come from ``spec3c/simulate/nirspec/ifu_instrument.json``.
The IFU ideal frame is in arcsec, ``x`` across the 30 slices (0.1" each) and
``y`` along them (3"); (0, 0) is the field centre at (v2_ref, v3_ref).

Sources are 2-D circular Gaussians on the sky (a point source is the PSF
alone) with a total flux density spectrum in Jy; the sky is uniform (MJy/sr).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from ..scene import Spectrum, random_spectrum
from .ifu_wcs import (
    DetectorGeometry,
    IfuOptics,
    Pointing,
    SliceGeometry,
    ideal_to_sky,
    sky_to_ideal,
)

__all__ = [
    "IFU_MODES",
    "IfuLayout",
    "IfuSource",
    "build_ifu",
    "dispersion_um_per_px",
    "ifu_config",
    "psf_sigma_arcsec",
    "with_motion",
]

IFU_MODES: tuple[str, ...] = ("nirspec-ifu",)
ARCSEC = 1.0 / 3600.0
_RAD_TO_ARCSEC = 180.0 / np.pi * 3600.0


@lru_cache(maxsize=1)
def ifu_config() -> dict[str, Any]:
    """Parsed ``ifu_instrument.json`` (cached; treat as read-only)."""
    text = resources.files(__package__).joinpath("ifu_instrument.json").read_text()
    return json.loads(text)


@dataclass(frozen=True)
class IfuSource:
    """One source of the scene.

    ``spectrum`` is the total flux density in Jy; ``sigma_arcsec`` the intrinsic
    Gaussian sigma (0 for a point source, which is the PSF alone); ``ra/dec``
    the position in the first exposure (a moving target's scene moves with it).
    """

    key: str
    source_id: int
    source_type: str
    ra: float
    dec: float
    sigma_arcsec: float
    spectrum: Spectrum


@dataclass(frozen=True)
class IfuLayout:
    """Everything needed to render and write one simulated IFU observation."""

    cfg: dict[str, Any]
    optics: IfuOptics
    detectors: tuple[DetectorGeometry, ...]
    sources: tuple[IfuSource, ...]
    pointings: tuple[Pointing, ...]  # one per exposure
    dithers: tuple[tuple[float, float], ...]  # commanded target offset (ideal x, y arcsec) per exposure
    target_radec: tuple[float, float]  # target position in the first exposure
    sky_mjy_sr: float
    pixel_area_sr: float
    moving_target: bool = False
    motion_deg: tuple[float, float] = (0.0, 0.0)

    @property
    def target(self) -> IfuSource:
        return self.sources[0]

    def moved(self, ra: float, dec: float, k: int) -> tuple[float, float]:
        """Position in exposure ``k`` of a sky point at (ra, dec) in the first exposure."""
        dra, ddec = self.motion_deg
        return (ra + k * dra) % 360.0, dec + k * ddec

    def ephemeris(self, k: int) -> tuple[float, float]:
        """Target (MT_RA, MT_DEC) in exposure ``k``."""
        return self.moved(*self.target_radec, k)


def psf_sigma_arcsec(lam_um: np.ndarray) -> np.ndarray:
    """Gaussian sigma (arcsec) of the PSF at ``lam_um``: diffraction FWHM plus a fixed blur in quadrature."""
    p = ifu_config()["psf"]
    fwhm = p["fwhm_lambda_over_d"] * np.asarray(lam_um, dtype=np.float64) * 1.0e-6 / p["mirror_diameter_m"] * _RAD_TO_ARCSEC
    return np.sqrt((fwhm / 2.3548) ** 2 + p["extra_sigma_arcsec"] ** 2)


def _detector_rows(n_columns: int) -> tuple[int, float]:
    """Detector rows and the centre row of slice 0 at the reference column."""
    cfg = ifu_config()
    sl = cfg["slices"]
    if n_columns == cfg["full_frame"]:
        return cfg["full_frame"], float(sl["first_centre_row_full_frame"])
    first = sl["small_frame_margin_rows"] + 0.5 * sl["rows_per_slice"] + sl["trace_curvature_rows"] + 2.0
    ny = int(np.ceil(first + (sl["count"] - 1) * sl["row_pitch"] + first))
    return ny, first


def _detectors(rng: np.random.Generator, n_columns: int, names: tuple[str, ...] | None) -> tuple[DetectorGeometry, ...]:
    cfg = ifu_config()
    sl = cfg["slices"]
    ny, first = _detector_rows(n_columns)
    nx = n_columns
    xc = 0.5 * (nx - 1)
    a2 = sl["trace_curvature_rows"] / (0.5 * nx) ** 2
    width = sl["width_arcsec"]
    out = []
    for name, dcfg in cfg["detectors"].items():
        if name.startswith("_"):
            continue
        slices = []  # drawn for every detector, kept for the chosen ones: same seed, same geometry
        for i, pos in enumerate(sl["slice_order"]):
            slices.append(SliceGeometry(
                index=i,
                across_arcsec=(pos - 0.5 * (sl["count"] - 1)) * width,
                xc=xc,
                trace=(first + i * sl["row_pitch"], float(sl["trace_slope"] * rng.uniform(-1.0, 1.0)), a2),
                tilt=float(cfg["line_tilt"] * rng.uniform(0.5, 1.5)),
                rows_per_slice=float(sl["rows_per_slice"]),
                arcsec_per_row=sl["length_arcsec"] / sl["rows_per_slice"],
                wave_edges_um=(float(dcfg["wavelength_at_edges_um"][0]), float(dcfg["wavelength_at_edges_um"][1])),
                shift=float(cfg["slice_wavelength_shift_px"] * rng.uniform(-1.0, 1.0) * nx / cfg["full_frame"]),
                curvature=float(cfg["dispersion_curvature"]),
                n_columns=nx,
                band_um=(float(cfg["wavelength_range_um"][0]), float(cfg["wavelength_range_um"][1])),
            ))
        if names is None or name in names:
            out.append(DetectorGeometry(name, (ny, nx), tuple(slices)))
    return tuple(out)


def dispersion_um_per_px(n_columns: int) -> float:
    """Mean wavelength step of one column (micron), the cube's spectral step."""
    cfg = ifu_config()
    steps = [
        (d["wavelength_at_edges_um"][1] - d["wavelength_at_edges_um"][0]) / (n_columns - 1)
        for name, d in cfg["detectors"].items() if not name.startswith("_")
    ]
    return float(np.mean(steps))


def _offset(optics: IfuOptics, pointing: Pointing, x_idl: float, y_idl: float) -> tuple[float, float]:
    ra, dec = ideal_to_sky(optics, pointing, np.array([x_idl]), np.array([y_idl]))
    return float(ra[0]) % 360.0, float(dec[0])


def _sources(rng: np.random.Generator, n: int, target_type: str, optics: IfuOptics, frame: Pointing,
             n_columns: int) -> list[IfuSource]:
    """The target (at the field centre, within ``target_offset_arcsec``) and its companions."""
    cfg = ifu_config()
    sc = cfg["scene"]
    band = tuple(cfg["wavelength_range_um"])
    min_sig = sc["line_min_sigma_px"] * dispersion_um_per_px(n_columns)
    out = []
    for i in range(n):
        stype = target_type if i == 0 else ("EXTENDED" if i % 2 else "POINT")
        if i == 0:
            r, phi = sc["target_offset_arcsec"] * np.sqrt(rng.random()), rng.uniform(0.0, 2.0 * np.pi)
        else:
            r, phi = rng.uniform(*sc["companion_radius_arcsec"]), rng.uniform(0.0, 2.0 * np.pi)
        ra, dec = _offset(optics, frame, r * np.cos(phi), r * np.sin(phi))
        levels = sc["point_flux_jy"] if stype == "POINT" else sc["extended_flux_jy"]
        spec = random_spectrum(rng, band, (levels[0], levels[1]), cfg["resolving_power"], min_sig)
        sigma = 0.0 if stype == "POINT" else float(rng.uniform(*sc["extended_sigma_arcsec"]))
        out.append(IfuSource(str(i + 1), i + 1, stype, ra, dec, sigma, spec))
    return out


def _dither(k: int) -> tuple[float, float]:
    d = ifu_config()["dither"]
    offs = d["offsets_arcsec"]
    cycle = k // len(offs)
    x, y = offs[k % len(offs)]
    return x + cycle * d["cycle_shift_arcsec"][0], y + cycle * d["cycle_shift_arcsec"][1]


def _pointing_for(optics: IfuOptics, roll: float, target: tuple[float, float], at: tuple[float, float]) -> Pointing:
    """The pointing that puts sky position ``target`` at ideal-frame position ``at`` (arcsec)."""
    p = Pointing(*_offset(optics, Pointing(target[0], target[1], roll), -at[0], -at[1]), roll)
    for _ in range(5):  # move the field centre by the remaining error (sphere curvature, ~1e-7")
        x, y = sky_to_ideal(optics, p, np.array([target[0]]), np.array([target[1]]))
        ex, ey = float(x[0]) - at[0], float(y[0]) - at[1]
        if max(abs(ex), abs(ey)) < 1e-9:
            break
        p = Pointing(*_offset(optics, p, ex, ey), roll)
    return p


def with_motion(layout: IfuLayout, arcsec_per_exposure: float) -> IfuLayout:
    """``layout`` as a moving target: the scene drifts along the slices each exposure, the pointing follows.

    The pointing of exposure ``k`` keeps the target at its commanded dither
    position, so sources stay where they were in the IFU frame while their
    sky coordinates change; ``ephemeris(k)`` is the target's MT_RA/MT_DEC.
    """
    optics, p0 = layout.optics, layout.pointings[0]
    ra0, dec0 = layout.target_radec
    x, y = sky_to_ideal(optics, p0, np.array([ra0]), np.array([dec0]))
    ra1, dec1 = ideal_to_sky(optics, p0, x, y + arcsec_per_exposure)
    motion = (float((ra1[0] - ra0 + 180.0) % 360.0 - 180.0), float(dec1[0] - dec0))
    moved = dataclasses.replace(layout, moving_target=True, motion_deg=motion)
    pointings = tuple(
        _pointing_for(optics, p0.roll_ref, moved.ephemeris(k), layout.dithers[k]) for k in range(len(layout.pointings))
    )
    return dataclasses.replace(moved, pointings=pointings)


def build_ifu(rng: np.random.Generator, n_exposures: int, n_sources: int | None, n_columns: int,  # noqa: PLR0913
              target_type: str = "POINT", detectors: tuple[str, ...] | None = None) -> IfuLayout:
    """Layout of a ``nirspec-ifu`` observation.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random stream for the geometry, the scene and the position angle.
    n_exposures : int
        Dither positions (the ``dither.offsets_arcsec`` pattern, cycled).
    n_sources : int or None
        Sources in the field (default ``default_sources``): the target, then
        alternately EXTENDED and POINT companions.
    n_columns : int
        Detector columns (2048 = full frame; fewer = a scaled-down detector with the
        same band, coarser dispersion and only the rows the slices need).
    target_type : {'POINT', 'EXTENDED'}
        Source type of the target, written as SRCTYPE.
    detectors : tuple of str, optional
        Detectors to simulate (default NRS1 and NRS2; the geometry of each does
        not depend on the choice).
    """
    cfg = ifu_config()
    if target_type not in ("POINT", "EXTENDED"):
        raise ValueError(f"target_type must be 'POINT' or 'EXTENDED', got {target_type!r}")
    n = cfg["default_sources"] if n_sources is None else n_sources
    if n < 1:
        raise ValueError(f"n_sources must be >= 1 for nirspec-ifu, got {n}")
    if not 64 <= n_columns <= cfg["full_frame"]:
        raise ValueError(f"n_columns must be in 64..{cfg['full_frame']} for nirspec-ifu, got {n_columns}")
    known = tuple(k for k in cfg["detectors"] if not k.startswith("_"))
    if detectors is not None and (not detectors or not set(detectors) <= set(known)):
        raise ValueError(f"detectors must be a non-empty subset of {known}, got {detectors!r}")
    optics = IfuOptics.from_config(cfg["optics"])
    roll = float(rng.uniform(0.0, 360.0))
    ra0, dec0 = float(cfg["pointing"]["ra_deg"]), float(cfg["pointing"]["dec_deg"])
    frame = Pointing(ra0, dec0, roll)
    dets = _detectors(rng, n_columns, detectors)
    sources = _sources(rng, n, target_type, optics, frame, n_columns)
    target = (sources[0].ra, sources[0].dec)
    dithers = tuple(_dither(k) for k in range(n_exposures))
    pointings = tuple(_pointing_for(optics, roll, target, d) for d in dithers)
    area = cfg["detector"]["pixel_area_arcsec2"] * (ARCSEC * np.pi / 180.0) ** 2
    return IfuLayout(
        cfg=cfg,
        optics=optics,
        detectors=dets,
        sources=tuple(sources),
        pointings=pointings,
        dithers=dithers,
        target_radec=target,
        sky_mjy_sr=float(rng.uniform(*cfg["scene"]["sky_mjy_sr"])),
        pixel_area_sr=float(area),
    )
