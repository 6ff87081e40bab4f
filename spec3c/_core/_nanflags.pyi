"""Type stub for the compiled ``spec3c._core._nanflags`` module.

Private tier: callers must pass native, C-contiguous, writable 1-D arrays of
one length; use :func:`spec3c._core.match_nans_and_flags` instead.
"""

import numpy as np
import numpy.typing as npt

def match_flat(
    dq: npt.NDArray[np.uint32],
    f32: list[npt.NDArray[np.float32]],
    f64: list[npt.NDArray[np.float64]],
    bit: int,
    workers: int,
) -> int: ...
