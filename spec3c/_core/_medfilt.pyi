"""Type stub for the compiled ``spec3c._core._medfilt`` module.

Private tier: callers pass a native, C-contiguous float64 image and output;
use :func:`spec3c._core.nan_median_filter` instead.
"""

import numpy as np
import numpy.typing as npt

def median_filter(
    img: npt.NDArray[np.float64], ky: int, kx: int, out: npt.NDArray[np.float64], workers: int
) -> None: ...
