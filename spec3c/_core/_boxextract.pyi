"""Type stub for the compiled ``spec3c._core._boxextract`` module (private tier).

Use :func:`spec3c._core.box_extract` instead.
"""

import numpy as np
import numpy.typing as npt

def box_extract(
    sci: npt.NDArray[np.float64],
    var_poisson: npt.NDArray[np.float64],
    var_rnoise: npt.NDArray[np.float64],
    var_flat: npt.NDArray[np.float64],
    profile: npt.NDArray[np.float64],
    bkg_profile: npt.NDArray[np.float64],
    mode: int,
    order: int,
    out: npt.NDArray[np.float64],
    workers: int,
) -> None: ...
