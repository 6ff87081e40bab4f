"""Type stub for the compiled ``spec3c._core._drizzle`` module.

Private tier: callers pass native, C-contiguous arrays (data and outputs as
stacks of planes); use :class:`spec3c._core.Drizzle` instead.
"""

import numpy as np
import numpy.typing as npt

def drizzle_add(
    data: npt.NDArray[np.float32],
    pixmap: npt.NDArray[np.float64],
    weight: npt.NDArray[np.float32],
    out_sci: npt.NDArray[np.float32],
    out_wht: npt.NDArray[np.float32],
    out_con: npt.NDArray[np.int32],
    use_con: bool,
    bit: int,
    kernel: int,
    pixfrac: float,
    iscale: float,
    xmin: int,
    xmax: int,
    ymin: int,
    ymax: int,
    workers: int,
) -> None: ...
