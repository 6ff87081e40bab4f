"""The sky and wavelength axes of an IFU cube from its FITS WCS keywords (``meta.wcsinfo``).

The cube's gwcs (jwst 3.0.0 ``pointing.create_fitswcs``, spec3c
:func:`spec3c.products.s3d.cube_gwcs`) is the FITS ``RA---TAN``/``DEC--TAN``
transform: 0-based pixel minus ``CRPIX - 1``, the ``PC`` matrix, ``CDELT``
(degrees), the gnomonic projection and the rotation to the celestial pole
about ``(CRVAL1, CRVAL2)`` (LONPOLE 180); the spectral axis is linear
(``WAVE``) or a lookup table (``WAVE-TAB``).  The same formulas in numpy, so
extract_1d evaluates them on whole grids without a gwcs object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["CubeWcs", "angular_separation", "plane_wavelengths"]


def angular_separation(ra1: np.ndarray | float, dec1: np.ndarray | float, ra2: np.ndarray | float,
                       dec2: np.ndarray | float) -> np.ndarray:
    """Angle (deg) between sky positions (deg), Vincenty's formula as ``SkyCoord.separation``."""
    lon1, lat1, lon2, lat2 = (np.radians(np.asarray(v, dtype=np.float64)) for v in (ra1, dec1, ra2, dec2))
    sdlon, cdlon = np.sin(lon2 - lon1), np.cos(lon2 - lon1)
    num1 = np.cos(lat2) * sdlon
    num2 = np.cos(lat1) * np.sin(lat2) - np.sin(lat1) * np.cos(lat2) * cdlon
    den = np.sin(lat1) * np.sin(lat2) + np.cos(lat1) * np.cos(lat2) * cdlon
    return np.degrees(np.arctan2(np.hypot(num1, num2), den))


@dataclass(frozen=True)
class CubeWcs:
    """Pixel <-> sky of a cube's spatial axes and the wavelengths of its planes.

    Attributes
    ----------
    crpix, crval, cdelt : (2,) float
        FITS reference pixel (1-based), reference RA/Dec (deg), spaxel size (deg).
    pc : (2, 2) float
        The PC matrix of the spatial axes.
    dispersion_direction : int or None
        ``DISPAXIS`` of the cube (the reference's spatial scale is measured along the axis
        it names: y for 1, x otherwise).
    """

    crpix: tuple[float, float]
    crval: tuple[float, float]
    cdelt: tuple[float, float]
    pc: tuple[tuple[float, float], tuple[float, float]]
    dispersion_direction: int | None = None

    @classmethod
    def from_wcsinfo(cls, info: Mapping[str, Any], dispersion_direction: int | None = None) -> CubeWcs:
        return cls((float(info["crpix1"]), float(info["crpix2"])), (float(info["crval1"]), float(info["crval2"])),
                   (float(info["cdelt1"]), float(info["cdelt2"])),
                   ((float(info["pc1_1"]), float(info["pc1_2"])), (float(info["pc2_1"]), float(info["pc2_2"]))),
                   dispersion_direction)

    def pixel_to_world(self, x: np.ndarray | float, y: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """(RA, Dec) in degrees of 0-based pixel positions."""
        u = np.asarray(x, dtype=np.float64) - (self.crpix[0] - 1)
        v = np.asarray(y, dtype=np.float64) - (self.crpix[1] - 1)
        (a, b), (c, d) = self.pc
        xi = np.radians((a * u + b * v) * self.cdelt[0])
        eta = np.radians((c * u + d * v) * self.cdelt[1])
        ra0, dec0 = np.radians(self.crval[0]), np.radians(self.crval[1])
        den = np.cos(dec0) - eta * np.sin(dec0)
        ra = np.degrees(ra0 + np.arctan2(xi, den)) % 360.0
        dec = np.degrees(np.arctan2(np.sin(dec0) + eta * np.cos(dec0), np.hypot(xi, den)))
        return ra, dec

    def world_to_pixel(self, ra: np.ndarray | float, dec: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """0-based pixel positions of sky positions (deg); no bounding box."""
        alpha, delta = np.radians(np.asarray(ra, dtype=np.float64)), np.radians(np.asarray(dec, dtype=np.float64))
        ra0, dec0 = np.radians(self.crval[0]), np.radians(self.crval[1])
        cosc = np.sin(dec0) * np.sin(delta) + np.cos(dec0) * np.cos(delta) * np.cos(alpha - ra0)
        xi = np.degrees(np.cos(delta) * np.sin(alpha - ra0) / cosc) / self.cdelt[0]
        eta = np.degrees((np.cos(dec0) * np.sin(delta) - np.sin(dec0) * np.cos(delta) * np.cos(alpha - ra0)) / cosc) \
            / self.cdelt[1]
        (a, b), (c, d) = self.pc
        det = a * d - b * c
        u = (d * xi - b * eta) / det
        v = (-c * xi + a * eta) / det
        return u + (self.crpix[0] - 1), v + (self.crpix[1] - 1)

    def spatial_scale(self, ra: float, dec: float) -> float:
        """Spaxel size (deg) at a sky position, as the reference's ``compute_scale``: the
        separation from the position's pixel to the next one along x (y for DISPAXIS 1)."""
        x, y = self.world_to_pixel(ra, dec)
        dx, dy = (0.0, 1.0) if self.dispersion_direction == 1 else (1.0, 0.0)
        ra_a, dec_a = self.pixel_to_world(x, y)
        ra_b, dec_b = self.pixel_to_world(x + dx, y + dy)
        return float(angular_separation(ra_a, dec_a, ra_b, dec_b))


def plane_wavelengths(info: Mapping[str, Any], nz: int, table: np.ndarray | None = None) -> np.ndarray:
    """Wavelength (micron, float64) of each plane: ``WAVE`` linear from ``CRVAL3/CDELT3/CRPIX3``,
    else (``WAVE-TAB``) the float32 ``WCS-TABLE`` values ``table``."""
    if str(info.get("ctype3", "WAVE")).upper() == "WAVE-TAB":
        if table is None:
            raise ValueError("a WAVE-TAB cube needs its wavelength table")
        return np.asarray(np.asarray(table, dtype=np.float32), dtype=np.float64)
    z = np.arange(nz, dtype=np.float64)
    return (z + -(float(info["crpix3"]) - 1)) * float(info["cdelt3"]) + float(info["crval3"])
