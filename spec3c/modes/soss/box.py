"""SOSS box extraction per integration (the reference's ``soss_atoca=False`` path).

As ``jwst/extract_1d/soss_extract/soss_extract.py`` (``run_extract1d``) and
``soss_boxextract.py`` do it:

* pixels flagged DO_NOT_USE in *every* integration are masked (weight 0);
* a pixel that is NaN in some integrations only is filled there with the
  running median (``min(nints, 9)`` integrations, reflected at the ends) of
  its time series, after the series' own NaNs were replaced by its median
  over integrations; its error is ten times the median error of the pixel;
* each order's aperture is ``soss_width`` pixels centred on the trace, with
  fractional weights at both edges (:func:`box_weights`); the flux of a
  column is ``sum w d``, its error ``sqrt(sum w e^2)`` (w, not w^2, as the
  reference), ``NPIXELS = sum w``; a column without weight is NaN;
* with ATOCA, the other orders' models are subtracted before an order is
  extracted (and with ``soss_bad_pix="model"`` its masked pixels take its own
  model), see :func:`extract_integration`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..._core.median import stack_median
from ..._core.sossbox import soss_box_sums
from ...dqflags import DO_NOT_USE, REFERENCE_PIXEL

__all__ = ["BoxSpectrum", "InfilledCube", "box_weights", "extract_box", "extract_integration", "infill",
           "median_over_time"]

#: integrations of the running median that fills a pixel's bad integrations
INFILL_WINDOW = 9
#: factor on the median error of a filled pixel
INFILL_ERROR_FACTOR = 10.0


@dataclass
class InfilledCube:
    """The science cube as the reference extracts it.

    ``data``: bad pixels of single integrations filled (float32 or float64 as read);
    ``mederr``: per-pixel median error over integrations, inf where the pixel
    is bad in every integration or a reference pixel; ``bad``: where the input
    was NaN (data or error) — those pixels use ``10 mederr`` as their error;
    ``scimask``: DO_NOT_USE in every integration; ``refmask``: REFERENCE_PIXEL
    in the first integration.
    """

    data: np.ndarray
    err: np.ndarray
    bad: np.ndarray
    mederr: np.ndarray
    scimask: np.ndarray
    refmask: np.ndarray

    def error(self, i: int) -> np.ndarray:
        """Integration ``i``'s errors (float64) with its filled pixels at ``10 mederr``."""
        err = self.err[i].astype(np.float64)
        bad = self.bad[i]
        err[bad] = self.mederr[bad] * INFILL_ERROR_FACTOR
        return err


def infill(data: np.ndarray, err: np.ndarray, dq: np.ndarray, overwrite: bool = False) -> InfilledCube:
    """Fill the bad pixels of single integrations as the reference does (see the module docstring);
    ``overwrite``: fill ``data`` itself instead of a copy (the caller's cube is not needed as it was)."""
    scimask = (np.bitwise_and.reduce(dq, axis=0) & DO_NOT_USE) != 0  # DO_NOT_USE in every integration
    refmask = (dq[0] & REFERENCE_PIXEL) != 0
    bad = ~(np.isfinite(data) & np.isfinite(err))
    allbad = np.all(bad, axis=0)
    mederr = median_over_time(err)  # the input's dtype, as the reference's
    mederr[allbad | refmask] = np.inf
    nan_data = ~np.isfinite(data)
    some = np.any(nan_data, axis=0)
    filled = data if overwrite else data.copy()
    if some.any():
        series = data[:, some]  # (nints, npix): only the pixels that need it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(series, axis=0)
        median[allbad[some]] = 0.0
        series = np.where(np.isfinite(series), series, median[None, :])
        window = min(data.shape[0], INFILL_WINDOW)
        running = ndimage.median_filter(series, size=(window, 1), mode="reflect")
        filled[:, some] = np.where(nan_data[:, some], running, filled[:, some])
    return InfilledCube(filled, err, bad, mederr, scimask, refmask)


def median_over_time(cube: np.ndarray) -> np.ndarray:
    """``np.nanmedian(cube, axis=0)``: the same values, from the compiled stack median (2 threads; the
    mean of the two middle values rounded once, as numpy's float32 mean of two gives it) unless the
    cube holds infinities, which nanmedian counts and the compiled median skips; then with np.median's
    partition for the pixels that hold no NaN."""
    if cube.dtype.kind == "f" and cube.ndim >= 2 and not np.isinf(cube).any():
        return stack_median(cube)
    out = np.median(cube, axis=0)
    some_nan = np.isnan(out)  # a NaN anywhere in a pixel's series makes its median NaN
    if some_nan.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels
            out[some_nan] = np.nanmedian(cube[:, some_nan], axis=0)
    return out


def box_weights(center: np.ndarray, width: float, shape: tuple[int, int], columns: np.ndarray) -> np.ndarray:
    """Aperture weights ``(ny, nx)``: 1 within ``width / 2`` of the trace centre, the covered
    fraction at the two edge pixels, 0 elsewhere and outside ``columns``."""
    rows = np.arange(shape[0], dtype=np.float64)[:, None]
    lo = center[None, :] - width / 2.0  # aperture edges, pixel centres at integers
    hi = center[None, :] + width / 2.0
    covered = np.clip(np.minimum(rows + 0.5, hi) - np.maximum(rows - 0.5, lo), 0.0, 1.0)
    out = np.zeros(shape)
    out[:, columns] = covered
    return out


@dataclass(frozen=True)
class BoxSpectrum:
    """One integration's box spectrum of one order (columns ``0 .. cutoff-1``)."""

    flux: np.ndarray
    flux_error: np.ndarray
    npixels: np.ndarray


def extract_box(data: np.ndarray, err: np.ndarray, mask: np.ndarray, weights: np.ndarray) -> BoxSpectrum:
    """Box sums of one image (see the module docstring); masked pixels weigh 0."""
    w = np.where(mask, 0.0, weights)
    inside = w > 0
    with np.errstate(invalid="ignore", over="ignore"):  # masked pixels may hold inf or NaN
        flux = np.where(inside, w * data, 0.0).sum(axis=0)
        var = np.where(inside, w * err * err, 0.0).sum(axis=0)
    npix = w.sum(axis=0)
    has = npix > 0
    return BoxSpectrum(np.where(has, flux, np.nan), np.where(has, np.sqrt(var), np.nan), npix)


def extract_integration(data: np.ndarray, err: np.ndarray, scimask: np.ndarray,
                        weights: Mapping[int, np.ndarray], cutoffs: Mapping[int, int],
                        models: Mapping[int, np.ndarray] | None = None,
                        model_bad_pixels: bool = False) -> dict[int, BoxSpectrum]:
    """Every order's box spectrum of one integration.

    ``models`` (ATOCA): each order's model image; the other orders' finite
    models are subtracted before an order is extracted, and with
    ``model_bad_pixels`` its masked pixels are replaced by its own model (their
    errors by the error of the valid aperture pixel of nearest value).

    Without ``model_bad_pixels``, every order is summed in one compiled pass
    (:func:`spec3c._core.sossbox.soss_box_sums`, the same sums bit for bit).
    """
    if not model_bad_pixels:
        return {o: BoxSpectrum(*sums) for o, sums in
                soss_box_sums(data, err, scimask, weights, cutoffs, models).items()}
    return _extract_in_numpy(data, err, scimask, weights, cutoffs, models, model_bad_pixels)


def _extract_in_numpy(data: np.ndarray, err: np.ndarray, scimask: np.ndarray,
                      weights: Mapping[int, np.ndarray], cutoffs: Mapping[int, int],
                      models: Mapping[int, np.ndarray] | None, model_bad_pixels: bool) -> dict[int, BoxSpectrum]:
    """:func:`extract_integration` image by image in numpy (the ``soss_bad_pix="model"`` path)."""
    mask = scimask | ~(err > 0) | ~np.isfinite(data) | ~np.isfinite(err)
    finite = {o: np.where(np.isfinite(mod), mod, 0.0) for o, mod in models.items()} if models else {}
    out = {}
    for order, w in weights.items():
        d, e, m = data, err, mask
        if models:
            others = [finite[o] for o in models if o != order]
            if others:
                d = data - np.sum(others, axis=0)
            own = models.get(order)
            if model_bad_pixels and own is not None:
                d, e, m = _model_bad_pixels(d, err, mask, w, own)
        spectrum = extract_box(d, e, m, w)
        n = cutoffs[order]
        out[order] = BoxSpectrum(spectrum.flux[:n], spectrum.flux_error[:n], spectrum.npixels[:n])
    return out


def _model_bad_pixels(data: np.ndarray, err: np.ndarray, mask: np.ndarray, weights: np.ndarray,
                      model: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference's ``bad_pix="model"``: masked modelled pixels take the model's value; their error is
    that of the valid aperture pixel whose value is nearest (the lower error of the two neighbours in value)."""
    modelled = np.isfinite(model)
    data = np.where(mask & modelled, model, data)
    region = weights > 0
    todo = region & mask & modelled
    valid = region & ~mask
    err = err.copy()
    if todo.any() and valid.any():
        order = np.argsort(data[valid])
        values, errors = data[valid][order], err[valid][order]
        want = data[todo]
        hi = np.clip(np.searchsorted(values, want), 0, values.size - 1)
        lo = np.clip(hi - 1, 0, values.size - 1)
        pick = np.where(np.abs(values[lo] - want) <= np.abs(values[hi] - want), lo, hi)
        err[todo] = errors[pick]
    return data, err, np.where(modelled, False, mask)
