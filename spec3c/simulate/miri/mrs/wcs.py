"""Synthetic MIRI MRS gwcs, organised as jwst's ``assign_wcs.miri.ifu`` builds it.

Frames: ``detector -> alpha_beta -> v2v3 -> v2v3vacorr -> world``, with the
frame names, axes and units jwst 3.0.0's cube_build and extract_1d expect:

* ``detector -> alpha_beta``: a gwcs ``RegionsSelector`` whose label mapper
  is a ``LabelMapperArray`` holding the slice map (labels ``100 * channel +
  slice``, 0 between slices; cube_build reads it as
  ``get_transform("detector", "alpha_beta").label_mapper.mapper``).  Each
  slice's transform maps ``(x, y) -> (alpha, beta, lambda)`` with
  ``Polynomial2D`` alpha and lambda and a constant beta, and has an exact
  inverse ``(alpha, beta, lambda) -> (x, y)``.  The label mapper's inverse is
  a ``LabelMapperRange`` on lambda (one range per channel) to a
  ``LabelMapper`` running ``MIRI_AB2Slice(beta_zero, slice_width, channel)``.
* ``alpha_beta -> v2v3``: a ``RegionsSelector`` choosing the channel by its
  wavelength range (``LabelMapperRange``); per channel an
  ``AffineTransformation2D`` (rotation by the channel's angle in the ideal
  frame, its offset, then the aperture's ideal -> V2V3 rotation and parity)
  and lambda passed through.
* ``v2v3 -> v2v3vacorr``: identity (no velocity-aberration scale).
* ``v2v3vacorr -> world``: the telescope attitude rotation built from
  ``meta.wcsinfo`` (``v2_ref, v3_ref, roll_ref, ra_ref, dec_ref``).

The detector bounding box is the whole frame.  The pointing of each dither
is solved so that the target lands at the commanded ideal offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy import coordinates as coord
from astropy import units as u
from astropy.modeling import Model, bind_bounding_box
from astropy.modeling import models as m
from gwcs import WCS, selector
from gwcs import coordinate_frames as cf
from gwcs.geometry import CartesianToSpherical, SphericalToCartesian
from stdatamodels.jwst.transforms.models import MIRI_AB2Slice

from .instrument import ChannelSpec, DetectorSpec, SliceSpec, detector_maps

__all__ = [
    "Pointing",
    "abl_to_v2v3",
    "build_mrs_wcs",
    "channel_affine",
    "channel_wave_range",
    "detector_to_abl",
    "ideal_to_v2v3",
    "solve_pointing",
    "v2v3_to_sky",
]

_INV_DEGREE = 8  # polynomial degree of u(s), the inverse of the dispersion law


@dataclass(frozen=True)
class Pointing:
    """``meta.wcsinfo`` pointing of one exposure: the sky position of the aperture
    reference point ``(v2_ref, v3_ref)`` (arcsec) and the V3 position angle there (deg)."""

    v2_ref: float
    v3_ref: float
    roll_ref: float
    ra_ref: float
    dec_ref: float
    v3yangle: float
    vparity: int


def v2v3_to_sky(p: Pointing) -> Model:
    """``(v2, v3)`` arcsec -> ``(ra, dec)`` deg: the attitude rotation of the telescope."""
    angles = [p.v2_ref / 3600.0, -p.v3_ref / 3600.0, p.roll_ref, p.dec_ref, -p.ra_ref]
    model = (
        (m.Scale(1.0 / 3600.0) & m.Scale(1.0 / 3600.0))
        | SphericalToCartesian(wrap_lon_at=180)
        | m.RotationSequence3D(angles, axes_order="zyxyz")
        | CartesianToSpherical(wrap_lon_at=360)
    )
    model.name = "v23tosky"
    return model


def ideal_to_v2v3(p: Pointing, x_idl: float | np.ndarray, y_idl: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Aperture ideal coordinates (arcsec) -> V2, V3 (arcsec)."""
    t = np.deg2rad(p.v3yangle)
    v2 = p.v2_ref + p.vparity * np.asarray(x_idl) * np.cos(t) + np.asarray(y_idl) * np.sin(t)
    v3 = p.v3_ref - p.vparity * np.asarray(x_idl) * np.sin(t) + np.asarray(y_idl) * np.cos(t)
    return v2, v3


def solve_pointing(
    target: tuple[float, float], ideal: tuple[float, float], v2v3_ref: tuple[float, float],
    roll_ref: float, v3yangle: float, vparity: int,
) -> Pointing:
    """The pointing that puts the sky position ``target`` (deg) at ideal coordinates ``ideal`` (arcsec)."""
    ra, dec = target
    v2, v3 = ideal_to_v2v3(Pointing(v2v3_ref[0], v2v3_ref[1], roll_ref, 0.0, 0.0, v3yangle, vparity), *ideal)
    ra_ref, dec_ref = ra, dec
    for _ in range(20):
        p = Pointing(v2v3_ref[0], v2v3_ref[1], roll_ref, ra_ref, dec_ref, v3yangle, vparity)
        r, d = v2v3_to_sky(p)(v2, v3)
        dra = (ra - float(r) + 180.0) % 360.0 - 180.0
        ddec = dec - float(d)
        if abs(dra) * np.cos(np.deg2rad(dec)) < 1e-12 and abs(ddec) < 1e-12:
            break
        ra_ref, dec_ref = (ra_ref + dra) % 360.0, dec_ref + ddec
    return Pointing(v2v3_ref[0], v2v3_ref[1], roll_ref, ra_ref, dec_ref, v3yangle, vparity)


def channel_wave_range(ch: ChannelSpec, band: str) -> tuple[float, float]:
    """Wavelength interval (micron) selecting channel ``ch`` in the label mappers:
    the detector range with a margin wide enough for every pixel and pixel edge."""
    lo, hi = ch.bands[band].detector_range
    pad = 0.02 * (hi - lo)
    return (round(lo - pad, 6), round(hi + pad, 6))


def _alpha_poly(ch: ChannelSpec, sl: SliceSpec) -> m.Polynomial2D:
    """``alpha(x, y)`` of :meth:`ChannelSpec.alpha` as a degree-2 polynomial."""
    p, c, t, vm = ch.pixel_scale, ch.curvature, ch.tilt, ch.vm
    ax, ay, a0 = t / vm, 1.0 / vm, (sl.dy - t * sl.xc - vm) / vm  # w = ax x + ay y + a0
    return m.Polynomial2D(
        2, c0_0=-p * sl.xc - p * c * a0 * a0, c1_0=p - 2 * p * c * a0 * ax, c0_1=-2 * p * c * a0 * ay,
        c2_0=-p * c * ax * ax, c0_2=-p * c * ay * ay, c1_1=-2 * p * c * ax * ay, name="alpha",
    )


def _lambda_poly(ch: ChannelSpec, sl: SliceSpec, band: str) -> m.Polynomial2D:
    """``lambda(x, y)`` of :meth:`ChannelSpec.wavelength` as a degree-2 polynomial."""
    b = ch.bands[band]
    lo, hi = b.detector_range
    span, q, n = hi - lo, b.q, ch.ny - 1
    bx, by, b0 = ch.tilt / n, 1.0 / n, (sl.dy - ch.tilt * sl.xc) / n  # u = bx x + by y + b0
    lin, quad = span * (1.0 - q), span * q
    return m.Polynomial2D(
        2, c0_0=lo + lin * b0 + quad * b0 * b0, c1_0=lin * bx + 2 * quad * b0 * bx,
        c0_1=lin * by + 2 * quad * b0 * by, c2_0=quad * bx * bx, c0_2=quad * by * by,
        c1_1=2 * quad * bx * by, name="lambda",
    )


def _v_of_lambda(ch: ChannelSpec, band: str) -> Model:
    """``lambda -> v``: inverse of the dispersion law (polynomial fit, < 1e-6 pixel)."""
    b = ch.bands[band]
    lo, hi = b.detector_range
    s = np.linspace(-0.1, 1.1, 2001)
    if b.q == 0.0:
        uu = s
    else:
        uu = (-(1.0 - b.q) + np.sqrt((1.0 - b.q) ** 2 + 4.0 * b.q * s)) / (2.0 * b.q)
    coef = np.polynomial.Polynomial.fit(s, uu, _INV_DEGREE).convert().coef
    poly = m.Polynomial1D(_INV_DEGREE, **{f"c{i}": float(c) for i, c in enumerate(coef)})
    return m.Shift(-lo) | m.Scale(1.0 / (hi - lo)) | poly | m.Scale(float(ch.ny - 1))


def _slice_transform(ch: ChannelSpec, sl: SliceSpec, band: str, v_of_lam: Model) -> Model:
    """``(x, y) -> (alpha, beta, lambda)`` of one slice, with its exact inverse."""
    fwd = m.Mapping((0, 1, 0, 0, 1)) | (_alpha_poly(ch, sl) & m.Const1D(sl.beta, name="beta") & _lambda_poly(ch, sl, band))
    c, vm, p, t = ch.curvature, ch.vm, ch.pixel_scale, ch.tilt
    x_of = m.Polynomial2D(2, c0_0=sl.xc + c, c1_0=1.0 / p, c0_1=-2.0 * c / vm, c0_2=c / vm**2, name="x")
    y_of = m.Polynomial2D(1, c0_0=t * sl.xc - sl.dy, c1_0=-t, c0_1=1.0, name="y")
    inv = (
        m.Mapping((0, 2))
        | (m.Identity(1) & v_of_lam)
        | m.Mapping((0, 1, 1))
        | (x_of & m.Identity(1))
        | m.Mapping((0, 0, 1))
        | (m.Identity(1) & y_of)
    )
    fwd.inverse = inv
    fwd.name = f"slice_{sl.label}"
    return fwd


def detector_to_abl(det: DetectorSpec, band: str) -> Model:
    """The ``detector -> alpha_beta`` RegionsSelector of ``det`` in ``band`` (see the module docstring)."""
    maps = detector_maps(det.name, band)
    transforms = {}
    ranges = {}
    for ch in det.channels:
        v_of_lam = _v_of_lambda(ch, band)
        for sl in ch.slices:
            transforms[sl.label] = _slice_transform(ch, sl, band, v_of_lam)
        ranges[channel_wave_range(ch, band)] = selector.LabelMapper(
            inputs=("alpha", "beta", "lam"),
            mapper=MIRI_AB2Slice(ch.beta_zero, ch.slice_width, ch.number),
            inputs_mapping=m.Mapping((1,), n_inputs=3),
        )
    label_mapper = selector.LabelMapperArray(np.array(maps.label, dtype=np.int16))
    label_mapper.inverse = selector.LabelMapperRange(("alpha", "beta", "lam"), ranges, m.Mapping((2,)))
    model = selector.RegionsSelector(
        ("x", "y"), ("alpha", "beta", "lam"), label_mapper=label_mapper, selector=transforms
    )
    ny, nx = det.shape
    bind_bounding_box(model, ((-0.5, nx - 0.5), (-0.5, ny - 0.5)), order="F")
    model.name = "detector_to_abl"
    return model


def channel_affine(ch: ChannelSpec, p: Pointing) -> m.AffineTransformation2D:
    """``(alpha, beta) -> (v2, v3)`` of channel ``ch``."""
    e = np.deg2rad(ch.rotation_deg)
    rot = np.array([[np.cos(e), -np.sin(e)], [np.sin(e), np.cos(e)]])  # alpha, beta -> ideal
    t = np.deg2rad(p.v3yangle)
    idl = np.array([[p.vparity * np.cos(t), np.sin(t)], [-p.vparity * np.sin(t), np.cos(t)]])
    matrix = idl @ rot
    translation = idl @ np.asarray(ch.ideal_offset) + np.array([p.v2_ref, p.v3_ref])
    return m.AffineTransformation2D(matrix=matrix, translation=translation, name=f"ab2v23_ch{ch.number}")


def abl_to_v2v3(det: DetectorSpec, band: str, p: Pointing) -> Model:
    """The ``alpha_beta -> v2v3`` RegionsSelector (channel chosen by wavelength)."""
    mapper = {}
    sel = {}
    for ch in det.channels:
        mapper[channel_wave_range(ch, band)] = m.Mapping((2,), name="mapping_lam") | m.Const1D(ch.number, name="channel")
        sel[ch.number] = channel_affine(ch, p) & m.Identity(1, name="identity_lam")
    lm = selector.LabelMapperRange(("alpha", "beta", "lam"), mapper, inputs_mapping=m.Mapping((2,)))
    lm.inverse = lm.copy()
    model = selector.RegionsSelector(("alpha", "beta", "lam"), ("v2", "v3", "lam"), label_mapper=lm, selector=sel)
    model.name = "abl_to_v2v3l"
    return model


def _frames() -> list[cf.CoordinateFrame]:
    det = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    ab = cf.Frame2D(name="alpha_beta_spatial", axes_order=(0, 1), unit=(u.arcsec, u.arcsec),
                    axes_names=("alpha", "beta"))
    ab_spec = cf.SpectralFrame(name="alpha_beta_spectral", axes_order=(2,), unit=(u.micron,),
                               axes_names=("lambda",))
    spec = cf.SpectralFrame(name="spectral", axes_order=(2,), unit=(u.micron,), axes_names=("lambda",))
    v23 = cf.Frame2D(name="v2v3_spatial", axes_order=(0, 1), unit=(u.arcsec, u.arcsec), axes_names=("v2", "v3"))
    v23va = cf.Frame2D(name="v2v3vacorr_spatial", axes_order=(0, 1), unit=(u.arcsec, u.arcsec),
                       axes_names=("v2", "v3"))
    icrs = cf.CelestialFrame(name="icrs", reference_frame=coord.ICRS(), axes_order=(0, 1),
                             unit=(u.deg, u.deg), axes_names=("RA", "DEC"))
    return [
        det,
        cf.CompositeFrame([ab, ab_spec], name="alpha_beta"),
        cf.CompositeFrame([v23, spec], name="v2v3"),
        cf.CompositeFrame([v23va, spec], name="v2v3vacorr"),
        cf.CompositeFrame([icrs, spec], name="world"),
    ]


def build_mrs_wcs(det: DetectorSpec, band: str, p: Pointing, det2abl: Model | None = None) -> WCS:
    """The gwcs of one MRS exposure of ``det`` in ``band`` at pointing ``p``.

    ``det2abl`` (pointing independent, from :func:`detector_to_abl`) may be
    passed to share it between the dithers of one detector and band.
    ``wcs(x, y) -> (ra, dec, lambda)``; NaN between slices.
    """
    det_f, ab_f, v23_f, va_f, world_f = _frames()
    d2ab = det2abl if det2abl is not None else detector_to_abl(det, band)
    va = m.Identity(2, name="dva_corr") & m.Identity(1)
    tel2sky = v2v3_to_sky(p) & m.Identity(1)
    return WCS([(det_f, d2ab), (ab_f, abl_to_v2v3(det, band, p)), (v23_f, va), (va_f, tel2sky), (world_f, None)])
