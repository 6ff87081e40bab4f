"""Synthetic NIRSpec-like slit gwcs: ``detector -> slit_frame -> world``.

The model is deliberately simple but has every property the stage-3 steps rely
on: a tilted, slightly curved trace, a non-linear dispersion with a small line
tilt, an explicit inverse, a bounding box and only ASDF-serialisable astropy
models.

Forward (detector -> slit_frame), with ``x, y`` 0-based cutout pixels::

    v      = y - trace(x),   trace(x) = y0 + a1 (x - xc) + a2 (x - xc)**2
    x_slit = 0
    y_slit = v / H
    lam_m  = P(x + s v)      (cubic polynomial, metres; NaN outside the band)

Inverse: ``v = H y_slit``, ``x = Pinv(lam) - s v`` (``Pinv`` a finely sampled
``Tabular1D``), ``y = v + trace(x)``. Both directions are written as a few
``Polynomial2D`` models (the algebra is exact for a quadratic trace).

slit_frame -> world: ``(x_slit, y_slit)`` are scaled to arcsec, rotated by the
slit position angle into (east, north) tangent-plane offsets, deprojected
(TAN) about the slit centre on the sky; wavelength metres -> micron.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy import coordinates as coord
from astropy import units as u
from astropy.modeling import models as m
from gwcs import WCS
from gwcs import coordinate_frames as cf

__all__ = [
    "SlitGeometry",
    "build_slit_wcs",
    "dispersion_polynomial",
    "raw_dispersion",
    "trace_rows",
]


@dataclass(frozen=True)
class SlitGeometry:
    """Geometry of one slit cutout in one exposure.

    Parameters
    ----------
    shape : (ny, nx)
        Cutout shape in pixels.
    xc : float
        Reference column (cutout pixels) of the trace and dispersion polynomials.
    trace : (3,) tuple of float
        ``(y0, a1, a2)``: slit-centre row ``y0 + a1 (x-xc) + a2 (x-xc)**2``.
    wave_coeffs : (4,) tuple of float
        Coefficients (metres) of ``P(t)``, ``t = (x0 - xc) / nx``.
    tilt : float
        Line tilt ``s``: wavelength is constant along ``x + s v``.
    pix_per_slit : float
        ``H``, detector rows per slit-frame y unit.
    band_x : (2,) tuple of float
        Range of ``x0 = x + s v`` whose wavelengths lie inside the band; the
        forward wavelength is NaN outside it (like real NIRSpec cutouts).
    slit_scale_arcsec : (2,) tuple of float
        Arcsec per slit-frame unit along x_slit (across) and y_slit (along).
    pa_deg : float
        Position angle (east of north) of the +y_slit direction on the sky.
    centre_radec : (2,) tuple of float
        Sky position (deg) of the slit-frame origin in this exposure.
    """

    shape: tuple[int, int]
    xc: float
    trace: tuple[float, float, float]
    wave_coeffs: tuple[float, float, float, float]
    tilt: float
    pix_per_slit: float
    band_x: tuple[float, float]
    slit_scale_arcsec: tuple[float, float]
    pa_deg: float
    centre_radec: tuple[float, float]


def trace_rows(geom: SlitGeometry, x: np.ndarray) -> np.ndarray:
    """Row of the slit centre (``y_slit = 0``) at columns ``x`` (float64)."""
    y0, a1, a2 = geom.trace
    d = np.asarray(x, dtype=np.float64) - geom.xc
    return y0 + a1 * d + a2 * d * d


def _raw_trace(geom: SlitGeometry) -> tuple[float, float, float]:
    """Trace coefficients ``(t0, t1, t2)`` in raw cutout columns."""
    y0, a1, a2 = geom.trace
    xc = geom.xc
    return y0 - a1 * xc + a2 * xc * xc, a1 - 2.0 * a2 * xc, a2


def raw_dispersion(geom: SlitGeometry) -> np.polynomial.Polynomial:
    """``x0 -> wavelength (m)`` as a cubic in raw cutout columns."""
    t = np.polynomial.Polynomial([-geom.xc / geom.shape[1], 1.0 / geom.shape[1]])
    return np.polynomial.Polynomial(geom.wave_coeffs)(t)


def dispersion_polynomial(geom: SlitGeometry) -> m.Polynomial1D:
    """``x0 -> wavelength (m)`` astropy model (``Polynomial1D`` of degree 3)."""
    c = raw_dispersion(geom).coef
    c = np.concatenate([c, np.zeros(4 - c.size)])
    return m.Polynomial1D(3, c0=c[0], c1=c[1], c2=c[2], c3=c[3])


def _dispersion_table(geom: SlitGeometry) -> tuple[np.ndarray, np.ndarray]:
    """``(x0, lambda_m)`` sampled every pixel over the in-band range ``band_x``."""
    lo, hi = geom.band_x
    x0 = np.linspace(lo, hi, int(np.ceil(hi - lo)) + 1)
    lam = raw_dispersion(geom)(x0)
    if np.any(np.diff(lam) <= 0):
        raise ValueError("dispersion polynomial is not monotonic over the cutout")
    return x0, lam


def _tabular(points: np.ndarray, values: np.ndarray) -> m.Tabular1D:
    return m.Tabular1D(
        points=(points,),
        lookup_table=values,
        method="linear",
        bounds_error=False,
        fill_value=np.nan,
    )


def _detector_to_slit(geom: SlitGeometry) -> m.Model:
    """Compound ``(x, y) -> (x_slit, y_slit, lam_m)`` with explicit inverse.

    Written with few nodes (2-D polynomials) because the ASDF serialisation
    and validation cost of a MultiSlitModel grows with the number of models.
    ``P`` is tabulated every pixel (linear interpolation, error ~1e-4 px) so
    that wavelengths outside the band are NaN; the inverse uses the same table.
    """
    s, h = geom.tilt, geom.pix_per_slit
    t0, t1, t2 = _raw_trace(geom)
    xtab, lamtab = _dispersion_table(geom)
    # y_slit = (y - T(x)) / H ;  x0 = x + s (y - T(x))
    yslit = m.Polynomial2D(2, c0_0=-t0 / h, c1_0=-t1 / h, c2_0=-t2 / h, c0_1=1.0 / h)
    x0 = m.Polynomial2D(2, c0_0=-s * t0, c1_0=1.0 - s * t1, c2_0=-s * t2, c0_1=s)
    fwd = m.Mapping((0, 0, 1, 0, 1)) | (m.Const1D(0.0) & yslit & (x0 | _tabular(xtab, lamtab)))

    # inverse: x0 = Pinv(lam); x = x0 + k y_slit; y = H y_slit + T(x), k = -s H
    k = -s * h
    x_of = m.Polynomial2D(1, c1_0=1.0, c0_1=k)
    y_of = m.Polynomial2D(
        2, c0_0=t0, c1_0=t1, c0_1=h + t1 * k, c2_0=t2, c1_1=2.0 * t2 * k, c0_2=t2 * k * k
    )
    inv = (
        m.Mapping((2, 1))
        | (_tabular(lamtab, xtab) & m.Identity(1))
        | m.Mapping((0, 1, 0, 1))
        | (x_of & y_of)
    )
    fwd.inverse = inv
    fwd.name = "det2slit"
    return fwd


def _slit_to_world(geom: SlitGeometry) -> m.Model:
    """``(x_slit, y_slit, lam_m) -> (ra, dec, lam_um)``; inverse is analytic."""
    sx, sy = (v / 3600.0 for v in geom.slit_scale_arcsec)
    pa = np.deg2rad(geom.pa_deg)
    # unit vectors (east, north): along slit (+y_slit) and across slit (+x_slit)
    along = np.array([np.sin(pa), np.cos(pa)])
    across = np.array([np.cos(pa), -np.sin(pa)])
    matrix = np.column_stack([across * sx, along * sy])
    ra_c, dec_c = geom.centre_radec
    sky = (
        m.AffineTransformation2D(matrix=matrix, translation=[0.0, 0.0])
        | m.Pix2Sky_TAN()
        | m.RotateNative2Celestial(ra_c, dec_c, 180.0)
    )
    model = sky & m.Scale(1.0e6)
    model.name = "slit2world"
    return model


def _frames() -> tuple[cf.Frame2D, cf.CompositeFrame, cf.CompositeFrame]:
    det = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    slit_spatial = cf.Frame2D(
        name="slit_spatial",
        axes_order=(0, 1),
        unit=(u.one, u.one),
        axes_names=("x_slit", "y_slit"),
    )
    spec_m = cf.SpectralFrame(
        name="spectral", axes_order=(2,), unit=(u.m,), axes_names=("wavelength",)
    )
    slit_frame = cf.CompositeFrame([slit_spatial, spec_m], name="slit_frame")
    sky = cf.CelestialFrame(name="sky", axes_order=(0, 1), reference_frame=coord.ICRS())
    spec_um = cf.SpectralFrame(
        name="spectral", axes_order=(2,), unit=(u.micron,), axes_names=("wavelength",)
    )
    world = cf.CompositeFrame([sky, spec_um], name="world")
    return det, slit_frame, world


def build_slit_wcs(geom: SlitGeometry, det2slit: m.Model | None = None) -> WCS:
    """Build the gwcs of one slit cutout.

    Parameters
    ----------
    geom : SlitGeometry
        Cutout geometry for one exposure.
    det2slit : astropy Model, optional
        A ``detector -> slit_frame`` transform to reuse (it depends only on
        the trace and dispersion, which are the same in every exposure).

    Returns
    -------
    gwcs.WCS
        Frames ``detector -> slit_frame -> world``; ``wcs(x, y)`` returns
        ``(ra_deg, dec_deg, lambda_um)``; a bounding box on the first transform.
    """
    det, slit_frame, world = _frames()
    if det2slit is None:
        det2slit = _detector_to_slit(geom)
    ny = geom.shape[0]
    wcs = WCS([(det, det2slit), (slit_frame, _slit_to_world(geom)), (world, None)])
    # gwcs interprets this tuple in (x, y) order
    wcs.bounding_box = ((-0.5, geom.shape[1] - 0.5), (-0.5, ny - 0.5))
    return wcs
