"""master_background, spec3 flavour (ALGORITHMS.md §6): arrays only.

* :func:`master_spectrum` combines the background members' 1-D spectra
  (combine_1d with exposure-time weights, §14), after copying the side-band
  BACKGROUND column into SURF_BRIGHT for nodded backgrounds (``BKGDTARG``
  false), then applies the optional running median;
* :func:`expand` evaluates the master spectrum at every science pixel's
  stored wavelength (linear interpolation, 0 and DO_NOT_USE outside the
  table's range, as the reference);
* :func:`fs_point_scale` is the NIRSpec fixed-slit point-source factor
  ``(pathloss_u/pathloss_p)·(flat_u/flat_p)·(photom_p/photom_u)``.

The subtraction itself (``sci -= bkg``, ``dq |= mask``; ERR and variances
untouched, as the reference) is done by the step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..dqflags import DO_NOT_USE
from .combine1d import CombinedSpectrum, InputSpectrum, combine

__all__ = ["BackgroundSpectrum", "expand", "expand_ifu", "fs_point_scale", "ifu_point_scale", "master_spectrum",
           "odd_kernel"]

#: planes the fixed-slit point-source factor needs
FS_POINT_PLANES = ("pathloss_point", "pathloss_uniform", "flatfield_point", "flatfield_uniform",
                   "photom_point", "photom_uniform")


@dataclass(frozen=True)
class BackgroundSpectrum:
    """One background member's spectrum (an x1d ``EXTRACT1D`` table) and what weighs it."""

    columns: Mapping[str, np.ndarray]  # upper-case spectable columns
    exposure_time: float
    bkgdtarg: bool  # a dedicated background target (False: a nod of the science target)
    ifu_extended: bool = False  # an IFU background (modes.registry.is_ifu_extended): use BACKGROUND

    def combined_input(self) -> InputSpectrum:
        """The combine_1d input, with BACKGROUND as SURF_BRIGHT where the reference copies it."""
        col = self.columns
        n = len(col["WAVELENGTH"])

        def get(name: str) -> np.ndarray:
            return np.asarray(col[name], dtype=float) if name in col else np.zeros(n)

        use_background = (not self.bkgdtarg) or self.ifu_extended
        return InputSpectrum(
            wavelength=get("WAVELENGTH"),
            flux=get("FLUX"),
            error=get("FLUX_ERROR"),
            surf_bright=get("BACKGROUND") if use_background else get("SURF_BRIGHT"),
            sb_error=get("BKGD_ERROR") if use_background else get("SB_ERROR"),
            dq=np.asarray(col["DQ"], dtype=np.uint32) if "DQ" in col else np.zeros(n, np.uint32),
            weight=self.exposure_time,
            spectral_order=1,
        )


def odd_kernel(median_kernel: int) -> int:
    """The reference's kernel rule: an even width is rounded down to odd."""
    k = int(median_kernel)
    return k - 1 if k % 2 == 0 else k


def master_spectrum(spectra: Sequence[BackgroundSpectrum], median_kernel: int = 1) -> CombinedSpectrum:
    """Combine the background spectra into the master background (order 1)."""
    if not spectra:
        raise ValueError("master_background: no background spectra")
    combined = combine([s.combined_input() for s in spectra])
    if not combined:
        raise ValueError("master_background: no usable background spectrum (all empty or non-monotonic)")
    master = combined[min(combined)]
    kernel = odd_kernel(median_kernel)
    if kernel > 1:
        master = _smoothed(master, kernel)
    return master


def _smoothed(master: CombinedSpectrum, kernel: int) -> CombinedSpectrum:
    """Running median of SURF_BRIGHT and FLUX (scipy ``medfilt``: zero-padded ends, as the reference)."""
    from scipy.signal import medfilt  # imported here: scipy.signal takes ~2.7 s to import

    return CombinedSpectrum(
        wavelength=master.wavelength, flux=medfilt(master.flux, kernel), error=master.error,
        surf_bright=medfilt(master.surf_bright, kernel), sb_error=master.sb_error, dq=master.dq,
        weight=master.weight, n_input=master.n_input,
    )


def sorted_table(wavelength: np.ndarray, surf_bright: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (wavelength, surf_bright) table sorted by wavelength unless strictly increasing."""
    wl, sb = np.asarray(wavelength, dtype=float), np.asarray(surf_bright, dtype=float)
    if not np.all(np.diff(wl) > 0):
        order = np.argsort(wl)
        wl, sb = wl[order], sb[order]
    return wl, sb


def expand(wavelength: np.ndarray, table_wavelength: np.ndarray, table_sb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2-D background at ``wavelength`` and the DO_NOT_USE bits of pixels outside the table.

    NaN wavelengths count as outside (0 and flagged), as the reference.  The
    background is float32, the type the reference's background model holds.
    """
    wl_table, sb = sorted_table(table_wavelength, table_sb)
    wl = np.where(np.isfinite(wavelength), wavelength, -1.0)
    outside = (wl > wl_table.max()) | (wl < wl_table.min())
    wl = np.where(outside, -1.0, wl)
    bkg = np.interp(wl, wl_table, sb, left=0.0, right=0.0)
    return bkg.astype(np.float32), np.where(outside, np.uint32(DO_NOT_USE), np.uint32(0))


def expand_ifu(wavelength: np.ndarray, table_wavelength: np.ndarray, table_sb: np.ndarray) -> np.ndarray:
    """2-D background of an IFU frame at ``wavelength`` (float32).

    As :func:`expand` but no pixel is flagged: the reference's IFU expansion
    (``bkg_for_ifu_image``) leaves 0 outside the table's range and NaN
    wavelengths (off the slices) without touching DQ.
    """
    return expand(wavelength, table_wavelength, table_sb)[0]


def ifu_point_scale(planes: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """NIRSpec IFU point-source background factor ``pathloss_uniform/pathloss_point`` (None without them)."""
    if "pathloss_point" not in planes or "pathloss_uniform" not in planes:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(planes["pathloss_uniform"], np.float32) / np.asarray(planes["pathloss_point"], np.float32)


def fs_point_scale(planes: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """NIRSpec FS point-source background factor, or None when a plane is missing."""
    if any(name not in planes for name in FS_POINT_PLANES):
        return None
    p = {name: np.asarray(planes[name], dtype=np.float32) for name in FS_POINT_PLANES}
    with np.errstate(divide="ignore", invalid="ignore"):  # float32 arithmetic, as the reference
        return ((p["pathloss_uniform"] / p["pathloss_point"]) * (p["flatfield_uniform"] / p["flatfield_point"])
                * (p["photom_point"] / p["photom_uniform"]))
