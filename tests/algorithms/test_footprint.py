"""The s2d footprint from one line across the spectrum equals the one from every pixel."""

from __future__ import annotations

import numpy as np
import pytest

from spec3c.algorithms.footprint import s2d_s_region
from spec3c.algorithms.lrs_grid import LrsGrid
from spec3c.algorithms.slit_grid import SlitGrid


def _slit_grid(swap: bool) -> SlitGrid:
    ny = 23
    return SlitGrid((53.16, -27.79), (2.1e-5, -2.3e-4), (-7.4e-6, 8.0e-5), swap, np.linspace(1.7, 3.1, 301), ny,
                    np.linspace(-0.5, 0.5, ny), 1.0, 0.1)


def _lrs_grid(swap: bool) -> LrsGrid:
    return LrsGrid((80.49, -69.52), (-1.3e-5, 1.5e-4), (2.2e-5, -2.4e-4), swap, np.linspace(12.0, 5.0, 211), 37, 1.0,
                   0.11)


@pytest.mark.parametrize("grid", [_slit_grid(False), _slit_grid(True), _lrs_grid(False), _lrs_grid(True)],
                         ids=["slit", "slit-swapped", "lrs", "lrs-swapped"])
def test_footprint_from_one_line_equals_every_pixel(grid):
    wcs = grid.to_gwcs()
    fast = s2d_s_region(wcs, grid.shape, grid.dispersion_axis)
    full = s2d_s_region(wcs, grid.shape)
    assert fast is not None and fast.startswith("POLYGON ICRS")
    assert fast == full
    # the wrong axis evaluates a line along the dispersion: one spatial pixel, a different box
    assert s2d_s_region(wcs, grid.shape, 3 - grid.dispersion_axis) != full
