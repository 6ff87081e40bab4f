"""NIRISS single-object slitless spectroscopy (SOSS; ALGORITHMS.md §0, §12, §14).

What calwebb_spec3 does with SOSS (jwst 3.0.0): the association's
``_calints`` time series (a CubeModel, one plane per integration) is not
resampled and has no outlier detection; pixel_replace (skipped by default),
extract_1d per integration along each order's trace (PASTASOSS, SPECPROFILE,
SPECKERNEL reference files; ATOCA decontamination by default, box extraction
with ``soss_atoca=false``), photom (skipped without a PHOTOM file) and
combine_1d of every integration.  The products are two files named after the
product: ``<product>_x1d.fits`` (TSOMultiSpecModel: INT_TIMES, one EXTRACT1D
table per order with a row per integration) and ``<product>_c1d.fits``
(MultiCombinedSpecModel, one COMBINE1D table per order).

Ingest stores each integration's SCI/ERR/DQ as full-frame images
(:mod:`.reader`); ``process`` hands the store to :func:`.process.process_soss`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import InputError, Spec3cError
from ...naming import SourceNaming
from ..base import ASSOCIATION, Mode
from .reader import read_soss_file

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ...config import PipelineConfig
    from ...source_inputs import SourceInputs
    from ...store import Store
    from ...store.records import Cutout

__all__ = ["NIRISS_SOSS"]


def _process_soss(store: Store, config: PipelineConfig, sources: Sequence[str] | None = None,
                  workers: int | None = None) -> dict[str, dict[str, Any]]:
    """:func:`.process.process_soss`, imported when a SOSS store is processed: its extraction
    (ATOCA, scipy's interpolation and sparse solvers) is ~50 ms of imports every other mode's
    commands would pay at start-up."""
    from .process import process_soss

    return process_soss(store, config, sources, workers)


def _no_cutouts(model: Any, name: str, path: Path) -> list[Cutout]:
    raise InputError(path, "SOSS exposures are read whole (spec3c.modes.soss.reader), not as slit cutouts")


def _no_grid(inputs: SourceInputs, options: Any) -> Any:
    raise Spec3cError("SOSS spectra are never resampled: there is no output grid")


def _no_background(cutout: Cutout, master: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    raise Spec3cError("master_background does not apply to SOSS (the background belongs to stage 2)")


NIRISS_SOSS = Mode(
    name="niriss-soss",
    exp_types=("NIS_SOSS",),
    read_cutouts=_no_cutouts,
    plan=("pixel_replace", "extract_1d", "combine_1d"),
    build_grid=_no_grid,
    products={"x1d": ASSOCIATION, "c1d": ASSOCIATION},
    naming=SourceNaming(whole_association=True),
    background_2d=_no_background,
    background_note="SOSS: the background belongs to stage 2",
    image_exposures=True,
    read_file=read_soss_file,
    process_spectra=_process_soss,
    reference_types=("pastasoss", "specprofile", "speckernel"),
    inline_steps=("photom",),
)
