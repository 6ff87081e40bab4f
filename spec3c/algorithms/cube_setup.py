"""Parameters and sky geometry of one IFU cube (jwst 3.0.0 ``IFUCubeData.determine_cube_parameters``,
``setup_ifucube_wcs``, ``set_geometry``; ``cube_build/coord.py``), ALGORITHMS.md §11.2-11.3.

No datamodels: the CUBEPAR values arrive as :class:`BandPars` rows and
:class:`WaveTable` tables, the inputs' footprints as RA/Dec corner points.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .._core.cube import CubeGrid
from .._core.tangent import corners_to_tangent, sky_to_tangent
from .cube_grid import CubeGeometry, cube_geometry, table_range

__all__ = [
    "BandPars",
    "CubeSetup",
    "SkyFrame",
    "WaveTable",
    "cube_setup",
    "offset_radec",
    "radec_to_std",
    "SlicerFrame",
    "sky_geometry",
    "slicer_geometry",
    "wrap_ra",
]

_NAN = float("nan")


@dataclass(frozen=True)
class BandPars:
    """CUBEPAR values of one band (NaN where the file has none for the chosen weighting)."""

    spaxel: float
    spectral_step: float
    wavemin: float
    wavemax: float
    rois: float = _NAN
    roiw: float = _NAN
    power: float = _NAN
    softrad: float = _NAN
    scalerad: float = _NAN


@dataclass(frozen=True, eq=False)
class WaveTable:
    """A CUBEPAR wavelength table (non-linear cubes), columns NaN when absent."""

    wavelength: np.ndarray
    rois: np.ndarray
    roiw: np.ndarray
    power: np.ndarray
    softrad: np.ndarray
    scalerad: np.ndarray

    def rows(self, rows: slice) -> WaveTable:
        return WaveTable(*(np.array(getattr(self, n)[rows], dtype=np.float64) for n in _TABLE_COLUMNS))


_TABLE_COLUMNS = ("wavelength", "rois", "roiw", "power", "softrad", "scalerad")


@dataclass(frozen=True, eq=False)
class CubeSetup:
    """Sampling and weighting parameters of one cube.

    Attributes
    ----------
    spatial_size : float
        Spaxel size (arcsec; the slicer units for internal_cal).
    spectral_size : float or None
        Linear plane width (micron); None for a non-linear cube.
    wavemin, wavemax : float
        Wavelength limits (CUBEPAR band edges unless given).
    rois, roiw, weight_power, softrad, scalerad : float or ndarray
        Weighting parameters: scalars for a linear cube, per-plane tables for a
        non-linear one.
    table : WaveTable or None
        The selected rows of the CUBEPAR wavelength table (non-linear cubes).
    """

    spatial_size: float
    spectral_size: float | None
    wavemin: float
    wavemax: float
    rois: float | np.ndarray
    roiw: float | np.ndarray
    weight_power: float | np.ndarray
    softrad: float | np.ndarray
    scalerad: float | np.ndarray
    table: WaveTable | None = None

    @property
    def linear(self) -> bool:
        return self.table is None


@dataclass(frozen=True)
class CubeRequest:
    """The cube_build parameters that shape the setup (user values; 0 / None = from CUBEPAR)."""

    weighting: str = "drizzle"
    linear_wave: bool = True
    scalexy: float = 0.0
    scalew: float = 0.0
    rois: float = 0.0
    roiw: float = 0.0
    weight_power: float = 2.0
    wavemin: float | None = None
    wavemax: float | None = None


def _essential(setup: CubeSetup, weighting: str) -> list[str]:
    """Names of the parameters the weighting needs that are NaN (the reference's checks)."""
    need = {"msm": ("rois", "roiw", "weight_power", "softrad"), "emsm": ("rois", "roiw", "scalerad")}.get(weighting, ())
    bad = []
    for name in need:
        value = np.asarray(getattr(setup, name), dtype=np.float64)
        if (value.ndim == 0 and np.isnan(value)) or (value.ndim == 1 and np.all(np.isnan(value))):
            bad.append(name)
    if setup.table is not None and np.all(np.isnan(setup.table.wavelength)):
        bad.append("wavelength table")
    return bad


def cube_setup(bands: Sequence[BandPars], request: CubeRequest, n_files: int,
               table: WaveTable | None = None) -> CubeSetup:
    """The cube's sampling and weighting (``determine_cube_parameters``).

    Parameters
    ----------
    bands : sequence of BandPars
        The CUBEPAR rows of the cube's bands.
    request : CubeRequest
        User parameters.
    n_files : int
        Input files of the cube (a MIRI file counts once per band it covers);
        with fewer than 4 the table ROIs are 1.5x larger (not for EMSM scalars).
    table : WaveTable, optional
        The CUBEPAR wavelength table of the bands (required when not
        ``request.linear_wave``).

    Raises
    ------
    ValueError
        A parameter the weighting needs is NaN; a linear cube of bands with
        different spectral steps and no ``scalew``; a non-linear cube without a table.
    """
    spax = np.array([b.spaxel for b in bands], dtype=np.float64)
    step = np.array([b.spectral_step for b in bands], dtype=np.float64)
    pick = 0 if np.all(spax == spax[0]) else int(np.argmin(spax))
    spatial, spatial_roi = float(spax[pick]), float(bands[pick].rois)
    wavemin = float(np.amin([b.wavemin for b in bands])) if request.wavemin is None else float(request.wavemin)
    wavemax = float(np.amax([b.wavemax for b in bands])) if request.wavemax is None else float(request.wavemax)
    column = {n: np.array([getattr(b, n) for b in bands], dtype=np.float64)
              for n in ("roiw", "power", "softrad", "scalerad")}
    spectral: float | None = None
    roiw = power = softrad = scalerad = _NAN
    if request.scalew != 0:
        spectral = float(request.scalew)
        roiw, power, softrad, scalerad = (float(np.amin(column[n])) for n in ("roiw", "power", "softrad", "scalerad"))
    elif np.all(step == step[0]):
        spectral = float(step[0])
        roiw, power, softrad, scalerad = (float(column[n][0]) for n in ("roiw", "power", "softrad", "scalerad"))
    selected = None
    if not request.linear_wave:
        if table is None:
            raise ValueError("a non-linear wavelength axis needs the CUBEPAR wavelength table")
        selected = table.rows(table_range(table.wavelength, wavemin, wavemax))
        if n_files < 4:
            selected = WaveTable(selected.wavelength, selected.rois * 1.5, selected.roiw, selected.power,
                                 selected.softrad, selected.scalerad)
        spectral = None
    elif spectral is None:
        raise ValueError("the bands of this cube have different CUBEPAR spectral steps: set scalew or "
                         "linear_wave=false")
    rois = float(request.rois)
    if rois == 0.0:
        rois = spatial_roi * (1.5 if n_files < 4 and request.weighting != "emsm" else 1.0)
    setup = CubeSetup(
        spatial_size=float(request.scalexy) if request.scalexy != 0 else spatial,
        spectral_size=spectral, wavemin=wavemin, wavemax=wavemax,
        rois=rois if selected is None else selected.rois,
        roiw=(float(request.roiw) if request.roiw != 0 else roiw) if selected is None else selected.roiw,
        weight_power=(float(request.weight_power) if request.weight_power != 0 else power)
        if selected is None else selected.power,
        softrad=softrad if selected is None else selected.softrad,
        scalerad=scalerad if selected is None else selected.scalerad,
        table=selected,
    )
    bad = _essential(setup, request.weighting)
    if bad:
        raise ValueError(f"CUBEPAR gives no value (NaN) for {', '.join(bad)} needed by weighting="
                         f"{request.weighting!r}")
    return setup


# -- the sky ---------------------------------------------------------------------

_RAD2ARCSEC = 180.0 * 3600.0 / math.pi
_DEG2RAD = math.pi / 180.0


def radec_to_std(crval1: float, crval2: float, ra: np.ndarray, dec: np.ndarray,
                 rot_angle: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Tangent-plane ``(xi, eta)`` in arcsec of RA/Dec (deg) about ``(crval1, crval2)``.

    xi increases to the East-left as the cube's RA axis (``PC1_1 = -1``); with
    ``rot_angle`` (deg) the plane is rotated as the cube's PC matrix
    (``cube_build.coord.radec2std``; float64 arithmetic in the same order).
    """
    ra0 = crval1 * _DEG2RAD
    dec0 = crval2 * _DEG2RAD
    radiff = np.asarray(ra, dtype=np.float64) * _DEG2RAD - ra0
    decr = np.asarray(dec, dtype=np.float64) * _DEG2RAD
    h = np.sin(decr) * math.sin(dec0) + np.cos(decr) * math.cos(dec0) * np.cos(radiff)
    xi = np.cos(decr) * np.sin(radiff) / h
    eta = (np.sin(decr) * math.cos(dec0) - np.cos(decr) * math.sin(dec0) * np.cos(radiff)) / h
    xi = -xi * _RAD2ARCSEC
    eta = eta * _RAD2ARCSEC
    if rot_angle is not None:
        c, s = np.cos(-rot_angle * _DEG2RAD), np.sin(-rot_angle * _DEG2RAD)
        xi, eta = xi * c - eta * s, xi * s + eta * c
    return xi, eta


def wrap_ra(values: np.ndarray) -> np.ndarray:
    """RA values put on one side of 0/360 when they straddle it (``assign_wcs.util.wrap_ra``)."""
    ra = np.array(values, dtype=np.float64)
    finite = np.isfinite(ra)
    if not finite.any():
        return ra[finite]
    ra = ra[finite]
    median = np.median(ra)
    far = np.abs(ra - median) > 180.0
    if far.any():
        ra[far] += -360.0 if median < 180 else 360.0
    return ra


def offset_radec(ra: np.ndarray, dec: np.ndarray, dra_arcsec: float, ddec_arcsec: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions moved by the spherical offsets ``(dra, ddec)`` (arcsec), as
    ``SkyCoord.spherical_offsets_by`` (the reference's ``offset_file``)."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    moved = SkyCoord(np.asarray(ra, dtype=np.float64), np.asarray(dec, dtype=np.float64), unit="deg") \
        .spherical_offsets_by(dra_arcsec * u.arcsec, ddec_arcsec * u.arcsec)
    return np.asarray(moved.ra.deg, dtype=np.float64), np.asarray(moved.dec.deg, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class SkyFrame:
    """Where a cube sits on the sky: tangent point, rotation and the voxel grid."""

    crval1: float
    crval2: float
    rot_angle: float | None
    geometry: CubeGeometry
    extra: Mapping[str, float] = field(default_factory=dict)

    def project(self, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:func:`radec_to_std` of many points (the compiled, parallel form; same bits)."""
        return sky_to_tangent(ra, dec, self.crval1, self.crval2, self.rot_angle)

    def project_corners(self, ra: np.ndarray, dec: np.ndarray, index: np.ndarray, offsets: list[np.ndarray],
                        reach: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`project` of pixels' footprint corners given as offsets from their centres
        (:func:`~spec3c._core.tangent.corners_to_tangent`; same bits)."""
        return corners_to_tangent(ra, dec, index, offsets, self.crval1, self.crval2, self.rot_angle, reach)


def sky_geometry(corner_ra: np.ndarray, corner_dec: np.ndarray, setup: CubeSetup, *,  # noqa: PLR0913
                 rot_angle: float | None = None, center: tuple[float | None, float | None] = (None, None),
                 nspax: tuple[int | None, int | None] = (None, None)) -> SkyFrame:
    """The cube's tangent point and voxel grid from its inputs' footprint corners (``set_geometry``).

    ``corner_ra``/``corner_dec``: 4 points per input (deg), RA already
    :func:`wrap_ra`-ed over all inputs.  The tangent point is the circular
    mean of the RA extremes and the mid Dec (or ``center``).
    """
    from astropy import units as u
    from astropy.stats import circmean

    ra_min, ra_max = float(np.min(corner_ra)), float(np.max(corner_ra))
    dec_ave = (float(np.min(corner_dec)) + float(np.max(corner_dec))) / 2.0
    ra_ave = float(circmean(np.array([ra_min, ra_max]) * u.deg).value % 360)
    crval1 = ra_ave if center[0] is None else float(center[0])
    crval2 = dec_ave if center[1] is None else float(center[1])
    xi, eta = radec_to_std(crval1, crval2, np.asarray(corner_ra), np.asarray(corner_dec), rot_angle)
    xi_limit = max(abs(float(np.min(xi))), abs(float(np.max(xi))))
    eta_limit = max(abs(float(np.min(eta))), abs(float(np.max(eta))))
    if setup.table is None:
        assert setup.spectral_size is not None
        geometry = cube_geometry(xi_limit, eta_limit, setup.spatial_size, setup.spatial_size,
                                 lambda_range=(setup.wavemin, setup.wavemax), cdelt3=setup.spectral_size,
                                 nspax=nspax)
    else:
        geometry = cube_geometry(xi_limit, eta_limit, setup.spatial_size, setup.spatial_size,
                                 wavelength_table=setup.table.wavelength, nspax=nspax)
    return SkyFrame(crval1, crval2, rot_angle, geometry)


# -- the slicer plane (internal_cal) ------------------------------------------------


@dataclass(frozen=True, eq=False)
class SlicerFrame:
    """An ``internal_cal`` cube: axis 1 across slices (one column per slice), axis 2 along
    the slice, both in slicer-plane units; linear wavelength planes."""

    grid: CubeGrid
    crval1: float  # across-slice coordinate of the first column's edge
    crval2: float  # along-slice coordinate of the first row's edge
    crval3: float  # wavelength of plane 0's centre
    cdelt3: float


def _accumulated(start: float, step: float, n: int) -> np.ndarray:
    """``start, start + step, ...`` summed one step at a time in the type of ``start`` and
    ``step`` (the reference's loops), stored as float64."""
    out = np.empty(n)
    value = start
    for i in range(n):
        out[i] = value
        value = value + step
    return out


def slicer_geometry(corner_along: Sequence[float], corner_across: Sequence[float], wavemin: float,
                    wavemax: float, cdelt3: float, nslices: int) -> SlicerFrame:
    """The grid of a NIRSpec ``internal_cal`` cube (``setup_ifucube_wcs`` + ``set_geometry_slicer``).

    ``corner_along``/``corner_across``: the slicer-plane footprint corners of
    the exposure.  One column per slice (pitch = across range / ``nslices``),
    rows half that size along the slice, symmetric about 0; planes centred on
    the middle of ``[wavemin, wavemax]``.  The wavelength arithmetic keeps the
    type of its inputs: the reference does it in float32 when the values come
    from the CUBEPAR file (pass ``np.float32`` scalars then).
    """
    a_min, a_max = float(np.nanmin(corner_along)), float(np.nanmax(corner_along))
    b_min, b_max = float(np.nanmin(corner_across)), float(np.nanmax(corner_across))
    cdelt1 = (b_max - b_min) / nslices
    cdelt2 = cdelt1 / 2.0
    alimit = max(abs(a_min), abs(a_max))
    n1 = math.ceil(alimit / cdelt2)
    along_min = 0.0 - (n1 * cdelt2) - (cdelt2 / 2.0)
    across_n = int(math.ceil((b_max - b_min) / cdelt1))
    b_centre = (b_max + b_min) / 2.0
    across_min = b_centre - (across_n / 2.0) * cdelt1
    nz = int(math.ceil((wavemax - wavemin) / cdelt3))
    lam_min = (wavemax + wavemin) / 2.0 - (nz / 2.0) * cdelt3
    along = _accumulated(along_min + cdelt2 / 2.0, cdelt2, 2 * n1 + 1)
    across = _accumulated(across_min + cdelt1 / 2.0, cdelt1, across_n)
    z = _accumulated(lam_min + cdelt3 / 2.0, cdelt3, nz)
    dz = np.full(nz, float(cdelt3)) if nz == 1 else np.empty(0)
    grid = CubeGrid(across, along, z, cdelt1, cdelt2, linear=True, cdelt3=dz)
    return SlicerFrame(grid, across_min, along_min, float(z[0]), float(cdelt3))
