"""Synthetic NIRSpec IFU gwcs in the coordinate-based form jwst 3.x writes to ``_cal`` files.

The pipeline of frames and transforms (what jwst's ``assign_wcs`` leaves after
``apply_slicemap``)::

    coordinates --coord2det (Identity 2)--> detector
    detector    --det2slicer (gwcs RegionsSelector)--> slicer (x_slice, y_slice [m], lam [m])
    slicer      --slicer2msa--> msa_frame (x_msa, y_msa [m], lam [m])
    msa_frame   --msa2oteip--> oteip (X_OTEIP, Y_OTEIP [deg], lam [m])
    oteip       --chrom_corr (Identity 3)--> oteip_chromcorr
    oteip_chromcorr --oteip2v23--> v2v3 (v2, v3 [arcsec], lam [um])
    v2v3        --va_corr (Identity 3)--> v2v3vacorr
    v2v3vacorr  --v2v3_to_sky--> world (ra, dec [deg], lam [um])

``det2slicer`` is a ``RegionsSelector`` whose ``LabelMapperArray`` is the
slice map (``regions``: 0 off the slices, ``i + 1`` on slice ``i``) and whose
selector holds, for each label, the slice's ``(x, y) -> (x_slice, y_slice,
lam)`` model with the slice's bounding box bound to it; jwst's
``nrs_wcs_set_input(model, i)`` takes that bounding box for slice ``i``.
The inverse label mapper picks the slice from ``x_slice`` (rounded to 1e-5 m,
tolerance 1e-4 m).  ``x_slice`` is constant over a slice (the across-slice
position of a pixel is degenerate with wavelength; the pipeline takes the
slice centre), ``y_slice`` runs along the slice.

Per slice ``i`` (0-based detector pixels ``x`` along the dispersion, ``y``)::

    v       = y - T_i(x),      T_i(x) = y0 + a1 (x - xc) + a2 (x - xc)**2
    y_slice = v * m_per_row    (``rows_per_slice`` rows span the slice length)
    x_slice = across_i * slicer_m_per_arcsec
    lam     = P_i(x + tilt * v)   (tabulated every pixel; NaN outside the band)

The slicer plane maps linearly to the IFU ideal frame (arcsec: x across the
slices, y along them), then to V2/V3 with the aperture's ``V3IdlYAngle`` and
parity, then to the sky with the standard JWST attitude rotation
(``v2_ref, -v3_ref, roll_ref, dec_ref, -ra_ref`` about ``z y x y z``).

Older cal files (before jwst put the slice map into the WCS) carry the
slice-based form instead; see :data:`LEGACY_WCS_NOTE`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from astropy import coordinates as coord
from astropy import units as u
from astropy.modeling import bind_bounding_box
from astropy.modeling import models as m
from gwcs import WCS, selector
from gwcs import coordinate_frames as cf
from gwcs.geometry import CartesianToSpherical, SphericalToCartesian

__all__ = [
    "LEGACY_WCS_NOTE",
    "DetectorGeometry",
    "IfuOptics",
    "Pointing",
    "SliceGeometry",
    "build_ifu_wcs",
    "ideal_to_sky",
    "regions_map",
    "sky_to_ideal",
    "slice_coordinates",
    "slicer_to_world",
    "trace_rows",
    "wave_table",
]

LEGACY_WCS_NOTE = """\
Slice-based NIRSpec IFU WCS (cal files from jwst before the slice map moved into the WCS,
or assign_wcs with nrs_ifu_slice_wcs=True):
* frames: detector -> sca -> gwa -> slit_frame -> slicer -> msa_frame -> oteip ->
  oteip_chromcorr -> v2v3 -> v2v3vacorr -> world (no 'coordinates' frame);
* every transform carries the slice number (0..29) as an extra input/output 'name': the
  full WCS is called as wcs(x, y, slice) -> (ra, dec, lam, slice); 'dms2sca' maps
  (x, y, name) (NRS2 flipped to the SCA frame), 'det2gwa' gives (name, three GWA angles),
  'gwa2slit' is a stdatamodels Gwa2Slit and 'slit2slicer' a Slit2Msa, each holding one model
  per slice; the slit_frame is (x_slit = 0, y_slit masked to [-0.55, 0.55], lam in m);
* the bounding box is a CompoundBoundingBox keyed by the slice number
  (wcs.bounding_box[slice]); pixels of a neighbouring slice inside a box come out NaN
  (outside the slit mask), not with the neighbour's coordinates;
* no REGIONS extension (files written with nrs_ifu_slice_wcs=True carry one).
jwst tells the two forms apart by 'gwa' in wcs.available_frames (nrs_wcs_set_input):
slice-based WCSs are fixed to one slice by fixing the 'name' input of every transform;
coordinate-based ones keep the whole RegionsSelector and take the slice's bounding box from
pipeline[1].transform.selector[slice + 1] (pixels of a neighbour inside that box evaluate
with the neighbour's transform).
"""

@dataclass(frozen=True)
class IfuOptics:
    """Fixed optics from the slicer plane to V2/V3 (``optics`` in ``ifu_instrument.json``)."""

    slicer_m_per_arcsec: float
    msa_m_per_arcsec: float
    msa_centre_m: tuple[float, float]
    v2_ref: float
    v3_ref: float
    v3yangle: float
    vparity: int

    @classmethod
    def from_config(cls, optics: dict) -> IfuOptics:
        return cls(
            float(optics["slicer_m_per_arcsec"]),
            float(optics["msa_m_per_arcsec"]),
            (float(optics["msa_centre_m"][0]), float(optics["msa_centre_m"][1])),
            float(optics["v2_ref_arcsec"]),
            float(optics["v3_ref_arcsec"]),
            float(optics["v3_idl_yang_deg"]),
            int(optics["vparity"]),
        )


@dataclass(frozen=True)
class Pointing:
    """Telescope attitude of one exposure: sky position and V3 position angle at (v2_ref, v3_ref)."""

    ra_ref: float
    dec_ref: float
    roll_ref: float


@dataclass(frozen=True)
class SliceGeometry:
    """One slice image on one detector.

    Parameters
    ----------
    index : int
        Slice number 0..29 as jwst numbers them (``nrs_wcs_set_input(model, index)``).
    across_arcsec : float
        Ideal-frame x (across the slices) of the slice centre line.
    xc : float
        Reference column of the trace polynomial.
    trace : (3,) float
        ``(y0, a1, a2)``: centre row ``y0 + a1 (x - xc) + a2 (x - xc)**2``.
    tilt : float
        Line tilt: wavelength is constant along ``x + tilt * v``.
    rows_per_slice : float
        Detector rows spanning the slice length.
    arcsec_per_row : float
        Along-slice sky length of one row.
    wave_edges_um : (2,) float
        Wavelength at columns ``shift`` and ``n_columns - 1 + shift`` (the detector edges
        shifted by the slice's offset ``shift``).
    shift : float
        Column offset of this slice's dispersion.
    curvature : float
        Relative curvature of the dispersion (``lam`` is a quadratic in the column).
    n_columns : int
        Detector columns.
    band_um : (2,) float
        Grating/filter band; wavelengths outside it are NaN.
    """

    index: int
    across_arcsec: float
    xc: float
    trace: tuple[float, float, float]
    tilt: float
    rows_per_slice: float
    arcsec_per_row: float
    wave_edges_um: tuple[float, float]
    shift: float
    curvature: float
    n_columns: int
    band_um: tuple[float, float]


@dataclass(frozen=True)
class DetectorGeometry:
    """One detector (NRS1 or NRS2) of the simulated IFU: shape and its 30 slice images."""

    name: str
    shape: tuple[int, int]
    slices: tuple[SliceGeometry, ...] = field(repr=False)


def _raw_trace(g: SliceGeometry) -> tuple[float, float, float]:
    """Trace coefficients in raw columns: ``T(x) = t0 + t1 x + t2 x**2``."""
    y0, a1, a2 = g.trace
    return y0 - a1 * g.xc + a2 * g.xc * g.xc, a1 - 2.0 * a2 * g.xc, a2


def trace_rows(g: SliceGeometry, x: np.ndarray) -> np.ndarray:
    """Centre row of the slice image at columns ``x`` (float64)."""
    t0, t1, t2 = _raw_trace(g)
    xx = np.asarray(x, dtype=np.float64)
    return t0 + t1 * xx + t2 * xx * xx


def _dispersion_um(g: SliceGeometry, x0: np.ndarray) -> np.ndarray:
    """Untruncated ``x0 -> lambda`` (micron): a monotonic quadratic over the detector."""
    span = g.n_columns - 1
    t = (np.asarray(x0, dtype=np.float64) - g.shift) / span
    lo, hi = g.wave_edges_um
    return lo + (hi - lo) * (t + g.curvature * t * (1.0 - t))


def wave_table(g: SliceGeometry) -> tuple[np.ndarray, np.ndarray]:
    """``(x0, lambda_m)`` every pixel over the in-band part of the slice (both float64, increasing)."""
    x0 = np.arange(-40.0, g.n_columns + 40.0, 1.0)
    lam = _dispersion_um(g, x0)
    lo, hi = g.band_um
    keep = (lam >= lo) & (lam <= hi)
    if keep.sum() < 2:
        raise ValueError(f"slice {g.index}: no wavelengths of the band {g.band_um} fall on the detector")
    x0, lam = x0[keep], lam[keep]
    if np.any(np.diff(lam) <= 0):
        raise ValueError(f"slice {g.index}: the dispersion is not monotonic")
    return x0, lam * 1.0e-6


def slice_coordinates(g: SliceGeometry, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Along-slice offset ``v`` (rows from the slice centre) and wavelength (micron, NaN off band).

    Evaluates the same formulas (and the same wavelength table, linearly
    interpolated) as the slice's gwcs model, in numpy.
    """
    xx = np.asarray(x, dtype=np.float64)
    v = np.asarray(y, dtype=np.float64) - trace_rows(g, xx)
    xt, lt = wave_table(g)
    lam = np.interp(xx + g.tilt * v, xt, lt * 1.0e6, left=np.nan, right=np.nan)
    return v, lam


def _tabular(points: np.ndarray, values: np.ndarray) -> m.Tabular1D:
    return m.Tabular1D(points=(points,), lookup_table=values, method="linear", bounds_error=False, fill_value=np.nan)


def _detector_to_slicer(g: SliceGeometry, optics: IfuOptics) -> m.Model:
    """``(x, y) -> (x_slice, y_slice, lam_m)`` of one slice, with an explicit inverse."""
    s = g.tilt
    m_per_row = g.arcsec_per_row * optics.slicer_m_per_arcsec
    t0, t1, t2 = _raw_trace(g)
    xt, lt = wave_table(g)
    across = m.Const1D(g.across_arcsec * optics.slicer_m_per_arcsec)
    along = m.Polynomial2D(2, c0_0=-t0 * m_per_row, c1_0=-t1 * m_per_row, c2_0=-t2 * m_per_row, c0_1=m_per_row)
    x0 = m.Polynomial2D(2, c0_0=-s * t0, c1_0=1.0 - s * t1, c2_0=-s * t2, c0_1=s)
    fwd = m.Mapping((0, 0, 1, 0, 1)) | (across & along & (x0 | _tabular(xt, lt)))
    # inverse: v = y_slice / m_per_row, x0 = Pinv(lam), x = x0 - s v, y = v + T(x)
    k = -s
    x_of = m.Polynomial2D(1, c1_0=1.0, c0_1=k)
    y_of = m.Polynomial2D(2, c0_0=t0, c1_0=t1, c0_1=1.0 + t1 * k, c2_0=t2, c1_1=2.0 * t2 * k, c0_2=t2 * k * k)
    inv = (
        m.Mapping((2, 1))
        | (_tabular(lt, xt) & m.Scale(1.0 / m_per_row))
        | m.Mapping((0, 1, 0, 1))
        | (x_of & y_of)
    )
    fwd.inverse = inv
    fwd.inputs = ("x", "y")
    fwd.outputs = ("x_slice", "y_slice", "lam")
    return fwd


def regions_map(det: DetectorGeometry) -> tuple[np.ndarray, dict[int, tuple[tuple[float, float], tuple[float, float]]]]:
    """The slice map and each slice's bounding box.

    Returns
    -------
    regions : (ny, nx) int32
        ``i + 1`` where the pixel centre lies on slice ``i`` (``-rows/2 <= v < rows/2``)
        and has a wavelength inside the band; 0 elsewhere.
    bboxes : dict
        ``i -> ((x_lo, x_hi), (y_lo, y_hi))``: pixel-edge bounds of the labelled pixels (gwcs order).

    Raises
    ------
    ValueError
        If two slice images overlap on the detector or a slice leaves the detector.
    """
    ny, nx = det.shape
    regions = np.zeros((ny, nx), dtype=np.int32)
    bboxes = {}
    cols = np.arange(nx, dtype=np.float64)
    for g in det.slices:
        centre = trace_rows(g, cols)
        half = 0.5 * g.rows_per_slice
        y_lo = int(np.floor(centre.min() - half)) - 1
        y_hi = int(np.ceil(centre.max() + half)) + 1
        if y_lo < 0 or y_hi >= ny:
            raise ValueError(f"{det.name}: slice {g.index} leaves the detector (rows {y_lo}..{y_hi} of {ny})")
        yy, xx = np.mgrid[y_lo : y_hi + 1, 0:nx].astype(np.float64)
        v, lam = slice_coordinates(g, xx, yy)
        on = (v >= -half) & (v < half) & np.isfinite(lam)
        if not on.any():
            raise ValueError(f"{det.name}: slice {g.index} has no pixel with a wavelength in the band")
        block = regions[y_lo : y_hi + 1]
        if np.any(block[on] != 0):
            raise ValueError(f"{det.name}: slice {g.index} overlaps another slice on the detector")
        block[on] = g.index + 1
        ys, xs = np.nonzero(on)
        bboxes[g.index] = (
            (float(xs.min()) - 0.5, float(xs.max()) + 0.5),
            (float(ys.min() + y_lo) - 0.5, float(ys.max() + y_lo) + 0.5),
        )
    return regions, bboxes


def _det2slicer(det: DetectorGeometry, optics: IfuOptics, regions: np.ndarray, bboxes: dict) -> selector.RegionsSelector:
    transforms = {}
    inverse_keys = {}
    for g in det.slices:
        model = _detector_to_slicer(g, optics)
        bind_bounding_box(model, bboxes[g.index], order="F")
        transforms[g.index + 1] = model
        key = float(np.round(g.across_arcsec * optics.slicer_m_per_arcsec, 5))
        inverse_keys[key] = m.Mapping((0,), n_inputs=3) | m.Const1D(g.index + 1)
    mapper = selector.LabelMapperArray(regions)
    mapper.inverse = selector.LabelMapperDict(
        ("x_slice", "y_slice", "lam"), inverse_keys, inputs_mapping=m.Mapping((0,), n_inputs=3), atol=1e-4
    )
    det2slicer = selector.RegionsSelector(
        ("x", "y"), ("x_slice", "y_slice", "lam"), label_mapper=mapper, selector=transforms, name="det2slicer"
    )
    return det2slicer


def _named(model: m.Model, name: str, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> m.Model:
    model.name = name
    model.inputs = inputs
    model.outputs = outputs
    return model


def _slicer_to_ideal_models(optics: IfuOptics) -> tuple[m.Model, m.Model]:
    """``slicer -> msa_frame`` and ``msa_frame -> oteip`` (ideal frame in degrees)."""
    k = optics.msa_m_per_arcsec / optics.slicer_m_per_arcsec
    cx, cy = optics.msa_centre_m
    s2m = m.AffineTransformation2D(matrix=[[k, 0.0], [0.0, k]], translation=[cx, cy]) & m.Identity(1)
    d = 1.0 / (optics.msa_m_per_arcsec * 3600.0)
    m2o = m.AffineTransformation2D(matrix=[[d, 0.0], [0.0, d]], translation=[-cx * d, -cy * d]) & m.Identity(1)
    return (
        _named(s2m, "slicer2msa", ("x_slice", "y_slice", "lam"), ("x_msa", "y_msa", "lam")),
        _named(m2o, "msa2oteip", ("x_msa", "y_msa", "lam"), ("x_ote", "y_ote", "lam")),
    )


def _ideal_to_v2v3(optics: IfuOptics) -> m.Model:
    """``(x_ote, y_ote) deg -> (v2, v3) arcsec`` (aperture angle and parity), ``lam m -> um``."""
    th = np.deg2rad(optics.v3yangle)
    p = optics.vparity
    mat = 3600.0 * np.array([[p * np.cos(th), np.sin(th)], [-p * np.sin(th), np.cos(th)]])
    model = m.AffineTransformation2D(matrix=mat, translation=[optics.v2_ref, optics.v3_ref]) & m.Scale(1.0e6)
    return _named(model, "oteip2v23", ("x_ote", "y_ote", "lam"), ("v2", "v3", "lam"))


def _v2v3_to_sky(optics: IfuOptics, pointing: Pointing) -> m.Model:
    """JWST attitude rotation ``(v2, v3) arcsec -> (ra, dec) deg``; wavelength passes through."""
    angles = [optics.v2_ref / 3600.0, -optics.v3_ref / 3600.0, pointing.roll_ref, pointing.dec_ref, -pointing.ra_ref]
    sky = (
        (m.Scale(1.0 / 3600.0) & m.Scale(1.0 / 3600.0))
        | SphericalToCartesian(wrap_lon_at=180)
        | m.RotationSequence3D(angles, axes_order="zyxyz")
        | CartesianToSpherical(wrap_lon_at=360)
    )
    return _named(sky & m.Identity(1), "v2v3_to_sky", ("v2", "v3", "lam"), ("ra", "dec", "lam"))


def _identity3(name: str, names: tuple[str, ...]) -> m.Model:
    return _named(m.Identity(3), name, names, names)


def _frames() -> dict[str, cf.CoordinateFrame]:
    def spectral(unit: u.Unit) -> cf.SpectralFrame:
        return cf.SpectralFrame(name="spectral", axes_order=(2,), unit=(unit,), axes_names=("wavelength",))

    def frame2d(name: str, unit: u.Unit, axes: tuple[str, str]) -> cf.Frame2D:
        return cf.Frame2D(name=name, axes_order=(0, 1), unit=(unit, unit), axes_names=axes)

    sky = cf.CelestialFrame(name="sky", axes_order=(0, 1), reference_frame=coord.ICRS())
    return {
        "coordinates": cf.Frame2D(name="coordinates", axes_order=(0, 1), unit=(u.pix, u.pix)),
        "detector": cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix)),
        "slicer": cf.CompositeFrame(
            [frame2d("slicer_spatial", u.m, ("x_slicer", "y_slicer")), spectral(u.m)], name="slicer"
        ),
        "msa_frame": cf.CompositeFrame([frame2d("msa_spatial", u.m, ("x_msa", "y_msa")), spectral(u.m)], name="msa_frame"),
        "oteip": cf.CompositeFrame([frame2d("oteip", u.deg, ("X_OTEIP", "Y_OTEIP")), spectral(u.m)], name="oteip"),
        "oteip_chromcorr": cf.CompositeFrame(
            [frame2d("oteip", u.deg, ("X_OTEIP", "Y_OTEIP")), spectral(u.m)], name="oteip_chromcorr"
        ),
        "v2v3": cf.CompositeFrame([frame2d("v2v3_spatial", u.arcsec, ("v2", "v3")), spectral(u.micron)], name="v2v3"),
        "v2v3vacorr": cf.CompositeFrame(
            [frame2d("v2v3vacorr_spatial", u.arcsec, ("v2", "v3")), spectral(u.micron)], name="v2v3vacorr"
        ),
        "world": cf.CompositeFrame([sky, spectral(u.micron)], name="world"),
    }


def slicer_to_world(optics: IfuOptics, pointing: Pointing) -> m.Model:
    """The compound ``slicer -> world`` model of the WCS (``(x_slice, y_slice, lam_m) -> (ra, dec, lam_um)``)."""
    s2m, m2o = _slicer_to_ideal_models(optics)
    return s2m | m2o | _ideal_to_v2v3(optics) | _v2v3_to_sky(optics, pointing)


def ideal_to_sky(optics: IfuOptics, pointing: Pointing, x_idl: np.ndarray, y_idl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sky (ra, dec) in degrees of ideal-frame points (arcsec; x across, y along the slices)."""
    k = optics.slicer_m_per_arcsec
    ra, dec, _ = slicer_to_world(optics, pointing)(np.asarray(x_idl) * k, np.asarray(y_idl) * k, 3.0e-6)
    return np.asarray(ra, dtype=np.float64), np.asarray(dec, dtype=np.float64)


def sky_to_ideal(optics: IfuOptics, pointing: Pointing, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ideal-frame (x across, y along) arcsec of sky points; the exact inverse of :func:`ideal_to_sky`."""
    k = optics.slicer_m_per_arcsec
    xs, ys, _ = slicer_to_world(optics, pointing).inverse(np.asarray(ra), np.asarray(dec), 3.0)
    return np.asarray(xs, dtype=np.float64) / k, np.asarray(ys, dtype=np.float64) / k


def build_ifu_wcs(det: DetectorGeometry, optics: IfuOptics, pointing: Pointing, regions: np.ndarray,
                  bboxes: dict) -> WCS:
    """The coordinate-based gwcs of one exposure on one detector.

    ``regions`` must be the very array written as the file's ``regions`` (the
    REGIONS extension) so that the file stores it once.

    ``wcs(x, y)`` returns ``(ra, dec, lambda_um)``, NaN off the slices; there is
    no top-level bounding box (as in jwst's files); slice ``i``'s box is
    ``wcs.pipeline[1].transform.selector[i + 1].bounding_box``.
    """
    fr = _frames()
    s2m, m2o = _slicer_to_ideal_models(optics)
    coord2det = _named(m.Identity(2), "coord2det", ("x", "y"), ("x", "y"))
    pipeline = [
        (fr["coordinates"], coord2det),
        (fr["detector"], _det2slicer(det, optics, regions, bboxes)),
        (fr["slicer"], s2m),
        (fr["msa_frame"], m2o),
        (fr["oteip"], _identity3("chrom_corr", ("x_ote", "y_ote", "lam"))),
        (fr["oteip_chromcorr"], _ideal_to_v2v3(optics)),
        (fr["v2v3"], _identity3("va_corr", ("v2", "v3", "lam"))),
        (fr["v2v3vacorr"], _v2v3_to_sky(optics, pointing)),
        (fr["world"], None),
    ]
    return WCS(pipeline)
