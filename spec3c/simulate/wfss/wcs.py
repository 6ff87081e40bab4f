"""Synthetic WFSS gwcs, built the way jwst's assign_wcs and extract_2d build them.

An exposure's WCS (``grism_detector -> detector -> v2v3 -> v2v3vacorr -> world``)
uses the grism dispersion model classes of ``stdatamodels.jwst.transforms``
(NIRISS row/column, NIRCam row/column), so jwst reads and evaluates it with
its own code; the coefficients are our own approximations
(``instrument.json``).  Each cutout's WCS gets the frame ``grism_slit`` in
front, with the transform extract_2d inserts: ``(x, y) -> (x + xmin, y + ymin,
x0, y0, order)`` bound to the cutout's bounding box.

The imaging part (``detector -> v2v3``) is an affine map with the detector's
parity and V3 angle, ``v2v3 -> v2v3vacorr`` the identity (no velocity
aberration), ``v2v3vacorr -> world`` the usual rotation of the telescope
frame onto the sky.  Every cutout's WCS shares the exposure's transform and
frame objects, so a file with thousands of cutouts stores each once (ASDF
anchors) instead of thousands of copies; the values are those of copies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy import coordinates as coord
from astropy import units as u
from astropy.modeling import bind_bounding_box
from astropy.modeling import models as m
from gwcs import WCS
from gwcs import coordinate_frames as cf
from gwcs.geometry import CartesianToSpherical, SphericalToCartesian
from stdatamodels.jwst.transforms import models as jt

__all__ = ["Attitude", "DetectorGeometry", "ExposureWcs", "TraceSolution", "build_exposure_wcs", "cutout_wcs"]

#: the pixel all spatial dependences of the trace polynomials are taken about
CENTRE = 1023.5


@dataclass(frozen=True)
class DetectorGeometry:
    """Where a detector sits in the telescope frame.

    ``v2v3_ref`` (arcsec) is the V2/V3 of the detector centre, ``v3yangle``
    (deg) the angle of its y axis from V3, ``vparity`` (-1 or 1) the sign
    between detector x and V2; ``shape`` is (ny, nx) and ``scale`` arcsec/pixel.
    """

    name: str
    v2v3_ref: tuple[float, float]
    v3yangle: float
    vparity: int
    scale: float
    shape: tuple[int, int]


@dataclass(frozen=True)
class Attitude:
    """The telescope pointing: (``ra``, ``dec``) deg of ``v2v3`` (arcsec) and the roll there."""

    v2v3: tuple[float, float]
    ra: float
    dec: float
    roll: float


@dataclass(frozen=True)
class ExposureWcs:
    """An exposure's WCS and the pieces the renderer evaluates directly."""

    wcs: WCS
    det2det: Any  # (x, y, x0, y0, order) -> (x0, y0, wavelength, order), with the backward inverse
    det2sky: Any  # (x, y) -> (ra, dec), with an inverse
    trace: TraceSolution  # the grism model's formulas, fast


def _affine(geom: DetectorGeometry) -> m.Model:
    """``detector (x, y) -> v2v3`` (arcsec), exactly invertible."""
    a = np.deg2rad(geom.v3yangle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    matrix = geom.scale * rot @ np.diag([float(geom.vparity), 1.0])
    ref = np.array([CENTRE, CENTRE])
    translation = np.asarray(geom.v2v3_ref, dtype=float) - matrix @ ref
    model = m.AffineTransformation2D(matrix=matrix, translation=translation)
    model.name = "distortion"
    return model


def _v23tosky(att: Attitude) -> m.Model:
    """``v2v3 (arcsec) -> (ra, dec)`` for the attitude (the rotation sequence jwst uses)."""
    v2, v3 = att.v2v3
    angles = np.array([v2 / 3600.0, -v3 / 3600.0, att.roll, att.dec, -att.ra])
    rot = m.RotationSequence3D(angles, axes_order="zyxyz")
    model = (m.Scale(1 / 3600) & m.Scale(1 / 3600)) | SphericalToCartesian(wrap_lon_at=180) | rot | \
        CartesianToSpherical(wrap_lon_at=360)
    model.name = "v23tosky"
    return model


def _coefficient_models(coeffs: list[list[float]], sign: float) -> list[m.Polynomial2D]:
    """``[c, d/dx0, d/dy0]`` per power of t -> linear Polynomial2D in (x0, y0) about :data:`CENTRE`."""
    out = []
    for c, cx, cy in coeffs:
        out.append(m.Polynomial2D(1, c0_0=sign * (c - cx * CENTRE - cy * CENTRE), c1_0=sign * cx,
                                  c0_1=sign * cy))
    return out


def _line(coeffs: list[float]) -> tuple[m.Polynomial1D, m.Polynomial1D]:
    """``p(t) = a + b t`` and its exact inverse."""
    a, b = coeffs
    return m.Polynomial1D(1, c0=a, c1=b), m.Polynomial1D(1, c0=-a / b, c1=1.0 / b)


def _dispersion(instrument: str, grism: dict[str, Any], sign: float, theta: float) -> Any:
    """The grism_detector -> detector model of the grism (forward with its backward inverse)."""
    orders = sorted(int(o) for o in grism["orders"])
    lmodels, inv_lmodels, along, across = [], [], [], []
    for order in orders:
        spec = grism["orders"][str(order)]
        fwd, inv = _line(spec["displ"])
        lmodels.append(fwd)
        inv_lmodels.append(inv)
        along.append(_coefficient_models(spec["along"], sign))
        across.append(_coefficient_models(spec["across"], 1.0))
    rows = int(grism["dispersion_axis"]) == 1
    xmodels, ymodels = (along, across) if rows else (across, along)
    if instrument == "NIRISS":
        forward_cls = jt.NIRISSForwardRowGrismDispersion if rows else jt.NIRISSForwardColumnGrismDispersion
        model = forward_cls(orders, lmodels=lmodels, xmodels=xmodels, ymodels=ymodels, theta=theta)
        model.inverse = jt.NIRISSBackwardGrismDispersion(orders, lmodels=inv_lmodels, xmodels=xmodels,
                                                         ymodels=ymodels, theta=-theta)
        return model
    # NIRCam: the "legacy" form (one polynomial in t per order), the one its ASDF converter keeps whole
    # (inverse models are not serialised; the forward model inverts a line exactly, the backward one
    # interpolates displ)
    lines = [(spec["along"], spec["across"], spec["displ"]) for spec in (grism["orders"][str(o)] for o in orders)]
    along_1d = [m.Polynomial1D(1, c0=sign * a[0][0], c1=sign * a[1][0]) for a, _, _ in lines]
    across_1d = [m.Polynomial1D(1, c0=c[0][0], c1=c[1][0]) for _, c, _ in lines]
    xmodels, ymodels = (along_1d, across_1d) if rows else (across_1d, along_1d)
    forward_cls = jt.NIRCAMForwardRowGrismDispersion if rows else jt.NIRCAMForwardColumnGrismDispersion
    model = forward_cls(orders, lmodels=lmodels, xmodels=xmodels, ymodels=ymodels)
    model.inverse = jt.NIRCAMBackwardGrismDispersion(orders, lmodels=lmodels, xmodels=xmodels, ymodels=ymodels)
    return model


def _frames() -> dict[str, Any]:
    spec = cf.SpectralFrame(name="spectral", axes_order=(2,), unit=(u.micron,), axes_names=("wavelength",))

    def with_spectral(name: str, names: tuple[str, str], unit: Any) -> cf.CompositeFrame:
        spatial = cf.Frame2D(name=name + "spatial", axes_order=(0, 1), axes_names=names, unit=(unit, unit))
        return cf.CompositeFrame([spatial, spec], name=name)

    sky = cf.CelestialFrame(reference_frame=coord.ICRS(), name="sky")
    return {
        "grism_slit": cf.Frame2D(name="grism_slit", axes_order=(0, 1), axes_names=("x_grism", "y_grism"),
                                 unit=(u.pix, u.pix)),
        "grism_detector": cf.Frame2D(name="grism_detector", axes_order=(0, 1), axes_names=("x_grism", "y_grism"),
                                     unit=(u.pix, u.pix)),
        "detector": with_spectral("detector", ("x", "y"), u.pix),
        "v2v3": with_spectral("v2v3", ("v2", "v3"), u.arcsec),
        "v2v3vacorr": with_spectral("v2v3vacorr", ("v2", "v3"), u.arcsec),
        "world": cf.CompositeFrame([sky, spec], name="world"),
    }


_FRAMES = _frames()


def build_exposure_wcs(instrument: str, grism: dict[str, Any], geom: DetectorGeometry, att: Attitude,
                       sign: float = 1.0, theta: float = 0.0) -> ExposureWcs:
    """The WCS of a whole grism exposure (what assign_wcs attaches to the rate file).

    Parameters
    ----------
    instrument : {'NIRISS', 'NIRCAM'}
    grism : dict
        The grism's ``instrument.json`` entry (orders, dispersion axis).
    geom : DetectorGeometry
    att : Attitude
        The telescope pointing of the exposure.
    sign : float
        +1, or -1 to flip the dispersion direction (NIRCam module B GRISMR).
    theta : float
        Filter-wheel rotation of the traces in degrees (NIRISS ``FWCPOS - fwcpos_ref``).
    """
    det2det = _dispersion(instrument, grism, sign, theta)
    distortion = _affine(geom)
    tel2sky = _v23tosky(att)
    f = _FRAMES
    wcs = WCS([
        (f["grism_detector"], det2det),
        (f["detector"], distortion & m.Identity(2)),
        (f["v2v3"], m.Identity(2) & m.Identity(2)),
        (f["v2v3vacorr"], tel2sky & m.Identity(2)),
        (f["world"], None),
    ])
    return ExposureWcs(wcs, det2det, distortion | tel2sky, TraceSolution.from_config(instrument, grism, sign, theta))


def cutout_wcs(exposure: ExposureWcs, xmin: int, ymin: int, centre: tuple[float, float], order: int,
               shape: tuple[int, int]) -> WCS:
    """The WCS extract_2d gives one cutout: ``grism_slit`` in front of the exposure's WCS.

    ``(xmin, ymin)`` is the cutout's lower corner on the detector (0-based),
    ``centre`` the source's direct-image position ``(x0, y0)``, ``shape`` (ny, nx).
    """
    x0, y0 = centre
    xc, yc, oc = m.Const1D(x0), m.Const1D(y0), m.Const1D(order)
    xc.inverse, yc.inverse, oc.inverse = m.Const1D(x0), m.Const1D(y0), m.Const1D(order)
    tr = m.Mapping((0, 1, 0, 0, 0)) | (m.Shift(xmin) & m.Shift(ymin) & xc & yc & oc)
    bind_bounding_box(tr, ((-0.5, shape[1] - 0.5), (-0.5, shape[0] - 0.5)), order="F")
    steps = [(step.frame, step.transform) for step in exposure.wcs.pipeline]
    return WCS([(_FRAMES["grism_slit"], tr), *steps])


@dataclass(frozen=True)
class TraceSolution:
    """The grism formulas of one exposure, evaluated with numpy.

    The same arithmetic as the exposure's grism model (:func:`build_exposure_wcs`;
    the model classes rebuild lookup tables on every call, ~10 ms each): for
    order ``o``, the trace parameter ``t`` maps to the wavelength
    ``displ(t) = a + b t`` and to the offset from the direct-image position
    ``(dx, dy) = (sum_k X_k(x0, y0) t^k, sum_k Y_k(x0, y0) t^k)``.  NIRISS
    rotates the offsets by ``theta`` (forward model) or ``-theta`` (backward
    model), as jwst's NIRISS models do.
    """

    instrument: str
    rows: bool
    theta: float
    displ: dict[int, tuple[float, float]]
    dx: dict[int, tuple[tuple[float, float, float], ...]]  # (c, d/dx0, d/dy0) per power of t, about CENTRE
    dy: dict[int, tuple[tuple[float, float, float], ...]]

    @classmethod
    def from_config(cls, instrument: str, grism: dict[str, Any], sign: float, theta: float) -> TraceSolution:
        rows = int(grism["dispersion_axis"]) == 1
        displ, dx, dy = {}, {}, {}
        for key, spec in grism["orders"].items():
            order = int(key)
            along = tuple((sign * c, sign * cx, sign * cy) for c, cx, cy in spec["along"])
            across = tuple((float(c), float(cx), float(cy)) for c, cx, cy in spec["across"])
            if instrument != "NIRISS":  # NIRCam's legacy form: no field dependence
                along = tuple((c, 0.0, 0.0) for c, _, _ in along)
                across = tuple((c, 0.0, 0.0) for c, _, _ in across)
            displ[order] = (float(spec["displ"][0]), float(spec["displ"][1]))
            dx[order], dy[order] = (along, across) if rows else (across, along)
        return cls(instrument, rows, theta if instrument == "NIRISS" else 0.0, displ, dx, dy)

    @staticmethod
    def _coeff(c: tuple[float, float, float], x0: Any, y0: Any) -> Any:
        value, cx, cy = c
        return (value - cx * CENTRE - cy * CENTRE) + cx * x0 + cy * y0

    def _offsets(self, order: int, x0: Any, y0: Any, t: Any, theta: float) -> tuple[Any, Any]:
        dx = sum(self._coeff(c, x0, y0) * t**k for k, c in enumerate(self.dx[order]))
        dy = sum(self._coeff(c, x0, y0) * t**k for k, c in enumerate(self.dy[order]))
        if theta:
            a = np.deg2rad(theta)
            dx, dy = dx * np.cos(a) - dy * np.sin(a), dx * np.sin(a) + dy * np.cos(a)
        return dx, dy

    def wavelength(self, x: Any, y: Any, x0: float, y0: float, order: int) -> np.ndarray:
        """Forward model: wavelength (micron) of detector pixels (x, y) for a source at (x0, y0)."""
        u = np.asarray(x, dtype=float) - x0 if self.rows else np.asarray(y, dtype=float) - y0
        a0, a1 = self._offsets(order, x0, y0, np.array([0.0, 1.0]), self.theta)[0 if self.rows else 1]
        t = (u - a0) / (a1 - a0)
        a, b = self.displ[order]
        return a + b * t

    def position(self, x0: Any, y0: Any, lam: Any, order: int) -> tuple[np.ndarray, np.ndarray]:
        """Backward model: detector (x, y) of wavelength ``lam`` in ``order`` of a source at (x0, y0)."""
        a, b = self.displ[order]
        t = (np.asarray(lam, dtype=float) - a) / b
        dx, dy = self._offsets(order, x0, y0, t, -self.theta)
        return np.asarray(x0 + dx, dtype=float), np.asarray(y0 + dy, dtype=float)
