"""The footprint (``S_REGION``) of a rectified 2-D spectrum, from its output gwcs."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from gwcs import coordinate_frames as cf
from gwcs.wcstools import grid_from_bounding_box

__all__ = ["s2d_s_region", "s_region_spectral"]


def s_region_spectral(wcs: Any, shape: tuple[int, int], dispersion_axis: int | None = None) -> str | None:
    """``S_REGION`` of a rectified 2-D spectrum: the RA/Dec box of the world coordinates of its
    pixels (within the gwcs bounding box), None where the coordinates are not finite.

    With ``dispersion_axis`` (1: wavelength along x, 2: along y) the gwcs is one whose sky
    coordinates depend on the spatial pixel alone (spec3c's grids map it alone to RA/Dec): the
    pixels of one line across the spectrum then hold every value the others do, and only they are
    evaluated (the same box; a 2048-column s2d's footprint ~2000x cheaper).
    """
    bbox = getattr(wcs, "bounding_box", None)
    if bbox is None:
        bbox = ((-0.5, shape[1] - 0.5), (-0.5, shape[0] - 0.5))
    xx, yy = grid_from_bounding_box(bbox)
    if dispersion_axis == 1:
        xx, yy = xx[:, :1], yy[:, :1]
    elif dispersion_axis == 2:
        xx, yy = xx[:1], yy[:1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        world = wcs(xx, yy)
    ra = np.asarray(world[0], dtype=np.float64)
    dec = np.asarray(world[1], dtype=np.float64)
    ok = np.isfinite(ra) & np.isfinite(dec)
    if not ok.any():
        return None
    ra_good = ra[ok]
    if ra_good.max() - ra_good.min() > 180.0:  # the box straddles RA 0/360
        ra_good = np.where(ra_good > 180.0, ra_good - 360.0, ra_good)
    lo_ra, hi_ra = float(ra_good.min()) % 360.0, float(ra_good.max()) % 360.0
    lo_dec, hi_dec = float(dec[ok].min()), float(dec[ok].max())
    corners = (lo_ra, lo_dec, hi_ra, lo_dec, hi_ra, hi_dec, lo_ra, hi_dec)
    return "POLYGON ICRS  " + " ".join(f"{v:.9f}" for v in corners)


def s2d_s_region(wcs: Any, shape: tuple[int, int], dispersion_axis: int | None = None) -> str | None:
    """S_REGION of an s2d whose output frame is celestial (None otherwise); ``dispersion_axis``
    as :func:`s_region_spectral`'s."""
    frame = wcs.output_frame
    if not any(isinstance(f, cf.CelestialFrame) for f in getattr(frame, "frames", [frame])):
        return None
    return s_region_spectral(wcs, shape, dispersion_axis)
