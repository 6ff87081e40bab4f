"""MIRI LRS slitless (non-TSO): never resampled; extract_1d on every exposure, then
combine_1d (ALGORITHMS.md §0).  Outlier detection's median uses the LRS grid with
wavelengths ascending, as the reference."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...algorithms.lrs_grid import LrsGrid, build_lrs_grid
from ...algorithms.slit_grid import GridOptions
from ...ingest.cutouts import read_image_model
from ...naming import SourceNaming
from ..base import EXPOSURE, SOURCE, Extraction, Mode
from ..lrs import LRS_APCORR, image_background

if TYPE_CHECKING:
    from ...source_inputs import SourceInputs


def lrs_slitless_grid(inputs: SourceInputs, options: GridOptions) -> LrsGrid:
    return build_lrs_grid(inputs.grid_inputs(), options, inputs.wcs, descending=False)


MIRI_LRS_SLITLESS = Mode(
    name="miri-lrs-slitless",
    exp_types=("MIR_LRS-SLITLESS",),
    read_cutouts=read_image_model,
    plan=("assign_mtwcs", "master_background", "outlier_detection", "pixel_replace", "extract_1d",
          "combine_1d"),
    build_grid=lrs_slitless_grid,
    products={"crf": EXPOSURE, "x1d": EXPOSURE, "c1d": SOURCE},
    naming=SourceNaming(whole_association=True),
    background_2d=image_background,
    image_exposures=True,
    extraction=Extraction(apcorr=LRS_APCORR),
)
