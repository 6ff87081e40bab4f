"""combine_1d (ALGORITHMS.md §14): combine a source's extracted spectra per spectral order.

The caller passes the exposure (or integration) time of each spectrum's
exposure; :func:`weight_kind` resolves ``params.exptime_key`` as the
reference's ``check_exptime`` (aliases ``EFFEXPTM``/``EFFINTTM``, ``unit
weight``; anything else means unit weight).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..algorithms.combine1d import CombinedSpectrum, InputSpectrum, combine, rejection_reason
from ..config import Combine1dParams
from ..errors import InputError
from ..results import COMPLETE, SKIPPED, CombinedResult, Spectrum1D
from .context import StepContext, StepDetails, StepOutcome

__all__ = ["SPEC_META_KEYS", "CombineDetails", "combine_spectra", "input_spectrum", "run", "weight_kind"]

#: spectrum attributes the reference copies from the first input of an order to its output
SPEC_META_KEYS = ("source_id", "dispersion_direction", "source_type", "source_ra", "source_dec",
                  "flux_unit", "sb_unit")  # fmt: skip


def weight_kind(exptime_key: str) -> tuple[str, bool]:
    """(``"exposure_time" | "integration_time" | "unit_weight"``, key understood)."""
    key = exptime_key.lower()
    if key.startswith("integration") or key == "effinttm":
        return "integration_time", True
    if key.startswith("exposure") or key == "effexptm":
        return "exposure_time", True
    if key in ("unit_weight", "unit weight"):
        return "unit_weight", True
    return "unit_weight", False


def input_spectrum(spectrum: Spectrum1D, weight: float) -> InputSpectrum:
    """The algorithm's view of an x1d spectrum (FLUX, FLUX_ERROR, SURF_BRIGHT, SB_ERROR, DQ)."""
    table = spectrum.table()  # missing columns read as 0, as an x1d table's defaults would
    order = spectrum.meta.get("spectral_order")
    return InputSpectrum(
        wavelength=table["WAVELENGTH"],
        flux=table["FLUX"],
        error=table["FLUX_ERROR"],
        surf_bright=table["SURF_BRIGHT"],
        sb_error=table["SB_ERROR"],
        dq=table["DQ"],
        weight=weight,
        spectral_order=1 if order is None else int(order),
    )


@dataclass(frozen=True)
class CombineDetails(StepDetails):
    exptime_key: str  # the resolved weight: exposure_time, integration_time or unit_weight
    rejected: dict[int, str]  # input index -> why it was left out


def run(ctx: StepContext) -> StepOutcome:
    """The step: combine the source's per-exposure spectra and save the ``c1d`` result."""
    if not ctx.spectra:
        return StepOutcome(SKIPPED, "no extracted spectra")
    params = ctx.config.combine_1d
    kind, _ = weight_kind(params.exptime_key)
    records = [ctx.inputs.exposures[s.meta["exposure"]] for s in ctx.spectra]
    times = [1.0 if kind == "unit_weight" else _weight_time(r.meta, r.filename, kind) for r in records]
    outcome, combined, spec_meta = combine_spectra(ctx.spectra, times, params)
    if combined is not None:
        CombinedResult(combined, spec_meta).save(ctx.store, ctx.source)
    return outcome


def _weight_time(meta: dict[str, Any], filename: str, kind: str) -> float:
    value = meta.get(f"meta.exposure.{kind}")
    if not value:
        keyword = "EFFEXPTM" if kind == "exposure_time" else "EFFINTTM"
        raise InputError(filename, f"{keyword} (meta.exposure.{kind}) is not set; combine_1d weights by it "
                                   "(or set --steps.combine_1d.exptime_key=unit_weight)")
    return float(value)


def combine_spectra(
    spectra: Sequence[Spectrum1D], exposure_times: Sequence[float], params: Combine1dParams
) -> tuple[StepOutcome, dict[int, CombinedSpectrum] | None, dict[int, dict[str, Any]]]:
    """Combine ``spectra`` (weights: ``exposure_times`` unless unit weight).

    Returns the outcome (with :class:`CombineDetails`), the combined spectrum
    of every order (None when nothing could be combined) and, per order, the
    :data:`SPEC_META_KEYS` of the order's first used input (for the c1d writer).
    """
    if len(exposure_times) != len(spectra):
        raise ValueError(f"combine_1d: {len(spectra)} spectra but {len(exposure_times)} exposure times")
    kind, understood = weight_kind(params.exptime_key)
    inputs = [
        input_spectrum(s, 1.0 if kind == "unit_weight" else float(t))
        for s, t in zip(spectra, exposure_times, strict=True)
    ]
    rejected: dict[int, str] = {}
    spec_meta: dict[int, dict[str, Any]] = {}
    for k, (spec, src) in enumerate(zip(inputs, spectra, strict=True)):
        reason = rejection_reason(spec)
        if reason is not None:
            rejected[k] = reason
        elif spec.spectral_order not in spec_meta:
            spec_meta[spec.spectral_order] = {m: src.meta[m] for m in SPEC_META_KEYS if src.meta.get(m) is not None}
    details = CombineDetails(kind, rejected)
    note = "" if understood else f" (exptime_key {params.exptime_key!r} not understood: unit weight)"
    combined = combine(inputs, sigma_clip=params.sigma_clip)
    if not combined:
        return StepOutcome(SKIPPED, "no valid input spectra" + note, details, warn=True), None, {}
    n_used = len(spectra) - len(rejected)
    message = f"combined {n_used} of {len(spectra)} spectra into {len(combined)} order(s), weight {kind}{note}"
    return StepOutcome(COMPLETE, message, details), combined, {order: spec_meta[order] for order in combined}
