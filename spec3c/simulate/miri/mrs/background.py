"""Dedicated background exposures of an MRS observation (``with_background=N``).

A background exposure points the same detector and band at blank sky;
calwebb_spec2 builds its cube and extracts it as an extended source, and the
spec3 ASN lists that ``_x1d`` as a ``background`` member.  jwst's
master_background reads the ``BACKGROUND`` column of every MRS member (the
sigma-clipped plane mean an extended-source extraction reports there too).

Here the sky (with channel 3A's leak) is rendered on the detector pixels with
the science noise model and averaged in wavelength bins one CUBEPAR spectral
step wide, channel by channel of the detector: WAVELENGTH is the bin's mean
pixel wavelength, SURF_BRIGHT = BACKGROUND the mean pixel value (MJy/sr),
SB_ERROR = BKGD_ERROR its error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...noise import variances
from ...x1d import write_spec2_x1d
from .instrument import ARCSEC2_TO_SR, DetectorSpec, mrs_config
from .render import channel_sky
from .scene import MrsScene

__all__ = ["background_spectrum", "write_background_x1d"]


def _binned(lam: np.ndarray, values: np.ndarray, variance: np.ndarray, lo: float, hi: float,
            step: float) -> dict[str, np.ndarray]:
    """Mean wavelength, mean value and its variance per ``step``-wide bin of [lo, hi) (empty bins dropped)."""
    nbins = int(np.ceil((hi - lo) / step))
    index = np.floor((lam - lo) / step).astype(np.int64)
    ok = (index >= 0) & (index < nbins) & np.isfinite(values)
    index = index[ok]
    n = np.bincount(index, minlength=nbins).astype(np.float64)
    keep = n > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        wave = np.bincount(index, lam[ok], nbins) / n
        mean = np.bincount(index, values[ok], nbins) / n
        var = np.bincount(index, variance[ok], nbins) / n**2
    return {"WAVELENGTH": wave[keep], "SB": mean[keep], "VAR": var[keep], "N": n[keep]}


def background_spectrum(det: DetectorSpec, band: str, scene: MrsScene, exptime: float,
                        rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The x1d columns of one blank-sky exposure of ``det`` in ``band`` (both channels, by wavelength)."""
    cfg = mrs_config()["detector"]
    parts = []
    for ch in det.channels:
        _, _, lam, sky, conv = channel_sky(det, band, scene, ch)
        vp, vr, vf = variances(sky, conv, exptime, cfg["read_noise_e"], cfg["flat_fraction"])
        total = vp + vr + vf
        noisy = sky + rng.standard_normal(sky.shape) * np.sqrt(total)
        lo, hi = ch.bands[band].wavelength
        part = _binned(lam, noisy, total, lo, hi, ch.spectral_step)
        part["TO_JY"] = 1.0e6 * ch.pixel_scale * ch.slice_width * ARCSEC2_TO_SR * part["N"]  # MJy/sr -> Jy
        parts.append(part)
    col = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.argsort(col["WAVELENGTH"])
    col = {k: v[order] for k, v in col.items()}
    err = np.sqrt(col["VAR"])
    to_jy = col["TO_JY"]
    return {"WAVELENGTH": col["WAVELENGTH"], "SURF_BRIGHT": col["SB"], "SB_ERROR": err, "SB_VAR_POISSON": col["VAR"],
            "BACKGROUND": col["SB"], "BKGD_ERROR": err, "BKGD_VAR_POISSON": col["VAR"],
            "FLUX": col["SB"] * to_jy, "FLUX_ERROR": err * to_jy, "NPIXELS": col["N"]}


def write_background_x1d(path: Path, science_meta: dict[str, Any], exposure_number: int,
                         columns: dict[str, np.ndarray]) -> Path:
    """One background member ``_x1d.fits``: the science exposure's metadata as a blank-sky,
    extended-source background target (``BKGDTARG`` true), exposure ``exposure_number`` (1-based)."""
    meta = {k: v for k, v in science_meta.items() if k not in ("wcsinfo", "dither", "wcs")}
    meta["observation"] = {**meta["observation"], "bkgdtarg": True, "exposure_number": f"{exposure_number:05d}"}
    meta["target"] = {**meta["target"], "source_type": "EXTENDED"}
    meta["group_id"] = path.name.rsplit("_", 2)[0]
    write_spec2_x1d(path, meta, [{"columns": columns, "name": "MIR_MRS", "source_type": "EXTENDED",
                                  "dispersion_direction": 2, "spectral_order": 1}])
    return path
