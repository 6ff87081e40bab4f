"""jwst-format SOSS reference files for the simulated data (written with stdatamodels).

* PASTASOSS (``PastasossModel``, ASDF): per order the reference trace points
  ``(x, y)`` at the commanded pupil-wheel position with the rotation pivot and
  the last column (``cutoff``), the wavelength polynomial of the column and
  the pupil-wheel offset (``wavecal_models``: coefficients ordered C00, C10,
  C01, C20, C11, C02, ...; ``scale_extents`` the min-max scaling of x and of
  the offset) and the throughput curve; the wave grid of the wavelength maps.
* SPECPROFILE (``SpecProfileModel``, FITS): per order the normalised spatial
  profile on the subarray, padded by :data:`PADDING` pixels on every side,
  rendered at the simulated data's pupil-wheel position.
* SPECKERNEL (``SpecKernelModel``, FITS): Gaussian spectral kernels (sigma
  :data:`KERNEL_SIGMA_PX` pixels) sampled ``SPECOS`` times per pixel over
  ``2 HALFWIDT + 1`` pixels, one per wavelength of a grid.
* PHOTOM (``NisSossPhotomModel``, FITS): per order the response turning the
  simulated DN/s into ``source_spectrum x`` :data:`PHOTOM_SCALE_MJY` MJy.

They describe exactly the model :mod:`.soss` renders, so jwst 3.0.0 and
spec3c extract the same traces from the same files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from stdatamodels.jwst import datamodels as dm

from .soss import (
    FLUX_SCALE,
    N_COLUMNS,
    OFFSET_EXTENT,
    ORDERS,
    PWCPOS_BOUNDS,
    PWCPOS_CMD,
    SUBARRAYS,
    order_profile,
    reference_trace_y,
    trace_model,
)
from .soss import throughput as order_throughput

__all__ = ["KERNEL_SIGMA_PX", "PADDING", "PHOTOM_SCALE_MJY", "SossReferenceFiles", "write_reference_files"]

PADDING = 10
KERNEL_SIGMA_PX = 0.9
_KERNEL_OS = 6
_KERNEL_HALFWIDTH = 7
#: MJy of the calibrated spectrum where ``source_spectrum`` is 1
PHOTOM_SCALE_MJY = 1.0e-9
_PHOTOM_POINTS = 600
#: the wave grid of the PASTASOSS wavelength maps (as the CRDS file: 0.5-5.5 um, 5001 points)
_WAVEMAP_GRID = (0.5, 5.5, 5001)


@dataclass(frozen=True)
class SossReferenceFiles:
    """Paths of the three SOSS reference files of extract_1d."""

    pastasoss: Path
    specprofile: Path
    speckernel: Path
    photom: Path

    def jwst_overrides(self, photom: bool = True) -> dict[str, dict[str, Any]]:
        """``steps`` parameters pointing calwebb_spec3 (or spec3c) at these files (box extraction)."""
        return {"extract_1d": {"soss_atoca": False, "override_pastasoss": str(self.pastasoss),
                               "override_specprofile": str(self.specprofile),
                               "override_speckernel": str(self.speckernel)},
                "photom": {"override_photom": str(self.photom) if photom else "N/A", "override_area": "N/A"}}


def _header(model: dm.JwstDataModel, reftype: str, description: str) -> None:
    model.meta.reftype = reftype
    model.meta.instrument.name = "NIRISS"
    model.meta.instrument.detector = "NIS"
    model.meta.telescope = "JWST"
    model.meta.exposure.type = "NIS_SOSS"
    model.meta.pedigree = "DUMMY"
    model.meta.author = "spec3c.simulate"
    model.meta.useafter = "2000-01-01T00:00:00"
    model.meta.description = description


def _wavecal_coefficients(order: int) -> np.ndarray:
    """The order's wavelength polynomial in PASTASOSS order (degree 3: C00 C10 C01 C20 C11 C02 C30 C21 C12 C03)."""
    o = ORDERS[order]
    a = list(o.wave_coeffs) + [0.0] * (4 - len(o.wave_coeffs))
    return np.array([a[0], a[1], o.wave_offset_coeff, a[2], 0.0, 0.0, a[3], 0.0, 0.0, 0.0])


def write_pastasoss(path: Path) -> Path:
    model = dm.PastasossModel()
    _header(model, "PASTASOSS", "spec3c simulated NIRISS SOSS trace and wavelength model")
    model.meta.instrument.filter = "CLEAR"
    model.meta.pwcpos_cmd = PWCPOS_CMD
    model.meta.pwcpos_bounds = list(PWCPOS_BOUNDS)
    model.meta.wavemap_wlmin, model.meta.wavemap_wlmax, model.meta.wavemap_nwl = _WAVEMAP_GRID
    model.meta.soss_xdim, model.meta.soss_ydim = N_COLUMNS, 300
    model.meta.subarray_ymin = N_COLUMNS - SUBARRAYS["SUBSTRIP256"][0]
    model.meta.order2_separation_cutoff = [0.77, 0.95]
    lam = np.linspace(0.5, 3.0, 501)
    traces, wavecals, throughputs = [], [], []
    for order, o in ORDERS.items():
        x = np.arange(o.cutoff, dtype=float)
        traces.append({"spectral_order": order, "pivot_x": o.pivot[0], "pivot_y": o.pivot[1],
                       "trace": np.column_stack([x, reference_trace_y(o, x)]), "oversampling": 1, "cutoff": o.cutoff})
        extents = np.array([[0.0, OFFSET_EXTENT[0]], [N_COLUMNS - 1.0, OFFSET_EXTENT[1]]])
        wavecals.append({"spectral_order": order, "polynomial_degree": 3,
                         "coefficients": _wavecal_coefficients(order),
                         "coefficient_labels": "C00 C10 C01 C20 C11 C02 C30 C21 C12 C03",
                         "scale_extents": extents})
        t = order_throughput(order, lam)
        t[[0, -1]] = 0.0
        throughputs.append({"spectral_order": order, "wavelength": lam.copy(), "throughput": t})
    model.traces, model.wavecal_models, model.throughputs = traces, wavecals, throughputs
    model.validate()
    model.save(path)
    return path


def write_specprofile(path: Path, pwcpos: float, subarray: str) -> Path:
    model = dm.SpecProfileModel()
    _header(model, "SPECPROFILE", "spec3c simulated NIRISS SOSS spatial profiles")
    model.meta.instrument.filter = "CLEAR"
    model.meta.subarray.name = subarray
    ny = SUBARRAYS[subarray][0]
    rows = np.arange(-PADDING, ny + PADDING)
    for order in ORDERS:
        prof = np.pad(order_profile(order, pwcpos, subarray, rows=rows), ((0, 0), (PADDING, PADDING)), mode="edge")
        model.profile.append({"data": prof.astype(np.float32), "order": order, "oversampling": 1,
                              "padding": PADDING})
    model.save(path)
    return path


def write_speckernel(path: Path) -> Path:
    n_pix = 2 * _KERNEL_HALFWIDTH + 1
    pixels = np.linspace(-(n_pix // 2), n_pix // 2, _KERNEL_OS * n_pix - (_KERNEL_OS - 1))
    centres = np.linspace(0.5, 5.5, 501)
    kern = np.exp(-0.5 * (pixels / KERNEL_SIGMA_PX) ** 2)
    kern /= kern.sum()
    model = dm.SpecKernelModel(wavelengths=np.repeat(centres[None, :], len(pixels), 0).astype(np.float32),
                               kernels=np.repeat(kern[:, None], len(centres), 1).astype(np.float32))
    _header(model, "SPECKERNEL", "spec3c simulated NIRISS SOSS spectral kernels")
    model.meta.halfwidth, model.meta.spectral_oversampling = _KERNEL_HALFWIDTH, _KERNEL_OS
    model.meta.nwave, model.meta.wavemin, model.meta.wavemax = len(centres), 0.5, 5.5
    model.meta.centroid_index = len(pixels) // 2
    model.save(path)
    return path


def write_photom(path: Path, pwcpos: float) -> Path:
    """PHOTOM rows (CLEAR, GR700XD, per order) turning the simulated DN/s back into
    ``source_spectrum(lambda) x PHOTOM_SCALE_MJY`` MJy: ``1 / (FLUX_SCALE T(lambda) dispersion(lambda))``."""
    n = _PHOTOM_POINTS
    dtype = [("filter", "S12"), ("pupil", "S15"), ("order", "<i2"), ("photmj", "<f4"), ("uncertainty", "<f4"),
             ("nelem", "<i2"), ("wavelength", "<f4", (n,)), ("relresponse", "<f4", (n,)),
             ("reluncertainty", "<f4", (n,))]
    table = np.zeros(len(ORDERS), dtype=dtype)
    for k, order in enumerate(ORDERS):
        t = trace_model(order, pwcpos)
        lam = np.linspace(t.wavelength.min(), t.wavelength.max(), n)
        x = np.interp(lam, t.wavelength[::-1], t.x[::-1].astype(float))
        dispersion = np.abs(np.interp(x, t.x, np.gradient(t.wavelength))) / 1e-3
        relresponse = 1.0 / (order_throughput(order, lam) * dispersion)
        norm = float(np.median(relresponse))
        table[k] = ("CLEAR", "GR700XD", order, PHOTOM_SCALE_MJY / FLUX_SCALE * norm, 0.0, n, lam,
                    relresponse / norm, np.zeros(n))
    model = dm.NisSossPhotomModel(phot_table=table)
    _header(model, "PHOTOM", "spec3c simulated NIRISS SOSS spectral response")
    model.save(path)
    return path


def write_reference_files(folder: Path, pwcpos: float, subarray: str) -> SossReferenceFiles:
    """Write the four files into ``folder`` (``soss_pastasoss.asdf``, ``soss_specprofile.fits``,
    ``soss_speckernel.fits``, ``soss_photom.fits``)."""
    return SossReferenceFiles(write_pastasoss(folder / "soss_pastasoss.asdf"),
                              write_specprofile(folder / "soss_specprofile.fits", pwcpos, subarray),
                              write_speckernel(folder / "soss_speckernel.fits"),
                              write_photom(folder / "soss_photom.fits", pwcpos))
