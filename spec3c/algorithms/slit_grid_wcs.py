"""gwcs of a :class:`~spec3c.algorithms.slit_grid.SlitGrid` (the ``_s2d`` WCS).

Same frames and transform structure as the reference's NIRSpec resampled
WCS, so downstream tools (extract_1d, specutils, jdaviz) see the same thing:
``detector`` (x, y) → ``slit_frame`` (x_slit ≡ 0, y_slit from a lookup
table, wavelength) → ``world`` (RA, Dec, wavelength µm).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from astropy import coordinates as coord
from astropy import units as u
from astropy.modeling import models as am
from gwcs import WCS
from gwcs import coordinate_frames as cf

if TYPE_CHECKING:
    from .slit_grid import SlitGrid


def _frames() -> tuple[cf.Frame2D, cf.CompositeFrame, cf.CompositeFrame]:
    det = cf.Frame2D(name="detector", axes_order=(0, 1))
    slit_spatial = cf.Frame2D(name="slit_spatial", axes_order=(0, 1), unit=("", ""),
                              axes_names=("x_slit", "y_slit"))
    spec = cf.SpectralFrame(name="spectral", axes_order=(2,), unit=(u.micron,), axes_names=("wavelength",))
    slit_frame = cf.CompositeFrame([slit_spatial, spec], name="slit_frame")
    sky = cf.CelestialFrame(name="sky", axes_order=(0, 1), reference_frame=coord.ICRS())
    world = cf.CompositeFrame([sky, spec], name="world")
    return det, slit_frame, world


def grid_gwcs(grid: SlitGrid) -> WCS:
    """Build the gwcs; bounding box and array shape from the grid shape."""
    pix, lam = grid.extended_table()
    wavelength = am.Tabular1D(points=pix, lookup_table=lam, bounds_error=False, fill_value=np.nan)
    to_x = am.Linear1D(slope=grid.x_line[0], intercept=grid.x_line[1])
    to_y = am.Linear1D(slope=grid.y_line[0], intercept=grid.y_line[1])
    tangent = am.Pix2Sky_TAN() | am.RotateNative2Celestial(*grid.fiducial, 180.0)
    rows = am.Mapping((1, 1, 0))
    rows.inverse = am.Mapping((2, 1)) if grid.swap_xy else am.Mapping((2, 0))
    pix2world = rows | (to_x & to_y | tangent) & wavelength

    slit_table = am.Tabular1D(points=np.arange(grid.ny, dtype=float), lookup_table=grid.slit_y,
                              bounds_error=False, fill_value=None)
    to_slit = am.Mapping((0, 1, 0))
    from_slit = am.Mapping((2, 1), n_inputs=3)
    from_slit.inverse = to_slit
    to_slit.inverse = from_slit
    zero = am.Const1D(0)
    zero.inverse = zero
    det2slit = to_slit | zero & slit_table & wavelength
    slit2world = det2slit.inverse | pix2world

    det, slit_frame, world = _frames()
    wcs = WCS([(det, det2slit), (slit_frame, slit2world), (world, None)])
    ny, nx = grid.shape
    wcs.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    wcs.array_shape = (ny, nx)
    return wcs
