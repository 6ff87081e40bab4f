"""The footprint (``S_REGION``) of a rectified 2-D spectrum, from its output gwcs."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from gwcs import coordinate_frames as cf
from gwcs.wcstools import grid_from_bounding_box

__all__ = ["s2d_s_region", "s_region_spectral"]


def s_region_spectral(wcs: Any, shape: tuple[int, int]) -> str | None:
    """``S_REGION`` of a rectified 2-D spectrum: the RA/Dec box of the world coordinates of its
    pixels (within the gwcs bounding box), None where the coordinates are not finite."""
    bbox = getattr(wcs, "bounding_box", None)
    if bbox is None:
        bbox = ((-0.5, shape[1] - 0.5), (-0.5, shape[0] - 0.5))
    xx, yy = grid_from_bounding_box(bbox)
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


def s2d_s_region(wcs: Any, shape: tuple[int, int]) -> str | None:
    """S_REGION of an s2d whose output frame is celestial (None otherwise)."""
    frame = wcs.output_frame
    if not any(isinstance(f, cf.CelestialFrame) for f in getattr(frame, "frames", [frame])):
        return None
    return s_region_spectral(wcs, shape)
