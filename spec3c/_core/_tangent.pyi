"""Type stub for the compiled ``spec3c._core._tangent`` module (private tier; use
:func:`spec3c._core.tangent.sky_to_tangent`)."""

import numpy as np
import numpy.typing as npt

_F64 = npt.NDArray[np.float64]

def project(
    ra: _F64,
    dec: _F64,
    crval1: float,
    crval2: float,
    rotate: bool,
    rot_angle: float,
    xi: _F64,
    eta: _F64,
    workers: int,
) -> None: ...

def project_corners(
    ra: _F64,
    dec: _F64,
    index: npt.NDArray[np.int64],
    offsets: tuple[npt.NDArray[np.float32], ...],
    reach: npt.NDArray[np.uint8],
    crval1: float,
    crval2: float,
    rotate: bool,
    rot_angle: float,
    xi: _F64,
    eta: _F64,
    workers: int,
) -> None: ...
