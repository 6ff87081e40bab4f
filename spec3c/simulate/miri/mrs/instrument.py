"""MIRI MRS instrument model: channels, bands, slices and the per-pixel detector maps.

All numbers come from ``spec3c/simulate/miri/mrs_instrument.json``; this
module turns them into frozen records and evaluates, in numpy, the same
analytic detector geometry the gwcs of :mod:`.wcs` encodes:

* each channel owns half of a detector (``x_range``, the columns jwst's
  cube_build reads for it); its slices are vertical strips, dispersed along
  ``+y``, laid out side by side in ``slice_order``;
* in slice ``s`` (label ``100 * channel + s``) with strip centre ``xc`` and
  row offset ``dy``: ``v = y + tilt (x - xc) + dy``;
  ``alpha = pixel_scale (x - xc - curvature ((v - vm) / vm)**2)`` with
  ``vm = (ny - 1) / 2``; ``beta = (s - (N + 1) / 2) * slice_width``;
  ``lambda = lo + (hi - lo) ((1 - q) u + q u**2)`` with ``u = v / (ny - 1)``
  and ``lo, hi`` the band's detector range;
* a pixel belongs to the slice when ``|alpha| <= fov_alpha / 2`` at its centre.

Pixel coordinates are 0-based ``(x, y)`` of the 1032 x 1024 full frame.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

__all__ = [
    "ARCSEC2_TO_SR",
    "BAND_NAMES",
    "BandSpec",
    "ChannelSpec",
    "DetectorMaps",
    "DetectorSpec",
    "SliceSpec",
    "channel_spec",
    "detector_maps",
    "detector_of_channel",
    "detector_spec",
    "mrs_config",
]

ARCSEC2_TO_SR = (np.pi / (180.0 * 3600.0)) ** 2
BAND_NAMES: tuple[str, ...] = ("SHORT", "MEDIUM", "LONG")


@lru_cache(maxsize=1)
def mrs_config() -> dict[str, Any]:
    """Parsed ``mrs_instrument.json`` (cached; treat as read-only)."""
    pkg = __package__.rpartition(".")[0]  # spec3c.simulate.miri
    return json.loads(resources.files(pkg).joinpath("mrs_instrument.json").read_text())


@dataclass(frozen=True)
class BandSpec:
    """One band (sub-channel) of a channel, e.g. channel 1 ``SHORT`` = 1A.

    ``wavelength`` is the nominal range (micron; the CUBEPAR WAVEMIN/WAVEMAX),
    ``detector_range`` the range spanned by rows ``0 .. ny-1`` (``lo``, ``hi``
    of the dispersion law), ``q`` its curvature.
    """

    name: str
    letter: str
    wavelength: tuple[float, float]
    detector_range: tuple[float, float]
    resolving_power: float
    q: float

    def lsf_sigma(self, lam: np.ndarray) -> np.ndarray:
        """Gaussian sigma (micron) of the line-spread function at ``lam``."""
        return np.asarray(lam) / (self.resolving_power * 2.3548200450309493)


@dataclass(frozen=True)
class SliceSpec:
    """One slice: label ``100 * channel + index``, strip centre column, beta and row offset."""

    label: int
    index: int
    xc: float
    beta: float
    dy: float


@dataclass(frozen=True)
class ChannelSpec:
    """Geometry and cube parameters of one MRS channel (see the module docstring)."""

    number: int
    n_slices: int
    slice_width: float
    pixel_scale: float
    fov_alpha: float
    x_range: tuple[int, int]
    curvature: float
    tilt: float
    ideal_offset: tuple[float, float]
    rotation_deg: float
    throughput_peak: float
    spaxel: float
    spectral_step: float
    roi_spatial: float
    scalerad: float
    slices: tuple[SliceSpec, ...]
    bands: dict[str, BandSpec]
    ny: int

    @property
    def half_alpha(self) -> float:
        """Half the along-slice field (arcsec)."""
        return 0.5 * self.fov_alpha

    @property
    def beta_zero(self) -> float:
        """Beta (arcsec) of slice 1 (MIRI_AB2Slice's ``beta_zero``)."""
        return -0.5 * (self.n_slices - 1) * self.slice_width

    @property
    def vm(self) -> float:
        return 0.5 * (self.ny - 1)

    def v(self, sl: SliceSpec, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Dispersion coordinate ``v`` of pixel ``(x, y)`` in slice ``sl``."""
        return np.asarray(y, dtype=np.float64) + self.tilt * (np.asarray(x, dtype=np.float64) - sl.xc) + sl.dy

    def alpha(self, sl: SliceSpec, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Along-slice coordinate (arcsec) of ``(x, y)`` in slice ``sl``."""
        w = (self.v(sl, x, y) - self.vm) / self.vm
        return self.pixel_scale * (np.asarray(x, dtype=np.float64) - sl.xc - self.curvature * w * w)

    def wavelength(self, band: str, v: np.ndarray) -> np.ndarray:
        """Wavelength (micron) at dispersion coordinate ``v`` in ``band``."""
        b = self.bands[band]
        lo, hi = b.detector_range
        u = np.asarray(v, dtype=np.float64) / (self.ny - 1)
        return lo + (hi - lo) * ((1.0 - b.q) * u + b.q * u * u)

    def code(self, band: str) -> str:
        """``'1A'`` style name of a band of this channel."""
        return f"{self.number}{self.bands[band].letter}"


@dataclass(frozen=True)
class DetectorSpec:
    """One MRS detector: its name (``MIRIFUSHORT``), file-name part and channels (by increasing x)."""

    name: str
    file_name: str
    channels: tuple[ChannelSpec, ...]
    shape: tuple[int, int]  # (ny, nx)


def _band(name: str, cfg: dict[str, Any], margin: float) -> BandSpec:
    lo, hi = (float(v) for v in cfg["wavelength_um"])
    pad = margin * (hi - lo)
    letter = mrs_config()["bands"][name]["letter"]
    return BandSpec(name, letter, (lo, hi), (lo - pad, hi + pad), float(cfg["resolving_power"]),
                    float(cfg["dispersion_q"]))


def _slices(number: int, cfg: dict[str, Any]) -> tuple[SliceSpec, ...]:
    n = int(cfg["slices"])
    x0, x1 = cfg["x_range"]
    pitch = (x1 - x0 - 8) // n
    first = x0 + 4 + 0.5 * (x1 - x0 - 8 - n * pitch) + 0.5 * pitch + 0.3  # off the half-pixel grid
    out = []
    for j in range(n):
        index = j + 1 if cfg["slice_order"] == "ascending" else n - j
        beta = (index - 0.5 * (n + 1)) * float(cfg["slice_width_arcsec"])
        dy = float(cfg["slice_dy_px"]) * np.sin(2.0 * np.pi * index / n)
        out.append(SliceSpec(100 * number + index, index, first + j * pitch, beta, float(dy)))
    return tuple(sorted(out, key=lambda s: s.index))


@lru_cache(maxsize=4)
def channel_spec(number: int) -> ChannelSpec:
    """The :class:`ChannelSpec` of channel ``number`` (1-4)."""
    cfg_all = mrs_config()
    if str(number) not in cfg_all["channels"]:
        raise ValueError(f"MRS channel must be 1, 2, 3 or 4, got {number!r}")
    c = cfg_all["channels"][str(number)]
    margin = float(cfg_all["detector_margin"])
    return ChannelSpec(
        number=number,
        n_slices=int(c["slices"]),
        slice_width=float(c["slice_width_arcsec"]),
        pixel_scale=float(c["pixel_scale_arcsec"]),
        fov_alpha=float(c["fov_alpha_arcsec"]),
        x_range=(int(c["x_range"][0]), int(c["x_range"][1])),
        curvature=float(c["curvature_px"]),
        tilt=float(c["tilt"]),
        ideal_offset=(float(c["ideal_offset_arcsec"][0]), float(c["ideal_offset_arcsec"][1])),
        rotation_deg=float(c["rotation_deg"]),
        throughput_peak=float(c["throughput_peak"]),
        spaxel=float(c["spaxel_arcsec"]),
        spectral_step=float(c["spectral_step_um"]),
        roi_spatial=float(c["roi_spatial_arcsec"]),
        scalerad=float(c["scalerad_arcsec"]),
        slices=_slices(number, c),
        bands={b: _band(b, c["bands"][b], margin) for b in BAND_NAMES},
        ny=int(cfg_all["detector"]["full_frame"][1]),
    )


@lru_cache(maxsize=2)
def detector_spec(name: str) -> DetectorSpec:
    """The :class:`DetectorSpec` of ``MIRIFUSHORT`` or ``MIRIFULONG``."""
    cfg = mrs_config()
    if name not in cfg["detectors"] or name.startswith("_"):
        raise ValueError(f"MRS detector must be MIRIFUSHORT or MIRIFULONG, got {name!r}")
    d = cfg["detectors"][name]
    nx, ny = cfg["detector"]["full_frame"]
    return DetectorSpec(name, d["name"], tuple(channel_spec(int(c)) for c in d["channels"]), (int(ny), int(nx)))


def detector_of_channel(number: int) -> str:
    """Name of the detector recording channel ``number``."""
    for name, d in mrs_config()["detectors"].items():
        if not name.startswith("_") and number in d["channels"]:
            return str(name)
    raise ValueError(f"MRS channel must be 1, 2, 3 or 4, got {number!r}")


@dataclass(frozen=True)
class DetectorMaps:
    """Per-pixel geometry of one detector in one band (``(ny, nx)`` arrays).

    ``label`` is the slice label (0 between slices); the float maps are NaN
    there.  ``alpha_lo``/``alpha_hi`` are alpha at ``x -/+ 0.5`` (the pixel's
    along-slice edges), ``lam_lo``/``lam_hi`` the wavelength at ``y -/+ 0.5``,
    ``beta`` the slice's beta, ``channel`` the channel number (0 outside).
    """

    label: np.ndarray  # int16
    channel: np.ndarray  # int8
    alpha: np.ndarray
    alpha_lo: np.ndarray
    alpha_hi: np.ndarray
    beta: np.ndarray
    lam: np.ndarray
    lam_lo: np.ndarray
    lam_hi: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        return self.label > 0


def _label_channel(ch: ChannelSpec, label: np.ndarray) -> None:
    """Write the slice labels of channel ``ch`` into ``label`` (in place)."""
    ny = label.shape[0]
    half_px = ch.half_alpha / ch.pixel_scale
    x0, x1 = ch.x_range
    y = np.arange(ny, dtype=np.float64)[:, None]
    for sl in ch.slices:
        lo = max(int(np.floor(sl.xc - half_px - abs(ch.curvature) - 3)), x0)
        hi = min(int(np.ceil(sl.xc + half_px + abs(ch.curvature) + 3)), x1 - 1)
        x = np.arange(lo, hi + 1, dtype=np.float64)[None, :]
        inside = np.abs(ch.alpha(sl, x, y)) <= ch.half_alpha
        box = label[:, lo : hi + 1]
        box[inside & (box == 0)] = sl.label


@lru_cache(maxsize=8)
def detector_maps(detector: str, band: str) -> DetectorMaps:
    """Slice labels, alpha/beta and wavelength (with pixel edges) of ``detector`` in ``band``.

    The arrays are cached and shared: do not modify them.
    """
    det = detector_spec(detector)
    ny, nx = det.shape
    label = np.zeros((ny, nx), dtype=np.int16)
    for ch in det.channels:
        _label_channel(ch, label)
    maps = {k: np.full((ny, nx), np.nan) for k in ("alpha", "alpha_lo", "alpha_hi", "beta", "lam", "lam_lo", "lam_hi")}
    channel = np.zeros((ny, nx), dtype=np.int8)
    for ch in det.channels:
        for sl in ch.slices:
            yy, xx = np.nonzero(label == sl.label)
            x, y = xx.astype(np.float64), yy.astype(np.float64)
            channel[yy, xx] = ch.number
            maps["alpha"][yy, xx] = ch.alpha(sl, x, y)
            maps["alpha_lo"][yy, xx] = ch.alpha(sl, x - 0.5, y)
            maps["alpha_hi"][yy, xx] = ch.alpha(sl, x + 0.5, y)
            maps["beta"][yy, xx] = sl.beta
            maps["lam"][yy, xx] = ch.wavelength(band, ch.v(sl, x, y))
            maps["lam_lo"][yy, xx] = ch.wavelength(band, ch.v(sl, x, y - 0.5))
            maps["lam_hi"][yy, xx] = ch.wavelength(band, ch.v(sl, x, y + 0.5))
    arrays: list[np.ndarray] = [label, channel, *maps.values()]
    for arr in arrays:
        arr.flags.writeable = False
    return DetectorMaps(label=label, channel=channel, **maps)
