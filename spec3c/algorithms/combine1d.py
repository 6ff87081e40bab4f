"""combine_1d (ALGORITHMS.md §14): weighted combination of 1-D spectra.

Behaviour follows the reference (jwst 3.0.0 ``combine_1d/combine1d.py``):

* :func:`output_wavelengths` builds the output grid from the union of the
  input wavelengths (the reference's ``count_input`` + ``compute_output_wl``);
* :class:`Combiner` is the accumulator: :meth:`Combiner.add` maps every usable
  input pixel to the nearest output element, :meth:`Combiner.finalize` does
  the optional MAD clipping and the weighted means;
* :func:`combine` drops unusable spectra, groups by spectral order and runs
  both for every order.

Reference details reproduced on purpose:

* the pixel an input wavelength maps to is the linear interpolation of the
  output pixel index at that wavelength (the inverse of the output spectral
  gwcs, a ``Tabular1D`` evaluated by ``scipy.interpolate.interpn``: the same
  formula ``i·(1 − t) + (i + 1)·t``), NaN outside ``[λ_0, λ_last]``, rounded
  half to even (Python ``round``);
* within one input spectrum a later pixel mapping to an output element
  already filled overwrites it (the count stays 1), while every mapped pixel's
  DQ is OR-ed into the output DQ (DQ is not undone by clipping);
* the clipping compares ``flux·w`` with its per-element median over spectra
  (entries with no input or ``flux·w == 0`` ignored for the median) using one
  global, unscaled median absolute deviation; elements whose comparison
  involves NaN are kept;
* spectra of one element take no part in the grid (but are accumulated).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..dqflags import DO_NOT_USE

__all__ = [
    "CLUMP_CUTOFF",
    "COLUMNS",
    "CombinedSpectrum",
    "Combiner",
    "InputSpectrum",
    "combine",
    "is_strictly_monotonic",
    "output_wavelengths",
    "rejection_reason",
]

#: a window is a clump when its std is below this fraction of its neighbours' mean std
CLUMP_CUTOFF = 0.8

#: c1d ``COMBINE1D`` columns, in table order, with their dtypes
COLUMNS: dict[str, str] = {
    "WAVELENGTH": "f8",
    "FLUX": "f8",
    "ERROR": "f8",
    "SURF_BRIGHT": "f8",
    "SB_ERROR": "f8",
    "DQ": "u4",
    "WEIGHT": "f8",
    "N_INPUT": "f8",
}


def _vector(name: str, values: object, dtype: type) -> np.ndarray:
    arr: np.ndarray = np.ascontiguousarray(values, dtype=dtype)  # native byte order (FITS data is big-endian)
    if arr.ndim != 1:
        raise ValueError(f"InputSpectrum.{name}: expected a 1-D array, got shape {arr.shape}")
    return arr


@dataclass(frozen=True)
class InputSpectrum:
    """One input spectrum (a row set of an x1d ``EXTRACT1D`` table).

    Arrays are ``(n,)``: ``wavelength`` (µm), ``flux``, ``error``,
    ``surf_bright``, ``sb_error`` float64 and ``dq`` uint32 (coerced on
    construction).  ``weight`` is the spectrum's scalar weight (exposure
    time, integration time or 1).
    """

    wavelength: np.ndarray
    flux: np.ndarray
    error: np.ndarray
    surf_bright: np.ndarray
    sb_error: np.ndarray
    dq: np.ndarray
    weight: float
    spectral_order: int = 1

    def __post_init__(self) -> None:
        n = None
        for name in ("wavelength", "flux", "error", "surf_bright", "sb_error", "dq"):
            arr = _vector(name, getattr(self, name), np.uint32 if name == "dq" else np.float64)
            if n is not None and arr.shape[0] != n:
                raise ValueError(f"InputSpectrum.{name}: length {arr.shape[0]} != wavelength length {n}")
            n = arr.shape[0]
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "weight", float(self.weight))
        object.__setattr__(self, "spectral_order", int(self.spectral_order))

    def __len__(self) -> int:
        return int(self.wavelength.shape[0])


@dataclass(frozen=True)
class CombinedSpectrum:
    """The combined spectrum of one order (a ``COMBINE1D`` table), arrays ``(m,)``.

    ``dq`` is uint32, everything else float64; ``n_input`` is the number of
    input spectra that contributed to each element.
    """

    wavelength: np.ndarray
    flux: np.ndarray
    error: np.ndarray
    surf_bright: np.ndarray
    sb_error: np.ndarray
    dq: np.ndarray
    weight: np.ndarray
    n_input: np.ndarray

    def __len__(self) -> int:
        return int(self.wavelength.shape[0])

    def column(self, name: str) -> np.ndarray:
        """The array of the ``COMBINE1D`` column ``name`` (e.g. ``"FLUX"``)."""
        if name not in COLUMNS:
            raise KeyError(f"unknown COMBINE1D column {name!r}")
        return getattr(self, name.lower())

    def table(self) -> np.ndarray:
        """The columns as a structured array in ``COMBINE1D`` order (:data:`COLUMNS`)."""
        out = np.zeros(len(self), dtype=list(COLUMNS.items()))
        for name in COLUMNS:
            out[name] = self.column(name)
        return out


def is_strictly_monotonic(wavelength: np.ndarray) -> bool:
    """True if ``wavelength`` strictly increases or strictly decreases (NaN: False).

    Fewer than two elements count as monotonic (as the reference's ``check_monotonic``).
    """
    if len(wavelength) < 2:
        return True
    step = np.diff(wavelength)
    return bool(np.all(step > 0) or np.all(step < 0))


def rejection_reason(spectrum: InputSpectrum) -> str | None:
    """Why :func:`combine` drops ``spectrum`` (None: it is used)."""
    if not np.any(np.isfinite(spectrum.flux)):
        return "no valid flux values"
    if not is_strictly_monotonic(spectrum.wavelength):
        return "wavelengths are not strictly monotonic"
    return None


# ---------------------------------------------------------------------------------------
# output wavelength grid


def _coverage(wl: np.ndarray, spectra: Iterable[InputSpectrum]) -> np.ndarray:
    """Number of spectra whose pixel-edge span ``[lo, hi)`` contains each of ``wl``."""
    n = np.zeros(wl.shape[0], dtype=np.int64)
    for spec in spectra:
        w = spec.wavelength
        if len(w) < 2:
            continue
        if w[1] > w[0]:
            lo, hi = w[0] - 0.5 * (w[1] - w[0]), w[-1] + 0.5 * (w[-1] - w[-2])
        elif w[1] < w[0]:
            lo, hi = w[-1] - 0.5 * (w[-2] - w[-1]), w[0] + 0.5 * (w[0] - w[1])
        else:
            continue  # the reference skips a spectrum whose first two wavelengths are equal
        n += (wl >= lo) & ~(wl >= hi)
    return n


#: wavelengths copied per block of windows in _window_stats (each row is reduced alone: any block size
#: gives the same values); 100 integrations of 2048 pixels would otherwise copy 160 MB
_WINDOW_CHUNK = 1 << 20


def _window_stats(wl: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """std and mean of the ``n[k]`` sorted wavelengths around each ``k``.

    The window is ``wl[k1 - n : k1]`` with ``k1 = k + n//2 + 1``; windows that
    do not fit keep the reference's flags (std 9999, mean -99).  Computed per
    distinct ``n`` on contiguous ``(m, n)`` copies, whose row reductions are
    the same as the reference's 1-D ``std()``/``mean()`` of each slice.
    """
    nwl = wl.shape[0]
    sigma = np.full(nwl, 9999.0)
    mean = np.full(nwl, -99.0)
    single = n == 1
    sigma[single] = 0.0
    mean[single] = wl[single]
    for m in np.unique(n[n > 1]):
        width = int(m)
        ks = np.flatnonzero(n == m)
        k0 = ks + width // 2 + 1 - width
        fits = (k0 >= 0) & (k0 + width <= nwl)
        ks, k0 = ks[fits], k0[fits]
        rows = max(1, _WINDOW_CHUNK // width)  # (rows, width) copies at a time: bounded memory
        for start in range(0, ks.size, rows):
            part = slice(start, start + rows)
            windows = wl[k0[part, None] + np.arange(width)]
            sigma[ks[part]] = windows.std(axis=1)
            mean[ks[part]] = windows.mean(axis=1)
    return sigma, mean


def _fill_gaps(wl: np.ndarray, n: np.ndarray, out: np.ndarray) -> None:
    """Where no clump was found near ``i``, average ``wl[i : i + n]`` (in place, sequential)."""
    nwl = wl.shape[0]
    i = 0
    while i < nwl:
        step = int(n[i])
        if i + step // 2 < nwl:
            step = int(n[i + step // 2])
            if i + step < nwl:
                low, high = max(i - 1, 0), min(i + step + 1, nwl - 1)
                if out[low:high].max() <= 0.0:
                    out[i] = wl[i : i + step].mean()
        i += step


def _grid_from_sorted(wl: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The reference's ``compute_output_wl`` (unsorted result, positive values only)."""
    nwl = wl.shape[0]
    sigma, mean = _window_stats(wl, n)
    out = np.full(nwl, -99.0)
    exact = sigma == 0.0
    out[exact] = mean[exact]
    if nwl > 1:
        neighbours = np.empty(nwl)
        neighbours[0] = CLUMP_CUTOFF * sigma[1]
        neighbours[-1] = CLUMP_CUTOFF * sigma[nwl - 2]
        neighbours[1:-1] = CLUMP_CUTOFF * (sigma[:-2] + sigma[2:]) / 2.0
        clump = (sigma > 0.0) & (sigma < neighbours)
        out[clump] = mean[clump]
    _fill_gaps(wl, n, out)
    return out[out > 0.0].copy()


def output_wavelengths(spectra: Sequence[InputSpectrum]) -> np.ndarray:
    """Output wavelength grid of a group of spectra, ``(m,)`` float64, sorted.

    All wavelengths of the spectra with at least two elements are sorted; a
    sorted position ``k`` covered by ``n`` spectra (pixel-edge spans) is a
    clump when the std of the ``n`` wavelengths around it is 0 or below
    :data:`CLUMP_CUTOFF` × the mean std of the two adjacent windows, and the
    window mean becomes an output wavelength; stretches without clumps are
    filled with means of consecutive groups of ``n`` input wavelengths.

    Raises
    ------
    ValueError
        If no spectrum has two or more elements, or a wavelength is covered by
        no spectrum (only possible for non-monotonic or NaN wavelengths).
    """
    arrays = [s.wavelength for s in spectra if len(s) > 1]
    if not arrays:
        raise ValueError("output_wavelengths: no input spectrum has more than one element")
    wl = np.sort(np.concatenate(arrays))
    n = _coverage(wl, spectra)
    if np.any(n <= 0):
        raise ValueError("output_wavelengths: some input wavelengths are covered by no spectrum")
    return np.sort(_grid_from_sorted(wl, n))


# ---------------------------------------------------------------------------------------
# accumulation


def _output_pixel(grid: np.ndarray, wavelength: np.ndarray) -> np.ndarray:
    """Fractional output pixel of each wavelength: linear in the ``grid`` index, NaN outside.

    The arithmetic is that of ``scipy.interpolate.interpn(method="linear")``,
    which evaluates the reference's inverse spectral WCS.
    """
    x = wavelength
    nout = grid.shape[0]
    pix = np.full(x.shape, np.nan)
    inside = (x >= grid[0]) & (x <= grid[-1])
    if nout == 1:
        pix[inside] = 0.0
        return pix
    xi = x[inside]
    i = np.clip(np.searchsorted(grid, xi, side="right") - 1, 0, nout - 2)
    t = (xi - grid[i]) / (grid[i + 1] - grid[i])
    lower = i.astype(np.float64)
    pix[inside] = lower * (1 - t) + (lower + 1.0) * t
    return pix


class Combiner:
    """Accumulate up to ``n_inputs`` spectra on a fixed output grid, then combine them.

    Parameters
    ----------
    wavelengths : ndarray, (m,) float
        Output wavelengths, strictly increasing (:func:`output_wavelengths`).
    n_inputs : int
        Number of spectra that will be added (one row of storage each: the
        clipping needs every input's value per element).
    """

    def __init__(self, wavelengths: np.ndarray, n_inputs: int) -> None:
        grid = np.ascontiguousarray(wavelengths, dtype=np.float64)
        if grid.ndim != 1 or grid.shape[0] == 0:
            raise ValueError(f"Combiner: wavelengths must be a non-empty 1-D array, got shape {grid.shape}")
        if np.any(~(np.diff(grid) > 0)):
            raise ValueError("Combiner: wavelengths must be strictly increasing")
        if n_inputs < 1:
            raise ValueError(f"Combiner: n_inputs must be >= 1, got {n_inputs}")
        shape = (int(n_inputs), grid.shape[0])
        self.wavelength = grid
        self.n_inputs = int(n_inputs)
        self.n_added = 0
        self._dq = np.zeros(grid.shape[0], dtype=np.uint32)
        self._planes = {name: np.zeros(shape) for name in ("flux", "error", "surf_bright", "sb_error", "weight", "count")}
        self.n_unmapped = 0  # usable input pixels outside the output grid (NaN pixel number)

    def add(self, spectrum: InputSpectrum) -> None:
        """Put ``spectrum``'s usable pixels (not DO_NOT_USE, finite-or-inf flux) on the grid."""
        if self.n_added >= self.n_inputs:
            raise ValueError(f"Combiner.add: already holds n_inputs={self.n_inputs} spectra")
        row = self.n_added
        self.n_added += 1
        pix = _output_pixel(self.wavelength, spectrum.wavelength)
        usable = ((spectrum.dq & np.uint32(DO_NOT_USE)) == 0) & ~np.isnan(spectrum.flux)
        self.n_unmapped += int(np.count_nonzero(usable & np.isnan(pix)))
        src = np.flatnonzero(usable & ~np.isnan(pix))
        if src.size == 0:
            return
        k = np.rint(pix[src]).astype(np.intp)  # half to even, as Python round()
        inside = (k >= 0) & (k < self.wavelength.shape[0])
        src, k = src[inside], k[inside]
        np.bitwise_or.at(self._dq, k, spectrum.dq[src])
        # the last input pixel mapped to an element wins, as in the reference's loop
        k_rev, src_rev = k[::-1], src[::-1]
        k_out, first = np.unique(k_rev, return_index=True)
        src = src_rev[first]
        p = self._planes
        p["flux"][row, k_out] = spectrum.flux[src]
        p["error"][row, k_out] = spectrum.error[src]
        p["surf_bright"][row, k_out] = spectrum.surf_bright[src]
        p["sb_error"][row, k_out] = spectrum.sb_error[src]
        p["weight"][row, k_out] = spectrum.weight
        p["count"][row, k_out] = 1.0

    def finalize(self, sigma_clip: float | None = None) -> CombinedSpectrum:
        """Weighted means of what was added; elements no input reached are dropped.

        ``FLUX = Σ f·w / Σ w``, ``ERROR = sqrt(Σ (e·w)²) / Σ w`` (same for the
        surface brightness), ``WEIGHT = Σ w``, ``N_INPUT`` = number of
        contributing spectra; NaN terms are ignored and ``Σ w = 0`` divides by 1.
        ``sigma_clip`` (None: no clipping) rejects entries with
        ``|f·w − median| > sigma_clip × MAD`` first.
        """
        p = {name: plane.copy() for name, plane in self._planes.items()}
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
            if sigma_clip is not None:
                _clip(p, float(sigma_clip))
            weight = p["weight"]
            sum_weight = np.nansum(weight, axis=0)
            divisor = np.where(sum_weight > 0.0, sum_weight, 1.0)
            flux = np.nansum(p["flux"] * weight, axis=0) / divisor
            error = np.sqrt(np.nansum((p["error"] * weight) ** 2, axis=0)) / divisor
            surf_bright = np.nansum(p["surf_bright"] * weight, axis=0) / divisor
            sb_error = np.sqrt(np.nansum((p["sb_error"] * weight) ** 2, axis=0)) / divisor
            count = np.nansum(p["count"], axis=0)
        keep = count > 0.0
        return CombinedSpectrum(
            wavelength=self.wavelength[keep].copy(),
            flux=flux[keep],
            error=error[keep],
            surf_bright=surf_bright[keep],
            sb_error=sb_error[keep],
            dq=self._dq[keep].copy(),
            weight=sum_weight[keep],
            n_input=count[keep],
        )


def _clip(p: dict[str, np.ndarray], sigma_clip: float) -> None:
    """The reference's MAD clipping of ``flux·weight`` (in place on the planes)."""
    weighted = p["flux"] * p["weight"]
    masked = weighted.copy()
    masked[(p["count"] < 1) | (masked == 0.0)] = np.nan
    median = np.nanmedian(masked, axis=0)
    mad = np.nanmedian(np.abs(masked - median))
    clipped = np.abs(weighted - median) > sigma_clip * mad
    for name in ("flux", "error", "surf_bright", "sb_error"):
        p[name][clipped] = np.nan
    p["count"][clipped] = 0.0
    p["weight"][clipped] = 0.0


def combine(spectra: Iterable[InputSpectrum], sigma_clip: float | None = None) -> dict[int, CombinedSpectrum]:
    """Combine spectra per spectral order.

    Spectra with no finite flux or non-strictly-monotonic wavelengths are
    dropped (:func:`rejection_reason`); orders none of whose spectra has two
    or more elements are left out (the reference fails on them).  Orders
    keep the order of first appearance.
    """
    groups: dict[int, list[InputSpectrum]] = {}
    for spec in spectra:
        if rejection_reason(spec) is None:
            groups.setdefault(spec.spectral_order, []).append(spec)
    out: dict[int, CombinedSpectrum] = {}
    for order, group in groups.items():
        if not any(len(s) > 1 for s in group):
            continue
        combiner = Combiner(output_wavelengths(group), len(group))
        for spec in group:
            combiner.add(spec)
        out[order] = combiner.finalize(sigma_clip)
    return out
