"""Box-extraction apertures for slit spectra (ALGORITHMS.md §12.1–12.2).

Reads a jwst-format EXTRACT1D JSON reference, resolves the parameters the
way ``get_extract_parameters`` does, and builds the fractional-pixel source
and background profiles (dispersion along x).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

ANY = "ANY"
#: modes whose point sources are centred on the WCS source position by default


@dataclass(frozen=True)
class Aperture:
    """Resolved extraction parameters of one spectrum (pixel indices, inclusive)."""

    xstart: float
    xstop: float
    ystart: float
    ystop: float
    extract_width: float | None = None
    src_coeff: list[list[float]] | None = None
    bkg_coeff: list[list[float]] | None = None
    subtract_background: bool = False
    bkg_fit: str | None = None
    bkg_order: int = 0
    smoothing_length: int = 0
    independent_var: str = "pixel"
    use_source_posn: bool = False
    position_offset: float = 0.0

    def shifted(self, offset: float) -> Aperture:
        """The aperture moved by ``offset`` pixels across the dispersion."""
        def shift(coeffs: list[list[float]] | None) -> list[list[float]] | None:
            return None if coeffs is None else [[c[0] + offset, *c[1:]] for c in coeffs]

        return replace(self, ystart=self.ystart + offset, ystop=self.ystop + offset,
                       src_coeff=shift(self.src_coeff), bkg_coeff=shift(self.bkg_coeff))


def read_extract1d(path: str | Path) -> dict[str, Any]:
    """Contents of a jwst EXTRACT1D JSON reference file."""
    path = Path(path)
    try:
        ref = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(path, f"not a readable EXTRACT1D JSON file: {exc}") from exc
    if not isinstance(ref, dict) or not isinstance(ref.get("apertures"), list):
        raise InputError(path, "EXTRACT1D JSON needs an 'apertures' list")
    return ref


def _smoothing(value: Any) -> int:
    length = int(round(float(value or 0)))
    if length and length < 3:
        return 0
    return length - 1 if length and length % 2 == 0 else length


def resolve_aperture(ref: dict[str, Any] | None, shape: tuple[int, int], slit_name: str, center_on_source: bool,
                     overrides: dict[str, Any]) -> Aperture | None:
    """The aperture for one spectrum, or None when the reference has no match.

    ``overrides`` holds the step parameters (None = not given): subtract_background,
    use_source_posn, position_offset, bkg_fit, bkg_order, smoothing_length.
    ``center_on_source`` is the mode's default of ``use_source_posn`` when neither sets it.
    """
    ny, nx = shape
    if ref is None:
        return Aperture(0, nx - 1, 0, ny - 1)
    for aper in ref["apertures"]:
        if aper.get("id") in (None, "dummy") or aper.get("region_type", "target") != "target":
            continue
        if aper["id"] not in (slit_name, ANY) and slit_name != ANY:
            continue
        if aper.get("spectral_order", 1) not in (1, ANY):
            continue
        return _from_reference(aper, shape, center_on_source, overrides)
    return None


def _from_reference(aper: dict[str, Any], shape: tuple[int, int], center_on_source: bool,
                    overrides: dict[str, Any]) -> Aperture:
    ny, nx = shape
    subtract = overrides.get("subtract_background")
    if aper.get("bkg_coeff") is not None and subtract is None:
        subtract = True
    bkg_fit, bkg_order = overrides.get("bkg_fit"), overrides.get("bkg_order")
    if subtract:
        if bkg_fit == "mean":
            bkg_fit, bkg_order = "poly", 0
        bkg_fit = bkg_fit or aper.get("bkg_fit", "poly")
    else:
        bkg_fit = None
    use_posn = overrides.get("use_source_posn")
    if use_posn is None:
        use_posn = aper.get("use_source_posn")
    if use_posn is None:
        use_posn = center_on_source
    smoothing = overrides.get("smoothing_length")
    return Aperture(
        xstart=aper.get("xstart", 0), xstop=aper.get("xstop", nx - 1),
        ystart=aper.get("ystart", 0), ystop=aper.get("ystop", ny - 1),
        extract_width=aper.get("extract_width"),
        src_coeff=aper.get("src_coeff"), bkg_coeff=aper.get("bkg_coeff"),
        subtract_background=bool(subtract), bkg_fit=bkg_fit,
        bkg_order=int(aper.get("bkg_order", 0) if bkg_order is None else bkg_order),
        smoothing_length=_smoothing(aper.get("smoothing_length", 0) if smoothing is None else smoothing),
        independent_var=str(aper.get("independent_var", "pixel")).lower(),
        use_source_posn=bool(use_posn), position_offset=float(overrides.get("position_offset") or 0.0),
    )


def set_weights(profile: np.ndarray, idx: np.ndarray, lower: Any, upper: Any, allow_partial: bool = True) -> None:
    """Weight 1 inside [lower, upper] (inclusive), fractional at the edges; in place."""
    profile[(idx >= lower) & (idx <= upper)] = 1.0
    if not allow_partial:
        return
    for partial in (idx - lower + 1, upper - idx + 1):
        test = (partial > 0) & (partial < 1) & (profile < partial)
        profile[test] = np.broadcast_to(partial, profile.shape)[test]


def _poly(coeffs: list[float]):  # type: ignore[no-untyped-def]
    return np.polynomial.Polynomial(coeffs)


def _coefficient_profile(profile: np.ndarray, coeffs: list[list[float]], ival: np.ndarray, yidx: np.ndarray,
                         allow_partial: bool) -> tuple[float, float]:
    if len(coeffs) % 2:
        raise ValueError("src_coeff/bkg_coeff must alternate lower and upper limit polynomials")
    lows, highs = [], []
    for lower, upper in zip(coeffs[::2], coeffs[1::2], strict=True):
        lo, hi = _poly(lower)(ival) + 0.5, _poly(upper)(ival) - 0.5
        set_weights(profile, yidx, lo, hi, allow_partial)
        lows.append(float(np.mean(lo)))
        highs.append(float(np.mean(hi)))
    return min(lows), max(highs)


def box_profile(shape: tuple[int, int], ap: Aperture, wavelength: np.ndarray, trace: np.ndarray | None = None,
                background: bool = False) -> tuple[np.ndarray, float, float]:
    """Aperture weights ``(ny, nx)`` float64 and the mean (lower, upper) limits.

    Priority (as the reference): coefficients, trace ± width, centre of
    start/stop ± width, start/stop, whole array.
    """
    yidx, xidx = np.mgrid[: shape[0], : shape[1]]
    profile = np.zeros(shape)
    coeffs = ap.bkg_coeff if background else ap.src_coeff
    allow_partial = not (background and ap.bkg_fit == "median")
    if coeffs is not None:
        ival = wavelength if ap.independent_var.startswith("wavelength") else xidx.astype(np.float32)
        lower, upper = _coefficient_profile(profile, coeffs, ival, yidx, allow_partial)
    elif ap.extract_width is not None and trace is not None:
        lo = np.broadcast_to(np.asarray(trace, dtype=float)[None, :], shape) - (ap.extract_width - 1.0) / 2.0
        set_weights(profile, yidx, lo, lo + ap.extract_width - 1)
        lower, upper = float(np.nanmean(lo)), float(np.nanmean(lo)) + ap.extract_width - 1
    elif ap.extract_width is not None:
        lower = (ap.ystart + ap.ystop) / 2.0 - (ap.extract_width - 1.0) / 2.0
        upper = lower + ap.extract_width - 1
        set_weights(profile, yidx, lower, upper)
    else:
        lower, upper = float(ap.ystart), float(ap.ystop)
        set_weights(profile, yidx, lower, upper)
    profile[:, : int(np.ceil(ap.xstart))] = 0  # dispersion limits only
    profile[:, int(np.floor(ap.xstop)) + 1:] = 0
    return profile, lower, upper


def aperture_center(profile: np.ndarray, middle_pix: int | None = None) -> tuple[float, float]:
    """Profile-weighted (row, column) centre; at column ``middle_pix`` if given."""
    weights = np.where(profile > 0, profile, 0.0)
    yidx, xidx = np.mgrid[: profile.shape[0], : profile.shape[1]]
    if middle_pix is not None:
        rows, w = yidx[:, middle_pix], weights[:, middle_pix]
    else:
        rows, w = yidx, weights
    if np.sum(w) == 0:
        w = np.ones_like(w)
    row = float(np.average(rows, weights=w))
    col = float(middle_pix) if middle_pix is not None else float(np.average(xidx, weights=w))
    return row, col
