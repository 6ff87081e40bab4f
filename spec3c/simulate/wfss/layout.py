"""WFSS layouts: the source field, the exposures (detector, pointing, grism) and their WCS.

Instrument numbers come from ``spec3c/simulate/wfss/instrument.json``.  A
field holds point and extended sources with smooth spectra; some are placed
as close pairs whose traces overlap (``kind == "blended"``), some near or
beyond the detector edges so that their traces are cut or missing in some
exposures.  NIRCam exposures alternate modules A and B (each with its own
half of the field) unless one module is chosen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
from astropy.modeling import models as m

from ..scene import Spectrum
from .wcs import Attitude, DetectorGeometry, ExposureWcs, build_exposure_wcs

__all__ = [
    "WFSS_MODES",
    "FieldSource",
    "WfssExposure",
    "WfssLayout",
    "build_layout",
    "wfss_config",
]

WFSS_MODES: tuple[str, ...] = ("niriss-wfss", "nircam-wfss")
ARCSEC = 1.0 / 3600.0


@lru_cache(maxsize=1)
def wfss_config() -> dict[str, Any]:
    """Parsed ``instrument.json`` (cached; treat as read-only)."""
    return json.loads(resources.files(__package__).joinpath("instrument.json").read_text())


@dataclass(frozen=True)
class FieldSource:
    """One catalogue source.

    ``kind`` is ``"science"``, or ``"blended"`` for the members of a pair
    placed so that their traces overlap; ``sigma_px`` is the Gaussian sigma
    of the cross-dispersion profile; ``half_box`` the half size (pixels) of
    its segmentation box; ``spectrum`` the flux density in Jy.
    """

    source_id: int
    ra: float
    dec: float
    source_type: str
    kind: str
    module: str
    sigma_px: float
    half_box: float
    abmag: float
    spectrum: Spectrum


@dataclass(frozen=True)
class WfssExposure:
    """One grism exposure: its module/detector, pointing and WCS."""

    index: int
    name: str
    module: str
    dither: int
    geom: DetectorGeometry
    attitude: Attitude
    wcs: ExposureWcs


@dataclass(frozen=True)
class WfssLayout:
    mode: str
    cfg: dict[str, Any]
    grism: str
    sources: tuple[FieldSource, ...]
    exposures: tuple[WfssExposure, ...]
    pixel_area_sr: float

    @property
    def instrument(self) -> str:
        return str(self.cfg["instrument"])

    @property
    def grism_cfg(self) -> dict[str, Any]:
        return dict(self.cfg["grisms"][self.grism])

    @property
    def dispersion_axis(self) -> int:
        return int(self.grism_cfg["dispersion_axis"])

    @property
    def orders(self) -> list[int]:
        return sorted(int(o) for o in self.grism_cfg["orders"])

    @property
    def filter_cfg(self) -> dict[str, Any]:
        return dict(self.cfg["filters"][self.cfg["filter"]])


def _offset_radec(ra: float, dec: float, east_as: float, north_as: float) -> tuple[float, float]:
    model = m.Pix2Sky_TAN() | m.RotateNative2Celestial(ra, dec, 180.0)
    r, d = model(east_as * ARCSEC, north_as * ARCSEC)
    return float(r) % 360.0, float(d)


def _geometry(cfg: dict[str, Any], module: str) -> DetectorGeometry:
    det = cfg["detectors"][module]
    ny, nx = cfg["detector_size"]
    return DetectorGeometry(det["name"], tuple(det["v2v3_ref"]), float(det["v3yangle"]), int(det["vparity"]),
                            float(cfg["pixel_scale_arcsec"]), (int(ny), int(nx)))


def _attitude(cfg: dict[str, Any], dither: int) -> Attitude:
    """The pointing of dither position ``dither``: offsets (arcsec) in the detector frame, rotated on the sky."""
    ra0, dec0 = cfg["pointing_radec"]
    pa = np.deg2rad(cfg["position_angle"])
    offsets = cfg["dither_offsets_arcsec"]
    dx, dy = offsets[dither % len(offsets)]
    east = dx * np.cos(pa) + dy * np.sin(pa)
    north = -dx * np.sin(pa) + dy * np.cos(pa)
    ra, dec = _offset_radec(float(ra0), float(dec0), east, north)
    ref = cfg["detectors"]["A"]["v2v3_ref"]
    return Attitude((float(ref[0]), float(ref[1])), ra, dec, float(cfg["position_angle"]))


def _modules(cfg: dict[str, Any], module: str | None) -> list[str]:
    if module is not None:
        if module not in cfg["detectors"]:
            raise ValueError(f"module must be one of {sorted(cfg['detectors'])} for this mode, got {module!r}")
        return [module]
    if cfg["default_module"] is not None:
        return [str(cfg["default_module"])]
    return sorted(cfg["detectors"])


def _exposure_name(cfg: dict[str, Any], k: int, detector: str, suffix: str = "cal") -> str:
    root = f"jw{cfg['program']}{cfg['observation']}{cfg['visit']}"
    return f"{root}_{cfg['visit_group']}{cfg['sequence']}{cfg['activity']}_{k + 1:05d}_{detector.lower()}_{suffix}"


def _exposures(cfg: dict[str, Any], grism: str, modules: list[str], n: int) -> list[WfssExposure]:
    gcfg = cfg["grisms"][grism]
    theta = float(cfg.get("fwcpos", 0.0)) - float(cfg.get("fwcpos_ref", 0.0))
    out = []
    for k in range(n):
        module = modules[k % len(modules)]
        dither = k // len(modules)
        geom = _geometry(cfg, module)
        att = _attitude(cfg, dither)
        sign = float(gcfg.get("module_sign", {}).get(module, 1))
        ew = build_exposure_wcs(cfg["instrument"], gcfg, geom, att, sign, theta)
        number = dither + 1 if len(modules) > 1 else k + 1  # both modules of one pointing share the number
        out.append(WfssExposure(k, _exposure_name(cfg, number - 1, geom.name), module, dither, geom, att, ew))
    return out


def _spectrum(rng: np.random.Generator, cfg: dict[str, Any]) -> Spectrum:
    """A smooth, positive spectrum: a power law with 2-4 broad features (at most one in absorption),
    none narrower than ~8 pixels of order 1, so the flux per column is well sampled."""
    lo, hi = cfg["filters"][cfg["filter"]]["wavelength_range_um"]
    order1 = cfg["grisms"][cfg["default_grism"]]["orders"]["1"]
    dlam_px = abs(order1["displ"][1] / order1["along"][1][0])  # micron per pixel in order 1
    f_lo, f_hi = cfg["point_flux_jy"]
    f0 = float(np.exp(rng.uniform(np.log(f_lo), np.log(f_hi))))
    n = int(rng.integers(2, 5))
    centres = rng.uniform(lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo), n)
    sigma = rng.uniform(8.0, 20.0, n) * dlam_px
    amps = rng.uniform(0.2, 1.5, n)
    if rng.random() < 0.4:
        amps[0] = -rng.uniform(0.2, 0.5)
    return Spectrum(f0, 0.5 * (lo + hi), float(rng.uniform(-2.0, 1.0)), np.column_stack([centres, sigma, amps]))


def _place(rng: np.random.Generator, cfg: dict[str, Any], n: int) -> np.ndarray:
    """``(n, 2)`` detector (x, y) of the first exposure: most inside, ``edge_fraction`` near or past an edge."""
    ny, nx = cfg["detector_size"]
    xy = np.column_stack([rng.uniform(100.0, nx - 100.0, n), rng.uniform(100.0, ny - 100.0, n)])
    edge = rng.random(n) < cfg["edge_fraction"]
    axis = rng.integers(0, 2, n)
    side = rng.integers(0, 2, n)
    depth = rng.uniform(-60.0, 40.0, n)  # pixels past (<0: inside) the edge
    for i in np.flatnonzero(edge):
        size = nx if axis[i] == 0 else ny
        xy[i, axis[i]] = -depth[i] if side[i] == 0 else size - 1 + depth[i]
    return xy


def _blend_partner(rng: np.random.Generator, cfg: dict[str, Any], xy: np.ndarray, dispersion_axis: int) -> np.ndarray:
    """A position whose trace overlaps that of a source at ``xy`` (cross-dispersion offset of a few pixels)."""
    across = rng.uniform(*cfg["blend_offset_px"]) * rng.choice([-1.0, 1.0])
    along = rng.uniform(-10.0, 10.0)
    offset = np.array([along, across]) if dispersion_axis == 1 else np.array([across, along])
    return xy + offset


def _sources(rng: np.random.Generator, cfg: dict[str, Any], grism: str, exposures: list[WfssExposure],
             n: int) -> list[FieldSource]:
    """The catalogue: sources spread over the modules' fields (first dither of each module)."""
    first: dict[str, WfssExposure] = {}
    for e in exposures:
        first.setdefault(e.module, e)
    modules = sorted(first)
    dispersion_axis = int(cfg["grisms"][grism]["dispersion_axis"])
    sources: list[FieldSource] = []
    band = cfg["filters"][cfg["filter"]]["band_um"]
    mid = 0.5 * (band[0] + band[1])
    positions: list[tuple[str, np.ndarray, str]] = []
    per_module = np.array_split(np.arange(n), len(modules))
    for module, ids in zip(modules, per_module, strict=True):
        xy = _place(rng, cfg, len(ids))
        i = 0
        while i < len(ids):
            if i + 1 < len(ids) and rng.random() < cfg["blend_fraction"]:
                positions.append((module, xy[i], "blended"))
                positions.append((module, _blend_partner(rng, cfg, xy[i], dispersion_axis), "blended"))
                i += 2
            else:
                positions.append((module, xy[i], "science"))
                i += 1
    for k, (module, xy, kind) in enumerate(positions):
        ra, dec = first[module].wcs.det2sky(float(xy[0]), float(xy[1]))
        extended = rng.random() < cfg["extended_fraction"]
        sigma = float(rng.uniform(*(cfg["extended_sigma_px"] if extended else cfg["psf_sigma_px"])))
        spectrum = _spectrum(rng, cfg)
        flux = float(spectrum(np.array([mid]))[0])
        sources.append(FieldSource(
            source_id=k + 1, ra=float(ra) % 360.0, dec=float(dec), source_type="EXTENDED" if extended else "POINT",
            kind=kind, module=module, sigma_px=sigma, half_box=float(np.ceil(3.0 * sigma) + 1.0 if extended else 3.0),
            abmag=float(-2.5 * np.log10(max(flux, 1e-12) / 3631.0)), spectrum=spectrum,
        ))
    return sources


def build_layout(mode: str, rng: np.random.Generator, n_sources: int, n_exposures: int,
                 grism: str | None = None, module: str | None = None) -> WfssLayout:
    """The field and exposures of a ``niriss-wfss`` or ``nircam-wfss`` observation.

    ``grism`` is ``"R"`` or ``"C"`` (NIRISS GR150R/GR150C, NIRCam GRISMR/GRISMC;
    default from ``instrument.json``); ``module`` (NIRCam ``"A"``/``"B"``)
    restricts the exposures to one module, otherwise they alternate.
    """
    if mode not in WFSS_MODES:
        raise ValueError(f"mode must be one of {WFSS_MODES}, got {mode!r}")
    cfg = wfss_config()[mode]
    grism = (grism or cfg["default_grism"]).upper()
    if grism not in cfg["grisms"]:
        raise ValueError(f"grism must be one of {sorted(cfg['grisms'])} for {mode}, got {grism!r}")
    modules = _modules(cfg, module.upper() if module else None)
    exposures = _exposures(cfg, grism, modules, n_exposures)
    sources = _sources(rng, cfg, grism, exposures, n_sources)
    area = (float(cfg["pixel_scale_arcsec"]) * ARCSEC * np.pi / 180.0) ** 2
    return WfssLayout(mode, cfg, grism, tuple(sources), tuple(exposures), float(area))
