"""MIRI MRS and NIRSpec IFU: full-frame exposures of one source, combined into 3-D cubes.

Ingest keeps every exposure as full detector frames (store images) with the
per-pixel coordinates cube_build needs (:mod:`.miri`, :mod:`.nirspec`), plus one
empty "marker" cutout of the association's one source carrying the exposure's
IFU metadata (bands, footprint, rotation, slice geometry) and its gwcs.

Plan: ``assign_mtwcs`` (moving targets: every exposure's sky coordinates moved
to the mean ephemeris position), ``master_background`` (the association's
background members combined into one 1-D spectrum, expanded at every pixel's
stored wavelength and subtracted from SCI), ``outlier_detection`` (the reference's ifu mode,
:mod:`spec3c.steps.outlier_detection_ifu`) flags each detector's pixels that
stand out from their across-slice neighbours in every exposure and saves
``crf/<exposure>/<slit>`` DQ (exported as ``_crf`` IFUImageModels);
``cube_build`` builds one ``_s3d`` cube per band (channel x sub-band, or
grating x filter) or per channel / grating / all (``output_type``);
``extract_1d`` extracts one ``_x1d`` spectrum from each cube
(:mod:`spec3c.steps.extract_1d_ifu`, the rules in :mod:`.extraction`);
MIRI MRS then runs ``spectral_leak`` on the channel 3A spectrum: the
reference's spec3 plan.  The ``crf/<exposure>/<slit>`` DQ results are used by cube_build (flagged pixels
are not mapped), and extract_1d reads the
stored cubes (``spec3c.results.IfuCube``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import Spec3cError
from ...naming import SourceNaming
from ..base import CUBE, EXPOSURE, SOURCE, Extraction, Mode
from .extraction import MIRI_EXTRACTION, NIRSPEC_EXTRACTION
from .miri import read_miri_frames
from .nirspec import read_nirspec_frames
from .traits import MIRI_TRAITS, NIRSPEC_TRAITS

if TYPE_CHECKING:
    from ...algorithms.slit_grid import GridOptions
    from ...source_inputs import SourceInputs
    from ...store.records import Cutout

#: the steps run per association, in the reference's order; outlier_detection runs the reference's
#: ifu mode (:mod:`spec3c.steps.outlier_detection_ifu`).  assign_mtwcs and master_background leave the
#: stored frames as they are: the frame readers of the later steps apply them (the moving-target
#: shift, :func:`spec3c.steps.cube_inputs.read_frames`; the master background,
#: :func:`spec3c.steps.master_background.subtract_in_run`)
IFU_PLAN = ("assign_mtwcs", "master_background", "outlier_detection", "cube_build", "extract_1d")
#: MIRI MRS: then spectral_leak corrects the channel 3A spectrum (:mod:`spec3c.steps.spectral_leak`)
MRS_PLAN = (*IFU_PLAN, "spectral_leak")
#: crf: one IFUImageModel per input exposure (:mod:`spec3c.products.ifu_crf`)
IFU_PRODUCTS = {"crf": EXPOSURE, "s3d": SOURCE, "x1d": CUBE}


def miri_cutouts(model: Any, name: str, path: Path) -> list[Cutout]:
    return read_miri_frames(model, name, path)[0]


def nirspec_cutouts(model: Any, name: str, path: Path) -> list[Cutout]:
    return read_nirspec_frames(model, name, path)[0]


def no_slit_grid(inputs: SourceInputs, options: GridOptions) -> Any:
    raise Spec3cError("IFU exposures have no 2-D output grid: cube_build makes their 3-D cubes")


def no_background_2d(cutout: Cutout, master: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    raise Spec3cError("IFU exposures are full frames: their master background is made from the stored frames "
                      "(spec3c.steps.master_background.frame_background)")


MIRI_MRS = Mode(
    name="miri-mrs",
    exp_types=("MIR_MRS",),
    read_cutouts=miri_cutouts,
    read_frames=read_miri_frames,
    plan=MRS_PLAN,
    build_grid=no_slit_grid,
    products=IFU_PRODUCTS,
    naming=SourceNaming(whole_association=True),
    background_2d=no_background_2d,
    image_exposures=True,
    extraction=Extraction(apcorr=MIRI_EXTRACTION.apcorr, ifu=MIRI_EXTRACTION),
    cube=MIRI_TRAITS,
)

NIRSPEC_IFU = Mode(
    name="nirspec-ifu",
    exp_types=("NRS_IFU",),
    read_cutouts=nirspec_cutouts,
    read_frames=read_nirspec_frames,
    plan=IFU_PLAN,
    build_grid=no_slit_grid,
    products=IFU_PRODUCTS,
    naming=SourceNaming(whole_association=True),
    background_2d=no_background_2d,
    image_exposures=True,
    extraction=Extraction(apcorr=NIRSPEC_EXTRACTION.apcorr, ifu=NIRSPEC_EXTRACTION),
    cube=NIRSPEC_TRAITS,
)
