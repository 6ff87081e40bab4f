"""Cython/OpenMP kernels: public, validated entry points.

Each kernel has three tiers (STYLE.md practice 1): the public function
re-exported here, a private compiled ``def`` and ``noexcept nogil`` loops.
"""

from ._openmp import max_threads, openmp_enabled
from .blot import blot_image
from .boxextract import BoxExtraction, box_extract
from .drizzle import Drizzle, VarianceCombiner, drizzle_image, drizzle_variance
from .median import stack_median
from .nanflags import match_nans_and_flags
from .outlier import flag_direct, flag_resampled_crs

__all__ = [
    "BoxExtraction",
    "Drizzle",
    "VarianceCombiner",
    "blot_image",
    "box_extract",
    "drizzle_image",
    "drizzle_variance",
    "flag_direct",
    "flag_resampled_crs",
    "match_nans_and_flags",
    "max_threads",
    "openmp_enabled",
    "stack_median",
]
