"""MIRI LRS fixed slit: whole-image exposures of one source, dispersion along y, the
reference's interpolated output grid (wavelengths descending)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from ...algorithms.apcorr import ApcorrSpec
from ...algorithms.lrs_grid import LrsGrid, build_lrs_grid
from ...algorithms.master_background import expand
from ...algorithms.slit_grid import GridOptions
from ...ingest.cutouts import read_image_model
from ...naming import SourceNaming
from ..base import EXPOSURE, SOURCE, Extraction, Mode

if TYPE_CHECKING:
    from ...source_inputs import SourceInputs
    from ...store.records import Cutout

LRS_APCORR = ApcorrSpec("MirLrsApcorrModel", "lrs")


def lrs_fs_grid(inputs: SourceInputs, options: GridOptions) -> LrsGrid:
    return build_lrs_grid(inputs.grid_inputs(), options, inputs.wcs, descending=True)


def image_background(cutout: Cutout, master: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The master background at every pixel's stored wavelength."""
    bkg, dq = expand(cutout.planes["wavelength"], master["WAVELENGTH"], master["SURF_BRIGHT"])
    return bkg.astype(np.float32), dq


def pointing_column(inputs: SourceInputs, grid: LrsGrid) -> float | None:
    """Output column of the dithered pointing (MEAS DITHRA/DITHDEC) at the middle wavelength,
    as the reference's ``location_from_wcs``; None if unknown or off the grid."""
    meta = inputs.exposure_meta(0)
    ra, dec = meta.get("meta.dither.dithered_ra"), meta.get("meta.dither.dithered_dec")
    if ra is None or dec is None:
        return None
    ny, nx = grid.shape
    middle_wl = float(grid.row_to_wavelength(np.array([(ny - 1) / 2.0]))[0])
    column = float(grid.pixmap(np.array([ra]), np.array([dec]), np.array([middle_wl]))[0, 0])
    return column if -0.5 <= column <= nx - 0.5 else None


MIRI_LRS_FS = Mode(
    name="miri-lrs-fs",
    exp_types=("MIR_LRS-FIXEDSLIT",),
    read_cutouts=read_image_model,
    plan=("assign_mtwcs", "master_background", "outlier_detection", "pixel_replace", "resample_spec",
          "extract_1d"),
    build_grid=lrs_fs_grid,
    products={"crf": EXPOSURE, "s2d": SOURCE, "x1d": SOURCE},
    naming=SourceNaming(whole_association=True),
    background_2d=image_background,
    image_exposures=True,
    extraction=Extraction(center_on_source=True, apcorr=LRS_APCORR),
    locate_source=pointing_column,
)
