"""Frozen option objects of the kernel wrappers.

Per-run settings (what a step's configuration decides once) travel as one
validated, immutable object; per-call data (arrays, scale factors, the
background level of one input) stay plain arguments.  Each object checks its
fields on construction, so a kernel call never sees an invalid setting.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

__all__ = ["BackgroundFit", "DrizzleParams", "OutlierThresholds"]

KERNELS: dict[str, int] = {"square": 0, "point": 1}
BKG_FITS: dict[str, int] = {"poly": 1, "median": 2}
MAX_BKG_ORDER = 15


def _real(value: object, name: str) -> float:
    """``value`` as a float that is not NaN, or an error naming ``name``."""
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None
    if math.isnan(out):
        raise ValueError(f"{name} must not be NaN")
    return out


@dataclass(frozen=True)
class DrizzleParams:
    """Drizzle settings shared by every image of one resampling run.

    Used by :class:`spec3c._core.Drizzle` and
    :class:`spec3c._core.VarianceCombiner`.  The output shape is not part of
    it (each source has its own output frame), nor is ``weight_type``: that
    setting decides how a step builds the per-pixel weight arrays, which
    the kernels receive as data.

    Parameters
    ----------
    kernel : {"square", "point"}
        ``square``: each input pixel, shrunk by ``pixfrac`` about its
        centre, is mapped to a quadrilateral on the output (corners
        bilinearly interpolated from the pixmap, extrapolated from the
        nearest 2x2 cell at the edges) and shares its value with every
        output pixel in proportion to the exact overlap area.  ``point``:
        the whole weight goes to the output pixel nearest the mapped centre
        (round half away from zero, as drizzle).
    pixfrac : float
        Linear shrink factor of input pixels (finite, > 0; square kernel
        only).
    fillval : float
        Value of output pixels that received no weight (NaN allowed).
    """

    kernel: str = "square"  # checked at run time: configuration values are plain strings
    pixfrac: float = 1.0
    fillval: float = math.nan

    def __post_init__(self) -> None:
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {sorted(KERNELS)}, got {self.kernel!r}")
        pixfrac = _real(self.pixfrac, "pixfrac")
        if not (0.0 < pixfrac < math.inf):
            raise ValueError(f"pixfrac must be a finite number > 0, got {pixfrac}")
        try:
            fillval = float(self.fillval)
        except (TypeError, ValueError):
            raise TypeError(f"fillval must be a real number, got {self.fillval!r}") from None
        object.__setattr__(self, "pixfrac", pixfrac)
        object.__setattr__(self, "fillval", fillval)


@dataclass(frozen=True)
class OutlierThresholds:
    """Detection thresholds of :func:`spec3c._core.flag_resampled_crs` (stcal names).

    A pixel is flagged when ``|sci - blot - backg|`` exceeds
    ``scale1 * deriv + snr1 * err`` somewhere in its 3x3 neighbourhood and
    ``scale2 * deriv + snr2 * err`` at the pixel itself.
    :func:`spec3c._core.flag_direct` uses ``snr1`` alone.

    Parameters
    ----------
    snr1, snr2 : float
        Signal-to-noise thresholds before / after the 3x3 dilation (not
        NaN; ``inf`` never flags).
    scale1, scale2 : float
        Multipliers of the blotted-median derivative before / after the
        dilation (not NaN).
    """

    snr1: float
    snr2: float
    scale1: float
    scale2: float

    def __post_init__(self) -> None:
        for name in ("snr1", "snr2", "scale1", "scale2"):
            object.__setattr__(self, name, _real(getattr(self, name), name))


@dataclass(frozen=True)
class BackgroundFit:
    """How :func:`spec3c._core.box_extract` fits the background (jwst names).

    Parameters
    ----------
    bkg_fit : {"poly", "median"}
        ``poly``: per column, unweighted least-squares polynomial of
        ``bkg_order`` in y mapped to [-1, 1] (``linspace(-1, 1, ny)``) over
        background pixels with finite SCI and finite total variance; fits
        with 2-norm condition >= 1e10 give background 0.  Its variance is
        propagated exactly: the aperture background sum is Σ_y c_y S_y over
        background pixels and its variance Σ_y c_y² var_y, with the
        aperture weights taken from the *unmasked* profile (as jwst).
        ``median``: per-column median of background pixels with non-NaN
        SCI; variance ``1.2² · (Σ profile)² · Σ var·(1/N)²`` over the N
        background pixels with finite SCI and variance.
    bkg_order : int
        Polynomial order, 0..15 (``poly`` only).
    """

    bkg_fit: str = "poly"  # checked at run time, as ``kernel`` above
    bkg_order: int = 0

    def __post_init__(self) -> None:
        if self.bkg_fit not in BKG_FITS:
            raise ValueError(f"bkg_fit must be 'poly' or 'median', got {self.bkg_fit!r}")
        try:
            order = operator.index(self.bkg_order)
        except TypeError:
            raise TypeError(f"bkg_order must be an int, got {self.bkg_order!r}") from None
        if not 0 <= order <= MAX_BKG_ORDER:
            raise ValueError(f"bkg_order must be an int in [0, {MAX_BKG_ORDER}], got {order}")
        object.__setattr__(self, "bkg_order", order)
