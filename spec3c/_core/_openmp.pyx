# cython: language_level=3
"""Report whether the kernels were built with OpenMP."""

from ._shared cimport SPEC3C_OPENMP, spec3c_omp_max_threads


def openmp_enabled():
    """Return True if the kernels were compiled with OpenMP.

    Returns
    -------
    bool
        False on builds without ``-fopenmp`` (e.g. macOS clang); the kernels
        then run single-threaded and ignore ``workers``.
    """
    return bool(SPEC3C_OPENMP)


def max_threads():
    """Return the number of threads ``workers=0`` uses.

    Returns
    -------
    int
        ``omp_get_max_threads()`` (honours ``OMP_NUM_THREADS``), or 1 without
        OpenMP.
    """
    return int(spec3c_omp_max_threads())
