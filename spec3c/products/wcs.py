"""WCS pieces of exported products: the x1d spectral gwcs and the s2d FITS WCS."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from astropy import coordinates as coord
from astropy import units as u
from astropy.modeling import models as am
from gwcs import WCS
from gwcs import coordinate_frames as cf

__all__ = ["WCS_TABLE", "WCS_TABLE_COLUMN", "s2d_fits_wcs", "spectral_gwcs", "wcs_table"]

#: name of the wavelength lookup-table extension and its column (s2d)
WCS_TABLE = "WCS-TABLE"
WCS_TABLE_COLUMN = "wavelength"


def spectral_gwcs(ra: float, dec: float, wavelength: np.ndarray) -> WCS:
    """gwcs of one extracted spectrum: pixel -> (RA, Dec, wavelength µm).

    Same frames and transform as the reference's ``create_spectral_wcs``:
    constant sky position, tabulated wavelength (extrapolated beyond the
    ends); an inverse is set only when the wavelengths are strictly monotonic.
    """
    lam = np.asarray(wavelength, dtype=np.float64)
    pixel_frame = cf.CoordinateFrame(
        naxes=1, axes_type=("SPATIAL",), axes_order=(0,), unit=(u.pix,), name="pixel_frame"
    )
    sky = cf.CelestialFrame(name="sky", axes_order=(0, 1), reference_frame=coord.ICRS())
    spec = cf.SpectralFrame(
        name="spectral", axes_order=(2,), unit=(u.micron,), axes_names=("wavelength",)
    )
    world = cf.CompositeFrame([sky, spec], name="world")
    pixel = np.arange(len(lam), dtype=np.float64)
    table = am.Tabular1D(points=pixel, lookup_table=lam, bounds_error=False, fill_value=None)
    forward = am.Mapping((0, 0, 0)) | am.Const1D(ra) & am.Const1D(dec) & table
    forward.name = "pixel_to_world"
    if len(lam) > 1:
        step = np.diff(lam)
        if np.all(step > 0):
            forward.inverse = am.Mapping((2,)) | am.Tabular1D(
                points=lam, lookup_table=pixel, bounds_error=False
            )
        elif np.all(step < 0):
            forward.inverse = am.Mapping((2,)) | am.Tabular1D(
                points=lam[::-1], lookup_table=pixel[::-1], bounds_error=False
            )
    return WCS([(pixel_frame, forward), (world, None)])


def wcs_table(wavelengths: np.ndarray) -> np.ndarray:
    """One-row table for a ``-TAB`` spectral axis: column ``wavelength`` of shape ``(n, 1)``."""
    lam = np.asarray(wavelengths, dtype=np.float64)
    table = np.zeros(1, dtype=[(WCS_TABLE_COLUMN, "<f8", (len(lam), 1))])
    table[WCS_TABLE_COLUMN][0, :, 0] = lam
    return table


def _source_row(meta: Mapping[str, Any], ny: int) -> float:
    """0-based output row of the source (slit-frame ``source_ypos`` through ``slit_y``)."""
    slit_y = np.asarray(meta.get("slit_y", []), dtype=np.float64)
    ypos = meta.get("source_ypos")
    if ypos is not None and slit_y.shape == (ny,) and ny > 1 and np.all(np.isfinite(slit_y)):
        step = np.diff(slit_y)
        rows = np.arange(ny, dtype=np.float64)
        if np.all(step > 0):
            row = float(np.interp(ypos, slit_y, rows, left=np.nan, right=np.nan))
        elif np.all(step < 0):
            row = float(np.interp(ypos, slit_y[::-1], rows[::-1], left=np.nan, right=np.nan))
        else:
            row = float("nan")
        if np.isfinite(row):
            return row
    return (ny - 1) / 2.0


def s2d_fits_wcs(shape: tuple[int, int], meta: Mapping[str, Any]) -> dict[str, Any]:
    """FITS WCS keywords (``meta.wcsinfo`` names) of a rectified 2-D spectrum.

    Dispersion along x: ``WAVE-TAB`` looked up in the ``WCS-TABLE`` extension
    (index = pixel, 1-based); spatial axis ``SPATIAL`` in arcsec, zero at the
    source (or the centre row when its position is unknown).  ``PS1_0`` and
    ``PS1_1`` are not wcsinfo schema keywords; the writer adds them.
    """
    ny, _ = shape
    info: dict[str, Any] = {
        "wcsaxes": 2,
        "ctype1": "WAVE-TAB",
        "cunit1": "um",
        "crpix1": 1.0,
        "crval1": 1.0,
        "cdelt1": 1.0,
        "ctype2": "SPATIAL",
        "cunit2": "arcsec",
        "crpix2": _source_row(meta, ny) + 1.0,
        "crval2": 0.0,
        "dispersion_direction": 1,
    }
    scale = meta.get("spatial_scale")
    if scale is not None and np.isfinite(scale):
        info["cdelt2"] = float(scale)
    return info
