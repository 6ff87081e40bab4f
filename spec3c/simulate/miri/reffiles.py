"""jwst-format reference files for spec3 on simulated MIRI MRS data (written with stdatamodels).

* CUBEPAR (``MiriIFUCubeParsModel``, FITS): per band (1A ... 4C) the spaxel
  size, spectral step and wavelength range (``CUBEPAR``), the MSM and EMSM
  parameters (``CUBEPAR_MSM``, ``CUBEPAR_EMSM``), and the non-linear
  ``multi``-cube wavelength tables ``MULTICHANNEL_MSM``, ``MULTICHANNEL_EMSM``
  and ``MULTICHANNEL_DRIZ`` (the last is what jwst's default drizzle
  weighting reads), one plane per spectral step of the channel covering it.
* EXTRACT1D (``Extract1dIFUModel``, ASDF with inline arrays): aperture radius
  and background annulus (arcsec) against wavelength, multiples of the
  simulator's core PSF FWHM; ``subtract_background``, ``method``, ``subpixels``.
* APCORR (``MirMrsApcorrModel``, ASDF): ``1 / (EE(r) - A_ap / A_ann (EE(r_out) -
  EE(r_in)))``, the fraction of a point source's flux the EXTRACT1D aperture
  keeps after the annulus background is subtracted, for the simulator's
  double-Gaussian PSF as a cube shows it (each component broadened by the
  detector pixel, the slice width and the cube spaxel), tabulated for
  ``apcorr_radius_fwhm`` radii (arcsec) and wavelengths.
* MRSPTCORR (``MirMrsPtCorrModel``, FITS): the ``LEAKCOR`` table of the
  simulated channel 3A spectral leak.

All numbers come from ``mrs_instrument.json`` (``reference_files``, the
channels, ``psf``, ``spectral_leak``) so the reference files describe exactly
what :mod:`spec3c.simulate.miri.mrs` simulates.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from stdatamodels.jwst import datamodels as dm

from .mrs.instrument import BAND_NAMES, ChannelSpec, channel_spec, mrs_config
from .mrs.scene import Psf

__all__ = [
    "MrsReferenceFiles",
    "apcorr_table",
    "multichannel_wavelengths",
    "reference_file_paths",
    "write_apcorr",
    "write_cubepar",
    "write_extract1d",
    "write_mrsptcorr",
    "write_reference_files",
]

_FWHM = 2.3548200450309493


@dataclass(frozen=True)
class MrsReferenceFiles:
    """Paths of the four reference files spec3 needs on MRS data."""

    cubepar: Path
    extract1d: Path
    apcorr: Path
    mrsptcorr: Path

    def jwst_overrides(self) -> dict[str, dict[str, Any]]:
        """``steps`` parameters pointing calwebb_spec3 at these files."""
        return {
            "cube_build": {"override_cubepar": str(self.cubepar)},
            "extract_1d": {"override_extract1d": str(self.extract1d), "override_apcorr": str(self.apcorr),
                           "apply_apcorr": True},
            "spectral_leak": {"override_mrsptcorr": str(self.mrsptcorr)},
        }


def reference_file_paths(asn_path: str | Path) -> MrsReferenceFiles:
    """Where :func:`spec3c.simulate.simulate` puts them: beside the ASN, named after its stem."""
    p = Path(asn_path)
    stem = p.name.removesuffix(".json")
    return MrsReferenceFiles(
        p.with_name(f"{stem}_cubepar.fits"),
        p.with_name(f"{stem}_extract1d.asdf"),
        p.with_name(f"{stem}_apcorr.asdf"),
        p.with_name(f"{stem}_mrsptcorr.fits"),
    )


def _header(model: dm.JwstDataModel, reftype: str, description: str) -> None:
    model.meta.reftype = reftype
    model.meta.instrument.name = "MIRI"
    model.meta.telescope = "JWST"
    model.meta.exposure.type = mrs_config()["observation"]["exp_type"]
    model.meta.pedigree = "DUMMY"
    model.meta.author = "spec3c.simulate"
    model.meta.useafter = "2000-01-01T00:00:00"
    model.meta.description = description


def _rows(model: dm.JwstDataModel, attribute: str, columns: list[Any]) -> np.ndarray:
    """A table of ``attribute``'s schema dtype from column sequences."""
    dtype = model.get_dtype(attribute)
    table = np.zeros(len(columns[0]), dtype=dtype)
    for name, col in zip(dtype.names, columns, strict=True):
        table[name] = col
    return table


def _channels() -> list[ChannelSpec]:
    return [channel_spec(n) for n in (1, 2, 3, 4)]


def _channel_at(lam: np.ndarray) -> np.ndarray:
    """Index (0-3) of the channel whose bands cover each wavelength (the bluer one in overlaps)."""
    edges = [max(b.wavelength[1] for b in ch.bands.values()) for ch in _channels()]
    return np.minimum(np.searchsorted(np.array(edges), lam), 3)


def multichannel_wavelengths() -> np.ndarray:
    """Plane wavelengths (micron) of a ``multi`` cube: from 1A's start to 4C's end, one
    spectral step of the channel covering each wavelength apart."""
    chans = _channels()
    out = []
    lam = chans[0].bands["SHORT"].wavelength[0]
    for ch in chans:
        top = max(b.wavelength[1] for b in ch.bands.values())
        seg = np.arange(lam, top, ch.spectral_step)
        out.append(seg)
        lam = seg[-1] + ch.spectral_step
    return np.concatenate(out)


def write_cubepar(path: str | Path) -> Path:
    """Write the CUBEPAR file (``MiriIFUCubeParsModel``) at ``path``."""
    rf = mrs_config()["reference_files"]
    power, softrad, nroi = float(rf["msm_power"]), float(rf["softrad"]), float(rf["roi_spectral_steps"])
    model = dm.MiriIFUCubeParsModel()
    _header(model, "CUBEPAR", "spec3c simulated MIRI MRS cube parameters")
    bands = [(ch, b) for ch in _channels() for b in BAND_NAMES]
    ids = [str(ch.number) for ch, _ in bands]
    names = [b for _, b in bands]
    model.ifucubepars_table = _rows(model, "ifucubepars_table", [
        ids, names, [ch.spaxel for ch, _ in bands], [ch.spectral_step for ch, _ in bands],
        [ch.bands[b].wavelength[0] for ch, b in bands], [ch.bands[b].wavelength[1] for ch, b in bands],
    ])
    rois = [ch.roi_spatial for ch, _ in bands]
    roiw = [nroi * ch.spectral_step for ch, _ in bands]
    model.ifucubepars_msm_table = _rows(model, "ifucubepars_msm_table", [
        ids, names, rois, roiw, [power] * len(bands), [softrad] * len(bands)])
    model.ifucubepars_emsm_table = _rows(model, "ifucubepars_emsm_table", [
        ids, names, rois, roiw, [ch.scalerad for ch, _ in bands]])
    lam = multichannel_wavelengths()
    chans = _channels()
    idx = _channel_at(lam)
    m_rois = np.array([c.roi_spatial for c in chans])[idx]
    m_roiw = nroi * np.array([c.spectral_step for c in chans])[idx]
    m_scal = np.array([c.scalerad for c in chans])[idx]
    n = lam.size
    model.ifucubepars_multichannel_msm_wavetable = _rows(
        model, "ifucubepars_multichannel_msm_wavetable", [lam, m_rois, m_roiw, np.full(n, power), np.full(n, softrad)])
    model.ifucubepars_multichannel_emsm_wavetable = _rows(
        model, "ifucubepars_multichannel_emsm_wavetable", [lam, m_rois, m_roiw, m_scal])
    model.ifucubepars_multichannel_driz_wavetable = _rows(model, "ifucubepars_multichannel_driz_wavetable", [lam])
    return _save(model, path)


def _save(model: dm.JwstDataModel, path: str | Path, **kwargs: Any) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reference-file header keys stdatamodels would like to see
        model.save(p, **kwargs)
    model.close()
    return p


def _psf() -> Psf:
    p = mrs_config()["psf"]
    return Psf(float(p["fwhm_arcsec"][0]), float(p["fwhm_arcsec"][1]), float(p["wing_fraction"]),
               float(p["wing_scale"]))


def _grid() -> np.ndarray:
    rf = mrs_config()["reference_files"]
    lo, hi = rf["wavelength_um"]
    return np.linspace(float(lo), float(hi), int(rf["n_wavelengths"]))


def _radii(lam: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EXTRACT1D aperture radius, inner and outer background radii (arcsec) at ``lam``."""
    rf = mrs_config()["reference_files"]
    fwhm = _psf().fwhm(lam)
    return rf["radius_fwhm"] * fwhm, rf["inner_bkg_fwhm"] * fwhm, rf["outer_bkg_fwhm"] * fwhm


def write_extract1d(path: str | Path) -> Path:
    """Write the IFU EXTRACT1D file (``Extract1dIFUModel``, ASDF) at ``path``."""
    rf = mrs_config()["reference_files"]
    lam = _grid()
    radius, inner, outer = _radii(lam)
    model = dm.Extract1dIFUModel()
    _header(model, "EXTRACT1D", "spec3c simulated MIRI MRS extraction radii")
    model.meta.region_type = "target"
    model.meta.subtract_background = True
    model.meta.method = str(rf["extract_method"])
    model.meta.subpixels = int(rf["subpixels"])
    model.data = {
        "wavelength": lam.astype(np.float32), "wavelength_units": "micron",
        "radius": radius.astype(np.float32), "radius_units": "arcsec",
        "inner_bkg": inner.astype(np.float32), "inner_bkg_units": "arcsec",
        "outer_bkg": outer.astype(np.float32), "outer_bkg_units": "arcsec",
    }
    return _save(model, path, all_array_storage="inline")


def _sampling_variance(lam: np.ndarray) -> np.ndarray:
    """Variance (arcsec^2) a cube adds to the PSF: detector pixel and slice width (averaged
    over the two axes) and the cube spaxel, of the channel covering each wavelength."""
    chans = _channels()
    idx = _channel_at(lam)
    var = [(c.pixel_scale**2 + c.slice_width**2) / 24.0 + c.spaxel**2 / 12.0 for c in chans]
    return np.array(var)[idx]


def apcorr_table(lam: np.ndarray, radius_fwhm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radii (arcsec, ``(n_radius, n_lam)``) and aperture corrections for the EXTRACT1D annulus."""
    psf = _psf()
    _, inner, outer = _radii(lam)
    extra = _sampling_variance(lam)
    radius = np.asarray(radius_fwhm, dtype=np.float64)[:, None] * psf.fwhm(lam)[None, :]
    ee = np.stack([psf.encircled(lam, r, extra) for r in radius])
    ring = psf.encircled(lam, outer, extra) - psf.encircled(lam, inner, extra)
    kept = ee - radius**2 / (outer**2 - inner**2) * ring
    return radius, 1.0 / kept


def write_apcorr(path: str | Path) -> Path:
    """Write the MRS APCORR file (``MirMrsApcorrModel``, ASDF) at ``path``."""
    lam = _grid()
    radius, corr = apcorr_table(lam, np.asarray(mrs_config()["reference_files"]["apcorr_radius_fwhm"]))
    model = dm.MirMrsApcorrModel()
    _header(model, "APCORR", "spec3c simulated MIRI MRS aperture corrections")
    model.meta.instrument.channel = "1234"
    model.apcorr_table = {
        "channel": "ANY", "band": "ANY",
        "wavelength": lam.astype(np.float32), "wavelength_units": "microns",
        "radius": radius.astype(np.float32), "radius_units": "arcseconds",
        "apcorr": corr.astype(np.float32), "apcorr_err": np.zeros_like(corr, dtype=np.float32),
    }
    return _save(model, path, all_array_storage="inline")


def write_mrsptcorr(path: str | Path) -> Path:
    """Write the MRSPTCORR file (``MirMrsPtCorrModel``; its LEAKCOR table) at ``path``."""
    lk = mrs_config()["spectral_leak"]
    c, s = float(lk["centre_um"]), float(lk["sigma_um"])
    lam = np.linspace(c - 6.0 * s, c + 6.0 * s, 201)
    frac = float(lk["peak"]) * np.exp(-0.5 * ((lam - c) / s) ** 2)
    model = dm.MirMrsPtCorrModel()
    _header(model, "MRSPTCORR", "spec3c simulated MIRI MRS spectral leak")
    model.leakcor_table = _rows(model, "leakcor_table", [lam, frac, 0.01 * frac])
    return _save(model, path)


def write_reference_files(files: MrsReferenceFiles) -> MrsReferenceFiles:
    """Write all four files at the paths of ``files``; return ``files``."""
    write_cubepar(files.cubepar)
    write_extract1d(files.extract1d)
    write_apcorr(files.apcorr)
    write_mrsptcorr(files.mrsptcorr)
    return files
