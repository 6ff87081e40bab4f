"""NaN-aware 2-D median filter with zero padding (IFU outlier detection).

ALGORITHMS.md §7.2 step 5: the minimum neighbour-difference image of a
detector is normalised by its local median.  The reference
(``stcal.outlier_detection.utils.medfilt``) pads the image with zeros and
takes ``numpy.nanmedian`` over every window; this is the same filter without
the (ny, nx, ky, kx) window copy.  Public tier over :mod:`spec3c._core._medfilt`.
"""

from __future__ import annotations

import numpy as np

from . import _medfilt
from ._validate import check_workers


def nan_median_filter(image: np.ndarray, kernel: tuple[int, int], *, workers: int = 0) -> np.ndarray:
    """Median of each pixel's ``kernel`` window, ignoring NaNs; outside the image counts as 0.

    Parameters
    ----------
    image : ndarray, shape (ny, nx), real
        Converted to native float64 (copied only when needed).
    kernel : (int, int)
        Window size along axis 0 and axis 1; both odd and >= 1.
    workers : int, optional
        OpenMP threads; 0 (default) uses the OpenMP default.  The result does not depend on it.

    Returns
    -------
    ndarray, shape (ny, nx), float64
        ``numpy.nanmedian`` of the window of each pixel in the zero-padded
        image (mean of the two middle values for an even count); NaN where
        every value of the window is NaN.

    Raises
    ------
    TypeError
        If ``image`` is not real-valued or ``workers`` is not an int.
    ValueError
        If ``image`` is not 2-D, a kernel size is even or < 1, or ``workers < 0``.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {image.shape}")
    if image.dtype.kind not in "fiub":
        raise TypeError(f"image must be real-valued, got dtype {image.dtype}")
    ky, kx = (int(k) for k in kernel)
    if ky < 1 or kx < 1 or ky % 2 == 0 or kx % 2 == 0:
        raise ValueError(f"kernel sizes must be odd and >= 1, got {kernel}")
    workers = check_workers(workers)
    data = np.ascontiguousarray(image, dtype=np.float64)
    out = np.empty(image.shape, dtype=np.float64)
    _medfilt.median_filter(data, ky, kx, out, workers)
    return out
