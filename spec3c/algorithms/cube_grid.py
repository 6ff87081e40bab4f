"""The voxel grid of an IFU cube in its tangent plane (``cube_build`` geometry).

Follows jwst 3.0.0 ``IFUCubeData.set_geometry`` (ALGORITHMS.md §11.3) from
the tangent-plane extent of the data: the tangent point is the centre of the
central spaxel, the spatial axes are symmetric about it, and the wavelength
axis is either linear from ``lambda_min`` in steps of ``cdelt3`` or the
CUBEPAR wavelength table (selected by :func:`table_range`, as
``determine_cube_parameters``).  Projection of RA/Dec to (xi, eta), the
choice of the tangent point and the rotation are the caller's (they need the
inputs' footprints); this module only turns extents into axes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._core.cube import CubeGrid

__all__ = ["CubeGeometry", "cube_geometry", "linear_wavelengths", "spatial_axis", "table_range"]


@dataclass(frozen=True, eq=False)
class CubeGeometry:
    """A cube grid plus the FITS WCS numbers the product needs."""

    grid: CubeGrid
    crpix1: float  # 1-based pixel of the tangent point on axis 1
    crpix2: float
    crval3: float  # wavelength of plane 0 (micron)
    crpix3: float
    cdelt3: float | None  # linear step (micron); None for a wavelength table


def spatial_axis(limit: float, cdelt: float, nspax: int | None = None) -> np.ndarray:
    """Spaxel centres ``(2n + 1,)`` of one spatial axis, symmetric about 0.

    ``n = ceil(limit / cdelt) + 1`` (``limit`` = largest |xi| or |eta| of the
    data, arcsec), or ``nspax // 2`` when ``nspax`` is given.  Centres are
    built as the reference does (``np.arange`` from the first edge), so they
    match it bit for bit.
    """
    if not (np.isfinite(cdelt) and cdelt > 0):
        raise ValueError(f"cdelt must be a finite number > 0, got {cdelt!r}")
    if nspax is not None:
        if nspax < 1:
            raise ValueError(f"nspax must be >= 1, got {nspax}")
        n = int(nspax / 2)
    else:
        if not (np.isfinite(limit) and limit >= 0):
            raise ValueError(f"limit must be a finite number >= 0, got {limit!r}")
        n = math.ceil(limit / cdelt) + 1
    naxis = 2 * n + 1
    edge = 0.0 - (n * cdelt) - (cdelt / 2.0)
    start = edge + cdelt / 2.0
    return np.arange(start, start + naxis * cdelt, cdelt)[:naxis]


def linear_wavelengths(lambda_min: float, lambda_max: float, cdelt3: float) -> np.ndarray:
    """Plane centres of a linear wavelength axis (micron).

    ``nz = ceil((lambda_max - lambda_min) / cdelt3)``, centres
    ``lambda_min + (k + 1/2) cdelt3`` (built as the reference does).
    """
    if not (np.isfinite(cdelt3) and cdelt3 > 0):
        raise ValueError(f"cdelt3 must be a finite number > 0, got {cdelt3!r}")
    if not (np.isfinite(lambda_min) and np.isfinite(lambda_max) and lambda_max > lambda_min):
        raise ValueError(f"need finite lambda_min < lambda_max, got {lambda_min!r}, {lambda_max!r}")
    nz = int(math.ceil((lambda_max - lambda_min) / cdelt3))
    top = lambda_min + nz * cdelt3
    start = lambda_min + cdelt3 / 2.0
    return np.arange(start, top, cdelt3)[:nz]


def table_range(table: np.ndarray, wavemin: float, wavemax: float) -> slice:
    """Entries of a CUBEPAR wavelength table used for ``[wavemin, wavemax]``.

    The table entries nearest each limit, widened by one entry where the
    limit lies beyond it (the reference's rule, including that the lower end
    is only widened when the nearest entry's index is > 1).
    """
    t = np.asarray(table, dtype=np.float64)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"table must be a non-empty 1-D array, got shape {t.shape}")
    imin = int(np.abs(t - wavemin).argmin())
    imax = int(np.abs(t - wavemax).argmin())
    if imin > 1 and t[imin] > wavemin:
        imin -= 1
    if imax < t.size - 1 and wavemax > t[imax]:
        imax += 1
    return slice(imin, imax + 1)


def cube_geometry(
    xi_limit: float,
    eta_limit: float,
    cdelt1: float,
    cdelt2: float,
    *,
    lambda_range: tuple[float, float] | None = None,
    cdelt3: float | None = None,
    wavelength_table: np.ndarray | None = None,
    nspax: tuple[int | None, int | None] = (None, None),
) -> CubeGeometry:
    """The cube grid for data extending to ``|xi| <= xi_limit``, ``|eta| <= eta_limit``.

    Give either ``lambda_range=(min, max)`` and ``cdelt3`` (linear axis) or
    ``wavelength_table`` (the already selected table: non-linear axis).
    ``nspax = (nspax_x, nspax_y)`` overrides the spatial sizes.
    """
    xc = spatial_axis(xi_limit, cdelt1, nspax[0])
    yc = spatial_axis(eta_limit, cdelt2, nspax[1])
    crpix1 = float(xc.size // 2) + 1.0
    crpix2 = float(yc.size // 2) + 1.0
    if wavelength_table is not None:
        if lambda_range is not None or cdelt3 is not None:
            raise ValueError("give either wavelength_table or lambda_range + cdelt3, not both")
        z = np.asarray(wavelength_table, dtype=np.float64)
        grid = CubeGrid(xc, yc, z, cdelt1, cdelt2, linear=False)
        return CubeGeometry(grid, crpix1, crpix2, float(z[0]), 1.0, None)
    if lambda_range is None or cdelt3 is None:
        raise ValueError("a linear wavelength axis needs lambda_range and cdelt3")
    z = linear_wavelengths(lambda_range[0], lambda_range[1], cdelt3)
    dz = np.full(z.size, float(cdelt3)) if z.size == 1 else np.empty(0)  # empty: z differences
    grid = CubeGrid(xc, yc, z, cdelt1, cdelt2, linear=True, cdelt3=dz)
    return CubeGeometry(grid, crpix1, crpix2, float(z[0]), 1.0, float(cdelt3))
