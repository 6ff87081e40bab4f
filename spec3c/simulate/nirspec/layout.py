"""NIRSpec fixed-slit and MOS layouts: slits, sources, geometry and pointing.

Instrument numbers come from ``spec3c/simulate/nirspec/instrument.json``.
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

from ..scene import Source, Spectrum, random_spectrum
from .wcs import SlitGeometry

__all__ = [
    "Layout",
    "SlitLayout",
    "instrument_config",
    "build_fs",
    "build_mos",
    "exposure_geometry",
    "ephemeris",
    "source_position",
    "with_motion",
]

ARCSEC = 1.0 / 3600.0


@lru_cache(maxsize=1)
def instrument_config() -> dict[str, Any]:
    """Parsed ``instrument.json`` (cached; treat as read-only)."""
    text = resources.files(__package__).joinpath("instrument.json").read_text()
    return json.loads(text)


@dataclass(frozen=True)
class SlitLayout:
    """A slit (FS slit or MOS slitlet) and its source, fixed for all exposures.

    ``geom.centre_radec`` is a placeholder; :func:`exposure_geometry` gives the
    per-exposure geometry. ``half_height`` is the open half-length of the slit
    in slit-frame y units; ``nod_offsets`` are slit-frame y positions of the
    source for successive exposures (cycled).
    """

    name: str
    slitlet_id: int
    source: Source
    geom: SlitGeometry
    xstart: int
    ystart: int
    half_height: float
    nod_offsets: tuple[float, ...]
    quadrant: int
    xcen: int
    ycen: int
    shutter_state: tuple[str, ...]


@dataclass(frozen=True)
class Layout:
    """Everything mode-specific needed to render and write an observation."""

    mode: str
    cfg: dict[str, Any]
    slits: tuple[SlitLayout, ...]
    pointing: tuple[float, float, float]  # ra, dec, pa (deg) of the field centre
    sky_mjy_sr: float
    pixel_area_sr: float
    #: a tracked moving target: the scene moves by ``motion_deg`` (dRA, dDec) per exposure
    moving_target: bool = False
    motion_deg: tuple[float, float] = (0.0, 0.0)


def with_motion(layout: Layout, arcsec_per_exposure: float) -> Layout:
    """``layout`` as a moving target: the scene moves along the slits (+y_slit) each exposure.

    The motion is a constant (dRA, dDec) step in degrees, computed at the
    pointing centre from ``arcsec_per_exposure`` along the slit position angle.
    """
    _, dec0, pa = layout.pointing
    pa_rad = np.deg2rad(pa)
    dra = arcsec_per_exposure * ARCSEC * np.sin(pa_rad) / np.cos(np.deg2rad(dec0))
    ddec = arcsec_per_exposure * ARCSEC * np.cos(pa_rad)
    return dataclasses.replace(layout, moving_target=True, motion_deg=(float(dra), float(ddec)))


def _moved(layout: Layout, ra: float, dec: float, k: int) -> tuple[float, float]:
    if layout.motion_deg == (0.0, 0.0):
        return ra, dec
    return (ra + k * layout.motion_deg[0]) % 360.0, dec + k * layout.motion_deg[1]


def ephemeris(layout: Layout, k: int) -> tuple[float, float]:
    """Target (pointing-centre) position in exposure ``k``: MT_RA, MT_DEC (deg)."""
    return _moved(layout, layout.pointing[0], layout.pointing[1], k)


def source_position(layout: Layout, source: Source, k: int) -> tuple[float, float]:
    """Sky position (deg) of ``source`` in exposure ``k`` (the whole scene moves with the target)."""
    return _moved(layout, source.ra, source.dec, k)


def _offset_radec(ra: float, dec: float, east_as: float, north_as: float) -> tuple[float, float]:
    """Sky position at tangent-plane offset (east, north) arcsec from (ra, dec)."""
    model = m.Pix2Sky_TAN() | m.RotateNative2Celestial(ra, dec, 180.0)
    r, d = model(east_as * ARCSEC, north_as * ARCSEC)
    return float(r) % 360.0, float(d)


def exposure_geometry(
    slit: SlitLayout, pa_deg: float, k: int, radec: tuple[float, float] | None = None
) -> tuple[SlitGeometry, float]:
    """Geometry of ``slit`` in exposure ``k`` and the source's slit-y position.

    The slit moves on the sky so that the source, at ``radec`` (default its
    fixed position; :func:`source_position` for a moving target), lands at
    ``y_slit = nod_offsets[k % n] + source.dy``.
    """
    src = slit.source
    ypos = slit.nod_offsets[k % len(slit.nod_offsets)] + src.dy
    sx, sy = slit.geom.slit_scale_arcsec
    pa = np.deg2rad(pa_deg)
    east = -(src.xpos * sx * np.cos(pa) + ypos * sy * np.sin(pa))
    north = -(-src.xpos * sx * np.sin(pa) + ypos * sy * np.cos(pa))
    ra, dec = (src.ra, src.dec) if radec is None else radec
    centre = _offset_radec(ra, dec, east, north)
    return dataclasses.replace(slit.geom, centre_radec=centre, pa_deg=pa_deg), ypos


def _wave_geometry(
    rng: np.random.Generator, cfg: dict[str, Any], nx: int, shift_frac: float
) -> tuple[tuple[float, float, float, float], tuple[float, float]]:
    """Dispersion coefficients (m) and the in-band range of ``x0`` (columns)."""
    lo, hi = cfg["wavelength_range_um"]
    span = hi - lo
    curv = cfg["dispersion_curvature"] * rng.uniform(0.7, 1.3)
    mid = 0.5 * (lo + hi) + shift_frac * span
    coeffs = np.array([mid, 1.06 * span, curv * span, -0.3 * curv * span]) * 1e-6
    x0 = np.arange(-0.1 * nx, 1.1 * nx, 0.05)
    lam = np.polynomial.polynomial.polyval((x0 - nx / 2.0) / nx, coeffs) * 1e6
    inside = x0[(lam >= lo) & (lam <= hi)]
    band = (float(inside[0]), float(inside[-1]))
    return tuple(float(c) for c in coeffs), band  # type: ignore[return-value]


def _slit_geometry(
    rng: np.random.Generator,
    cfg: dict[str, Any],
    nx: int,
    pix_per_slit: float,
    half_height: float,
    scales: tuple[float, float],
    shift_frac: float = 0.0,
) -> SlitGeometry:
    """Trace, dispersion and cutout size of one slit."""
    xc = nx / 2.0
    a1 = cfg["trace_slope"] * rng.uniform(-1.0, 1.0)
    a2 = cfg["trace_curvature"] * rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.0)
    d = np.arange(nx) - xc
    excursion = a1 * d + a2 * d * d
    slit_rows = 2.0 * half_height * pix_per_slit
    ny = int(np.ceil(slit_rows + np.ptp(excursion) + 2 * cfg["cutout_margin_rows"]))
    y0 = (ny - 1) / 2.0 - 0.5 * (excursion.max() + excursion.min())
    coeffs, band = _wave_geometry(rng, cfg, nx, shift_frac)
    return SlitGeometry(
        shape=(ny, nx),
        xc=xc,
        trace=(float(y0), float(a1), float(a2)),
        wave_coeffs=coeffs,
        tilt=float(cfg["line_tilt"] * rng.uniform(0.5, 1.5)),
        pix_per_slit=float(pix_per_slit),
        band_x=band,
        slit_scale_arcsec=scales,
        pa_deg=0.0,
        centre_radec=(0.0, 0.0),
    )


def _science_source(
    rng: np.random.Generator,
    cfg: dict[str, Any],
    ident: tuple[str, int, str],
    stype: str,
    radec: tuple[float, float],
    bright: bool = False,
) -> Source:
    """A science source with a random spectrum (``ident`` = key, id, name)."""
    key, sid, name = ident
    lo, hi = cfg["wavelength_range_um"]
    nx = cfg["_nx"]
    min_sig = 1.5 * 1.06 * (hi - lo) / nx
    if stype == "POINT":
        levels = tuple(cfg["point_flux_jy"])
        width = rng.uniform(*cfg["psf_sigma_px"])
    else:
        levels = tuple(cfg["extended_mjy_sr"])
        width = rng.uniform(*cfg["extended_sigma_px"])
    if bright:
        levels = (levels[1] * 0.8, levels[1])
    spec = random_spectrum(rng, (lo, hi), levels, cfg["resolving_power"], min_sig)
    return Source(
        key=key,
        source_id=sid,
        source_name=name,
        source_alias=f"sim_{sid}",
        source_type=stype,
        kind="science",
        ra=radec[0],
        dec=radec[1],
        xpos=float(rng.uniform(-0.2, 0.2)),
        dy=0.0,
        width_px=float(width),
        stellarity=1.0 if stype == "POINT" else 0.1,
        spectrum=spec,
    )


def build_fs(rng: np.random.Generator, n_sources: int | None, nx: int) -> Layout:
    """Fixed-slit layout: one source per slit (S200A1, S200A2, S400A1[, S1600A1])."""
    cfg = dict(instrument_config()["modes"]["nirspec-fs"], _nx=nx)
    det = instrument_config()["detector"]
    n = cfg["default_sources"] if n_sources is None else n_sources
    if not 1 <= n <= len(cfg["slits"]):
        raise ValueError(f"n_sources must be 1..{len(cfg['slits'])} for nirspec-fs, got {n}")
    scale = det["pixel_scale_arcsec"]
    ra0, dec0, pa = 80.4875, -69.4986, float(rng.uniform(0.0, 360.0))
    slits = []
    for i, sd in enumerate(cfg["slits"][:n]):
        sid = i + 1
        radec = _offset_radec(ra0, dec0, 15.0 * i, -8.0 * i)
        src = _science_source(
            rng, cfg, (str(sid), sid, ""), sd["source_type"], radec, bright=(i == 0)
        )
        height = sd["height_arcsec"]
        geom = _slit_geometry(rng, cfg, nx, height / scale, 0.5, (sd["width_arcsec"], height))
        slits.append(
            SlitLayout(
                name=sd["name"],
                slitlet_id=sd["slitlet_id"],
                source=src,
                geom=geom,
                xstart=sd["xstart"],
                ystart=sd["ystart"],
                half_height=0.5,
                nod_offsets=tuple(cfg["nod_offsets"]),
                quadrant=5,
                xcen=0,
                ycen=0,
                shutter_state=("",),
            )
        )
    return _finish(rng, "nirspec-fs", cfg, slits, (ra0, dec0, pa), scale)


def _finish(
    rng: np.random.Generator,
    mode: str,
    cfg: dict[str, Any],
    slits: list[SlitLayout],
    pointing: tuple[float, float, float],
    scale: float,
) -> Layout:
    sky = float(rng.uniform(*cfg["sky_mjy_sr"]))
    area = (scale * ARCSEC * np.pi / 180.0) ** 2
    return Layout(mode, cfg, tuple(slits), pointing, sky, float(area))


def _mos_kinds(rng: np.random.Generator, cfg: dict[str, Any], n: int) -> list[str]:
    n_bkg = max(1, round(cfg["background_fraction"] * n)) if n >= 3 else 0
    n_virt = max(1, round(cfg["virtual_fraction"] * n)) if n >= 3 else 0
    kinds = ["science"] * (n - n_bkg - n_virt) + ["background"] * n_bkg + ["virtual"] * n_virt
    # keep the first slit a science source, shuffle the rest
    rest = kinds[1:]
    rng.shuffle(rest)
    return kinds[:1] + rest


def _mos_source(
    rng: np.random.Generator,
    cfg: dict[str, Any],
    kind: str,
    sid: int,
    radec: tuple[float, float],
    first: bool,
) -> Source:
    prog = int(cfg["program"])
    if kind == "science":
        stype = "EXTENDED" if (not first and rng.random() < cfg["extended_fraction"]) else "POINT"
        src = _science_source(
            rng, cfg, (f"{prog}_{sid}", sid, f"{prog}_{sid}"), stype, radec, first
        )
        return dataclasses.replace(src, dy=float(rng.uniform(-0.1, 0.1)))
    if kind == "background":
        name = f"{prog}_BKG{sid}"
    else:
        sid = -sid
        name = f"{prog}_{sid}"
    return Source(
        key=name,
        source_id=sid,
        source_name=name,
        source_alias="",
        source_type="EXTENDED",
        kind=kind,
        ra=radec[0],
        dec=radec[1],
        xpos=0.0,
        dy=0.0,
        width_px=1.0,
        stellarity=0.0,
        spectrum=Spectrum(0.0, 1.0, 0.0),
    )


def build_mos(rng: np.random.Generator, n_sources: int | None, nx: int) -> Layout:
    """MOS layout: 3-shutter slitlets with science, background and virtual slits."""
    cfg = dict(instrument_config()["modes"]["nirspec-mos"], _nx=nx)
    det = instrument_config()["detector"]
    n = cfg["default_sources"] if n_sources is None else n_sources
    if n < 1:
        raise ValueError(f"n_sources must be >= 1 for nirspec-mos, got {n}")
    scale = det["pixel_scale_arcsec"]
    pitch_x, pitch_y = cfg["shutter_pitch_arcsec"]
    n_sh = cfg["shutters_per_slitlet"]
    half = (0.5 * (n_sh - 1) * pitch_y + 0.5 * cfg["shutter_open_arcsec"][1]) / pitch_y
    ra0, dec0, pa = 53.1625, -27.7914, float(rng.uniform(0.0, 360.0))
    ids = rng.choice(np.arange(100, 100 * max(n, 100)), size=n, replace=False)
    radius = cfg["field_radius_arcsec"]
    slits = []
    for i, kind in enumerate(_mos_kinds(rng, cfg, n)):
        r, phi = radius * np.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
        radec = _offset_radec(ra0, dec0, r * np.cos(phi), r * np.sin(phi))
        src = _mos_source(rng, cfg, kind, int(ids[i]), radec, i == 0)
        shift = cfg["wavelength_shift_fraction"] * rng.uniform(-1.0, 1.0)
        geom = _slit_geometry(rng, cfg, nx, pitch_y / scale, half, (pitch_x, pitch_y), shift)
        ny = geom.shape[0]
        nods = tuple(cfg["nod_offsets"])
        states = tuple(
            "".join("x" if j == round(o) + n_sh // 2 else "1" for j in range(n_sh)) for o in nods
        )
        slits.append(
            SlitLayout(
                name=str(i + 2),
                slitlet_id=i + 2,
                source=src,
                geom=geom,
                xstart=int(1 + rng.integers(0, max(1, 2048 - nx))),
                ystart=int(1 + rng.integers(0, 2048 - ny)),
                half_height=float(half),
                nod_offsets=nods,
                quadrant=int(rng.integers(1, 5)),
                xcen=int(rng.integers(1, 366)),
                ycen=int(rng.integers(1, 172)),
                shutter_state=states,
            )
        )
    return _finish(rng, "nirspec-mos", cfg, slits, (ra0, dec0, pa), scale)
