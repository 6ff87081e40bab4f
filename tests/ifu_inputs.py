"""Small synthetic IFU cal files with known truth, for the IFU mode / cube_build / s3d tests.

The gwcs are laid out as jwst 3.x writes them, with simple linear transforms:

* MIRI MRS (``detector -> alpha_beta -> v2v3 -> world``): the detector-to-
  alpha/beta transform is a ``RegionsSelector`` over a slice map (labels
  101-121 / 201-217 ... as the real channels), alpha linear in x within a slice,
  beta constant per slice, wavelength linear in y;
* NIRSpec IFU, coordinate-based (``coordinates -> detector -> slicer -> world``):
  30 horizontal slice stripes, a ``RegionsSelector`` picking each stripe's
  transform, across-slice position from the reference's physical slice order,
  along-slice linear in y, wavelength linear in x.

Pixels hold the surface brightness (MJy/sr) of the scene averaged over each
pixel's footprint (analytic for a Gaussian point source), so cubes can be
compared with the truth.  Nothing random: no noise.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy import coordinates as coord
from astropy import units as u
from astropy.modeling import bind_bounding_box
from astropy.modeling import models as am
from gwcs import WCS, selector
from gwcs import coordinate_frames as cf
from scipy.special import erf
from stdatamodels.jwst import datamodels as dm

RA0, DEC0 = 80.5, -69.5
MIRI_SHAPE_X = 1032
#: channel: (alpha arcsec/pixel, slice width arcsec, lambda0 um, dlambda um/pixel)
MIRI_CHANNELS = {"1": (0.196, 0.177, 5.00, 0.0008), "2": (0.196, 0.280, 7.60, 0.0013),
                 "3": (0.245, 0.390, 11.6, 0.0025), "4": (0.273, 0.640, 18.0, 0.006)}
MIRI_SLICES = {"1": (101, 21, 0, 512), "2": (201, 17, 513, 1031), "3": (301, 16, 513, 1031),
               "4": (401, 12, 0, 512)}
NRS_ACROSS = [15, 14, 16, 13, 17, 12, 18, 11, 19, 10, 20, 9, 21, 8, 22, 7, 23, 6, 24, 5, 25, 4,
              26, 3, 27, 2, 28, 1, 29, 0]


@dataclass(frozen=True)
class Scene:
    """Flat surface brightness plus an optional Gaussian point source (flux in MJy/sr x arcsec^2)."""

    flat: float = 0.0
    point_flux: float = 0.0
    point_ra: float = RA0
    point_dec: float = DEC0
    sigma: float = 0.25  # arcsec


@dataclass
class IfuFiles:
    asn: Path
    files: list[Path]
    scene: Scene
    dithers: list[tuple[float, float]] = field(default_factory=list)


def _sky(ra: float, dec: float, pa: float) -> am.Model:
    """(x, y) arcsec in the instrument plane -> (RA, Dec): rotation, TAN about (ra, dec)."""
    model = am.Rotation2D(pa) | (am.Scale(1 / 3600.0) & am.Scale(1 / 3600.0)) | am.Pix2Sky_TAN() \
        | am.RotateNative2Celestial(ra, dec, 180.0)
    return model


def _offsets_deg(dx: float, dy: float) -> tuple[float, float]:
    return RA0 + dx / 3600.0 / math.cos(math.radians(DEC0)), DEC0 + dy / 3600.0


def _box_mean(lo: np.ndarray, hi: np.ndarray, centre: float, sigma: float) -> np.ndarray:
    """Mean over [lo, hi] of a unit-integral 1-D Gaussian (per arcsec)."""
    s = sigma * math.sqrt(2.0)
    return 0.5 * (erf((hi - centre) / s) - erf((lo - centre) / s)) / (hi - lo)


def _point_plane(scene: Scene, model: am.Model, a_lo: np.ndarray, a_hi: np.ndarray, b_lo: np.ndarray,
                 b_hi: np.ndarray) -> np.ndarray:
    """Footprint-mean surface brightness of the point source; (a, b) are the instrument-plane
    coordinates (arcsec) the ``model`` maps to the sky (conformal: rotation + TAN)."""
    if scene.point_flux == 0.0:
        return np.zeros_like(a_lo)
    a_s, b_s = model.inverse(scene.point_ra, scene.point_dec)
    return scene.point_flux * _box_mean(a_lo, a_hi, float(a_s), scene.sigma) * _box_mean(b_lo, b_hi, float(b_s), scene.sigma)


def _s_region(ra: np.ndarray, dec: np.ndarray) -> str:
    ok = np.isfinite(ra)
    r, d = ra[ok], dec[ok]
    corners = [r.min(), d.min(), r.max(), d.min(), r.max(), d.max(), r.min(), d.max()]
    return "POLYGON ICRS  " + " ".join(f"{v:.9f}" for v in corners)


def _meta(model: dm.IFUImageModel, exp_type: str, name: str, source_type: str) -> None:
    m = model.meta
    m.filename = name
    m.telescope = "JWST"
    m.exposure.type = exp_type
    m.exposure.exposure_time = 1000.0
    m.exposure.measurement_time = 1000.0
    m.exposure.duration = 1050.0
    m.exposure.start_time = 60000.0
    m.exposure.end_time = 60000.01
    m.cal_step.assign_wcs = "COMPLETE"
    m.cal_step.photom = "COMPLETE"
    m.target.source_type = source_type
    m.target.type = "FIXED"
    m.target.ra = RA0
    m.target.dec = DEC0
    m.wcsinfo.dispersion_direction = 2 if exp_type == "MIR_MRS" else 1  # as assign_wcs sets it
    m.coordinates.reference_frame = "ICRS"
    m.bunit_data = "MJy/sr"
    m.bunit_err = "MJy/sr"
    m.observation.date = "2026-01-01"
    m.observation.time = "00:00:00"
    m.program.pi_name = "Test"
    m.instrument.name = "MIRI" if exp_type == "MIR_MRS" else "NIRSPEC"


# -- MIRI MRS ----------------------------------------------------------------------


def _miri_layout(channels: str, ny: int) -> tuple[np.ndarray, dict[int, tuple[float, float, str]]]:
    """Slice map (ny, 1032) and per label: (column centre, beta, channel)."""
    regions = np.zeros((ny, MIRI_SHAPE_X), dtype=np.int32)
    info = {}
    for ch in channels:
        first, n, x0, x1 = MIRI_SLICES[ch]
        _, bwidth, _, _ = MIRI_CHANNELS[ch]
        width = (x1 - x0 - 4) // n
        for i in range(n):
            start = x0 + 2 + i * width
            regions[:, start + 1:start + width - 1] = first + i
            info[first + i] = (start + (width - 1) / 2.0, (i - (n - 1) / 2.0) * bwidth, ch)
    return regions, info


def miri_wcs(channels: str, ny: int, ra: float, dec: float, pa: float = 0.0) -> tuple[WCS, np.ndarray, dict]:
    regions, info = _miri_layout(channels, ny)
    transforms = {}
    for label, (xc, beta, ch) in info.items():
        ascale, _, lam0, dlam = MIRI_CHANNELS[ch]
        transforms[label] = am.Mapping((0, 0, 1)) | ((am.Shift(-xc) | am.Scale(ascale)) & am.Const1D(beta)
                                                     & (am.Scale(dlam) | am.Shift(lam0)))
    det2ab = selector.RegionsSelector(("x", "y"), ("alpha", "beta", "lam"), selector=transforms,
                                      label_mapper=selector.LabelMapperArray(regions))
    bind_bounding_box(det2ab, ((-0.5, MIRI_SHAPE_X - 0.5), (-0.5, ny - 0.5)), order="F")
    v2ref, v3ref = -503.0, -318.0
    ab2v23 = am.Shift(v2ref) & am.Shift(v3ref) & am.Identity(1)
    v23sky = ((am.Shift(-v2ref) & am.Shift(-v3ref)) | _sky(ra, dec, pa)) & am.Identity(1)
    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    spec = cf.SpectralFrame(name="spectral", axes_order=(2,), unit=(u.micron,), axes_names=("lambda",))
    ab = cf.CompositeFrame([cf.Frame2D(name="alpha_beta_spatial", axes_order=(0, 1), unit=(u.arcsec, u.arcsec),
                                       axes_names=("alpha", "beta")),
                            cf.SpectralFrame(name="alpha_beta_spectral", axes_order=(2,), unit=(u.micron,),
                                             axes_names=("lambda",))], name="alpha_beta")
    v23 = cf.CompositeFrame([cf.Frame2D(name="v2v3_spatial", axes_order=(0, 1), unit=(u.arcsec, u.arcsec),
                                        axes_names=("v2", "v3")), spec], name="v2v3")
    world = cf.CompositeFrame([cf.CelestialFrame(name="icrs", reference_frame=coord.ICRS(), axes_order=(0, 1),
                                                 unit=(u.deg, u.deg), axes_names=("RA", "DEC")), spec], name="world")
    return WCS([(detector, det2ab), (ab, ab2v23), (v23, v23sky), (world, None)]), regions, info


def miri_file(path: Path, scene: Scene, channels: str = "12", band: str = "SHORT", ny: int = 40,  # noqa: PLR0913
              dither: tuple[float, float] = (0.0, 0.0), pa: float = 0.0) -> Path:
    ra, dec = _offsets_deg(*dither)
    wcs, regions, info = miri_wcs(channels, ny, ra, dec, pa)
    y, x = np.indices(regions.shape, dtype=np.float64)
    sky = _sky(ra, dec, pa)
    sci = np.zeros(regions.shape)
    for label, (xc, beta, ch) in info.items():
        sel = regions == label
        ascale, bwidth, _, _ = MIRI_CHANNELS[ch]
        a_lo, a_hi = (x[sel] - 0.5 - xc) * ascale, (x[sel] + 0.5 - xc) * ascale
        b_lo, b_hi = np.full(a_lo.shape, beta - bwidth / 2), np.full(a_lo.shape, beta + bwidth / 2)
        sci[sel] = scene.flat + _point_plane(scene, sky, a_lo, a_hi, b_lo, b_hi)
    sci[regions == 0] = np.nan
    dq = np.where(regions == 0, 513, 0).astype(np.uint32)
    model = dm.IFUImageModel(data=sci.astype(np.float32), dq=dq, err=np.full(sci.shape, 0.1, np.float32),
                             var_poisson=np.full(sci.shape, 0.005, np.float32),
                             var_rnoise=np.full(sci.shape, 0.005, np.float32), var_flat=np.zeros(sci.shape, np.float32))
    _meta(model, "MIR_MRS", path.name, "POINT" if scene.point_flux else "EXTENDED")
    model.meta.instrument.detector = "MIRIFUSHORT" if channels in ("12", "21") else "MIRIFULONG"
    model.meta.instrument.channel = channels
    model.meta.instrument.band = band
    model.meta.wcs = wcs
    wra, wdec, wlam = wcs(x, y)
    model.meta.wcsinfo.s_region = _s_region(wra, wdec)
    model.meta.wcsinfo.spectral_region = [float(np.nanmin(wlam)), float(np.nanmax(wlam))]
    model.save(path)
    model.close()
    return path


# -- NIRSpec IFU ---------------------------------------------------------------------

NRS_ROWS, NRS_GAP, NRS_EDGE = 12, 2, 2
ACROSS_M, ALONG_M = 1.0e-3, 1.0e-4  # slicer metres per slice / per pixel
ACROSS_ARCSEC, ALONG_ARCSEC = 0.1, 0.1  # their size on the sky


def nirspec_wcs(nx: int, ra: float, dec: float, pa: float = 0.0, lam0: float = 3.0,
                dlam: float = 0.002) -> tuple[WCS, np.ndarray]:
    ny = 30 * (NRS_ROWS + NRS_GAP) + NRS_GAP
    regions = np.zeros((ny, nx), dtype=np.int32)
    transforms = {}
    for k in range(30):
        y0 = NRS_GAP + k * (NRS_ROWS + NRS_GAP)
        regions[y0:y0 + NRS_ROWS, NRS_EDGE:nx - NRS_EDGE] = k + 1  # slices stay off the detector edges
        yc = y0 + (NRS_ROWS - 1) / 2.0
        across = (NRS_ACROSS[k] - 14.5) * ACROSS_M
        model = am.Mapping((0, 1, 0)) | (am.Const1D(across) & (am.Shift(-yc) | am.Scale(ALONG_M))
                                         & (am.Scale(dlam * 1e-6) | am.Shift(lam0 * 1e-6)))
        bind_bounding_box(model, ((NRS_EDGE - 0.5, nx - NRS_EDGE - 0.5), (y0 - 0.5, y0 + NRS_ROWS - 0.5)), order="F")
        transforms[k + 1] = model
    det2slicer = selector.RegionsSelector(("x", "y"), ("x_slice", "y_slice", "lam"), selector=transforms,
                                          label_mapper=selector.LabelMapperArray(regions))
    plane = am.Scale(ACROSS_ARCSEC / ACROSS_M) & am.Scale(ALONG_ARCSEC / ALONG_M)
    slicer2world = (plane | _sky(ra, dec, pa)) & am.Scale(1e6)
    coords = cf.Frame2D(name="coordinates", axes_order=(0, 1), unit=(u.pix, u.pix))
    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    slicer = cf.CompositeFrame([cf.Frame2D(name="slicer_spatial", axes_order=(0, 1), unit=(u.m, u.m),
                                           axes_names=("x_slicer", "y_slicer")),
                                cf.SpectralFrame(name="slicer_spectral", axes_order=(2,), unit=(u.m,),
                                                 axes_names=("lambda",))], name="slicer")
    spec = cf.SpectralFrame(name="spectral", axes_order=(2,), unit=(u.micron,), axes_names=("wavelength",))
    world = cf.CompositeFrame([cf.CelestialFrame(name="sky", reference_frame=coord.ICRS(), axes_order=(0, 1),
                                                 unit=(u.deg, u.deg), axes_names=("RA", "DEC")), spec], name="world")
    ident = am.Identity(2)
    return WCS([(coords, ident), (detector, det2slicer), (slicer, slicer2world), (world, None)]), regions


def nirspec_file(path: Path, scene: Scene, nx: int = 120, dither: tuple[float, float] = (0.0, 0.0),  # noqa: PLR0913
                 pa: float = 0.0, grating: str = "G395H", filt: str = "F290LP") -> Path:
    ra, dec = _offsets_deg(*dither)
    wcs, regions = nirspec_wcs(nx, ra, dec, pa)
    y, x = np.indices(regions.shape, dtype=np.float64)
    sci = np.full(regions.shape, np.nan)
    sky = _sky(ra, dec, pa)
    for k in range(30):
        sel = regions == k + 1
        y0 = NRS_GAP + k * (NRS_ROWS + NRS_GAP)
        yc = y0 + (NRS_ROWS - 1) / 2.0
        a_mid = (NRS_ACROSS[k] - 14.5) * ACROSS_ARCSEC
        a_lo, a_hi = np.full(sel.sum(), a_mid - ACROSS_ARCSEC / 2), np.full(sel.sum(), a_mid + ACROSS_ARCSEC / 2)
        b_lo, b_hi = (y[sel] - 0.5 - yc) * ALONG_ARCSEC, (y[sel] + 0.5 - yc) * ALONG_ARCSEC
        sci[sel] = scene.flat + _point_plane(scene, sky, a_lo, a_hi, b_lo, b_hi)
    dq = np.where(regions == 0, 513, 0).astype(np.uint32)
    model = dm.IFUImageModel(data=sci.astype(np.float32), dq=dq, err=np.full(sci.shape, 0.1, np.float32),
                             var_poisson=np.full(sci.shape, 0.005, np.float32),
                             var_rnoise=np.full(sci.shape, 0.005, np.float32), var_flat=np.zeros(sci.shape, np.float32))
    _meta(model, "NRS_IFU", path.name, "POINT" if scene.point_flux else "EXTENDED")
    model.meta.instrument.detector = "NRS1"
    model.meta.instrument.grating = grating
    model.meta.instrument.filter = filt
    model.meta.wcs = wcs
    wra, wdec, wlam = wcs(x, y)
    model.meta.wcsinfo.s_region = _s_region(wra, wdec)
    model.meta.wcsinfo.spectral_region = [float(np.nanmin(wlam)), float(np.nanmax(wlam))]
    model.save(path)
    model.close()
    return path


# -- ingested sets, shared by the test modules of one session ------------------------


@dataclass
class IngestedSet:
    files: IfuFiles
    store: Path
    cubepar: Path


_INGESTED: dict[tuple, IngestedSet] = {}


def ingested_set(tmp_path_factory, kind: str, scene: Scene, n_dithers: int = 4, pa: float = 20.0) -> IngestedSet:
    """A synthetic ``miri`` (channels 1+2, SHORT, 24 rows) or ``nirspec`` (G395H, 60 columns) set,
    ingested once per session (copy the store before writing results)."""
    from spec3c.ingest import ingest

    key = (kind, scene, n_dithers, pa)
    if key not in _INGESTED or not _INGESTED[key].store.exists():
        root = tmp_path_factory.mktemp(kind)
        if kind == "miri":
            files = miri_set(root / "in", scene, n_dithers=n_dithers, ny=24, pa=pa)
            cubepar = miri_cubepar(root / "cubepar.fits", ny=24)
        else:
            files = nirspec_set(root / "in", scene, n_dithers=n_dithers, nx=60, pa=pa)
            cubepar = nirspec_cubepar(root / "cubepar.fits", nx=60)
        ingest(files.asn, root / "store")
        _INGESTED[key] = IngestedSet(files, root / "store", cubepar)
    return _INGESTED[key]


# -- associations and CUBEPAR ------------------------------------------------------------


def write_asn(folder: Path, files: list[Path], product: str) -> Path:
    asn = {
        "asn_id": "o001", "asn_type": "spec3", "asn_rule": "candidate_Asn_Lv3MIRMRS", "program": "01234",
        "target": "t001", "asn_pool": "test_pool",
        "products": [{"name": product, "members": [{"expname": f.name, "exptype": "science"} for f in files]}],
    }
    path = folder / f"{product}_asn.json"
    path.write_text(json.dumps(asn, indent=1))
    return path


DITHERS = [(0.0, 0.0), (0.51, 0.37), (-0.44, 0.62), (0.23, -0.58)]


def miri_set(folder: Path, scene: Scene, *, n_dithers: int = 4, bands: tuple[str, ...] = ("SHORT",),
             channels: str = "12", ny: int = 40, pa: float = 0.0) -> IfuFiles:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for band in bands:
        for k, d in enumerate(DITHERS[:n_dithers]):
            name = f"jw01234001001_0310{k + 1}_00001_mirifu{band.lower()}_{channels}_cal.fits"
            files.append(miri_file(folder / name, scene, channels, band, ny, d, pa))
    return IfuFiles(write_asn(folder, files, "jw01234-o001_t001_miri"), files, scene, DITHERS[:n_dithers])


def nirspec_set(folder: Path, scene: Scene, *, n_dithers: int = 4, nx: int = 120, pa: float = 0.0) -> IfuFiles:
    folder.mkdir(parents=True, exist_ok=True)
    files = [nirspec_file(folder / f"jw01234002001_0310{k + 1}_00001_nrs1_cal.fits", scene, nx, d, pa)
             for k, d in enumerate(DITHERS[:n_dithers])]
    return IfuFiles(write_asn(folder, files, "jw01234-o002_t001_nirspec_g395h-f290lp"), files, scene,
                    DITHERS[:n_dithers])


def miri_cubepar(path: Path, ny: int = 40) -> Path:
    """A MIRI CUBEPAR whose band limits match :func:`miri_file` (and the MSM/EMSM tables)."""
    bands = [(ch, b) for ch in "1234" for b in ("SHORT", "MEDIUM", "LONG")]
    rows, msm, emsm = [], [], []
    for ch, band in bands:
        _, _, lam0, dlam = MIRI_CHANNELS[ch]
        spaxel = {"1": 0.13, "2": 0.17, "3": 0.2, "4": 0.35}[ch]
        rows.append((ch, band, spaxel, dlam, lam0, lam0 + ny * dlam))
        msm.append((ch, band, spaxel * 1.0, dlam * 1.5, 2.0, 0.01))
        emsm.append((ch, band, spaxel * 1.0, dlam * 1.5, 0.1))
    wave = np.concatenate([np.arange(MIRI_CHANNELS[c][2], MIRI_CHANNELS[c][2] + ny * MIRI_CHANNELS[c][3],
                                     MIRI_CHANNELS[c][3]) for c in "1234"])
    model = dm.MiriIFUCubeParsModel()
    model.ifucubepars_table = np.array(rows, dtype=[("channel", "S3"), ("band", "S12"), ("spaxelsize", "f4"),
                                                   ("spectralstep", "f4"), ("wavemin", "f4"), ("wavemax", "f4")])
    model.ifucubepars_msm_table = np.array(msm, dtype=[("channel", "S3"), ("band", "S12"), ("roispatial", "f4"),
                                                      ("roispectral", "f4"), ("power", "f4"), ("softrad", "f4")])
    model.ifucubepars_emsm_table = np.array(emsm, dtype=[("channel", "S3"), ("band", "S12"), ("roispatial", "f4"),
                                                        ("roispectral", "f4"), ("scalerad", "f4")])
    n = wave.size
    model.ifucubepars_multichannel_driz_wavetable = np.array([(w,) for w in wave], dtype=[("wavelength", "f4")])
    model.ifucubepars_multichannel_msm_wavetable = np.array(
        [(w, 0.15, 0.002, 2.0, 0.01) for w in wave],
        dtype=[("wavelength", "f4"), ("roispatial", "f4"), ("roispectral", "f4"), ("power", "f4"), ("softrad", "f4")])
    model.ifucubepars_multichannel_emsm_wavetable = np.array(
        [(w, 0.15, 0.002, 0.1) for w in wave],
        dtype=[("wavelength", "f4"), ("roispatial", "f4"), ("roispectral", "f4"), ("scalerad", "f4")])
    assert n == wave.size
    model.save(path)
    return path


def nirspec_cubepar(path: Path, nx: int = 120, lam0: float = 3.0, dlam: float = 0.002) -> Path:
    model = dm.NirspecIFUCubeParsModel()
    model.ifucubepars_table = np.array([("G395H", "F290LP", lam0, lam0 + nx * dlam, 0.1, dlam)],
                                       dtype=[("disperser", "S5"), ("filter", "S6"), ("wavemin", "f4"),
                                              ("wavemax", "f4"), ("spaxelsize", "f4"), ("spectralstep", "f4")])
    model.ifucubepars_msm_table = np.array([("G395H", "F290LP", 0.1, dlam * 1.5, 2.0, 0.01)],
                                           dtype=[("disperser", "S5"), ("filter", "S6"), ("roispatial", "f4"),
                                                  ("roispectral", "f4"), ("power", "f4"), ("softrad", "f4")])
    model.ifucubepars_emsm_table = np.array([("G395H", "F290LP", 0.1, dlam * 1.5, 0.1)],
                                            dtype=[("disperser", "S5"), ("filter", "S6"), ("roispatial", "f4"),
                                                   ("roispectral", "f4"), ("scalerad", "f4")])
    wave = np.arange(lam0, lam0 + nx * dlam, dlam)
    for name in ("prism", "med", "high"):
        setattr(model, f"ifucubepars_{name}_driz_wavetable", np.array([(w,) for w in wave], dtype=[("wavelength", "f4")]))
        setattr(model, f"ifucubepars_{name}_msm_wavetable", np.array(
            [(w, 0.1, dlam * 1.5, 2.0, 0.01) for w in wave],
            dtype=[("wavelength", "f4"), ("roispatial", "f4"), ("roispectral", "f4"), ("power", "f4"),
                   ("softrad", "f4")]))
        setattr(model, f"ifucubepars_{name}_emsm_wavetable", np.array(
            [(w, 0.1, dlam * 1.5, 0.1) for w in wave],
            dtype=[("wavelength", "f4"), ("roispatial", "f4"), ("roispectral", "f4"), ("scalerad", "f4")]))
    model.save(path)
    return path
