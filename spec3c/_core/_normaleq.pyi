"""Type stub for the compiled ``spec3c._core._normaleq`` module (private tier).

Use :class:`spec3c._core.normaleq.ScaledNormalEquations` instead.
"""

import numpy as np
import numpy.typing as npt

def normal_equations(
    t_indptr: npt.NDArray[np.int64],
    t_indices: npt.NDArray[np.int64],
    t_data: npt.NDArray[np.float64],
    r_indptr: npt.NDArray[np.int64],
    r_indices: npt.NDArray[np.int64],
    r_data: npt.NDArray[np.float64],
    pat_indptr: npt.NDArray[np.int64],
    pat_indices: npt.NDArray[np.int64],
    scale: npt.NDArray[np.float64],
    pixels: npt.NDArray[np.float64],
    sums: npt.NDArray[np.float64],
    out_indptr: npt.NDArray[np.int64],
    out_indices: npt.NDArray[np.int64],
    out_data: npt.NDArray[np.float64],
    rhs: npt.NDArray[np.float64],
) -> int: ...

def gram(
    t_indptr: npt.NDArray[np.int64],
    t_indices: npt.NDArray[np.int64],
    t_data: npt.NDArray[np.float64],
    b_indptr: npt.NDArray[np.int64],
    b_indices: npt.NDArray[np.int64],
    b_data: npt.NDArray[np.float64],
    workers: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]: ...

def product(
    a_indptr: npt.NDArray[np.int64],
    a_indices: npt.NDArray[np.int64],
    a_data: npt.NDArray[np.float64],
    b_indptr: npt.NDArray[np.int64],
    b_indices: npt.NDArray[np.int64],
    b_data: npt.NDArray[np.float64],
    n_cols: int,
    workers: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]: ...
