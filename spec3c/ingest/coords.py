"""Per-pixel coordinates, evaluated once from an input gwcs at ingest."""

from __future__ import annotations

import numpy as np


def slit_coordinates(wcs, shape: tuple[int, int]) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """Evaluate a slit gwcs on every pixel of a cutout.

    Parameters
    ----------
    wcs : gwcs.WCS
        ``detector -> [slit_frame ->] world`` (world = RA, Dec, wavelength in
        µm); detector coordinates are 0-based cutout pixels.
    shape : (ny, nx)

    Returns
    -------
    dict of str to ndarray, each ``(ny, nx)`` float64
        ``wavelength`` (µm), ``ra``, ``dec`` (deg) and ``slit_y`` (slit-frame
        cross-dispersion coordinate, NaN without a slit frame); NaN outside
        the WCS bounding box.
    """
    y, x = np.indices(shape, dtype=np.float64)
    ra, dec, wavelength = (np.asarray(a, dtype=np.float64) for a in wcs(x, y, with_bounding_box=True))
    if "slit_frame" in wcs.available_frames:
        to_slit = wcs.get_transform("detector", "slit_frame")
        slit_y = np.asarray(to_slit(x, y)[1], dtype=np.float64)
        slit_y[~np.isfinite(wavelength)] = np.nan
    else:  # MIRI LRS: detector -> ... -> world, no slit frame
        slit_y = np.full(shape, np.nan)
    return {"wavelength": wavelength, "ra": ra, "dec": dec, "slit_y": slit_y}
