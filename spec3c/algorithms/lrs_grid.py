"""The rectified output grid of a MIRI LRS fixed-slit source (dispersion along y).

Follows ``ResampleSpec.build_interpolated_output_wcs`` of jwst 3.0
(ALGORITHMS.md §10.2, "Interpolated builder") from the per-pixel coordinates
stored at ingest.  The inputs are in detector orientation: the slit along x
(columns), the dispersion along y (rows).  So is the output, as the
reference's: the ``_s2d`` array is ``(n_wavelength rows, n_spatial
columns)``, row ``r`` at ``wavelengths[r]`` (descending for MIRI LRS fixed
slit, like the detector), column ``c`` on a straight line in the tangent
plane about :attr:`LrsGrid.fiducial`.

Reference behaviour reproduced on purpose (quirks included):

* the wavelength of an input row is the NaN-median of its λ over the
  bounding-box columns; the first input gives all its rows, a later input
  only its wavelengths beyond the current min/max; the union is sorted and
  made unique (no merging of near-duplicates, unlike the NIRSpec builder),
  then flipped to descending for the fixed slit only;
* the wavelength table has no half-pixel extension: pixel -> λ and λ ->
  pixel are linear tables that *extrapolate* beyond both ends (scipy
  ``fill_value=None``), so input pixels beyond the range land outside the
  output and are dropped by drizzle, not clipped to it;
* the spatial sampling comes from one "centre" row of the first input: row
  ``floor(y0 + 0.5) + int((y1 - y0) / 2)`` of its bounding box ``y0..y1``
  (an index relative to the box's first pixel, truncated); its finite pixels
  are projected about their own mean RA/Dec (RA wrapped at 0/360), NaNs are
  *dropped before* the index ``k * pixel_scale_ratio`` is assigned, and
  ``x_tan``/``y_tan`` are fitted linearly against it;
* the slit follows whichever tangent axis has the larger slope (``swap_xy``);
  the width is ``ceil(extent / |slope|)`` (no ``+ 1``) over every finite
  pixel of every input, and the intercepts are symmetric about the tangent
  point, not centred on the data;
* the final tangent point is the centre of the RA/Dec range of all inputs'
  finite pixels (RA wrapped), except for a single input, which keeps the
  mean of its centre row.  The slopes stay those fitted about the first
  tangent point.

Only the first input's gwcs is evaluated (bounding box, and the input pixel
scale at the box centre when ``pixel_scale`` is given).  The reference
evaluates every input's gwcs on its bounding-box grid; the stored planes give
the same values provided they are NaN outside the box (ingest evaluates with
``with_bounding_box=True``) and the box lies within the stored array.

Pixel scale (``ResampleSpec.__init__``): ``pixel_scale`` (arcsec), when given
and the input scale is finite, replaces ``pixel_scale_ratio`` by ``input
scale / pixel_scale`` and is the output scale; otherwise the output scale is
measured on the output grid at its centre column.  The reference also drops
``pixel_scale`` when the input has no nominal pixel area (PIXAR_SR): the
caller passes ``pixel_scale=None`` then.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from astropy.coordinates import angular_separation
from astropy.modeling import models as am

from .slit_grid import GridInput, GridOptions, tangent_offsets

__all__ = ["LrsGrid", "build_lrs_grid", "input_pixel_scale", "wrap_ra"]

#: exposure type whose wavelength axis the reference flips to descending

BBox = tuple[tuple[float, float], tuple[float, float]]


def _interp_extrap(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Piecewise-linear ``fp(x)`` over increasing ``xp``, extrapolated from the end segments.

    Same as a ``Tabular1D(bounds_error=False, fill_value=None)`` (scipy
    ``interpn`` linear with extrapolation); NaN stays NaN.
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.asarray(np.interp(x, xp, fp), dtype=np.float64)
    with np.errstate(invalid="ignore"):
        lo, hi = x < xp[0], x > xp[-1]
    if np.any(lo):
        out = np.where(lo, fp[0] + (x - xp[0]) * ((fp[1] - fp[0]) / (xp[1] - xp[0])), out)
    if np.any(hi):
        out = np.where(hi, fp[-1] + (x - xp[-1]) * ((fp[-1] - fp[-2]) / (xp[-1] - xp[-2])), out)
    return out


@dataclass(frozen=True)
class LrsGrid:
    """Output pixel grid: rows in wavelength, columns along the slit."""

    fiducial: tuple[float, float]  # (RA, Dec) deg of the tangent point
    x_line: tuple[float, float]  # (slope, intercept): column -> tangent-plane x (deg)
    y_line: tuple[float, float]  # (slope, intercept): column -> tangent-plane y (deg)
    swap_xy: bool  # columns follow tangent y (True) or x (False)
    wavelengths: np.ndarray  # (n_rows,) µm at row centres
    n_spatial: int  # number of columns
    pixel_scale_ratio: float
    spatial_scale: float  # output arcsec per column (the reference's ``pixel_scale``)

    #: 1-based FITS/jwst convention: 1 = along x (NIRSpec), 2 = along y (MIRI LRS)
    dispersion_axis: ClassVar[int] = 2
    #: FITS axis (1-based) of the ``WAVE-TAB`` wavelength lookup (``PS2_0``, ``PS2_1``)
    wcs_table_axis: ClassVar[int] = 2

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_wavelength, n_spatial)``: the numpy shape of the ``_s2d`` arrays."""
        return (len(self.wavelengths), self.n_spatial)

    @property
    def slit_y(self) -> np.ndarray:
        """No slit frame in this WCS: NaN for every column (``(n_spatial,)``)."""
        return np.full(self.n_spatial, np.nan)

    @property
    def ascending(self) -> bool:
        return bool(self.wavelengths[-1] > self.wavelengths[0])

    def _tangent(self) -> am.Model:
        return am.Pix2Sky_TAN() | am.RotateNative2Celestial(*self.fiducial, 180.0)

    def tangent_offsets(self, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tangent-plane (x, y) in degrees about the fiducial (NaN in, NaN out)."""
        return tangent_offsets(ra, dec, self.fiducial)

    def row_to_wavelength(self, rows: np.ndarray) -> np.ndarray:
        """Wavelength (µm) at fractional rows, extrapolated beyond the table (as the reference)."""
        return _interp_extrap(rows, np.arange(len(self.wavelengths), dtype=np.float64), self.wavelengths)

    def wavelength_to_row(self, wavelength: np.ndarray) -> np.ndarray:
        """Fractional output row of wavelengths (µm), extrapolated beyond the table."""
        lam, idx = self._inverse_table()
        return _interp_extrap(wavelength, lam, idx)

    def _inverse_table(self) -> tuple[np.ndarray, np.ndarray]:
        idx = np.arange(len(self.wavelengths), dtype=np.float64)
        if self.ascending:
            return self.wavelengths, idx
        return self.wavelengths[::-1], idx[::-1]

    def pixmap(self, ra: np.ndarray, dec: np.ndarray, wavelength: np.ndarray) -> np.ndarray:
        """Output (x = column, y = row) of every input pixel, ``(..., 2)`` float64; NaN off the grid.

        The reference's ``world_to_pixel`` with the output bounding box disabled:
        positions beyond the grid are returned (drizzle drops them).
        """
        xt, yt = self.tangent_offsets(ra, dec)
        slope, icpt = self.y_line if self.swap_xy else self.x_line
        col = ((yt if self.swap_xy else xt) - icpt) / slope
        row = self.wavelength_to_row(wavelength)
        return np.stack(np.broadcast_arrays(col, row), axis=-1)

    def column_sky(self, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(RA, Dec) deg of fractional output columns."""
        c = np.asarray(columns, dtype=np.float64)
        ra, dec = self._tangent()(self.x_line[0] * c + self.x_line[1], self.y_line[0] * c + self.y_line[1])
        return np.asarray(ra, dtype=np.float64), np.asarray(dec, dtype=np.float64)

    def world(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(RA, Dec, wavelength) of every output pixel, each ``shape``."""
        ra, dec = self.column_sky(np.arange(self.n_spatial))
        shape = self.shape
        return (
            np.broadcast_to(ra[None, :], shape).copy(),
            np.broadcast_to(dec[None, :], shape).copy(),
            np.broadcast_to(self.wavelengths[:, None], shape).copy(),
        )

    def output_pixel_scale(self) -> float:
        """Arcsec between the two columns about the array centre (the reference's
        ``compute_spectral_pixel_scale`` of the output WCS, dispersion along y)."""
        cx = (self.n_spatial - 1) / 2.0
        ra, dec = np.radians(self.column_sky(np.array([cx, cx + 1.0])))
        return float(np.degrees(angular_separation(ra[0], dec[0], ra[1], dec[1])) * 3600.0)

    def to_gwcs(self):  # type: ignore[no-untyped-def]
        """The output gwcs, ``detector -> world``, built as the reference builds it."""
        from astropy import coordinates as coord
        from astropy import units as u
        from gwcs import WCS
        from gwcs import coordinate_frames as cf

        n = len(self.wavelengths)
        pix = np.arange(n, dtype=np.float64)
        to_wave = am.Tabular1D(points=pix, lookup_table=self.wavelengths, bounds_error=False,
                               fill_value=None, name="pix2wavelength")
        lam, idx = self._inverse_table()
        to_wave.inverse = am.Tabular1D(points=lam, lookup_table=idx, bounds_error=False,
                                       fill_value=None, name="wavelength2pix")
        # (x, y) -> (x, x, y): column to the sky, row to the wavelength
        mapping = am.Mapping((0, 0, 1))
        if self.swap_xy:  # invert the column from tangent y (else x, the default inverse)
            mapping.inverse = am.Mapping((1, 2))
        to_x = am.Linear1D(slope=self.x_line[0], intercept=self.x_line[1])
        to_y = am.Linear1D(slope=self.y_line[0], intercept=self.y_line[1])
        transform = mapping | (to_x & to_y | self._tangent()) & to_wave

        det = cf.Frame2D(name="detector", axes_order=(0, 1))
        sky = cf.CelestialFrame(name="sky", axes_order=(0, 1), reference_frame=coord.ICRS())
        spec = cf.SpectralFrame(name="spectral", axes_order=(2,), unit=(u.micron,),
                                axes_names=("wavelength",))
        world = cf.CompositeFrame([sky, spec], name="world")
        wcs = WCS([(det, transform), (world, None)])
        ny, nx = self.shape
        wcs.array_shape = (ny, nx)
        wcs.pixel_shape = (nx, ny)
        wcs.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
        return wcs

    def fits_wcsinfo(self, source_column: float | None = None) -> dict[str, Any]:
        """FITS WCS keywords (``meta.wcsinfo`` names) of the ``_s2d``: dispersion along y.

        Axis 1 ``SPATIAL`` in arcsec, ``CDELT1`` = :attr:`spatial_scale`, zero at
        ``source_column`` (0-based output column, e.g. ``pixmap`` of the source
        position; else the centre column); axis 2 ``WAVE-TAB`` (``CRPIX2 = CRVAL2
        = CDELT2 = 1``: the 1-based row indexes the ``WCS-TABLE`` column, which
        holds :attr:`wavelengths`).  ``PS2_0``/``PS2_1`` are for the writer.
        """
        col = (self.n_spatial - 1) / 2.0
        if source_column is not None and np.isfinite(source_column):
            col = float(source_column)
        info: dict[str, Any] = {
            "wcsaxes": 2,
            "ctype1": "SPATIAL",
            "cunit1": "arcsec",
            "crpix1": col + 1.0,
            "crval1": 0.0,
            "ctype2": "WAVE-TAB",
            "cunit2": "um",
            "crpix2": 1.0,
            "crval2": 1.0,
            "cdelt2": 1.0,
            "dispersion_direction": 2,
        }
        if np.isfinite(self.spatial_scale):
            info["cdelt1"] = float(self.spatial_scale)
        return info


# -- building -------------------------------------------------------------------------------


def wrap_ra(ra: np.ndarray) -> np.ndarray:
    """Finite RAs put on one side of 0/360 (``jwst.assign_wcs.util.wrap_ra``; NaNs dropped)."""
    vals = np.asarray(ra, dtype=np.float64).ravel()
    vals = vals[np.isfinite(vals)].copy()
    if vals.size == 0:
        return vals
    median = np.median(vals)
    far = np.fabs(vals - median) > 180.0
    if np.any(far):  # (reference quirk: a median of exactly 180 wraps nothing)
        if median < 180.0:
            vals[far] -= 360.0
        elif median > 180.0:
            vals[far] += 360.0
    return vals


def _bbox_tuple(wcs) -> BBox | None:  # type: ignore[no-untyped-def]
    bb = getattr(wcs, "bounding_box", None)
    if bb is None:
        return None
    if hasattr(bb, "bounding_box"):
        bb = bb.bounding_box(order="F")
    (x0, x1), (y0, y1) = bb
    return (float(x0), float(x1)), (float(y0), float(y1))


def _finite_bbox(inp: GridInput) -> BBox:
    """Pixel-edge box around the finite coordinates (when no gwcs is given)."""
    ok = np.isfinite(inp.wavelength) | np.isfinite(inp.ra)
    rows, cols = np.flatnonzero(ok.any(axis=1)), np.flatnonzero(ok.any(axis=0))
    if rows.size == 0:
        raise ValueError("the first input has no finite coordinates")
    return (cols[0] - 0.5, cols[-1] + 0.5), (rows[0] - 0.5, rows[-1] + 0.5)


def centre_row(bbox: BBox) -> int:
    """Row of the first input sampled for the spatial scale.

    The reference takes index ``int((y1 - y0) / 2)`` of its bounding-box grid,
    whose first row is ``floor(y0 + 0.5)`` (gwcs ``grid_from_bounding_box``).
    """
    y0, y1 = bbox[1]
    return int(math.floor(y0 + 0.5)) + int((y1 - y0) / 2)


def input_pixel_scale(wcs, bbox: BBox | None = None, ref: GridInput | None = None) -> float:  # type: ignore[no-untyped-def]
    """Spatial scale (arcsec) of the first input at its bounding-box centre.

    The reference's ``compute_spectral_pixel_scale(wcs, disp_axis=2)``: the
    separation between ``crpix`` and ``crpix + (1, 0)``, where ``crpix`` is the
    inverted world position of the box centre.  Without a gwcs, the median
    separation of x-adjacent pixels of ``ref``'s centre row.
    """
    if wcs is not None and bbox is not None:
        cx, cy = np.mean(np.asarray(bbox, dtype=np.float64), axis=1)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fid = wcs(cx, cy)
            try:
                crpix = np.array(wcs.invert(*fid, with_bounding_box=False), dtype=np.float64)
            except (NotImplementedError, ValueError):
                crpix = np.array([cx, cy])
            ra, dec, _ = wcs(np.array([crpix[0], crpix[0] + 1.0]), np.array([crpix[1], crpix[1]]),
                             with_bounding_box=False)
        ra, dec = np.radians(ra), np.radians(dec)
        return float(np.degrees(abs(angular_separation(ra[0], dec[0], ra[1], dec[1]))) * 3600.0)
    if ref is None:
        return float("nan")
    row = centre_row(bbox if bbox is not None else _finite_bbox(ref))
    ra, dec = np.radians(ref.ra[row]), np.radians(ref.dec[row])
    sep = angular_separation(ra[:-1], dec[:-1], ra[1:], dec[1:])
    sep = sep[np.isfinite(sep)]
    return float(np.degrees(np.median(sep)) * 3600.0) if sep.size else float("nan")


def row_wavelengths(lam2d: np.ndarray) -> np.ndarray:
    """NaN-median λ of each row with any finite λ, in row order."""
    rows = np.flatnonzero(np.isfinite(lam2d).any(axis=1))
    cols = np.flatnonzero(np.isfinite(lam2d).any(axis=0))
    if rows.size == 0:
        return np.empty(0)
    block = lam2d[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=RuntimeWarning, message="All-NaN")
        med = np.nanmedian(block, axis=1)
    return med[~np.isnan(med)]


def merged_wavelengths(inputs: Sequence[GridInput], descending: bool) -> np.ndarray:
    """Output wavelengths: the first input's rows plus later inputs' beyond its min/max."""
    merged = row_wavelengths(inputs[0].wavelength)
    if merged.size == 0:
        raise ValueError("no finite wavelengths in the first input")
    for inp in inputs[1:]:
        lam = row_wavelengths(inp.wavelength)
        if lam.size == 0:
            raise ValueError("an input has no finite wavelengths")  # the reference fails too
        lo, hi = merged.min(), merged.max()
        merged = np.concatenate([merged, lam[lam < lo], lam[lam > hi]])
    out = np.unique(merged)  # sorted ascending
    if out.size < 2:
        raise ValueError("the output wavelength table needs at least two wavelengths")
    return out[::-1].copy() if descending else out


def _fit_line(values: np.ndarray, pixel_scale_ratio: float) -> tuple[float, float]:
    """(slope, intercept): least-squares line of ``values`` against ``k * pixel_scale_ratio``.

    The reference fits a ``Linear1D`` with astropy's ``LinearLSQFitter``; this is
    that fitter's arithmetic for a line (design columns x and 1, each divided by
    its sum of squares, numpy's lstsq, coefficients divided back), bit for bit
    (tests/algorithms/test_lrs_grid.py compares them), without importing
    astropy.modeling.fitting (astropy.nddata and scipy.sparse: ~0.1 s a run).
    """
    n = len(values)
    idx = np.linspace(0, n * pixel_scale_ratio, n, endpoint=False)
    design = np.asarray([idx, np.ones_like(idx)]).T
    scale = (design * design).sum(0)
    design /= scale
    coefficients = np.linalg.lstsq(design, np.asarray(values, dtype=float), rcond=None)[0]
    coefficients /= scale
    return float(coefficients[0]), float(coefficients[1])


def _centre_sampling(ref: GridInput, row: int, psr: float) -> tuple[tuple[float, float], tuple[float, float],
                                                                      tuple[float, float]]:
    """(RA, Dec) of the first tangent point and the x/y tangent lines fitted along ``row``."""
    if not 0 <= row < ref.ra.shape[0]:
        raise ValueError(f"centre row {row} is outside the stored array ({ref.ra.shape[0]} rows)")
    ra, dec = ref.ra[row], ref.dec[row]
    centre = (float(np.mean(wrap_ra(ra))), float(np.nanmean(dec)))
    ok = np.isfinite(ra) & np.isfinite(dec)
    if np.count_nonzero(ok) < 2:
        raise ValueError("fewer than two finite pixels on the centre row of the first input")
    tangent = am.Pix2Sky_TAN() | am.RotateNative2Celestial(*centre, 180.0)
    xt, yt = tangent.inverse(ra[ok], dec[ok])
    xt, yt = xt[~np.isnan(xt)], yt[~np.isnan(yt)]
    return centre, _fit_line(xt, psr), _fit_line(yt, psr)


def _final_tangent_point(inputs: Sequence[GridInput]) -> tuple[float, float]:
    """Centre of the RA (wrapped) and Dec ranges of every finite pixel of every input."""
    ra = wrap_ra(np.concatenate([inp.ra[~np.isnan(inp.ra)] for inp in inputs]))
    dec = np.concatenate([inp.dec[~np.isnan(inp.dec)] for inp in inputs])
    return float((ra.max() + ra.min()) / 2.0), float((dec.max() + dec.min()) / 2.0)


def _spatial_extent(inputs: Sequence[GridInput], tangent: am.Model) -> tuple[np.ndarray, np.ndarray]:
    """Min and max tangent-plane (x, y) over every finite pixel of every input."""
    lo, hi = np.full(2, np.inf), np.full(2, -np.inf)
    for inp in inputs:
        ok = np.isfinite(inp.ra) & np.isfinite(inp.dec)
        if ok.any():
            t = np.array(tangent.inverse(inp.ra[ok], inp.dec[ok]))
            lo, hi = np.minimum(lo, t.min(axis=1)), np.maximum(hi, t.max(axis=1))
    return lo, hi


def build_lrs_grid(inputs: Sequence[GridInput], options: GridOptions = GridOptions(),  # noqa: B008
                   ref_wcs: Any = None, *, descending: bool = True) -> LrsGrid:
    """Build the output grid of one MIRI LRS source from its inputs (first input = reference).

    Parameters
    ----------
    inputs : sequence of GridInput
        Every input cutout of the source, dispersion along y; coordinates NaN
        outside each input's gwcs bounding box (as stored at ingest).
    options : GridOptions
        ``pixel_scale_ratio``; ``pixel_scale`` (arcsec) overrides it as
        ``input scale / pixel_scale``.  The reference ignores ``pixel_scale``
        when the input has no nominal pixel area: pass None then.
    ref_wcs : gwcs.WCS, callable ``k -> gwcs`` (called with 0) or None
        The first input's gwcs, in the pixel coordinates of the stored arrays:
        its bounding box picks the sampled centre row, and it gives the input
        pixel scale for ``pixel_scale``.  Without it the box is the finite
        extent of the first input (the centre row may then differ by one from
        the reference's when its box edges are not half-integers).
    descending : bool
        Order the wavelengths descending like the detector (the reference does
        for the fixed slit only); else ascending.
    """
    if not inputs:
        raise ValueError("no inputs")
    wcs = ref_wcs(0) if callable(ref_wcs) and not hasattr(ref_wcs, "forward_transform") else ref_wcs
    ref = inputs[0]
    bbox = _bbox_tuple(wcs) if wcs is not None else None
    if bbox is None:
        bbox = _finite_bbox(ref)

    psr = float(options.pixel_scale_ratio)
    pixel_scale = options.pixel_scale
    in_scale = input_pixel_scale(wcs, bbox if wcs is not None else None, ref)
    if pixel_scale is not None and np.isfinite(in_scale):
        psr = in_scale / float(pixel_scale)
    elif pixel_scale is not None:
        pixel_scale = None  # the reference drops pixel_scale without an input scale

    centre, x_line, y_line = _centre_sampling(ref, centre_row(bbox), psr)
    wavelengths = merged_wavelengths(inputs, descending=descending)
    swap = abs(x_line[0]) < abs(y_line[0])
    fiducial = centre if len(inputs) == 1 else _final_tangent_point(inputs)

    tangent = am.Pix2Sky_TAN() | am.RotateNative2Celestial(*fiducial, 180.0)
    lo, hi = _spatial_extent(inputs, tangent)
    diff = np.abs(hi - lo)
    slopes = np.array([x_line[0], y_line[0]])
    axis = 1 if swap else 0
    n_spatial = int(np.ceil(diff[axis] / abs(slopes[axis])))
    offsets = 0.5 * (n_spatial - 1) * np.abs(slopes)
    icpt = -np.sign(slopes) * offsets  # symmetric about the tangent point
    grid = LrsGrid(fiducial, (x_line[0], float(icpt[0])), (y_line[0], float(icpt[1])), bool(swap),
                   wavelengths, n_spatial, psr, float("nan"))
    scale = float(pixel_scale) if pixel_scale is not None else grid.output_pixel_scale()
    return LrsGrid(grid.fiducial, grid.x_line, grid.y_line, grid.swap_xy, grid.wavelengths,
                   grid.n_spatial, psr, scale)

