"""MIRI LRS layouts: detector geometry, the point source, nods/dithers and pointing.

Instrument numbers come from ``spec3c/simulate/miri/instrument.json``.  Pixel
coordinates in the file are 1-based full-frame (as in the jwst specwcs
reference); everything here is 0-based in the written (sub)array.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
from astropy.modeling import models as m

from ..scene import Source, random_spectrum
from .wcs import LrsGeometry

__all__ = [
    "MIRI_MODES",
    "LrsLayout",
    "build_lrs",
    "exposure_geometry",
    "miri_config",
    "offset_radec",
    "source_position",
    "with_motion",
]

ARCSEC = 1.0 / 3600.0
MIRI_MODES: tuple[str, ...] = ("miri-lrs-fs", "miri-lrs-slitless")


@lru_cache(maxsize=1)
def miri_config() -> dict[str, Any]:
    """Parsed ``instrument.json`` (cached; treat as read-only)."""
    text = resources.files(__package__).joinpath("instrument.json").read_text()
    return json.loads(text)


@dataclass(frozen=True)
class LrsLayout:
    """Everything mode-specific needed to render and write an LRS observation.

    ``geom.centre_radec`` is a placeholder (see :func:`exposure_geometry`);
    ``offsets`` are the source's ``alpha`` (arcsec along the slit / across the
    slitless trace) in successive exposures (cycled), the commanded
    nod/dither offsets plus ``pointing_error``; ``psf_sigma`` is the Gaussian
    sigma (pixels) at mid band.
    """

    mode: str
    cfg: dict[str, Any]
    geom: LrsGeometry
    source: Source
    offsets: tuple[float, ...]
    pointing: tuple[float, float, float]  # source ra, dec (deg), position angle of +alpha
    sky_mjy_sr: float
    pixel_area_sr: float
    psf_sigma: float
    pointing_error: float = 0.0
    moving_target: bool = False
    motion_deg: tuple[float, float] = (0.0, 0.0)

    @property
    def slitless(self) -> bool:
        return self.mode == "miri-lrs-slitless"


def offset_radec(ra: float, dec: float, east_as: float, north_as: float) -> tuple[float, float]:
    """Sky position at tangent-plane offset (east, north) arcsec from (ra, dec)."""
    model = m.Pix2Sky_TAN() | m.RotateNative2Celestial(ra, dec, 180.0)
    r, d = model(east_as * ARCSEC, north_as * ARCSEC)
    return float(r) % 360.0, float(d)


def with_motion(layout: LrsLayout, arcsec_per_exposure: float) -> LrsLayout:
    """``layout`` as a moving target drifting along ``+alpha`` each exposure."""
    _, dec0, pa = layout.pointing
    pa_rad = np.deg2rad(pa)
    dra = arcsec_per_exposure * ARCSEC * np.sin(pa_rad) / np.cos(np.deg2rad(dec0))
    ddec = arcsec_per_exposure * ARCSEC * np.cos(pa_rad)
    return dataclasses.replace(layout, moving_target=True, motion_deg=(float(dra), float(ddec)))


def source_position(layout: LrsLayout, k: int) -> tuple[float, float]:
    """Sky position (deg) of the source (= target ephemeris) in exposure ``k``."""
    ra, dec = layout.source.ra, layout.source.dec
    dra, ddec = layout.motion_deg
    return (ra + k * dra) % 360.0, dec + k * ddec


def exposure_geometry(layout: LrsLayout, k: int) -> tuple[LrsGeometry, float]:
    """Geometry of exposure ``k`` and the source's ``alpha`` (arcsec).

    The pointing puts the source at ``alpha = offsets[k % n]``; the slit
    centre (``alpha = 0``) is offset from it on the sky accordingly.
    """
    alpha = layout.offsets[k % len(layout.offsets)]
    pa = np.deg2rad(layout.pointing[2])
    east, north = alpha * np.sin(pa), alpha * np.cos(pa)
    ra, dec = source_position(layout, k)
    centre = offset_radec(ra, dec, -east, -north)
    for _ in range(2):  # the position angle at the centre differs (meridian convergence)
        r, d = offset_radec(*centre, east, north)
        centre = ((centre[0] + ra - r) % 360.0, centre[1] + dec - d)
    return dataclasses.replace(layout.geom, centre_radec=centre), alpha


def _geometry(cfg: dict[str, Any], n_rows: int, pscale: float, pa: float) -> LrsGeometry:
    """Detector geometry from the mode configuration (no pointing yet)."""
    sub = cfg["subarray"]
    margin = cfg["margin_rows"]
    full_rows = miri_config()["detector"]["full_frame"][1] - sub["ystart"] + 1
    ysize = sub.get("ysize", n_rows + 2 * margin)
    if n_rows + 2 * margin > min(ysize, full_rows):
        limit = min(ysize, full_rows) - 2 * margin
        raise ValueError(f"n_columns must be <= {limit} for {cfg['exp_type']}")
    xref = cfg["reference_pixel"][0] - sub["xstart"]  # 1-based full frame -> 0-based
    slitless = "slit_length_arcsec" not in cfg
    xsize = sub["xsize"]
    return LrsGeometry(
        shape=(ysize, xsize),
        xref=float(xref),
        y0=(ysize - n_rows) // 2,
        n_rows=n_rows,
        band=tuple(cfg["wavelength_range_um"]),
        disp=tuple(cfg["dispersion_shape"]),
        trace=tuple(cfg["trace_dx_px"]),
        pscale=pscale,
        half_length=xsize * pscale if slitless else 0.5 * cfg["slit_length_arcsec"],
        pa_deg=pa,
        centre_radec=(0.0, 0.0),
        xlim=(cfg["reference_columns"] - 0.5, xsize - 0.5) if slitless else None,
    )


def _source(rng: np.random.Generator, cfg: dict[str, Any], radec: tuple[float, float]) -> Source:
    lo, hi = cfg["wavelength_range_um"]
    min_sig = 1.5 * 1.6 * (hi - lo) / cfg["_rows"]  # ~1.5 px at the steepest dispersion
    spec = random_spectrum(
        rng, (lo, hi), tuple(cfg["point_flux_jy"]), cfg["resolving_power"], min_sig
    )
    return Source(
        key="1",
        source_id=1,
        source_name="",
        source_alias="",
        source_type="POINT",
        kind="science",
        ra=radec[0],
        dec=radec[1],
        xpos=0.0,
        dy=0.0,
        width_px=float(rng.uniform(*cfg["psf_sigma_px"])),
        stellarity=1.0,
        spectrum=spec,
    )


def build_lrs(mode: str, rng: np.random.Generator, n_rows: int) -> LrsLayout:
    """Layout of a ``miri-lrs-fs`` or ``miri-lrs-slitless`` observation with ``n_rows`` spectral rows."""
    cfg = dict(miri_config()["modes"][mode], _rows=n_rows)
    det = miri_config()["detector"]
    scale = det["pixel_scale_arcsec"]
    pa = float(rng.uniform(0.0, 360.0))
    ra, dec = cfg["pointing_radec"]
    src = _source(rng, cfg, (float(ra), float(dec)))
    if mode == "miri-lrs-fs":
        err, offsets = 0.0, tuple(float(v) for v in cfg["nod_offsets_arcsec"])
    else:
        err = float(rng.uniform(-1.0, 1.0)) * cfg["source_offset_arcsec"]
        offsets = tuple(float(v) + err for v in cfg["dither_offsets_arcsec"])
    area = (scale * ARCSEC * np.pi / 180.0) ** 2
    return LrsLayout(
        mode=mode,
        cfg=cfg,
        geom=_geometry(cfg, n_rows, scale, pa),
        source=src,
        offsets=offsets,
        pointing=(float(ra), float(dec), pa),
        sky_mjy_sr=float(rng.uniform(*cfg["sky_mjy_sr"])),
        pixel_area_sr=float(area),
        psf_sigma=src.width_px,
        pointing_error=err,
    )
