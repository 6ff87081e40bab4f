"""Synthetic MIRI LRS gwcs: ``detector -> alpha_beta -> world``.

Modelled on the LRS transform of jwst ``assign_wcs`` in spirit, written from
scratch and separable.  ``x, y`` are 0-based pixels of the file's (sub)array:

* dispersion along ``y``: ``lambda(y)`` (micron) decreases with ``y``, a
  tabulated smooth cubic (``Tabular1D``, linear interpolation between integer
  rows, NaN outside the table), inverted by the swapped table;
* trace: the slit line sits at column ``xref + dx(y)`` with a small quadratic
  ``dx``; ``alpha = pscale (x - xref - dx(y))`` arcsec along the slit,
  ``beta = 0`` (the slit width is not mapped, as in jwst);
* ``alpha_beta -> world``: ``alpha`` runs along the position angle ``pa`` (east
  of north) in the tangent plane about the slit centre, TAN-deprojected to
  ICRS; wavelength passes through.  Its inverse is analytic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy import coordinates as coord
from astropy import units as u
from astropy.modeling import models as m
from gwcs import WCS
from gwcs import coordinate_frames as cf

__all__ = ["LrsGeometry", "build_lrs_wcs", "row_wavelength", "trace_offset"]


@dataclass(frozen=True)
class LrsGeometry:
    """Detector geometry of one LRS exposure (0-based pixels of the file's array).

    Parameters
    ----------
    shape : (ny, nx)
        Array shape.
    xref : float
        Column of ``alpha = 0`` where ``dx = 0`` (the slit centre / slitless reference).
    y0, n_rows : int
        The spectral rows are ``y0 .. y0 + n_rows - 1``.
    band : (2,) float
        ``lambda(y0 + n_rows - 1)`` and ``lambda(y0)`` in micron (lo, hi).
    disp : (3,) float
        ``g(u) = d0 u + d1 u**2 + d2 u**3`` (sum 1) with ``u`` from 0 (row ``y0``)
        to 1; ``lambda = hi - (hi - lo) g(u)``.
    trace : (2,) float
        ``dx = t1 s + t2 s**2`` pixels, ``s = u - 0.5``.
    pscale : float
        Arcsec per pixel along the slit.
    half_length : float
        Half length of the illuminated region along ``alpha`` (arcsec).
    pa_deg : float
        Position angle (east of north) of ``+alpha`` on the sky.
    centre_radec : (2,) float
        Sky position (deg) of ``alpha = beta = 0``.
    xlim : (2,) float, optional
        Bounding-box x edges, overriding the slit extent (slitless: the
        subarray without its reference columns).
    """

    shape: tuple[int, int]
    xref: float
    y0: int
    n_rows: int
    band: tuple[float, float]
    disp: tuple[float, float, float]
    trace: tuple[float, float]
    pscale: float
    half_length: float
    pa_deg: float
    centre_radec: tuple[float, float]
    xlim: tuple[float, float] | None = None

    @property
    def bounding_box(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """``((x_lo, x_hi), (y_lo, y_hi))``: the slit (or spectral) region, pixel edges."""
        ylim = (self.y0 - 0.5, self.y0 + self.n_rows - 0.5)
        if self.xlim is not None:
            return (float(self.xlim[0]), float(self.xlim[1])), ylim
        t1, t2 = self.trace
        pad = self.half_length / self.pscale + abs(t1) / 2 + abs(t2) / 4
        x_lo = max(np.floor(self.xref - pad) - 0.5, -0.5)
        x_hi = min(np.ceil(self.xref + pad) + 0.5, self.shape[1] - 0.5)
        return (float(x_lo), float(x_hi)), ylim


def _u(geom: LrsGeometry, y: np.ndarray) -> np.ndarray:
    return (np.asarray(y, dtype=np.float64) - geom.y0) / (geom.n_rows - 1)


def row_wavelength(geom: LrsGeometry, y: np.ndarray) -> np.ndarray:
    """Analytic ``lambda(y)`` in micron (the WCS table samples it at integer rows)."""
    lo, hi = geom.band
    t = _u(geom, y)
    d0, d1, d2 = geom.disp
    return hi - (hi - lo) * t * (d0 + t * (d1 + t * d2))


def trace_offset(geom: LrsGeometry, y: np.ndarray) -> np.ndarray:
    """``dx(y)``: column offset of the slit line from ``xref`` (pixels)."""
    s = _u(geom, y) - 0.5
    t1, t2 = geom.trace
    return t1 * s + t2 * s * s


def _dx_coeffs(geom: LrsGeometry) -> tuple[float, float, float]:
    """``dx(y) = c0 + c1 y + c2 y**2`` in raw rows."""
    big_n = geom.n_rows - 1
    ym = geom.y0 + 0.5 * big_n
    t1, t2 = geom.trace
    c2 = t2 / big_n**2
    c1 = t1 / big_n - 2.0 * c2 * ym
    c0 = c2 * ym * ym - t1 * ym / big_n
    return c0, c1, c2


def _tables(geom: LrsGeometry) -> tuple[m.Tabular1D, m.Tabular1D]:
    """``y -> lambda`` and ``lambda -> y`` tables, 4 rows beyond the spectral rows."""
    y = np.arange(geom.y0 - 4, geom.y0 + geom.n_rows + 4, dtype=np.float64)
    lam = row_wavelength(geom, y)
    if np.any(np.diff(lam) >= 0):
        raise ValueError("LRS dispersion must decrease monotonically with y")
    fwd = m.Tabular1D(points=(y,), lookup_table=lam, bounds_error=False, fill_value=np.nan)
    inv = m.Tabular1D(
        points=(lam[::-1],), lookup_table=y[::-1], bounds_error=False, fill_value=np.nan
    )
    fwd.name, inv.name = "y2lambda", "lambda2y"
    return fwd, inv


def _detector_to_alpha_beta(geom: LrsGeometry) -> m.Model:
    """``(x, y) -> (alpha, beta, lambda)`` with an explicit inverse."""
    ps, xr = geom.pscale, geom.xref
    c0, c1, c2 = _dx_coeffs(geom)
    y2lam, lam2y = _tables(geom)
    alpha = m.Polynomial2D(2, c0_0=-ps * (xr + c0), c1_0=ps, c0_1=-ps * c1, c0_2=-ps * c2)
    fwd = m.Mapping((0, 1, 0, 1)) | (alpha & m.Const1D(0.0) & y2lam)
    x_of = m.Polynomial2D(2, c0_0=xr + c0, c1_0=1.0 / ps, c0_1=c1, c0_2=c2)
    inv = (
        m.Mapping((0, 2))
        | (m.Identity(1) & lam2y)
        | m.Mapping((0, 1, 1))
        | (x_of & m.Identity(1))
    )
    fwd.inverse = inv
    fwd.name = "det2abl"
    return fwd


def _alpha_beta_to_world(geom: LrsGeometry) -> m.Model:
    """``(alpha, beta, lambda) -> (ra, dec, lambda)``; analytic inverse."""
    pa = np.deg2rad(geom.pa_deg)
    along = np.array([np.sin(pa), np.cos(pa)])  # (east, north) of +alpha
    across = np.array([np.cos(pa), -np.sin(pa)])
    matrix = np.column_stack([along, across]) / 3600.0
    ra_c, dec_c = geom.centre_radec
    sky = (
        m.AffineTransformation2D(matrix=matrix, translation=[0.0, 0.0])
        | m.Pix2Sky_TAN()
        | m.RotateNative2Celestial(ra_c, dec_c, 180.0)
    )
    model = sky & m.Identity(1)
    model.name = "abl2world"
    return model


def _frames() -> tuple[cf.Frame2D, cf.CompositeFrame, cf.CompositeFrame]:
    det = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    ab = cf.Frame2D(
        name="alpha_beta_spatial",
        axes_order=(0, 1),
        unit=(u.arcsec, u.arcsec),
        axes_names=("alpha", "beta"),
    )
    ab_spec = cf.SpectralFrame(
        name="alpha_beta_spectral", axes_order=(2,), unit=(u.micron,), axes_names=("lambda",)
    )
    icrs = cf.CelestialFrame(
        name="icrs",
        reference_frame=coord.ICRS(),
        axes_order=(0, 1),
        unit=(u.deg, u.deg),
        axes_names=("RA", "DEC"),
    )
    spec = cf.SpectralFrame(name="spec", axes_order=(2,), unit=(u.micron,), axes_names=("lambda",))
    return (
        det,
        cf.CompositeFrame([ab, ab_spec], name="alpha_beta"),
        cf.CompositeFrame([icrs, spec], name="world"),
    )


def build_lrs_wcs(geom: LrsGeometry, det2ab: m.Model | None = None) -> WCS:
    """The gwcs of one exposure.

    Parameters
    ----------
    geom : LrsGeometry
        Geometry and pointing of the exposure.
    det2ab : astropy Model, optional
        A ``detector -> alpha_beta`` transform to reuse (pointing independent).

    Returns
    -------
    gwcs.WCS
        ``wcs(x, y) -> (ra_deg, dec_deg, lambda_um)``; ``wcs.invert`` /
        ``backward_transform`` go back; the bounding box is the slit region.
    """
    det, ab, world = _frames()
    if det2ab is None:
        det2ab = _detector_to_alpha_beta(geom)
    wcs = WCS([(det, det2ab), (ab, _alpha_beta_to_world(geom)), (world, None)])
    wcs.bounding_box = geom.bounding_box  # (x, y) order
    return wcs
