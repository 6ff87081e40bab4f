"""Type stub for the compiled ``spec3c._core._outlier`` module (private tier).

All float arrays must share one native dtype; use
:func:`spec3c._core.flag_resampled_crs` / :func:`spec3c._core.flag_direct`.
"""

import numpy as np
import numpy.typing as npt

_Float = np.float32 | np.float64

def flag_resampled(
    sci: npt.NDArray[_Float],
    blot: npt.NDArray[_Float],
    err: npt.NDArray[_Float],
    snr1: float,
    snr2: float,
    scale1: float,
    scale2: float,
    backg: float,
    m1: npt.NDArray[np.uint8],
    m2: npt.NDArray[np.uint8],
    out: npt.NDArray[np.uint8],
    workers: int,
) -> None: ...
def flag_direct(
    sci: npt.NDArray[_Float],
    median: npt.NDArray[_Float],
    err: npt.NDArray[_Float],
    snr: float,
    out: npt.NDArray[np.uint8],
    workers: int,
) -> None: ...
def min_neighbour_difference(
    sci: npt.NDArray[_Float],
    bad: npt.NDArray[np.uint8],
    running: npt.NDArray[np.float64],
    first: bool,
    workers: int,
) -> None: ...
