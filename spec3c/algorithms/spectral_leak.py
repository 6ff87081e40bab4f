"""MIRI MRS spectral leak: second-order channel 1B light in channel 3A (ALGORITHMS.md §13;
jwst 3.0.0 ``spectral_leak``).

Light of channel 1B (sub-band MEDIUM of channel 1) at ``λ/2`` reaches channel 3A
(sub-band SHORT of channel 3) at ``λ`` through the second order.  The MRSPTCORR
reference file tabulates the leaked fraction against wavelength; the leak in
the 3A spectrum is ::

    leak(λ) = interp(λ; 2 λ_1B, F_1B) × interp(λ; λ_ref, frac_leak)

and is subtracted from FLUX (and from RF_FLUX with the 1B RF_FLUX); nothing
else changes.  Which spectra are 1B and 3A: :func:`leak_bands`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["CH1B_WAVELENGTH", "CH3A_WAVELENGTH", "LeakTable", "SpectrumBand", "leak_bands", "leak_flux",
           "read_mrsptcorr"]

#: a MULTIPLE-band spectrum of channel 1 / 3 counts as 1B / 3A when its wavelengths span this (micron)
CH1B_WAVELENGTH = 6.0
CH3A_WAVELENGTH = 12.0


@dataclass(frozen=True)
class LeakTable:
    """The MRSPTCORR ``LEAKCOR`` table: ``wavelength`` (micron) and ``frac_leak``, ``(n,)`` float64."""

    wavelength: np.ndarray
    frac_leak: np.ndarray
    path: str = ""


def read_mrsptcorr(path: str | Path) -> LeakTable:
    """The leak table of a jwst-format MRSPTCORR file (``MirMrsPtCorrModel``)."""
    from stdatamodels.jwst import datamodels as dm

    from ..errors import InputError

    with dm.MirMrsPtCorrModel(str(path)) as model:
        table = model.leakcor_table
        if table is None or len(table) == 0:
            raise InputError(str(path), "the MRSPTCORR file has no LEAKCOR table (leakcor_table)")
        wave = np.array(table["wavelength"], dtype=np.float64)
        frac = np.array(table["frac_leak"], dtype=np.float64)
    return LeakTable(wave, frac, str(path))


@dataclass(frozen=True)
class SpectrumBand:
    """What :func:`leak_bands` reads of one spectrum: CHANNEL (``"1"``, ``"34"``...), BAND
    (``SHORT``/``MEDIUM``/``LONG``/``MULTIPLE``) and its wavelengths ``(n,)``."""

    channel: str
    band: str
    wavelength: np.ndarray

    def _is(self, channel: str, band: str, spans: float) -> bool:
        if channel not in self.channel:
            return False
        if band in self.band:
            return True
        if "MULTIPLE" in self.band:
            wave = np.asarray(self.wavelength, dtype=np.float64)
            return bool(wave.size) and float(np.min(wave)) < spans < float(np.max(wave))
        return False


def leak_bands(spectra: Sequence[SpectrumBand]) -> tuple[int | None, int | None]:
    """Indices of the channel 1B and the channel 3A spectrum (the last of each, as the reference
    picks them), None where there is none.  A spectrum is 1B if its CHANNEL has 1 and its BAND is
    MEDIUM, or MULTIPLE with wavelengths across 6 micron; 3A likewise with 3, SHORT and 12 micron
    (one multi-band spectrum can be both)."""
    ch1b = ch3a = None
    for k, spectrum in enumerate(spectra):
        if spectrum._is("1", "MEDIUM", CH1B_WAVELENGTH):
            ch1b = k
        if spectrum._is("3", "SHORT", CH3A_WAVELENGTH):
            ch3a = k
    return ch1b, ch3a


def leak_flux(wave3a: np.ndarray, wave1b: np.ndarray, flux1b: np.ndarray, table: LeakTable) -> np.ndarray:
    """The leaked flux at the 3A wavelengths.

    Parameters
    ----------
    wave3a : (n,) float
        Wavelengths of the 3A spectrum (micron).
    wave1b, flux1b : (m,) float
        Wavelengths (micron, increasing) and flux of the 1B spectrum.
    table : LeakTable

    Returns
    -------
    (n,) float64
        ``interp(wave3a; 2 wave1b, flux1b) × interp(wave3a; table)`` (``np.interp``: the end values
        beyond either table, NaN where the interpolated flux is NaN).
    """
    wave3a = np.asarray(wave3a, dtype=np.float64)
    second_order = np.interp(wave3a, 2.0 * np.asarray(wave1b, dtype=np.float64), np.asarray(flux1b, dtype=np.float64))
    return second_order * np.interp(wave3a, table.wavelength, table.frac_leak)
