"""The field-of-view flags of NIRSpec IFU cubes (jwst 3.0.0 ``cube_dq_utils.c``: ``dq_nirspec``,
``match_wave_plane_nirspec``, ``overlap_slice_with_spaxels``), ALGORITHMS.md §11.6.

Per wavelength plane, each slice's pixels within ``roiw_ave`` of the plane
give the min/max of their tangent-plane coordinates; the spaxels on a
Bresenham line between the (min, min) and (max, max) corners are flagged as
partially covered (4).  :meth:`CubeAccumulator.finalize` then turns
flagged-but-empty voxels into holes (DQ 1).

The reference's line code has two quirks reproduced here so that DQ matches:
its start/end swaps assign instead of swapping, so a steep line (more rows
than columns) becomes the diagonal ``x = y`` from the start row to the end
row; and the line always rises (it joins the two
minima to the two maxima).  Indices are truncated toward zero and the
end points are rounded to float32 first, as in C.  Points outside the plane
(which the C code writes out of bounds) are dropped.

MIRI cubes get no FOV flags: the reference's MIRI test (``overlap_fov_with_spaxels``)
can never pass, so every empty MIRI voxel is NON_SCIENCE.
"""

from __future__ import annotations

import numpy as np

from .._core.cube import FOV_PARTIAL, NIRSPEC_SLICES, CubeGrid, mark_slice_lines, slice_extents

__all__ = ["nirspec_fov", "slice_lines"]

_INIT_MIN = np.float32(10000.0)
_INIT_MAX = np.float32(-10000.0)


def nirspec_fov(grid: CubeGrid, planes: tuple[int, int], xi: np.ndarray, eta: np.ndarray,  # noqa: PLR0913
                wave: np.ndarray, slice_no: np.ndarray, roiw_ave: float, out: np.ndarray) -> None:
    """OR the FOV flags of one exposure into ``out`` ``(p1 - p0, ny, nx)`` (uint32).

    Parameters
    ----------
    grid : CubeGrid
    planes : (p0, p1)
        The tile's planes.
    xi, eta, wave : ndarray (n,)
        Tangent-plane centres (arcsec) and wavelengths of the exposure's pixels that
        were mapped to the cube.
    slice_no : ndarray (n,) int
        Slice number 1-30 of each pixel.
    roiw_ave : float
        Wavelength half-window (drizzle: mean plane width; else mean pixel roiw).
    """
    p0, p1 = planes
    _, ny, nx = grid.shape
    c1min, c2min, c1max, c2max = slice_extents(grid.zcoord, planes, xi, eta, wave, slice_no, roiw_ave,
                                               (float(_INIT_MIN), float(_INIT_MAX)))
    found = ((c1min != _INIT_MIN) & (c2min != _INIT_MIN) & (c1max != _INIT_MAX) & (c2max != _INIT_MAX)
             & (c1min != c1max) & (c2min != c2max)
             & np.isfinite(c1min) & np.isfinite(c2min) & np.isfinite(c1max) & np.isfinite(c2max))
    xstart, ystart = float(np.float32(grid.xcoord[0])), float(np.float32(grid.ycoord[0]))
    k = np.flatnonzero(found)
    ends = [v[k].astype(np.float32).astype(np.float64) for v in (c1min, c2min, c1max, c2max)]
    x1, x2 = (np.trunc((ends[i] - xstart) / grid.cdelt1).astype(np.int64) for i in (0, 2))
    y1, y2 = (np.trunc((ends[i] - ystart) / grid.cdelt2).astype(np.int64) for i in (1, 3))
    mark_slice_lines(out, k // NIRSPEC_SLICES, x1, y1, x2, y2, FOV_PARTIAL)  # slice_lines' points, compiled


def slice_lines(x1: np.ndarray, y1: np.ndarray, x2: np.ndarray, y2: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spaxel ``(x, y)`` indices the reference's ``overlap_slice_with_spaxels`` marks on each line from
    ``(x1, y1)`` to ``(x2, y2)`` (``x1 <= x2``, ``y1 <= y2``), all lines at once: ``(line, x, y)``,
    with the line number of each point.  A steep line is the diagonal ``x = y`` from ``y1`` to ``y2``
    (the C "swap" sets both ends to ``(y1, y1)``, ``(y2, y2)``); the others step ``y`` up by
    ``ceil((j dy - dx // 2) / dx)``, at least 0, at their ``j``-th point."""
    dx, dy = x2 - x1, y2 - y1
    steep = np.abs(dy) > np.abs(dx)
    length = np.where(steep, dy + 1, dx + 1)
    line = np.repeat(np.arange(x1.size), length)
    j = np.arange(line.size) - np.repeat(np.cumsum(length) - length, length)  # point number on its line
    along = np.where(steep, y1, x1)[line] + j
    ddx, ddy = dx[line], dy[line]
    straight = (ddx == 0) | (ddy == 0)
    safe = np.where(ddx == 0, 1, ddx)
    steps = np.where(straight, 0, np.maximum(0, -((ddx // 2 - j * ddy) // safe)))
    ys = np.where(steep[line], along, y1[line] + steps)
    return line, along, ys
