"""Type stub for the compiled ``spec3c._core._clipstats`` module.

Private tier: callers pass a native, C-contiguous float32 array; use
:func:`spec3c._core.clipstats.clipped_range_f32` instead.
"""

import numpy as np
import numpy.typing as npt

def clipped_range(values: npt.NDArray[np.float32], sigma: float, maxiters: int) -> tuple[float, float]: ...
