"""Build the Cython/OpenMP kernels in spec3c/_core.

Every ``spec3c/_core/*.pyx`` becomes ``spec3c._core.<name>``; set
``SPEC3C_DEBUG=1`` to build with bounds and wraparound checks on.
"""

import os
import sys
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("SPEC3C_DEBUG", "") not in ("", "0")
OPENMP = [] if sys.platform == "darwin" else ["-fopenmp"]
COMPILE_ARGS = ["-O3", *OPENMP] + (["-O0", "-g"] if DEBUG else [])


def core_extensions() -> list[Extension]:
    sources = sorted(Path("spec3c/_core").glob("*.pyx"))
    only = os.environ.get("SPEC3C_ONLY")  # e.g. "_median,_drizzle": build a subset
    if only:
        sources = [s for s in sources if s.stem in only.split(",")]
    return [
        Extension(
            f"spec3c._core.{src.stem}",
            [str(src)],
            include_dirs=[numpy.get_include(), "spec3c/_core"],
            extra_compile_args=COMPILE_ARGS,
            extra_link_args=OPENMP,
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        )
        for src in sources
    ]


directives = {
    "language_level": "3",
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "cdivision": True,
    "initializedcheck": DEBUG,
}

setup(ext_modules=cythonize(core_extensions(), compiler_directives=directives))
