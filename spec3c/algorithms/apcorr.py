"""Aperture correction of box-extracted point-source spectra (ALGORITHMS.md §12.5).

Two kinds of jwst-format APCORR reference file are supported:

``"phase"`` (NIRSpec FS / BRIGHTOBJ / MOS; ``NrsFsApcorrModel``, ``NrsMosApcorrModel``)
    one row per filter/grating(/slit) holding ``wavelength`` (W,), ``size``
    (S, W) -- the aperture sizes tabulated at every wavelength --, ``pixphase``
    (P,) and ``apcorr`` (S, W, P) (numpy axis order; FITS TDIM ``(P,W,S)``).
    The correction is interpolated linearly in pixel phase, then bilinearly in
    (wavelength, size) on the size grid interpolated at the wavelength.  As in
    the reference, ``nelem_wl``/``nelem_size`` are ignored, a wavelength
    outside the tabulated range (or NaN), a phase outside ``pixphase``, an
    interpolated size grid that is not strictly increasing or an inconsistent
    row layout give a correction of 1, as does an interpolated value of
    exactly 0; a size outside the grid is clamped to the nearest edge.
``"lrs"`` (MIRI LRS fixed slit / slitless; ``MirLrsApcorrModel``)
    one row per subarray with ``wavelength[:nelem_wl]``, ``size[:nelem_size]``
    and ``apcorr[:nelem_wl, :nelem_size]``; bilinear interpolation in
    (size, wavelength), both axes clamped at the grid edges, NaN in -> NaN out.

``"wfss"`` (NIRISS and NIRCam WFSS; ``NisWfssApcorrModel``, ``NrcWfssApcorrModel``)
    the ``"lrs"`` table layout and interpolation (the reference's ``ApCorr`` serves
    both), one row per ``filter`` and ``pupil``.
``"radial"`` (MIRI MRS, NIRSpec IFU; ``MirMrsApcorrModel``, ``NrsIfuApcorrModel``)
    one table (no row selection, as the reference's ``ApCorrRadial``) of
    ``wavelength`` (W,), ``radius`` (R, W) and ``apcorr`` (R, W): both are
    interpolated linearly in wavelength at the cube's planes, then the
    correction linearly in radius at each plane's extraction radius, every
    interpolation extrapolating beyond the table (:func:`radial_correction`).

The size is the ``NPIXELS`` column of the extracted spectrum (pixels).  Tables
whose ``SIZEUNIT`` starts with ``arcsec`` are converted with a pixel scale the
caller supplies (see :func:`aperture_correction`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import InputError, Spec3cWarning
from .interp import linear_extrapolated

__all__ = [
    "DEFAULT_PIXEL_PHASE",
    "ApcorrTable",
    "aperture_correction",
    "ApcorrSpec",
    "apply_correction",
    "nirspec_pixel_phase",
    "radial_correction",
    "read_apcorr",
]

@dataclass(frozen=True)
class ApcorrSpec:
    """Which APCORR reference model a mode reads, and how its rows are selected.

    Attributes
    ----------
    model : str
        stdatamodels class name (``NrsMosApcorrModel``, ``MirLrsApcorrModel`` ...).
    kind : {"phase", "lrs", "wfss", "radial"}
        ``phase``: NIRSpec tables (wavelength × size × pixel phase) matched on
        filter and grating; ``lrs``: MIRI LRS tables matched on subarray;
        ``wfss``: the same tables matched on filter and pupil;
        ``radial``: IFU tables (radius × wavelength), one per file.
    match_slit : bool
        Rows are also matched on the slit name (NIRSpec fixed slits).
    """

    model: str
    kind: Literal["phase", "lrs", "wfss", "radial"]
    match_slit: bool = False


#: Pixel phase the reference uses for every NIRSpec spectrum (ApCorrPhase default).
DEFAULT_PIXEL_PHASE = 0.5


#: the MRS residual-fringe columns (RF_*) are corrected as the reference's ApCorrRadial does for MIRI
_FLUX_COLUMNS = ("FLUX", "FLUX_ERROR", "SURF_BRIGHT", "SB_ERROR", "RF_FLUX", "RF_SURF_BRIGHT")
_VAR_COLUMNS = (
    "FLUX_VAR_POISSON",
    "FLUX_VAR_RNOISE",
    "FLUX_VAR_FLAT",
    "SB_VAR_POISSON",
    "SB_VAR_RNOISE",
    "SB_VAR_FLAT",
)


@dataclass(frozen=True)
class ApcorrTable:
    """The one APCORR row matching an exposure (float64 copies).

    ``kind`` is ``"phase"`` or ``"lrs"``; ``pixphase`` is None for ``"lrs"``.
    ``usable`` is False when the row layout is inconsistent (the reference
    then applies no correction).
    """

    path: str
    kind: str
    sizeunit: str
    wavelength: np.ndarray
    size: np.ndarray
    apcorr: np.ndarray
    pixphase: np.ndarray | None = None
    usable: bool = True

    @property
    def size_in_arcsec(self) -> bool:
        return self.sizeunit.strip().lower().startswith("arcsec")


def nirspec_pixel_phase() -> float:
    """Pixel phase of a NIRSpec point source, as jwst 3.0.0 uses it.

    The reference never derives the phase from the source position: extract_1d
    constructs ``ApCorrPhase`` without ``pixphase``, so the default 0.5 is
    used for every slit and every spectrum.  This function therefore takes no
    inputs and returns :data:`DEFAULT_PIXEL_PHASE`; it exists so callers state
    explicitly where the phase comes from.
    """
    return DEFAULT_PIXEL_PHASE


def read_apcorr(
    path: str | Path,
    spec: ApcorrSpec,
    *,
    filter: str | None = None,  # noqa: A002 - reference column name
    grating: str | None = None,
    slit: str | None = None,
    subarray: str | None = None,
    pupil: str | None = None,
) -> ApcorrTable:
    """Read the APCORR row matching an exposure.

    ``spec`` is the mode's :class:`~spec3c.modes.base.ApcorrSpec`.  Row
    selection as the reference: NIRSpec matches ``filter`` and ``grating``,
    plus ``slit`` for fixed slits (``spec.match_slit``); MIRI LRS matches
    ``subarray``; WFSS ``filter`` and ``pupil``.  Comparison is case-insensitive on
    stripped strings, and exactly one row must match.
    """
    path = str(path)
    cls_name, kind = spec.model, spec.kind
    if kind == "radial":
        return _radial_table(path, cls_name)
    if kind == "lrs":
        match: dict[str, str | None] = {"subarray": subarray}
    elif kind == "wfss":
        match = {"filter": filter, "pupil": pupil}
    else:
        match = {"filter": filter, "grating": grating}
        if spec.match_slit:
            match["slit"] = slit

    table, sizeunit = _open_table(path, cls_name)
    names = {n.lower(): n for n in table.dtype.names or ()}
    row = _match_row(path, table, names, match)
    want = ", ".join(f"{k}={v!r}" for k, v in match.items())

    def col(name: str) -> np.ndarray:
        return np.array(row[names[name]], dtype=np.float64)

    try:
        if kind in ("lrs", "wfss"):
            return _lrs_table(path, sizeunit, col, row, names)
        return _phase_table(path, sizeunit, col)
    except (KeyError, ValueError, IndexError) as exc:
        raise InputError(path, f"malformed APCORR row for {want} ({exc})") from exc


def _open_table(path: str, cls_name: str) -> tuple[np.ndarray, str]:
    from stdatamodels.jwst.datamodels import apcorr as apcorr_models

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with getattr(apcorr_models, cls_name)(path) as model:
                table, sizeunit = model.apcorr_table, model.sizeunit
                if table is None or len(table) == 0:
                    raise ValueError("empty APCORR table")
                table = np.asarray(table).copy()
    except Exception as exc:  # noqa: BLE001 - any unreadable file
        raise InputError(path, f"cannot read APCORR reference file ({exc})") from exc
    if sizeunit is None:
        raise InputError(path, "APCORR extension has no SIZEUNIT keyword")
    return table, str(sizeunit)


def _radial_table(path: str, cls_name: str) -> ApcorrTable:
    """The one table of an IFU APCORR file, arrays in the file's dtypes (the reference computes
    with them as they are)."""
    from stdatamodels.jwst.datamodels import apcorr as apcorr_models

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with getattr(apcorr_models, cls_name)(path) as model:
                node = model.apcorr_table
                wl = np.array(node.wavelength).reshape(-1)
                radius, ac = np.array(node.radius), np.array(node.apcorr)
                unit = str(node.radius_units)
    except Exception as exc:  # noqa: BLE001 - any unreadable file
        raise InputError(path, f"cannot read APCORR reference file ({exc})") from exc
    if radius.ndim != 2 or radius.shape != ac.shape or radius.shape[1] != wl.size or wl.size < 2 or len(radius) < 2:
        raise InputError(path, f"APCORR table layout wavelength{wl.shape} radius{radius.shape} apcorr{ac.shape} "
                               "is not (W,), (R, W), (R, W) with W, R >= 2")
    return ApcorrTable(path, "radial", unit, wl, radius, ac)


def _match_row(
    path: str, table: np.ndarray, names: dict[str, str], match: dict[str, str | None]
) -> np.void:
    """The single row whose columns equal ``match`` (stripped, case-insensitive)."""
    sel = np.ones(len(table), dtype=bool)
    for col, value in match.items():
        if col not in names:
            raise InputError(path, f"APCORR table has no {col.upper()} column")
        if value is None:
            sel[:] = False
            continue
        column = np.char.upper(np.char.strip(np.asarray(table[names[col]]).astype(str)))
        sel &= column == str(value).strip().upper()
    hits = np.flatnonzero(sel)
    if hits.size != 1:
        want = ", ".join(f"{k}={v!r}" for k, v in match.items())
        raise InputError(path, f"{hits.size} APCORR rows match {want} (need exactly 1)")
    return table[hits[0]]


def _lrs_table(
    path: str, sizeunit: str, col: Callable[[str], np.ndarray], row: np.void, names: dict[str, str]
) -> ApcorrTable:
    nwl = int(row[names["nelem_wl"]])
    nsize = int(row[names["nelem_size"]])
    wl = col("wavelength")[:nwl]
    size = col("size")[:nsize]
    ac = col("apcorr")[:nwl, :nsize]
    if ac.shape != (wl.size, size.size) or wl.size < 2 or size.size < 2:
        raise ValueError(f"apcorr shape {ac.shape} for {wl.size} wavelengths x {size.size} sizes")
    order = np.argsort(wl)
    wl, ac = wl[order], ac[order]
    if np.any(np.diff(wl) <= 0) or np.any(np.diff(size) <= 0):
        raise ValueError(
            "wavelength and size must be strictly increasing (after sorting wavelength)"
        )
    return ApcorrTable(path, "lrs", sizeunit, wl, size, ac)


def _phase_table(path: str, sizeunit: str, col: Callable[[str], np.ndarray]) -> ApcorrTable:
    wl, size, phase, ac = col("wavelength"), col("size"), col("pixphase"), col("apcorr")
    nwl, nph = wl.size, phase.size
    usable = (
        wl.ndim == 1
        and phase.ndim == 1
        and size.ndim == 2
        and ac.ndim == 3
        and size.shape[1] == nwl
        and ac.shape == (size.shape[0], nwl, nph)
        and nwl >= 2
        and nph >= 2
        and size.shape[0] >= 2
    )
    if usable:
        wl_order = np.argsort(wl, kind="mergesort")
        usable = bool(np.all(np.diff(wl[wl_order]) > 0))
    if not usable:
        warnings.warn(
            f"{path}: APCORR row layout wavelength{wl.shape} size{size.shape} "
            f"pixphase{phase.shape} apcorr{ac.shape} is not (W,), (S,W), (P,), (S,W,P) "
            "with strictly increasing wavelengths; no aperture correction will be applied "
            "(as in the reference)",
            Spec3cWarning,
            stacklevel=3,
        )
        return ApcorrTable(path, "phase", sizeunit, wl, size, ac, phase, usable=False)
    ph_order = np.argsort(phase, kind="mergesort")
    return ApcorrTable(
        path,
        "phase",
        sizeunit,
        wl[wl_order],
        size[:, wl_order],
        ac[:, wl_order][:, :, ph_order],
        phase[ph_order],
    )


def _bracket(grid: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower index and fraction of ``x`` in increasing ``grid`` (last axis), clamped.

    ``grid`` is (m,) or (n, m) (one grid per value); NaN in ``x`` gives NaN fraction.
    """
    g = np.broadcast_to(grid, x.shape + grid.shape[-1:])
    xc = np.clip(x, g[..., 0], g[..., -1])
    idx = np.clip(np.sum(g <= xc[..., None], axis=-1) - 1, 0, g.shape[-1] - 2)
    lo = np.take_along_axis(g, idx[..., None], -1)[..., 0]
    hi = np.take_along_axis(g, idx[..., None] + 1, -1)[..., 0]
    return idx, (xc - lo) / (hi - lo)


def aperture_correction(
    table: ApcorrTable,
    wavelength: np.ndarray,
    size: np.ndarray | float,
    *,
    pixel_phase: float | None = None,
    pixel_scale: float | None = None,
) -> np.ndarray:
    """Multiplicative aperture correction c(wavelength, size[, phase]), shape (n,).

    Parameters
    ----------
    wavelength : (n,) micron, the spectrum's WAVELENGTH column.
    size : (n,) or scalar, the extraction size in pixels (NPIXELS column).
    pixel_phase : phase for ``"phase"`` tables (default
        :data:`DEFAULT_PIXEL_PHASE`); ignored for ``"lrs"`` tables.
    pixel_scale : arcsec per pixel in the cross-dispersion direction, needed
        only when the table's SIZEUNIT is arcsec (table sizes are divided by it).
    """
    wl = np.atleast_1d(np.asarray(wavelength, dtype=np.float64))
    sz = np.broadcast_to(np.asarray(size, dtype=np.float64), wl.shape)
    grid = table.size
    if table.size_in_arcsec:
        if pixel_scale is None or not np.isfinite(pixel_scale) or pixel_scale <= 0:
            raise ValueError(
                f"{table.path}: SIZEUNIT is {table.sizeunit!r}; a positive pixel_scale "
                "(arcsec/pixel) is needed to convert the sizes to pixels"
            )
        grid = grid / float(pixel_scale)

    if table.kind == "lrs":
        i, t = _bracket(table.wavelength, wl)
        j, u = _bracket(grid, sz)
        ac = table.apcorr
        c = (
            (1 - t) * (1 - u) * ac[i, j]
            + (1 - t) * u * ac[i, j + 1]
            + t * (1 - u) * ac[i + 1, j]
            + t * u * ac[i + 1, j + 1]
        )
        return np.where(np.isnan(wl) | np.isnan(sz), np.nan, c)

    ones = np.ones(wl.shape)
    phase = DEFAULT_PIXEL_PHASE if pixel_phase is None else float(pixel_phase)
    if not np.isfinite(phase):
        raise ValueError(f"pixel_phase must be finite, got {pixel_phase!r}")
    pp = table.pixphase
    if not table.usable or pp is None or phase < pp[0] or phase > pp[-1]:
        return ones
    # linear in phase (interp1d convention: bracket found with side='left')
    k = int(np.clip(np.searchsorted(pp, phase, side="left"), 1, pp.size - 1))
    f = (phase - pp[k - 1]) / (pp[k] - pp[k - 1])
    a = table.apcorr[..., k - 1] + f * (table.apcorr[..., k] - table.apcorr[..., k - 1])  # (S, W)

    twl = table.wavelength
    ok = (wl >= twl[0]) & (wl <= twl[-1])  # False for NaN
    i, t = _bracket(twl, np.where(ok, wl, twl[0]))
    # the size grid interpolated at each wavelength, (n, S)
    sgrid = grid[:, i].T * (1 - t)[:, None] + grid[:, i + 1].T * t[:, None]
    ok &= np.all(np.diff(sgrid, axis=1) > 0, axis=1)
    # correction at the wavelength for every tabulated size, (n, S)
    a_wl = a[:, i].T * (1 - t)[:, None] + a[:, i + 1].T * t[:, None]
    safe = np.where(ok[:, None], sgrid, np.arange(grid.shape[0], dtype=np.float64))
    j, u = _bracket(safe, sz)
    rows = np.arange(wl.size)
    c = a_wl[rows, j] * (1 - u) + a_wl[rows, j + 1] * u
    c = np.where(np.isnan(sz), np.nan, c)
    return np.where(ok & (c != 0), c, ones)


def radial_correction(table: ApcorrTable, wavelength: np.ndarray, radius: np.ndarray,
                      pixel_scale: float | None = None) -> np.ndarray:
    """Aperture correction of an IFU spectrum at each plane (``ApCorrRadial``), shape (n,).

    Parameters
    ----------
    table : ApcorrTable
        A ``"radial"`` table.
    wavelength : (n,) micron
        The spectrum's wavelengths.
    radius : (n,) pixels
        The extraction radius used at each wavelength.
    pixel_scale : float
        Arcsec per cube spaxel, needed when the table's radii are in arcsec (they are divided
        by it in the table's dtype, as the reference divides them in place).
    """
    if table.kind != "radial":
        raise ValueError(f"{table.path}: not an IFU (radial) APCORR table")
    sizes = table.size
    if table.size_in_arcsec:
        if pixel_scale is None or not np.isfinite(pixel_scale) or pixel_scale <= 0:
            raise ValueError(f"{table.path}: radii in {table.sizeunit!r} need a positive pixel_scale (arcsec/pixel)")
        sizes = sizes / float(pixel_scale)
    lam = np.asarray(wavelength, dtype=np.float64)
    # every tabulated radius and its corrections at the spectrum's wavelengths, (R, n)
    size_at = linear_extrapolated(table.wavelength, sizes.T, lam).T
    corr_at = linear_extrapolated(table.wavelength, table.apcorr.T, lam).T
    out = np.empty(lam.size)
    for k in range(lam.size):
        out[k] = linear_extrapolated(size_at[:, k], corr_at[:, k], float(radius[k]))
    return out


def apply_correction(columns: dict[str, np.ndarray], correction: np.ndarray) -> None:
    """Multiply the flux-like columns by ``correction`` in place, variances by its square.

    Corrected (when present, names case-insensitive): FLUX, FLUX_ERROR,
    SURF_BRIGHT, SB_ERROR, RF_FLUX, RF_SURF_BRIGHT (x c) and FLUX_VAR_{POISSON,RNOISE,FLAT},
    SB_VAR_{POISSON,RNOISE,FLAT} (x c^2).  BACKGROUND, NPIXELS and DQ are untouched.
    """
    c = np.asarray(correction, dtype=np.float64)
    upper = {k.upper(): k for k in columns}
    for names, factor in ((_FLUX_COLUMNS, c), (_VAR_COLUMNS, c * c)):
        for name in names:
            if name in upper:
                columns[upper[name]] *= factor
