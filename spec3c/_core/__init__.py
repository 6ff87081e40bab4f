"""Cython/OpenMP kernels: public, validated entry points.

Each kernel has three tiers (STYLE.md practice 1): the public function
re-exported here, a private compiled ``def`` and ``noexcept nogil`` loops.
Per-run settings travel as frozen option objects (:mod:`.params`).
"""

from ._openmp import max_threads, openmp_enabled
from .blot import blot_image
from .boxextract import BoxExtraction, box_extract
from .cube import CubeAccumulator, CubeGrid, CubeParams, CubePlanes
from .drizzle import Drizzle, VarianceCombiner
from .medfilt import nan_median_filter
from .median import stack_median
from .nanflags import match_nans_and_flags
from .outlier import flag_direct, flag_resampled_crs
from .params import BackgroundFit, DrizzleParams, OutlierThresholds

__all__ = [
    "BackgroundFit",
    "BoxExtraction",
    "CubeAccumulator",
    "CubeGrid",
    "CubeParams",
    "CubePlanes",
    "Drizzle",
    "DrizzleParams",
    "OutlierThresholds",
    "VarianceCombiner",
    "blot_image",
    "box_extract",
    "flag_direct",
    "flag_resampled_crs",
    "match_nans_and_flags",
    "max_threads",
    "nan_median_filter",
    "openmp_enabled",
    "stack_median",
]
