"""spectral_leak: correct the MIRI MRS channel 3A spectrum for second-order channel 1B light
(ALGORITHMS.md §13; jwst 3.0.0 ``SpectralLeakStep``).

Runs after extract_1d on the spectra of the source's cubes (``x1d/<cube>``, in the
order the cubes were built).  When one is channel 1B and one channel 3A
(:func:`spectral_leak.leak_bands`), the 3A spectrum's FLUX and RF_FLUX lose the
leak the MRSPTCORR file (``override_mrsptcorr``) gives, and the spectrum is saved
again marked ``spectral_leak: COMPLETE`` (its ``_x1d`` gets S_SPLEAK = COMPLETE, the
others none, as the reference).  Skipped, as the reference, when a spectrum is of
an EXTENDED source or 1B or 3A is missing (every ``_x1d`` then gets S_SPLEAK =
SKIPPED); skipped with a warning when no MRSPTCORR file is given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..algorithms.spectral_leak import SpectrumBand, leak_bands, leak_flux, read_mrsptcorr
from ..results import COMPLETE, SKIPPED, IfuCube, Spectrum1D, x1d_cube_key
from .context import StepContext, StepDetails, StepOutcome

__all__ = ["CORRECTED", "EXTENDED_REASON", "MISSING_REASON", "cube_band", "run"]

#: the reference's reasons to skip (its log messages)
EXTENDED_REASON = "No spectral leak correction for extended source data"
MISSING_REASON = "CH1B and CH3A were not found. No spectral leak correction"
#: the spectrum meta entry marking the corrected 3A spectrum
CORRECTED = "spectral_leak"


@dataclass(frozen=True)
class SpectralLeakDetails(StepDetails):
    ch1b: str = ""
    ch3a: str = ""
    mrsptcorr: str = ""
    max_leak: float = 0.0  # largest |leak| subtracted from FLUX (Jy)


def cube_band(cube: IfuCube) -> str:
    """BAND of a cube's spectrum: its one sub-band (``SHORT``...), or ``MULTIPLE`` (blended)."""
    bands = list(dict.fromkeys(str(b).upper() for _, b in cube.meta.get("bands", [])))
    return bands[0] if len(bands) == 1 else "MULTIPLE"


def _spectra(ctx: StepContext) -> list[tuple[str, Spectrum1D, SpectrumBand]]:
    out = []
    for name in IfuCube.names(ctx.store, ctx.source):
        try:
            spectrum = Spectrum1D.load(ctx.store, ctx.source, x1d_cube_key(name))
        except KeyError:
            continue
        cube = IfuCube.load(ctx.store, ctx.source, name)
        band = SpectrumBand(str(cube.meta.get("channel") or ""), cube_band(cube), spectrum.columns["WAVELENGTH"])
        out.append((name, spectrum, band))
    return out


def run(ctx: StepContext) -> StepOutcome:
    """The step (module docstring)."""
    if ctx.mode.cube is None or not ctx.mode.cube.per_channel:
        return StepOutcome(SKIPPED, f"{ctx.mode.name}: the spectral leak is a MIRI MRS correction")
    spectra = _spectra(ctx)
    if not spectra:
        return StepOutcome(SKIPPED, "no cube spectrum (extract_1d made none)", warn=True)
    if any(str(s.meta.get("source_type", "")).upper() == "EXTENDED" for _, s, _ in spectra):
        return StepOutcome(SKIPPED, EXTENDED_REASON, warn=True)
    i1b, i3a = leak_bands([band for _, _, band in spectra])
    if i1b is None or i3a is None:
        return StepOutcome(SKIPPED, MISSING_REASON, warn=True)
    path = ctx.config.spectral_leak.override_mrsptcorr
    if not path:
        return StepOutcome(SKIPPED, "no MRSPTCORR file (--steps.spectral_leak.override_mrsptcorr=FILE, or CRDS)",
                           warn=True)
    table = read_mrsptcorr(path)
    (name1b, ch1b, _), (name3a, ch3a, _) = spectra[i1b], spectra[i3a]
    if ch3a.meta.get(CORRECTED) == COMPLETE:  # already corrected (a re-run without a new extraction)
        return StepOutcome(COMPLETE, f"{name3a}: already corrected")
    columns = dict(ch3a.columns)
    wave3a = columns["WAVELENGTH"]
    leak = leak_flux(wave3a, ch1b.columns["WAVELENGTH"], ch1b.columns["FLUX"], table)
    columns["FLUX"] = np.asarray(columns["FLUX"], dtype=np.float64) - leak
    if "RF_FLUX" in columns and "RF_FLUX" in ch1b.columns:
        leak_rf = leak_flux(wave3a, ch1b.columns["WAVELENGTH"], ch1b.columns["RF_FLUX"], table)
        columns["RF_FLUX"] = np.asarray(columns["RF_FLUX"], dtype=np.float64) - leak_rf
    Spectrum1D(columns, {**ch3a.meta, CORRECTED: COMPLETE}).save(ctx.store, ctx.source, x1d_cube_key(name3a))
    finite = np.abs(leak[np.isfinite(leak)])
    largest = float(finite.max()) if finite.size else 0.0
    details = SpectralLeakDetails(name1b, name3a, str(path), largest)
    return StepOutcome(COMPLETE, f"{name3a} corrected for the leak of {name1b} (largest {largest:.3g} Jy)", details)
