"""NIRISS and NIRCam wide-field slitless spectroscopy (WFSS; ALGORITHMS.md §0, §4, §12, §14).

What calwebb_spec3 does with WFSS (jwst 3.0.0, ``Spec3Pipeline.process``):
the spec2 ``_cal`` files hold one grism cutout per source and spectral order;
exp_to_source groups them by source id; per source, pixel_replace (skipped
by default), extract_1d over the whole cutout (WFSS never reads an EXTRACT1D
file and never re-centres; point sources aperture-corrected with a WFSS APCORR
file, rows matched on filter and pupil) and combine_1d per spectral order; no outlier
detection, no resampling, no per-source files.  The products are two files
for the whole association, named after the product with no source field:
``<product>_x1d.fits`` (WFSSMultiSpecModel, one table per exposure group and
order, one row per source) and ``<product>_c1d.fits``
(WFSSMultiCombinedSpecModel, one table per order, one row per source).

spec2 ``_x1d`` inputs (what newer jwst takes; 3.0.0's extract_1d fails on
them) are accepted too: their spectra are regrouped by source and combined
(:mod:`.spectra`).

Sources run in jobs of :data:`BATCH_SIZE`: a job reads its sources' cutouts
in one store query and writes their results in one write.  combine_1d weights
each spectrum by its own exposure's EFFEXPTM; the reference gives every
spectrum of a source the time of the source's first exposure (the same
result when the exposure times are equal, as in a WFSS visit).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ...algorithms.apcorr import ApcorrSpec
from ...errors import Spec3cError
from ...naming import SourceNaming
from ..base import ASSOCIATION, Extraction, Mode
from .reader import read_grism_slits, read_wfss_file
from .spectra import process_spectra

if TYPE_CHECKING:
    from ...source_inputs import SourceInputs
    from ...store.records import Cutout

__all__ = ["NIRCAM_WFSS", "NIRISS_WFSS", "WFSS_PLAN", "WFSS_PRODUCTS"]

#: the reference's WFSS plan after exp_to_source
WFSS_PLAN = ("pixel_replace", "extract_1d", "combine_1d")
WFSS_PRODUCTS = {"x1d": ASSOCIATION, "c1d": ASSOCIATION}
#: sources per process job: their cutouts are read in one store query, their results written in one write
BATCH_SIZE = 64


def no_grid(inputs: SourceInputs, options: Any) -> Any:
    """WFSS spectra are never resampled (and outlier_detection does not run)."""
    raise Spec3cError(f"source {inputs.source}: WFSS cutouts are not resampled; there is no output grid")


def no_background(cutout: Cutout, master: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """WFSS backgrounds belong to stage 2 (a WFSS spec3 association has no background members)."""
    shape = cutout.planes["sci"].shape
    return np.zeros(shape, np.float32), np.zeros(shape, np.uint32)


def _wfss_mode(name: str, exp_type: str, apcorr_model: str) -> Mode:
    return Mode(
        name=name,
        exp_types=(exp_type,),
        read_cutouts=read_grism_slits,
        plan=WFSS_PLAN,
        build_grid=no_grid,
        products=WFSS_PRODUCTS,
        naming=SourceNaming(whole_association=True),
        background_2d=no_background,
        background_note="WFSS: the background belongs to stage 2",
        extraction=Extraction(whole_cutout=True, several_per_exposure=True,
                              apcorr=ApcorrSpec(apcorr_model, "wfss")),
        read_file=read_wfss_file,
        process_spectra=process_spectra,
        batch_size=BATCH_SIZE,
    )


NIRISS_WFSS = _wfss_mode("niriss-wfss", "NIS_WFSS", "NisWfssApcorrModel")
NIRCAM_WFSS = _wfss_mode("nircam-wfss", "NRC_WFSS", "NrcWfssApcorrModel")
