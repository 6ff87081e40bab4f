"""Type stub for the compiled ``spec3c._core._cube`` module.

Private tier: callers pass native, C-contiguous float64 arrays (``dq``/``fov``
uint32, outputs float32/uint32); use :class:`spec3c._core.CubeAccumulator`.
"""

import numpy as np
import numpy.typing as npt

_F64 = npt.NDArray[np.float64]

def cube_add(
    x: _F64,
    y: _F64,
    wave: _F64,
    flux: _F64,
    err: _F64,
    dwave: _F64,
    dq: npt.NDArray[np.uint32],
    has_dq: bool,
    grid: tuple[_F64 | float, ...],
    tables: tuple[_F64, ...],
    wmin: float,
    wmax: float,
    kind: int,
    p0: int,
    p1: int,
    sums: tuple[_F64, ...],
    workers: int,
) -> int: ...
def cube_finalize(
    sums: tuple[_F64, ...],
    fov: npt.NDArray[np.uint32],
    has_fov: bool,
    nplanes: int,
    ny: int,
    nx: int,
    oflux: npt.NDArray[np.float32],
    oerr: npt.NDArray[np.float32],
    owmap: npt.NDArray[np.float32],
    odq: npt.NDArray[np.uint32],
    workers: int,
) -> None: ...

def slice_extents(
    wave: _F64,
    xi: _F64,
    eta: _F64,
    slice_no: npt.NDArray[np.int64],
    z: _F64,
    roiw: float,
    p0: int,
    p1: int,
    c1min: _F64,
    c2min: _F64,
    c1max: _F64,
    c2max: _F64,
) -> None: ...

def mark_slice_lines(
    out: npt.NDArray[np.uint32],
    nx: int,
    plane: npt.NDArray[np.int64],
    x1: npt.NDArray[np.int64],
    y1: npt.NDArray[np.int64],
    x2: npt.NDArray[np.int64],
    y2: npt.NDArray[np.int64],
    flag: int,
) -> None: ...
