"""IFU cube building accumulator (ALGORITHMS.md §11.5-11.6).

Public tier over :mod:`spec3c._core._cube`: :class:`CubeGrid` (spaxel and
plane centres), :class:`CubeParams` (weighting and its region-of-interest
parameters) and :class:`CubeAccumulator` (``add()`` one exposure at a time,
``finalize()`` once).  No datamodels: inputs are 1-D arrays of detector pixels
already projected to the cube's tangent plane (xi, eta in arcsec) with
wavelengths in micron.

Cube recipe (one band, inputs ``k``)::

    acc = CubeAccumulator(grid, CubeParams("drizzle"))
    for k in exposures:
        acc.add(xi_corners_k, eta_corners_k, wave_k, sci_k, err_k, dq=dq_k, dwave=dwave_k)
    cube = acc.finalize()            # CubePlanes(flux, err, dq, wmap)

A cube too large for memory is built in plane tiles ``[p0, p1)``: one
accumulator per tile, every exposure added to each (:meth:`CubeAccumulator.touches`
says which pixels can reach the tile); the tiles are bit-identical to the
matching planes of a whole-cube build.

Reference: jwst 3.0.0 ``cube_build`` — ``src/cube_match_sky_pointcloud.c``
(msm/emsm), ``src/cube_match_sky_driz.c`` + ``src/cube_utils.c`` (drizzle,
Sutherland-Hodgman overlap), ``ifu_cube.py`` (``set_geometry`` plane widths,
``map_detector_to_outputframe`` pixel selection, ``find_closest_wave``,
``find_spaxel_flux``, ``set_final_dq_flags``, ``setup_final_ifucube_model``).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import numpy as np

from .. import dqflags
from . import _cube, _cube_area
from ._validate import check_workers

__all__ = [
    "CubeAccumulator",
    "CubeGrid",
    "CubeParams",
    "CubePlanes",
    "good_spaxel_counts",
    "plane_widths",
    "mark_slice_lines",
    "slice_extents",
    "spectral_tear_planes",
    "wipe_planes",
]

Weighting = Literal["drizzle", "msm", "emsm"]
_KIND = {"emsm": 0, "msm": 1, "drizzle": 2}
_PARAM_NAMES = ("rois", "roiw", "weight_power", "softrad", "scalerad")
_NEEDS = {
    "drizzle": (),
    "msm": ("rois", "roiw", "weight_power", "softrad"),
    "emsm": ("rois", "roiw", "scalerad"),
}

#: intermediate FOV flags of the reference (``IFUCubeData.overlap_full/partial``)
FOV_FULL = 2
FOV_PARTIAL = 4
#: DQ of voxels with no coverage
NO_COVERAGE = dqflags.NON_SCIENCE | dqflags.DO_NOT_USE
#: a pixel index must fit the kernel's int32 block lists
_MAX_PIXELS = 2**31 - 1


def plane_widths(zcoord: np.ndarray) -> np.ndarray:
    """Width of each wavelength plane, the reference's ``cdelt3_normal``.

    ``dz[j] = z[j + 1] - z[j]``; the last plane copies the previous width.

    Parameters
    ----------
    zcoord : ndarray (nz,), float
        Plane centres, strictly increasing, ``nz >= 2``.

    Returns
    -------
    ndarray (nz,) float64
    """
    z = np.asarray(zcoord, dtype=np.float64)
    if z.ndim != 1 or z.size < 2:
        raise ValueError(f"zcoord needs at least 2 planes to derive widths, got shape {z.shape}")
    dz = np.empty_like(z)
    dz[:-1] = np.diff(z)
    dz[-1] = dz[-2]
    return dz


def _axis(values: object, name: str, *, min_size: int = 1) -> np.ndarray:
    """Return a read-only, finite, strictly increasing 1-D float64 copy."""
    a = np.array(values, dtype=np.float64)
    if a.ndim != 1 or a.size < min_size:
        raise ValueError(f"{name} must be 1-D with at least {min_size} value(s), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite")
    if a.size > 1 and not np.all(np.diff(a) > 0):
        raise ValueError(f"{name} must be strictly increasing")
    a.flags.writeable = False
    return a


def _positive(value: object, name: str) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None
    if not (np.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


@dataclass(frozen=True, eq=False)
class CubeGrid:
    """Voxel centres of an IFU cube in its tangent plane.

    Parameters
    ----------
    xcoord, ycoord : ndarray (nx,), (ny,) float
        Spaxel centres along cube axes 1 and 2 (xi, eta; arcsec), increasing,
        spaced by ``cdelt1`` / ``cdelt2`` (the reference's ``xcoord``/``ycoord``).
    zcoord : ndarray (nz,) float
        Wavelength-plane centres (micron), strictly increasing; uniform for a
        linear cube, the CUBEPAR table for a non-linear one.
    cdelt1, cdelt2 : float
        Spaxel size (arcsec).
    linear : bool
        Linear wavelength axis (``linear_wave``).  Only drizzle uses it: a
        non-linear cube drops pixels beyond one plane width of the first/last
        plane, a linear one beyond ``cdelt3 + max(dwave)`` (as the reference).
    cdelt3 : ndarray (nz,) float, optional
        Plane widths; default (empty) :func:`plane_widths` of ``zcoord``
        (required when ``nz == 1``).

    Attributes
    ----------
    shape : (nz, ny, nx)
    """

    xcoord: np.ndarray
    ycoord: np.ndarray
    zcoord: np.ndarray
    cdelt1: float
    cdelt2: float
    linear: bool = True
    cdelt3: np.ndarray = field(default_factory=lambda: np.empty(0))  # empty: derive from zcoord

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "cdelt1", _positive(self.cdelt1, "cdelt1"))
        put(self, "cdelt2", _positive(self.cdelt2, "cdelt2"))
        for name, step, sname in (("xcoord", self.cdelt1, "cdelt1"), ("ycoord", self.cdelt2, "cdelt2")):
            a = _axis(getattr(self, name), name)
            if a.size > 1 and not np.allclose(np.diff(a), step, rtol=1e-6, atol=0):
                raise ValueError(f"{name} must be uniformly spaced by {sname}")
            put(self, name, a)
        z = _axis(self.zcoord, "zcoord")
        put(self, "zcoord", z)
        given = np.array(self.cdelt3, dtype=np.float64)
        dz = plane_widths(z) if given.size == 0 else given
        if dz.shape != z.shape or not np.all(np.isfinite(dz)) or not np.all(dz > 0):
            raise ValueError(f"cdelt3 must be {z.size} finite widths > 0")
        dz.flags.writeable = False
        put(self, "cdelt3", dz)
        put(self, "linear", bool(self.linear))

    @property
    def shape(self) -> tuple[int, int, int]:
        """Cube shape ``(nz, ny, nx)``."""
        return (self.zcoord.size, self.ycoord.size, self.xcoord.size)


@dataclass(frozen=True, eq=False)
class CubeParams:
    """Weighting of detector pixels onto voxels (``cube_build`` parameters).

    Parameters
    ----------
    weighting : {"drizzle", "msm", "emsm"}
        ``drizzle``: weight = spatial overlap area (arcsec²) of the pixel's
        footprint with the spaxel times its wavelength overlap (micron) with
        the plane.  ``msm``: ``1 / max(r**weight_power, softrad)``; ``emsm``:
        ``exp(-r² / (scalerad / cdelt1))``; with ``r² = (Δx/cdelt1)² +
        (Δy/cdelt2)² + (Δλ/cdelt3_j)²`` for every voxel with
        ``|Δx|, |Δy|, hypot(Δx, Δy) <= rois`` and ``|Δλ| <= roiw``.
    rois, roiw, weight_power, softrad, scalerad : float or ndarray (nz,)
        Spatial ROI (arcsec), spectral ROI (micron), MSM power, MSM softening
        radius, EMSM scale radius (arcsec).  An array gives one value per plane
        (the non-linear CUBEPAR tables); a pixel uses the value of its nearest
        plane.  Unused ones are ignored (drizzle needs none).

    Raises
    ------
    ValueError
        Unknown weighting; a needed parameter not finite and > 0 (the power:
        not finite); a table that is not 1-D.  (The reference only rejects
        all-NaN tables; a NaN entry would poison voxels, so any is refused.)
    """

    weighting: Weighting = "drizzle"
    rois: float | np.ndarray = 0.0
    roiw: float | np.ndarray = 0.0
    weight_power: float | np.ndarray = 2.0
    softrad: float | np.ndarray = 0.0
    scalerad: float | np.ndarray = 0.0

    def __post_init__(self) -> None:
        if self.weighting not in _KIND:
            raise ValueError(f"weighting must be one of {sorted(_KIND)}, got {self.weighting!r}")
        for name in _PARAM_NAMES:
            a = np.array(getattr(self, name), dtype=np.float64)
            if a.ndim > 1:
                raise ValueError(f"{name} must be a scalar or a 1-D per-plane table, got shape {a.shape}")
            if name in _NEEDS[self.weighting]:
                ok = np.isfinite(a) & ((a > 0) if name != "weight_power" else True)
                if not np.all(ok):
                    cond = "finite" if name == "weight_power" else "finite and > 0"
                    raise ValueError(f"{name} must be {cond} for weighting={self.weighting!r}")
            a.flags.writeable = False
            object.__setattr__(self, name, float(a) if a.ndim == 0 else a)

    def tables(self, nz: int) -> tuple[np.ndarray, ...]:
        """Per-plane ``(rois, roiw, weight_power, softrad, scalerad)`` float64 tables.

        Raises
        ------
        ValueError
            If a per-plane table does not have ``nz`` entries.
        """
        out = []
        for name in _PARAM_NAMES:
            a = np.asarray(getattr(self, name), dtype=np.float64)
            if a.ndim == 0:
                a = np.full(nz, float(a))
            elif a.shape != (nz,):
                raise ValueError(f"{name} must be a scalar or have one value per plane ({nz}), got shape {a.shape}")
            out.append(np.ascontiguousarray(a))
        return tuple(out)


class CubePlanes(NamedTuple):
    """Final cube planes (IFUCubeModel SCI, ERR, DQ, WMAP), each ``(nz, ny, nx)``."""

    flux: np.ndarray  # float32, NaN where DQ has DO_NOT_USE
    err: np.ndarray  # float32 sqrt(sum (err w)^2) / sum w, NaN where DO_NOT_USE
    dq: np.ndarray  # uint32: 0 good, 513 no coverage, 1 hole in the FOV
    wmap: np.ndarray  # float32 number of contributing detector pixels


def _as_f64(arr: object, name: str, shape: tuple[int, ...]) -> np.ndarray:
    a = np.asarray(arr)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real-number array, got dtype {a.dtype}")
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    return np.ascontiguousarray(a, dtype=np.float64)


class CubeAccumulator:
    """Accumulate detector pixels into an IFU cube (or a tile of its planes).

    Parameters
    ----------
    grid : CubeGrid
        The whole cube's voxel centres.
    params : CubeParams
        Weighting and ROI parameters.
    planes : (int, int), optional
        Tile ``[p0, p1)`` of wavelength planes to hold (default all).  Only
        those planes are allocated (4 float64 arrays ``(p1 - p0, ny, nx)``).
    workers : int
        OpenMP threads (0 = OpenMP default).  Results do not depend on it.

    Attributes
    ----------
    sum_flux, sum_weight, sum_var, count : ndarray (p1 - p0, ny, nx) float64
        Running ``Σ f·w``, ``Σ w``, ``Σ (e·w)²`` and contribution count.
    n_inputs : int
        Number of ``add()`` calls.
    """

    def __init__(
        self,
        grid: CubeGrid,
        params: CubeParams,
        *,
        planes: tuple[int, int] | None = None,
        workers: int = 0,
    ) -> None:
        if not isinstance(grid, CubeGrid):
            raise TypeError(f"grid must be a CubeGrid, got {type(grid).__name__}")
        if not isinstance(params, CubeParams):
            raise TypeError(f"params must be a CubeParams, got {type(params).__name__}")
        nz, ny, nx = grid.shape
        p0, p1 = (0, nz) if planes is None else (operator.index(v) for v in planes)
        if not 0 <= p0 < p1 <= nz:
            raise ValueError(f"planes must satisfy 0 <= p0 < p1 <= {nz}, got ({p0}, {p1})")
        self.grid = grid
        self.params = params
        self.planes = (p0, p1)
        self.workers = check_workers(workers)
        self._tables = params.tables(nz)
        self._grid_args = (grid.xcoord, grid.ycoord, grid.zcoord, grid.cdelt3, grid.cdelt1, grid.cdelt2)
        shape = (p1 - p0, ny, nx)
        self.sum_flux = np.zeros(shape)
        self.sum_weight = np.zeros(shape)
        self.sum_var = np.zeros(shape)
        self.count = np.zeros(shape)
        self.n_inputs = 0

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of this tile ``(p1 - p0, ny, nx)``."""
        nt, ny, nx = self.sum_flux.shape
        return (nt, ny, nx)

    def _max_roiw(self) -> float:
        return float(np.max(self._tables[1]))

    def window(self, dwave: np.ndarray | None = None) -> tuple[float, float]:
        """Wavelength preselection of ``map_detector_to_outputframe`` (whole cube): pixels
        outside ``[wmin, wmax]`` are not mapped.  Drizzle widens it by ``max(dwave)`` of the
        exposure's pixels passed to :meth:`add` (``dwave`` required for linear drizzle cubes)."""
        z, dz = self.grid.zcoord, self.grid.cdelt3
        if self.params.weighting != "drizzle":
            tol = self._max_roiw()
            return z[0] - tol, z[-1] + tol
        if not self.grid.linear:
            return z[0] - dz[0], z[-1] + dz[-1]
        finite = dwave[np.isfinite(dwave)] if dwave is not None else np.empty(0)
        tol = dz[0] + (float(finite.max()) if finite.size else 0.0)
        return z[0] - tol, z[-1] + tol

    def touches(self, wavelength: np.ndarray, dwave: np.ndarray | None = None) -> np.ndarray:
        """Boolean mask of pixels whose wavelength can reach this tile's planes.

        Conservative (a superset): lets a tiled build read only the pixels a
        tile needs.  ``dwave`` is required for drizzle.
        """
        w = np.asarray(wavelength, dtype=np.float64)
        z, dz = self.grid.zcoord, self.grid.cdelt3
        reach: np.ndarray | float
        if self.params.weighting == "drizzle":
            if dwave is None:
                raise ValueError("dwave is required for weighting='drizzle'")
            reach = np.abs(np.asarray(dwave, dtype=np.float64)) + float(dz.max())
        else:
            reach = self._max_roiw()
        p0, p1 = self.planes
        with np.errstate(invalid="ignore"):
            return (w >= z[p0] - reach) & (w <= z[p1 - 1] + reach)

    def add(
        self,
        x: np.ndarray,
        y: np.ndarray,
        wavelength: np.ndarray,
        flux: np.ndarray,
        err: np.ndarray,
        *,
        dq: np.ndarray | None = None,
        dwave: np.ndarray | None = None,
    ) -> int:
        """Add one exposure's detector pixels.

        Parameters
        ----------
        x, y : ndarray (n,) or (n, 4), float
            msm/emsm: pixel centres (xi, eta; arcsec) in the cube frame.
            drizzle: the 4 corners of each pixel's footprint, in polygon order.
        wavelength : ndarray (n,), float
            Pixel-centre wavelength (micron).
        flux, err : ndarray (n,), float
            SCI and ERR of each pixel (any float dtype or byte order; used as
            float64, as the reference).
        dq : ndarray (n,), int, optional
            Pixels with DO_NOT_USE or NON_SCIENCE are skipped.
        dwave : ndarray (n,), float, optional
            Drizzle only (required): wavelength extent of each pixel (>= 0).

        Returns
        -------
        int
            Number of pixels that passed the reference's selection (finite
            flux and coordinates, DQ, wavelength window), whether or not they
            reach this tile.

        Notes
        -----
        Pixels with a non-finite flux, coordinate or ``dwave`` are skipped.
        A NaN ``err`` with a finite flux is kept (as the reference), so run
        ``match_nans_and_flags`` on the inputs first.
        """
        drizzle = self.params.weighting == "drizzle"
        w = np.asarray(wavelength)
        if w.ndim != 1:
            raise ValueError(f"wavelength must be 1-D (n,), got shape {w.shape}")
        n = w.shape[0]
        if n > _MAX_PIXELS:
            raise ValueError(f"at most {_MAX_PIXELS} pixels per add(), got {n}")
        xy_shape = (n, 4) if drizzle else (n,)
        xa = _as_f64(x, "x", xy_shape).ravel()
        ya = _as_f64(y, "y", xy_shape).ravel()
        wa = _as_f64(w, "wavelength", (n,))
        fa = _as_f64(flux, "flux", (n,))
        ea = _as_f64(err, "err", (n,))
        dwa = self._check_dwave(dwave, n) if drizzle else np.empty(0)
        dqa = self._check_dq(dq, n)
        wmin, wmax = self.window(dwa if drizzle else None)
        p0, p1 = self.planes
        nvalid = _cube.cube_add(
            xa, ya, wa, fa, ea, dwa, dqa, dq is not None, self._grid_args, self._tables,
            wmin, wmax, _KIND[self.params.weighting], p0, p1, self._sums(), self.workers,
        )
        self.n_inputs += 1
        return int(nvalid)

    def add_slicer_area(
        self,
        along: np.ndarray,
        wave: np.ndarray,
        flux: np.ndarray,
        err: np.ndarray,
        column: np.ndarray,
        origin: tuple[float, float, float],
    ) -> int:
        """Add one exposure's pixels by area overlap in the slicer plane (``internal_cal``).

        The grid's axis 1 is the across-slice column (one per slice), axis 2 the
        along-slice coordinate, and each pixel contributes to its slice's column
        only: ``flux * A_overlap / A_pixel`` over the (along x wavelength) cells its
        quadrilateral overlaps (ALGORITHMS.md §11.5, "area" cubes).

        Parameters
        ----------
        along, wave : ndarray (n, 4), float
            The pixel's corners in along-slice coordinate and wavelength (micron).
        flux, err : ndarray (n,), float
            Pixels to add (already selected: finite, not DO_NOT_USE).
        column : ndarray (n,), int
            Cube column (axis-1 index) of each pixel's slice.
        origin : (float, float, float)
            ``(crval_along, crval3, cdelt3)``: the along-slice coordinate of the
            grid's first cell edge, the wavelength of plane 0's centre and the
            plane width (the reference's index origins and step).

        Returns
        -------
        int
            Number of (pixel, voxel) contributions added.
        """
        n = np.asarray(flux).shape[0]
        a = _as_f64(along, "along", (n, 4)).ravel()
        w = _as_f64(wave, "wave", (n, 4)).ravel()
        f = _as_f64(flux, "flux", (n,))
        e = _as_f64(err, "err", (n,))
        col = np.ascontiguousarray(column, dtype=np.int64)
        _, ny, nx = self.grid.shape
        if col.shape != (n,) or (n and (col.min() < 0 or col.max() >= nx)):
            raise ValueError(f"column must be {n} indices in [0, {nx})")
        p0, p1 = self.planes
        added = _cube_area.area_add(a, w, f, e, col, self.grid.ycoord, self.grid.zcoord, float(origin[0]),
                                    self.grid.cdelt2, float(origin[1]), float(origin[2]), nx, p0, p1,
                                    self._sums())
        self.n_inputs += 1
        return int(added)

    @staticmethod
    def _check_dwave(dwave: np.ndarray | None, n: int) -> np.ndarray:
        if dwave is None:
            raise ValueError("dwave is required for weighting='drizzle'")
        dwa = _as_f64(dwave, "dwave", (n,))
        with np.errstate(invalid="ignore"):
            if np.any(dwa < 0):
                raise ValueError("dwave must be >= 0 (NaN marks a pixel to skip)")
        return dwa

    @staticmethod
    def _check_dq(dq: np.ndarray | None, n: int) -> np.ndarray:
        if dq is None:
            return np.zeros(0, dtype=np.uint32)
        d = np.asarray(dq)
        if d.dtype.kind not in "iu":
            raise TypeError(f"dq must be an integer array, got dtype {d.dtype}")
        if d.shape != (n,):
            raise ValueError(f"dq must have shape {(n,)}, got {d.shape}")
        return np.ascontiguousarray(d, dtype=np.uint32)

    def _sums(self) -> tuple[np.ndarray, ...]:
        return tuple(a.reshape(-1) for a in (self.sum_flux, self.sum_weight, self.sum_var, self.count))

    def finalize(self, fov: np.ndarray | None = None) -> CubePlanes:
        """Return the tile's final planes; the accumulator stays usable.

        Where ``count > 0``: ``flux = Σ f·w / Σ w`` and ``err = sqrt(Σ (e·w)²)
        / Σ w``; ``wmap = count``.  DQ (``set_final_dq_flags``): ``Σ w > 0``
        → 0; else 1 (DO_NOT_USE, a hole) if ``fov`` marks the voxel in the
        field of view, else 513 (NON_SCIENCE | DO_NOT_USE); a hole on the
        cube's spatial edge or next to a 513 voxel becomes 513.  SCI and ERR
        are NaN wherever DQ has DO_NOT_USE.

        Parameters
        ----------
        fov : ndarray (p1 - p0, ny, nx), int, optional
            The reference's intermediate FOV flags (bit 2 full, bit 4 partial
            overlap; OR over exposures).  None = no FOV information (as
            ``skip_dqflagging``): every empty voxel is 513.

        Returns
        -------
        CubePlanes
        """
        shape = self.shape
        fov_flat = np.zeros(0, dtype=np.uint32)
        if fov is not None:
            f = np.asarray(fov)
            if f.dtype.kind not in "iu":
                raise TypeError(f"fov must be an integer array, got dtype {f.dtype}")
            if f.shape != shape:
                raise ValueError(f"fov must have shape {shape}, got {f.shape}")
            fov_flat = np.ascontiguousarray(f, dtype=np.uint32).reshape(-1)
        flux = np.empty(shape, dtype=np.float32)
        err = np.empty(shape, dtype=np.float32)
        wmap = np.empty(shape, dtype=np.float32)
        dq = np.empty(shape, dtype=np.uint32)
        _cube.cube_finalize(
            self._sums(), fov_flat, fov is not None, shape[0], shape[1], shape[2],
            flux.reshape(-1), err.reshape(-1), wmap.reshape(-1), dq.reshape(-1), self.workers,
        )
        return CubePlanes(flux, err, dq, wmap)


#: slices of a NIRSpec IFU (slice numbers 1-30)
NIRSPEC_SLICES = 30


class SliceExtents(NamedTuple):
    """Per (plane, slice): the min and max tangent-plane coordinates of the pixels near the plane."""

    c1min: np.ndarray
    c2min: np.ndarray
    c1max: np.ndarray
    c2max: np.ndarray


def slice_extents(zcoord: np.ndarray, planes: tuple[int, int], xi: np.ndarray, eta: np.ndarray, wave: np.ndarray,
                  slice_no: np.ndarray, roiw: float, initial: tuple[float, float]) -> SliceExtents:
    """Min and max of ``xi`` and ``eta`` over the pixels within ``roiw`` of each plane of ``planes``
    ``(p0, p1)``, per slice ``1..30`` (the reference's ``match_wave_plane_nirspec``): arrays of
    ``(p1 - p0) * 30``, ``initial`` (min, max) where no pixel is.  Pixels of a non-finite
    wavelength or of another slice number are skipped."""
    p0, p1 = int(planes[0]), int(planes[1])
    z = np.ascontiguousarray(zcoord, dtype=np.float64)
    if not 0 <= p0 <= p1 <= z.size:
        raise ValueError(f"planes {planes} are not within the {z.size} planes of the cube")
    n = np.shape(wave)[0]
    w, x, y = (np.ascontiguousarray(a, dtype=np.float64) for a in (wave, xi, eta))
    labels = np.ascontiguousarray(slice_no, dtype=np.int64)
    if any(a.shape != (n,) for a in (w, x, y, labels)):
        raise ValueError("wave, xi, eta and slice_no must be 1-D arrays of one length")
    size = (p1 - p0) * NIRSPEC_SLICES
    out = SliceExtents(*(np.full(size, initial[k // 2], np.float64) for k in range(4)))
    _cube.slice_extents(w, x, y, labels, z, float(roiw), p0, p1, out.c1min, out.c2min, out.c1max, out.c2max)
    return out


def mark_slice_lines(out: np.ndarray, plane: np.ndarray, x1: np.ndarray, y1: np.ndarray, x2: np.ndarray,
                     y2: np.ndarray, flag: int) -> None:
    """OR ``flag`` into ``out`` ``(planes, ny, nx)`` (uint32, C order) on the spaxels of each line from
    ``(x1, y1)`` to ``(x2, y2)`` in plane ``plane`` (``x1 <= x2``, ``y1 <= y2``), the points
    :func:`spec3c.algorithms.cube_fov.slice_lines` lists; points outside the plane are dropped."""
    if out.dtype != np.uint32 or out.ndim != 3 or not out.flags.c_contiguous:
        raise ValueError("out must be a C-contiguous (planes, ny, nx) uint32 array")
    ends = [np.ascontiguousarray(a, dtype=np.int64) for a in (plane, x1, y1, x2, y2)]
    if any(a.shape != ends[0].shape or a.ndim != 1 for a in ends):
        raise ValueError("plane, x1, y1, x2 and y2 must be 1-D arrays of one length")
    if ends[0].size and (ends[0].min() < 0 or ends[0].max() >= out.shape[0]):
        raise ValueError(f"line planes must be within the {out.shape[0]} planes of out")
    if np.any(ends[1] > ends[3]) or np.any(ends[2] > ends[4]):
        raise ValueError("lines must run from their minima to their maxima (x1 <= x2, y1 <= y2)")
    plane_, x1_, y1_, x2_, y2_ = ends
    _cube.mark_slice_lines(out.reshape(out.shape[0], -1), out.shape[2], plane_, x1_, y1_, x2_, y2_, int(flag))


def good_spaxel_counts(dq: np.ndarray) -> np.ndarray:
    """Number of good (DQ == 0) spaxels in each plane of ``dq`` ``(nz, ny, nx)``."""
    d = np.asarray(dq)
    if d.ndim != 3:
        raise ValueError(f"dq must be 3-D (nz, ny, nx), got shape {d.shape}")
    return np.count_nonzero(d == 0, axis=(1, 2))


def spectral_tear_planes(ngood: np.ndarray) -> np.ndarray:
    """MIRI "spectral tear" planes (``setup_final_ifucube_model``).

    Planes with some good spaxels but fewer than 0.75 × the 3rd percentile of
    the non-zero counts.  ``ngood`` is :func:`good_spaxel_counts` over the
    *whole* cube (concatenate the tiles' counts).

    Returns
    -------
    ndarray of int
        Plane indices to pass to :func:`wipe_planes`.
    """
    n = np.asarray(ngood, dtype=np.float64)
    if n.ndim != 1:
        raise ValueError(f"ngood must be 1-D, got shape {n.shape}")
    nonzero = n[n > 0]
    if nonzero.size == 0:
        return np.zeros(0, dtype=np.intp)
    cut = 0.75 * np.percentile(nonzero, 3)
    return np.flatnonzero((n > 0) & (n < cut))


def wipe_planes(cube: CubePlanes, planes: np.ndarray, offset: int = 0) -> None:
    """In place: planes ``planes - offset`` of ``cube`` become no-coverage.

    SCI/ERR NaN, WMAP 0, DQ 513 (as the reference for spectral tears).
    ``offset`` is the tile's first plane ``p0`` when ``planes`` index the
    whole cube; indices outside the tile are ignored.
    """
    idx = np.asarray(planes, dtype=np.intp) - operator.index(offset)
    idx = idx[(idx >= 0) & (idx < cube.dq.shape[0])]
    cube.flux[idx] = np.nan
    cube.err[idx] = np.nan
    cube.wmap[idx] = 0
    cube.dq[idx] = NO_COVERAGE
