"""Type stub for the compiled ``spec3c._core._blot`` module (private tier).

Use :func:`spec3c._core.blot_image` instead.
"""

import numpy as np
import numpy.typing as npt

def blot(
    image: npt.NDArray[np.float32],
    pixmap: npt.NDArray[np.float64],
    out: npt.NDArray[np.float32],
    fill: float,
    workers: int,
) -> None: ...
