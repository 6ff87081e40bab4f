"""IFU outlier detection on detector frames (ALGORITHMS.md §7.2; the reference's ``ifu`` mode).

No resampling: every exposure of one detector is compared with its own
neighbours across the slices.  Per exposure, each pixel's difference to its
two neighbours along the across-slice axis is taken, the smaller one kept
(:func:`neighbour_difference`); the minimum of that over every exposure of
the detector (:class:`MinimumDifference`) is large only where a pixel stands
out in *all* of them, i.e. a bad pixel missing from the bad-pixel mask.  It
is normalised by its local median (:func:`normalised_difference`) and the
pixels above the ``threshold_percent`` percentile of the detector's interior
are flagged (:func:`outlier_mask`), the same pixels in every exposure.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .._core import nan_median_filter
from .._core.outlier import min_neighbour_difference

#: pixels of each detector edge left out of the percentile (often noisy)
EDGE = 4


@dataclass(frozen=True)
class IfuOutlierOptions:
    """The reference's ``kernel_size``, ``threshold_percent`` and ``ifu_second_check``.

    ``kernel`` is the median-filter window along (axis 0, axis 1), both odd.
    """

    kernel: tuple[int, int] = (7, 7)
    threshold_percent: float = 99.8
    second_check: bool = False

    @staticmethod
    def parse_kernel(text: str) -> tuple[int, int]:
        """``"7 7"`` -> (7, 7); an even size is raised by one, as the reference does."""
        values = [int(v) for v in text.split()]
        if len(values) != 2 or min(values) < 1:
            raise ValueError(f"kernel_size must be two positive integers, got {text!r}")
        return values[0] + 1 - values[0] % 2, values[1] + 1 - values[1] % 2


def neighbour_difference(sci: np.ndarray, bad: np.ndarray, axis: int) -> np.ndarray:
    """Smaller absolute difference of each pixel to its two neighbours along ``axis``.

    Parameters
    ----------
    sci : ndarray, shape (ny, nx), float
        Science frame.
    bad : ndarray, shape (ny, nx), bool
        Pixels taken as NaN (DO_NOT_USE).
    axis : int
        0 or 1: the across-slice axis.

    Returns
    -------
    ndarray, shape (ny, nx), float64
        ``min(|s[i] - s[i-1]|, |s[i] - s[i+1]|)`` ignoring NaN differences, with
        the missing neighbour of an edge pixel taken as 0 (its difference is the
        pixel's own value); NaN where both differences are NaN.
    """
    s = np.where(bad, np.nan, np.asarray(sci, dtype=np.float64))
    s = np.moveaxis(s, axis, -1)
    step = np.abs(np.diff(s, axis=-1))  # |s[i+1] - s[i]|, n - 1 columns
    left = np.concatenate([np.abs(s[..., :1]), step], axis=-1)
    right = np.concatenate([step, np.abs(s[..., -1:])], axis=-1)
    return np.moveaxis(np.fmin(left, right), -1, axis)


class MinimumDifference:
    """NaN-ignoring minimum of the neighbour differences of a detector's exposures (``add`` / ``finalize``)."""

    def __init__(self, axis: int) -> None:
        self.axis = axis
        self.count = 0
        self._min: np.ndarray | None = None

    def add(self, sci: np.ndarray, bad: np.ndarray) -> None:
        """Fold in one exposure (:func:`neighbour_difference`, compiled: the same values)."""
        if self._min is not None and np.shape(sci) != self._min.shape:
            raise ValueError(f"exposure frames differ in shape: {np.shape(sci)} after {self._min.shape}")
        self._min = min_neighbour_difference(sci, bad, self.axis, self._min)
        self.count += 1

    def finalize(self) -> np.ndarray:
        """``(ny, nx)`` float64 minimum over the exposures added (NaN where all were NaN)."""
        if self._min is None:
            raise ValueError("no exposure was added")
        return self._min


def normalised_difference(minarr: np.ndarray, kernel: tuple[int, int]) -> np.ndarray:
    """``minarr`` over its local median (zero-padded, NaN-aware ``kernel`` window), the median
    floored at a third of the frame's median so that no pixel is divided by a tiny number."""
    norm = nan_median_filter(minarr, kernel)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "All-NaN", RuntimeWarning)
        floor = np.nanmedian(minarr) / 3.0
    norm[norm < floor] = floor
    return minarr / norm


@dataclass(frozen=True)
class IfuOutliers:
    """Pixels to flag in every exposure of a detector and the numbers behind them."""

    mask: np.ndarray  # (ny, nx) bool: r > cut (or, with the second check, minarr NaN)
    cut: float  # the threshold_percent percentile of r in the detector interior
    n_main: int  # pixels above the cut
    n_second: int  # further pixels of the second check (NaN minimum difference)


def outlier_mask(minarr: np.ndarray, options: IfuOutlierOptions) -> IfuOutliers:
    """The detector's outliers from its minimum neighbour-difference image ``minarr`` (ny, nx)."""
    ratio = normalised_difference(minarr, options.kernel)
    ny, nx = ratio.shape
    interior = ratio[EDGE:ny - EDGE, EDGE:nx - EDGE]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "All-NaN", RuntimeWarning)
        cut = float(np.nanpercentile(interior, options.threshold_percent))
    with np.errstate(invalid="ignore"):
        main = ratio > cut
    mask = main.copy()
    if options.second_check:
        mask |= np.isnan(minarr)
    n_main = int(np.count_nonzero(main))
    return IfuOutliers(mask, cut, n_main, int(np.count_nonzero(mask)) - n_main)
