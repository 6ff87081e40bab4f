"""Type stub for the compiled ``spec3c._core._cube_area`` module (private tier; use
:meth:`spec3c._core.cube.CubeAccumulator.add_slicer_area`)."""

import numpy as np
import numpy.typing as npt

_F64 = npt.NDArray[np.float64]

def area_add(
    along: _F64,
    wave: _F64,
    flux: _F64,
    err: _F64,
    column: npt.NDArray[np.int64],
    acoord: _F64,
    zcoord: _F64,
    crval_along: float,
    cdelt_along: float,
    crval3: float,
    cdelt3: float,
    nx: int,
    p0: int,
    p1: int,
    sums: tuple[_F64, ...],
) -> int: ...
