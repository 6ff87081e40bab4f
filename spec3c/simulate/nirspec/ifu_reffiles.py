"""jwst-format reference files for spec3 on simulated NIRSpec IFU data (written with stdatamodels).

* CUBEPAR (``NirspecIFUCubeParsModel``, FITS): the band's spaxel size,
  spectral step and wavelength range; MSM/EMSM parameters; and the
  non-linear (``multi``) wavelength tables for prism, medium and high
  resolution with their MSM, EMSM and drizzle variants (jwst 3.0.0 reads all
  three drizzle tables, ``MULTICHAN_*_DRIZZLE``, for the default weighting).
* EXTRACT1D (``Extract1dIFUModel``, ASDF): aperture radius and background
  annulus (arcsec) against wavelength, ``subtract_background``, ``method``,
  ``subpixels``.
* APCORR (``NrsIfuApcorrModel``, ASDF): ``1 / EE(r, lambda)``, the encircled
  energy of the simulator's PSF as a cube shows it (the Gaussian PSF
  convolved with the slice width, the detector row and the cube spaxel),
  tabulated for radii (arcsec) and wavelengths.

The numbers live in ``reference_files`` of ``ifu_instrument.json``; the spectral
step follows the simulated detector width (``n_columns``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from stdatamodels.jwst import datamodels as dm

from .ifu_layout import dispersion_um_per_px, ifu_config, psf_sigma_arcsec

__all__ = [
    "IfuReferenceFiles",
    "encircled_energy",
    "reference_file_paths",
    "write_apcorr",
    "write_cubepar",
    "write_extract1d",
    "write_reference_files",
]


@dataclass(frozen=True)
class IfuReferenceFiles:
    """Paths of the three reference files of one simulated observation."""

    cubepar: Path
    extract1d: Path
    apcorr: Path

    def jwst_overrides(self) -> dict[str, dict[str, str]]:
        """``steps`` parameters pointing calwebb_spec3 at these files."""
        return {
            "cube_build": {"override_cubepar": str(self.cubepar)},
            "extract_1d": {"override_extract1d": str(self.extract1d), "override_apcorr": str(self.apcorr)},
        }


def reference_file_paths(asn_path: str | Path) -> IfuReferenceFiles:
    """Where :func:`spec3c.simulate.simulate` puts them: beside the ASN, named after its stem."""
    p = Path(asn_path)
    stem = p.name.removesuffix(".json")
    return IfuReferenceFiles(
        p.with_name(f"{stem}_cubepar.fits"),
        p.with_name(f"{stem}_extract1d.asdf"),
        p.with_name(f"{stem}_apcorr.asdf"),
    )


def _header(model: dm.JwstDataModel, reftype: str, description: str) -> None:
    c = ifu_config()
    model.meta.reftype = reftype
    model.meta.instrument.name = "NIRSPEC"
    model.meta.telescope = "JWST"
    model.meta.exposure.type = c["exp_type"]
    model.meta.pedigree = "DUMMY"
    model.meta.author = "spec3c.simulate"
    model.meta.useafter = "2000-01-01T00:00:00"
    model.meta.description = description


def _rows(model: dm.JwstDataModel, attribute: str, columns: list[Any]) -> np.ndarray:
    """A table of ``attribute``'s schema dtype from column arrays."""
    dtype = model.get_dtype(attribute)
    table = np.zeros(len(columns[0]), dtype=dtype)
    for name, col in zip(dtype.names, columns, strict=True):
        table[name] = col
    return table


def _multichannel(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Wavelengths (micron) of one non-linear table, one plane per ``lambda / (2 R)``, and their steps."""
    mc = ifu_config()["reference_files"]["cubepar"]["multichannel"]
    lo, hi = mc["range_um"]
    r = mc["resolving_power"][kind]
    n = int(np.ceil(np.log(hi / lo) * 2.0 * r))
    lam = lo * np.exp(np.arange(n + 1) / (2.0 * r))
    return lam, lam / (2.0 * r)


def write_cubepar(path: str | Path, n_columns: int) -> Path:
    """Write the CUBEPAR file for simulated data with ``n_columns`` detector columns."""
    c = ifu_config()
    cp = c["reference_files"]["cubepar"]
    step = dispersion_um_per_px(n_columns)
    lo, hi = c["wavelength_range_um"]
    one = [np.array([c["grating"]]), np.array([c["filter"]])]
    msm, emsm = cp["msm"], cp["emsm"]
    with dm.NirspecIFUCubeParsModel() as model:
        _header(model, "CUBEPAR", "spec3c simulated NIRSpec IFU cube parameters")
        model.ifucubepars_table = _rows(model, "ifucubepars_table", [*one, [lo], [hi], [cp["spaxelsize_arcsec"]], [step]])
        model.ifucubepars_msm_table = _rows(model, "ifucubepars_msm_table", [
            *one, [msm["roispatial_arcsec"]], [msm["roispectral_steps"] * step], [msm["power"]], [msm["softrad"]]])
        model.ifucubepars_emsm_table = _rows(model, "ifucubepars_emsm_table", [
            *one, [emsm["roispatial_arcsec"]], [emsm["roispectral_steps"] * step], [emsm["scalerad"]]])
        for kind in ("prism", "med", "high"):
            lam, dlam = _multichannel(kind)
            ones = np.ones(lam.size)
            setattr(model, f"ifucubepars_{kind}_msm_wavetable", _rows(model, f"ifucubepars_{kind}_msm_wavetable", [
                lam, msm["roispatial_arcsec"] * ones, msm["roispectral_steps"] * dlam, msm["power"] * ones,
                msm["softrad"] * ones]))
            setattr(model, f"ifucubepars_{kind}_emsm_wavetable", _rows(model, f"ifucubepars_{kind}_emsm_wavetable", [
                lam, emsm["roispatial_arcsec"] * ones, emsm["roispectral_steps"] * dlam, emsm["scalerad"] * ones]))
            setattr(model, f"ifucubepars_{kind}_driz_wavetable", _rows(model, f"ifucubepars_{kind}_driz_wavetable", [lam]))
        model.save(path)
    return Path(path)


def write_extract1d(path: str | Path) -> Path:
    """Write the IFU EXTRACT1D (ASDF) file: aperture and annulus radii in arcsec against wavelength."""
    e = ifu_config()["reference_files"]["extract1d"]
    with dm.Extract1dIFUModel() as model:
        _header(model, "EXTRACT1D", "spec3c simulated NIRSpec IFU extraction apertures")
        model.meta.region_type = "target"
        model.meta.subtract_background = bool(e["subtract_background"])
        model.meta.method = e["method"]
        model.meta.subpixels = int(e["subpixels"])
        f32 = np.float32
        model.data = {
            "wavelength": np.asarray(e["wavelength_um"], f32), "wavelength_units": "micron",
            "radius": np.asarray(e["radius_arcsec"], f32), "radius_units": "arcsec",
            "inner_bkg": np.asarray(e["inner_bkg_arcsec"], f32), "inner_bkg_units": "arcsec",
            "outer_bkg": np.asarray(e["outer_bkg_arcsec"], f32), "outer_bkg_units": "arcsec",
        }
        model.save(path, all_array_storage="inline")  # jwst reads it after closing the file
    return Path(path)


def _cube_profile(sigma: float, grid: np.ndarray, boxes: tuple[float, ...]) -> np.ndarray:
    """1-D Gaussian (``sigma``) convolved with boxcars of widths ``boxes`` (arcsec), sampled on ``grid``."""
    step = grid[1] - grid[0]
    prof = np.exp(-0.5 * (grid / sigma) ** 2)
    for width in boxes:
        n = max(1, int(round(width / step)))
        prof = np.convolve(prof, np.ones(n) / n, mode="same")
    return prof / prof.sum()


def encircled_energy(radius_arcsec: np.ndarray, lam_um: float) -> np.ndarray:
    """Fraction of a point source inside circles of ``radius_arcsec`` around it in a cube.

    The simulator's Gaussian PSF at ``lam_um`` convolved, across the slices,
    with the slice width and the spaxel and, along them, with the detector row
    and the spaxel (the drizzle footprints), integrated on a 0.005" grid.
    """
    sl = ifu_config()["slices"]
    spaxel = ifu_config()["reference_files"]["cubepar"]["spaxelsize_arcsec"]
    step = 0.005
    grid = np.arange(-3.0, 3.0 + step / 2, step)
    sigma = float(psf_sigma_arcsec(np.array([lam_um]))[0])
    across = _cube_profile(sigma, grid, (sl["width_arcsec"], spaxel))
    along = _cube_profile(sigma, grid, (sl["length_arcsec"] / sl["rows_per_slice"], spaxel))
    image = np.outer(along, across)
    r2 = grid[:, None] ** 2 + grid[None, :] ** 2
    return np.array([image[r2 <= r * r].sum() for r in np.atleast_1d(radius_arcsec)])


def write_apcorr(path: str | Path) -> Path:
    """Write the NIRSpec IFU APCORR (ASDF) file: ``1 / encircled_energy`` on a radius x wavelength grid."""
    c = ifu_config()
    a = c["reference_files"]["apcorr"]
    lam = np.asarray(a["wavelength_um"], dtype=np.float64)
    radii = np.asarray(a["radius_arcsec"], dtype=np.float64)
    corr = np.column_stack([1.0 / encircled_energy(radii, wl) for wl in lam])  # (n_radius, n_wave)
    with dm.NrsIfuApcorrModel() as model:
        _header(model, "APCORR", "spec3c simulated NIRSpec IFU aperture corrections")
        model.meta.instrument.grating = c["grating"]
        model.meta.instrument.filter = c["filter"]
        f32 = np.float32
        model.apcorr_table = {
            "grating": c["grating"], "filter": c["filter"],
            "wavelength": lam.astype(f32), "wavelength_units": "micron",
            "radius": np.repeat(radii[:, None], lam.size, axis=1).astype(f32), "radius_units": "arcsec",
            "apcorr": corr.astype(f32), "apcorr_err": (a["relative_error"] * corr).astype(f32),
        }
        model.save(path, all_array_storage="inline")
    return Path(path)


def write_reference_files(paths: IfuReferenceFiles, n_columns: int) -> IfuReferenceFiles:
    """Write CUBEPAR, EXTRACT1D and APCORR for simulated data with ``n_columns`` detector columns."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(ValidationWarning|not in the schema|unrecognized).*")
        write_cubepar(paths.cubepar, n_columns)
        write_extract1d(paths.extract1d)
        write_apcorr(paths.apcorr)
    return paths
