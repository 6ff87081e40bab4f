"""Type stub for the compiled ``spec3c._core._aperture`` module (private tier; use
:func:`spec3c._core.aperture.circle_weights`)."""

import numpy as np
import numpy.typing as npt

def circle_grid(
    xmin: float,
    xmax: float,
    ymin: float,
    ymax: float,
    r_out: float,
    r_in: float,
    exact: bool,
    subpixels: int,
    out: npt.NDArray[np.float64],
) -> None: ...
def rectangle_area(x0: float, y0: float, x1: float, y1: float, r: float) -> float: ...
