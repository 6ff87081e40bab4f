"""Type stub for the compiled ``spec3c._core._sossbox`` module (private tier).

Use :func:`spec3c._core.sossbox.soss_box_sums` instead.
"""

import numpy as np
import numpy.typing as npt

def box_sums(
    data: npt.NDArray[np.floating],
    err: npt.NDArray[np.float64],
    scimask: npt.NDArray[np.uint8],
    weights: list[npt.NDArray[np.float64]],
    orders: npt.NDArray[np.intp],
    cutoffs: npt.NDArray[np.intp],
    models: list[npt.NDArray[np.float64]],
    model_orders: npt.NDArray[np.intp],
    out: npt.NDArray[np.float64],
    workers: int,
) -> None: ...
