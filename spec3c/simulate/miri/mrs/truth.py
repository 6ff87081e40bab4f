"""MRS-specific truth: the ``ifu`` section of the ``*_truth.asdf`` file.

The generic :class:`~spec3c.simulate.truth.Truth` (``load_truth``) holds the
sources' sampled spectra and positions; this section adds what an IFU test
needs to predict cubes and spectra exactly: the PSF, every source's spectral
parameters and line fluxes, the nebula's width, the sky law, the spectral
leak and, per exposure, the pointing and each source's ``(alpha, beta)`` in
each channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asdf
import numpy as np

from ...scene import Spectrum
from .scene import Leak, MrsScene, MrsSource, Psf, Sky

__all__ = ["MrsTruth", "MrsTruthExposure", "add_to_truth_file", "load_mrs_truth", "mrs_truth_tree"]


@dataclass(frozen=True)
class MrsTruthExposure:
    """One exposure: detector, band, channels, dither and pointing, and
    ``alpha_beta[channel][source_key] = (alpha, beta)`` arcsec."""

    detector: str
    band: str
    channels: tuple[int, ...]
    dither_position: int
    x_offset: float
    y_offset: float
    ra_ref: float
    dec_ref: float
    roll_ref: float
    alpha_beta: dict[int, dict[str, tuple[float, float]]]


@dataclass(frozen=True)
class MrsTruth:
    """The ``ifu`` truth section; ``sources`` are the scene's :class:`MrsSource` records
    (``spectrum`` in Jy for points, peak MJy/sr for the nebula, ``sigma`` arcsec)."""

    psf: Psf
    sources: dict[str, MrsSource]
    sky: Sky
    leak: Leak
    exposures: dict[str, MrsTruthExposure]

    def line_fluxes(self, key: str) -> np.ndarray:
        """``(n, 2)``: centre (micron) and integrated flux above the continuum of each line of
        source ``key`` (Jy micron for points; MJy/sr micron of the peak for the nebula)."""
        src = self.sources[key]
        return np.column_stack([src.spectrum.lines[:, 0], src.line_fluxes()])

    def total_flux(self, key: str, lam: np.ndarray | float) -> np.ndarray:
        """Total flux density (Jy) of source ``key`` at ``lam`` micron."""
        src = self.sources[key]
        return np.asarray(src.spectrum(np.asarray(lam, dtype=np.float64))) * src.flux_scale * 1.0e6


def _spectrum_tree(src: MrsSource) -> dict[str, Any]:
    sp = src.spectrum
    return {"kind": src.kind, "source_id": src.source_id, "ra": src.ra, "dec": src.dec, "sigma_arcsec": src.sigma,
            "f0": sp.f0, "lam0": sp.lam0, "index": sp.alpha, "lines": np.asarray(sp.lines, dtype=np.float64),
            "line_flux": src.line_fluxes()}


def mrs_truth_tree(scene: MrsScene, exposures: dict[str, MrsTruthExposure]) -> dict[str, Any]:
    """The ``ifu`` subtree for :func:`~spec3c.simulate.truth.write_truth`'s file."""
    psf, lk = scene.psf, scene.leak
    return {
        "instrument": "MIRI",
        "psf": {"fwhm_a": psf.fwhm_a, "fwhm_b": psf.fwhm_b, "wing_fraction": psf.wing_fraction,
                "wing_scale": psf.wing_scale},
        "sources": {s.key: _spectrum_tree(s) for s in scene.sources},
        "sky": {"wavelength": scene.sky.wavelength, "sb": scene.sky.sb},
        "leak": {"channel": lk.channel, "band": lk.band, "peak": lk.peak, "centre": lk.centre, "sigma": lk.sigma},
        "exposures": {
            name: {
                "detector": e.detector, "band": e.band, "channels": list(e.channels),
                "dither_position": e.dither_position, "x_offset": e.x_offset, "y_offset": e.y_offset,
                "ra_ref": e.ra_ref, "dec_ref": e.dec_ref, "roll_ref": e.roll_ref,
                "alpha_beta": {str(ch): {k: [float(v[0]), float(v[1])] for k, v in d.items()}
                               for ch, d in e.alpha_beta.items()},
            }
            for name, e in exposures.items()
        },
    }


def add_to_truth_file(path: Path, tree: dict[str, Any]) -> None:
    """Add ``tree`` as the ``ifu`` section of the truth file at ``path``."""
    with asdf.open(path, lazy_load=False, memmap=False) as af:
        full = dict(af.tree)
        full = {k: v for k, v in full.items() if k not in ("asdf_library", "history")}
    full["ifu"] = tree
    asdf.AsdfFile(full).write_to(path, all_array_compression="zlib")


def load_mrs_truth(path: str | Path) -> MrsTruth:
    """Read the ``ifu`` section of a ``miri-mrs`` truth file (``<asn stem>_truth.asdf``)."""
    with asdf.open(path, lazy_load=False, memmap=False) as af:
        if "ifu" not in af.tree:
            raise ValueError(f"{path}: not a miri-mrs truth file (no 'ifu' section)")
        t = af.tree["ifu"]
        p = t["psf"]
        psf = Psf(float(p["fwhm_a"]), float(p["fwhm_b"]), float(p["wing_fraction"]), float(p["wing_scale"]))
        sources = {
            str(k): MrsSource(str(k), int(v["source_id"]), str(v["kind"]), float(v["ra"]), float(v["dec"]),
                              Spectrum(float(v["f0"]), float(v["lam0"]), float(v["index"]),
                                       np.array(v["lines"], dtype=np.float64).reshape(-1, 3)),
                              float(v["sigma_arcsec"]))
            for k, v in t["sources"].items()
        }
        sky = Sky(np.array(t["sky"]["wavelength"], dtype=np.float64), np.array(t["sky"]["sb"], dtype=np.float64))
        lk = t["leak"]
        leak = Leak(int(lk["channel"]), str(lk["band"]), float(lk["peak"]), float(lk["centre"]), float(lk["sigma"]))
        exposures = {
            str(n): MrsTruthExposure(
                str(e["detector"]), str(e["band"]), tuple(int(c) for c in e["channels"]), int(e["dither_position"]),
                float(e["x_offset"]), float(e["y_offset"]), float(e["ra_ref"]), float(e["dec_ref"]),
                float(e["roll_ref"]),
                {int(ch): {str(k): (float(v[0]), float(v[1])) for k, v in d.items()}
                 for ch, d in e["alpha_beta"].items()},
            )
            for n, e in t["exposures"].items()
        }
    return MrsTruth(psf, sources, sky, leak, exposures)
