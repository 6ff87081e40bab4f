"""Bad-pixel replacement on 2-D spectral images (ALGORITHMS.md §9).

Two estimators of the reference ``PixelReplacement`` class are provided, both
working in place on native 2-D arrays:

``replace_mingrad``
    every non-finite SCI pixel away from the border is replaced by the mean of
    its two neighbours along the axis (row or column) with the smaller
    absolute difference between those neighbours.
``replace_fit_profile``
    every DO_NOT_USE (and not NON_SCIENCE) pixel is replaced from a spatial
    profile template: the median of up to ``n_adjacent_cols`` normalised valid
    profiles on each side, scaled to the good pixels of the current profile.

ERR is estimated with the same weights as SCI; the variances are turned into
sigmas, estimated the same way and squared back.  Replaced pixels get
FLUX_ESTIMATED and lose DO_NOT_USE (see the functions for the reference's
NON_SCIENCE behaviour).  Both return the number of pixels that became finite
and FLUX_ESTIMATED.
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import dqflags

__all__ = ["replace_fit_profile", "replace_mingrad"]

_DNU = np.uint32(dqflags.DO_NOT_USE)
_NS = np.uint32(dqflags.NON_SCIENCE)
_FE = np.uint32(dqflags.FLUX_ESTIMATED)
_VAR_NAMES = ("var_poisson", "var_rnoise", "var_flat")


def _check_shapes(sci: np.ndarray, planes: dict[str, np.ndarray | None]) -> None:
    if sci.ndim != 2:
        raise ValueError(f"pixel_replace works on 2-D images, got SCI of shape {sci.shape}")
    for name, arr in planes.items():
        if arr is not None and arr.shape != sci.shape:
            raise ValueError(f"pixel_replace: {name} shape {arr.shape} differs from SCI {sci.shape}")


def _estimated(sci: np.ndarray, dq: np.ndarray) -> np.ndarray:
    """Finite pixels flagged FLUX_ESTIMATED (what the reference counts)."""
    return np.isfinite(sci) & ((dq & _FE) != 0)


# --------------------------------------------------------------------------- mingrad


def replace_mingrad(sci: np.ndarray, err: np.ndarray, var_poisson: np.ndarray | None,
                    var_rnoise: np.ndarray | None, var_flat: np.ndarray | None,
                    dq: np.ndarray) -> int:
    """Minimum-gradient replacement of non-finite SCI pixels, in place.

    Candidates are the non-finite SCI pixels with row in ``[2, ny-2]`` and
    column in ``[2, nx-2]`` (the reference's asymmetric border: indices 0, 1
    and the last are never touched).  For each, ``gh = |S[y,x-1] - S[y,x+1]|``
    and ``gv = |S[y-1,x] - S[y+1,x]|`` (NaN counts as infinite); when both are
    infinite the pixel is left alone, otherwise the vertical pair is used only
    when ``gv < gh`` (ties go horizontal).  ERR and the variances (through
    their square roots) are averaged along the same axis, even if that gives
    NaN.  As in the reference, NON_SCIENCE pixels are candidates too: they get
    a value and FLUX_ESTIMATED but keep DO_NOT_USE.
    """
    _check_shapes(sci, {"err": err, "var_poisson": var_poisson, "var_rnoise": var_rnoise,
                        "var_flat": var_flat, "dq": dq})
    ny, nx = sci.shape
    if ny < 4 or nx < 4:
        return 0
    ys, xs = np.nonzero(~np.isfinite(sci[2:ny - 1, 2:nx - 1]))
    if ys.size == 0:
        return 0
    ys += 2
    xs += 2

    with np.errstate(invalid="ignore", over="ignore"):
        gh = np.abs(sci[ys, xs - 1] - sci[ys, xs + 1])
        gv = np.abs(sci[ys - 1, xs] - sci[ys + 1, xs])
    gh[np.isnan(gh)] = np.inf
    gv[np.isnan(gv)] = np.inf
    usable = ~(np.isinf(gh) & np.isinf(gv))
    vertical = gv[usable] < gh[usable]
    ys, xs = ys[usable], xs[usable]
    if ys.size == 0:
        return 0
    # the two neighbours along the chosen axis
    y_a = np.where(vertical, ys - 1, ys)
    y_b = np.where(vertical, ys + 1, ys)
    x_a = np.where(vertical, xs, xs - 1)
    x_b = np.where(vertical, xs, xs + 1)

    with np.errstate(invalid="ignore", over="ignore"):
        sci[ys, xs] = (sci[y_a, x_a] + sci[y_b, x_b]) / 2.0
        err[ys, xs] = (err[y_a, x_a] + err[y_b, x_b]) / 2.0
        for var in (var_poisson, var_rnoise, var_flat):
            if var is not None:
                var[ys, xs] = ((np.sqrt(var[y_a, x_a]) + np.sqrt(var[y_b, x_b])) / 2.0) ** 2

    flags = dq[ys, xs]
    clear = ((flags & _DNU) != 0) & ((flags & _NS) == 0)
    flags[clear] &= ~_DNU
    dq[ys, xs] = flags | _FE
    # candidates were non-finite, so none was counted as estimated before
    return int(np.count_nonzero(np.isfinite(sci[ys, xs])))


# --------------------------------------------------------------------------- fit_profile


def _profile_mse(scale: np.ndarray, template: np.ndarray, current: np.ndarray) -> float:
    """Mean squared residual of ``current`` against ``template * scale`` (NaN-aware)."""
    n_used = template.size - np.count_nonzero(np.isnan(current))
    return np.nansum((current - template * scale) ** 2.0) / n_used


def _template(data: np.ndarray, sigmas: dict[str, np.ndarray], mask: np.ndarray,
              rows: slice) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Median normalised profile of the neighbour profiles ``data`` (columns).

    ``data``, ``mask`` and each of ``sigmas`` (ERR and the square roots of the
    variances) hold only the neighbour columns; they are modified.  Returns
    ``(template, norm, sigma_templates)`` where ``norm`` is the per-profile
    max |value| (all ones when the neighbours have SNR < 5 everywhere).
    """
    data[mask] = np.nan
    for sig in sigmas.values():
        sig[mask] = np.nan
    data = data[rows]
    snr = np.abs(data / sigmas["err"][rows])
    norm = np.nanmax(np.abs(data), axis=0, keepdims=True)
    if np.nanmax(snr) < 5:
        norm[:] = 1.0
    template = np.nanmedian(data / norm, axis=1)
    sig_templates = {name: np.nanmedian(sig[rows] / norm, axis=1) for name, sig in sigmas.items()}
    return template, norm, sig_templates


def _fit_scale(template: np.ndarray, cleaned: np.ndarray, norm: np.ndarray,
               ) -> tuple[np.ndarray | float, np.floating | float] | None:
    """``(norm_scale, scale)`` bringing ``template`` to the good pixels of ``cleaned``.

    ``None`` when the current profile has no usable pixel.  The Nelder–Mead
    fit on |values| starts at the max of the max-normalised current profile;
    it is bypassed (unit scales) when the template was not normalised or any
    value reaches 1e20.
    """
    keep = np.nonzero(~np.isnan(cleaned))[0]
    if keep.size == 0:
        return None
    tmpl = template[keep]
    cur = cleaned[keep]
    peak = np.max(cur)
    cur_norm = cur / peak
    if (np.nanmedian(norm) != 1.0) and (np.nanmax(np.abs(tmpl)) < 1e20) \
            and (np.nanmax(np.abs(cur_norm)) < 1e20):
        from scipy.optimize import minimize  # here: scipy.optimize is deferred at start-up

        result = minimize(_profile_mse, x0=np.abs(np.nanmax(cur_norm)),
                          args=(np.abs(tmpl), np.abs(cur_norm)), method="Nelder-Mead")
        return result.x, peak
    return 1.0, 1.0


def _replace_profile(planes: dict[str, np.ndarray | None], dq: np.ndarray, input_dq: np.ndarray,
                     bad: np.ndarray, ind: int, cols: list[int], rows: slice) -> None:
    """Replace the bad pixels of profile (column) ``ind`` from its neighbours ``cols``."""
    sci, err = planes["sci"], planes["err"]
    assert sci is not None and err is not None
    variances = {name: var for name in _VAR_NAMES if (var := planes[name]) is not None}
    sigmas = {"err": err[:, cols]}
    sigmas.update({name: np.sqrt(var[:, cols]) for name, var in variances.items()})
    template, norm, sig_tmpl = _template(sci[:, cols], sigmas, bad[:, cols], rows)

    cleaned = np.where(bad[:, ind], np.nan, sci[:, ind])[rows]
    fit = _fit_scale(template, cleaned, norm)
    if fit is None:
        return
    norm_scale, scale = fit
    cur_dq = input_dq[rows, ind]
    replace = ((cur_dq & _DNU) != 0) & ((cur_dq & _NS) == 0)
    new = np.where(replace, template * norm_scale * scale, cleaned)
    sci[rows, ind] = new
    # XOR, as the reference: DO_NOT_USE is known set; FLUX_ESTIMATED is toggled
    dq[rows, ind] = np.where(replace & ~np.isnan(new), cur_dq ^ _DNU ^ _FE, cur_dq)
    err[rows, ind] = np.where(replace, sig_tmpl["err"] * norm_scale * scale, err[rows, ind])
    for name, var in variances.items():
        assert var is not None
        var[rows, ind] = np.where(replace, (sig_tmpl[name] * norm_scale * scale) ** 2,
                                  var[rows, ind])


def replace_fit_profile(sci: np.ndarray, err: np.ndarray, var_poisson: np.ndarray | None,
                        var_rnoise: np.ndarray | None, var_flat: np.ndarray | None,
                        dq: np.ndarray, n_adjacent_cols: int = 3, dispersion_axis: int = 1) -> int:
    """Spatial-profile replacement of DO_NOT_USE pixels, in place.

    ``dispersion_axis`` is the reference's ``dispersion_direction``: 1 when
    wavelength runs along x (profiles are columns), 2 when along y (profiles
    are rows).  Work is restricted to the bounding box of pixels without
    DO_NOT_USE.  A profile is *valid* unless all its pixels in the box are
    DO_NOT_USE or NON_SCIENCE; it is processed when it has at least one
    DO_NOT_USE pixel that is not NON_SCIENCE.  Pixels that are DO_NOT_USE and
    not NON_SCIENCE are replaced (ERR/VAR_* too, even where the SCI estimate is
    NaN); DQ becomes ``dq ^ DO_NOT_USE ^ FLUX_ESTIMATED`` where the new SCI is
    not NaN.  Reference quirk mirrored: in a processed profile, SCI of
    DO_NOT_USE+NON_SCIENCE pixels inside the box is set to NaN.
    """
    _check_shapes(sci, {"err": err, "var_poisson": var_poisson, "var_rnoise": var_rnoise,
                        "var_flat": var_flat, "dq": dq})
    if dispersion_axis not in (1, 2):
        raise ValueError(f"dispersion_axis must be 1 or 2, got {dispersion_axis!r}")
    before = _estimated(sci, dq)
    planes: dict[str, np.ndarray | None] = {
        "sci": sci, "err": err, "var_poisson": var_poisson, "var_rnoise": var_rnoise,
        "var_flat": var_flat,
    }
    dq_w = dq
    if dispersion_axis == 2:  # work on transposed views: profiles become columns
        planes = {k: (None if v is None else v.T) for k, v in planes.items()}
        dq_w = dq.T
    input_dq = dq_w.copy()
    bad = (input_dq & _DNU) != 0
    good = ~bad
    if not good.any():
        return 0
    good_rows = np.nonzero(good.any(axis=1))[0]
    good_cols = np.nonzero(good.any(axis=0))[0]
    rows = slice(int(good_rows[0]), int(good_rows[-1]) + 1)
    c0, c1 = int(good_cols[0]), int(good_cols[-1]) + 1

    box = input_dq[rows, c0:c1]
    nonsci = (box & _NS) != 0
    n_bad = np.count_nonzero(((box & _DNU) != 0) & ~nonsci, axis=0)
    n_nonsci = np.count_nonzero(nonsci, axis=0)
    valid = np.zeros(sci.shape[1 if dispersion_axis == 1 else 0], dtype=bool)
    valid[c0:c1] = (n_bad + n_nonsci) != box.shape[0]
    to_replace = np.nonzero(valid[c0:c1] & (n_bad > 0))[0] + c0

    n_cols = valid.size
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        for ind in to_replace:
            lo, hi = max(int(ind) - n_adjacent_cols, 0), min(int(ind) + n_adjacent_cols + 1, n_cols)
            cols = [j for j in range(lo, hi) if j != ind and valid[j]]
            if not cols:
                continue
            _replace_profile(planes, dq_w, input_dq, bad, int(ind), cols, rows)
    return int(np.count_nonzero(_estimated(sci, dq) & ~before))
