"""Type stub for the compiled ``spec3c._core._median`` module.

Private tier: callers must pass native, C-contiguous arrays of one float
dtype; use :func:`spec3c._core.stack_median` instead.
"""

import numpy as np
import numpy.typing as npt

_Float = np.float32 | np.float64

def median_unweighted(
    stack: npt.NDArray[_Float], out: npt.NDArray[_Float], workers: int
) -> None: ...
def median_weighted(
    stack: npt.NDArray[_Float],
    weights: npt.NDArray[_Float],
    out: npt.NDArray[_Float],
    workers: int,
) -> None: ...
