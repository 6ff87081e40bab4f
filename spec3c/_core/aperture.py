"""Circular apertures and annuli on an image grid (public tier over :mod:`spec3c._core._aperture`).

The weights are those ``photutils.aperture.aperture_photometry`` applies in
jwst 3.0.0's IFU extract_1d (ALGORITHMS.md §12.6): pixel centres at integer
coordinates, the aperture's bounding box ``floor(x - r + 0.5) ..
ceil(x + r + 0.5)`` clipped to the image, the ``exact``, ``center`` or
``subpixel`` overlap of each pixel, and an annulus as the outer circle's
weights minus the inner one's on the outer circle's box.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _aperture

__all__ = ["METHODS", "ApertureWeights", "circle_weights", "disk_rectangle_area"]

#: overlap methods of the EXTRACT1D IFU reference file (``method``)
METHODS = ("exact", "center", "subpixel")


@dataclass(frozen=True)
class ApertureWeights:
    """The weights of an aperture on the part of an image it covers.

    ``weights[j, i]`` is the fraction of pixel ``(rows.start + j, cols.start + i)``
    inside the aperture (float64, 0 where outside).  ``area`` is the aperture's
    geometric area in pixels.
    """

    rows: slice
    cols: slice
    weights: np.ndarray
    area: float

    def window(self, image: np.ndarray) -> np.ndarray:
        """The part of ``image`` (``(ny, nx)``, or ``(..., ny, nx)``) under the aperture's weights."""
        return image[..., self.rows, self.cols]


def _box(centre: float, extent: float) -> tuple[int, int]:
    return math.floor(centre - extent + 0.5), math.ceil(centre + extent + 0.5)


def circle_weights(shape: tuple[int, int], x: float, y: float, radius: float, *, inner: float = 0.0,
                   method: str = "exact", subpixels: int = 5) -> ApertureWeights | None:
    """Weights of a circle (or, with ``inner > 0``, an annulus) centred at pixel ``(x, y)``.

    Parameters
    ----------
    shape : (ny, nx)
        The image.
    x, y : float
        Centre, in pixels (pixel centres at integers).
    radius : float
        Radius (the annulus's outer radius) in pixels, > 0.
    inner : float
        Inner radius of an annulus (0: a circle), ``< radius``.
    method : {"exact", "center", "subpixel"}
    subpixels : int
        Sub-pixels per axis of the ``subpixel`` method.

    Returns
    -------
    ApertureWeights or None
        None when the aperture's bounding box misses the image.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not (np.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be finite and > 0, got {radius!r}")
    if not (np.isfinite(x) and np.isfinite(y)):
        raise ValueError(f"aperture centre must be finite, got ({x!r}, {y!r})")
    inner = float(inner)
    if inner < 0 or inner >= radius:
        raise ValueError(f"inner radius must be in [0, radius), got {inner!r} for radius {radius!r}")
    steps = 1 if method == "center" else int(subpixels)
    if steps < 1:
        raise ValueError(f"subpixels must be >= 1, got {subpixels!r}")
    ny, nx = int(shape[0]), int(shape[1])
    ix0, ix1 = _box(float(x), float(radius))
    iy0, iy1 = _box(float(y), float(radius))
    if ix0 >= nx or iy0 >= ny or ix1 <= 0 or iy1 <= 0:
        return None
    grid = np.zeros((iy1 - iy0, ix1 - ix0), dtype=np.float64)
    _aperture.circle_grid(ix0 - 0.5 - x, ix1 - 0.5 - x, iy0 - 0.5 - y, iy1 - 0.5 - y, float(radius), inner,
                          method == "exact", steps, grid)
    rows, cols = slice(max(iy0, 0), min(iy1, ny)), slice(max(ix0, 0), min(ix1, nx))
    weights = grid[rows.start - iy0: rows.stop - iy0, cols.start - ix0: cols.stop - ix0]
    return ApertureWeights(rows, cols, np.ascontiguousarray(weights), math.pi * (radius**2 - inner**2))


def disk_rectangle_area(x0: float, y0: float, x1: float, y1: float, radius: float) -> float:
    """Exact area of the disk of ``radius`` about the origin inside ``[x0, x1] x [y0, y1]``."""
    if x1 < x0 or y1 < y0:
        raise ValueError("the rectangle's upper edges must not be below its lower edges")
    return float(_aperture.rectangle_area(float(x0), float(y0), float(x1), float(y1), float(radius)))
