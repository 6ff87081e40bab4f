"""NIRSpec fixed slit and MOS: one source per slit, drizzled onto the NIRSpec slit grid.

Exposures come as MultiSlitModel cal files (one per exposure, every slit), or
as SlitModel cal files (one slit per file, as some stage-2 tools write them):
the reference then runs no exp_to_source, so the whole association is one
source, its outlier-flagged inputs are written per file (``_crf``) and the
``_s2d``/``_x1d`` carry the association's product name as it is
(:data:`SLIT_MODEL_MODES`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ...algorithms.apcorr import ApcorrSpec
from ...algorithms.master_background import expand, fs_point_scale
from ...algorithms.slit_grid import GridOptions, SlitGrid, build_slit_grid
from ...ingest.cutouts import read_slit_model, read_slits
from ...naming import SourceNaming
from ..base import EXPOSURE, SOURCE, Extraction, Mode

if TYPE_CHECKING:
    from ...source_inputs import SourceInputs
    from ...store.records import Cutout

#: the calwebb_spec3 slit plan after exp_to_source, in the reference's order
SLIT_PLAN = ("assign_mtwcs", "master_background", "outlier_detection", "pixel_replace", "resample_spec",
             "extract_1d")
SLIT_PRODUCTS = {"cal": SOURCE, "crf": SOURCE, "s2d": SOURCE, "x1d": SOURCE}


def slit_grid(inputs: SourceInputs, options: GridOptions) -> SlitGrid:
    """The reference's NIRSpec output grid, from the stored coordinates."""
    return build_slit_grid(inputs.grid_inputs(), inputs.wcs, options)


def fs_background(cutout: Cutout, master: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The master background at a fixed slit's pixels; point-source slits scaled as stage 2 calibrated them."""
    bkg, dq = expand(cutout.planes["wavelength"], master["WAVELENGTH"], master["SURF_BRIGHT"])
    if str(cutout.meta.get("source_type", "")).upper() == "POINT":
        scale = fs_point_scale(cutout.planes)
        if scale is not None:
            bkg = bkg * scale
    return bkg.astype(np.float32), dq


def mos_background(cutout: Cutout, master: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """MOS: the background belongs to stage 2, so the reference subtracts 0."""
    shape = cutout.planes["sci"].shape
    return np.zeros(shape, np.float32), np.zeros(shape, np.uint32)


NIRSPEC_FS = Mode(
    name="nirspec-fs",
    exp_types=("NRS_FIXEDSLIT",),
    read_cutouts=read_slits,
    plan=SLIT_PLAN,
    build_grid=slit_grid,
    products=SLIT_PRODUCTS,
    naming=SourceNaming(slit_field=True),
    background_2d=fs_background,
    extraction=Extraction(aperture_by_slit=True, center_on_source=True,
                          apcorr=ApcorrSpec("NrsFsApcorrModel", "phase", match_slit=True)),
)

NIRSPEC_MOS = Mode(
    name="nirspec-mos",
    exp_types=("NRS_MSASPEC",),
    read_cutouts=read_slits,
    plan=SLIT_PLAN,
    build_grid=slit_grid,
    products=SLIT_PRODUCTS,
    naming=SourceNaming(mos_tokens=True),
    background_2d=mos_background,
    background_note="NIRSpec MOS: background set to 0, as the reference",
    extraction=Extraction(center_on_source=True, apcorr=ApcorrSpec("NrsMosApcorrModel", "phase")),
)


def _slit_model_variant(mode: Mode) -> Mode:
    """``mode`` for SlitModel inputs: one source per association, exposure-based ``_crf`` (no ``_cal``)."""
    return dataclasses.replace(
        mode,
        name=f"{mode.name}-slitmodel",
        read_cutouts=read_slit_model,
        products={"crf": EXPOSURE, "s2d": SOURCE, "x1d": SOURCE},
        naming=SourceNaming(whole_association=True),
        image_exposures=True,  # each file is one cutout, read whole
    )


NIRSPEC_FS_SLITMODEL = _slit_model_variant(NIRSPEC_FS)
NIRSPEC_MOS_SLITMODEL = _slit_model_variant(NIRSPEC_MOS)

#: the datamodel class of one-slit-per-file inputs, and the modes that serve them
SLIT_MODEL = "SlitModel"
SLIT_MODEL_MODES: tuple[Mode, ...] = (NIRSPEC_FS_SLITMODEL, NIRSPEC_MOS_SLITMODEL)
