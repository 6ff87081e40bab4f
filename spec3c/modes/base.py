"""What a mode is: one frozen record of everything a mode decides (STYLE.md practice 16).

The callables a mode holds are plain module-level functions, so a record
pickles by reference into worker processes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..algorithms.apcorr import ApcorrSpec
from ..naming import SourceNaming

if TYPE_CHECKING:
    from ..algorithms.slit_grid import GridOptions
    from ..steps.context import SourceInputs
    from ..store.records import Cutout

#: how a product is laid out: one file per source, or one file per input exposure
Layout = Literal["source", "exposure"]
SOURCE: Layout = "source"
EXPOSURE: Layout = "exposure"

#: (datamodel, exposure name, file path) -> the exposure's cutouts with coordinates
ReadCutouts = Callable[[Any, str, Path], "list[Cutout]"]
#: (a source's inputs, grid options) -> the rectified output grid (SlitGrid or LrsGrid)
BuildGrid = Callable[["SourceInputs", "GridOptions"], Any]
#: (cutout, master background columns) -> (background float32, DQ bits to OR in), both cutout-shaped
Background2D = Callable[["Cutout", Mapping[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]
#: (a source's inputs, output grid) -> output row/column of the source, or None
LocateSource = Callable[["SourceInputs", Any], "float | None"]


@dataclass(frozen=True)
class Extraction:
    """What extract_1d needs to know about a mode.

    Attributes
    ----------
    aperture_by_slit : bool
        The EXTRACT1D aperture ``id`` is the slit name (fixed slits); else the EXP_TYPE.
    center_on_source : bool
        Default of ``use_source_posn`` when neither the parameter nor the aperture file sets it.
    apcorr : ApcorrSpec or None
        The APCORR model of the mode; None: no aperture correction is defined.
    """

    aperture_by_slit: bool = False
    center_on_source: bool = False
    apcorr: ApcorrSpec | None = None


@dataclass(frozen=True, eq=False)
class Mode:
    """One instrument mode (or family member) of calwebb_spec3.

    Attributes
    ----------
    name : str
        Short name (``nirspec-mos``), used in messages.
    exp_types : tuple of str
        The EXP_TYPEs it serves.
    read_cutouts : ReadCutouts
        How ingest turns an opened science exposure into cutouts.
    plan : tuple of str
        The steps run per source after exp_to_source, in the reference's order
        (names of :data:`spec3c.steps.STEPS`).
    build_grid : BuildGrid
        The output grid of a source (resample_spec; outlier_detection's median).
    products : mapping of suffix to Layout
        The products the mode writes and their layout.
    naming : SourceNaming
        How per-source product names carry the source.
    image_exposures : bool
        Inputs are whole detector images (ImageModel), not slit cutouts.
    extraction : Extraction
    background_2d : Background2D
        The master background at one cutout's pixels.
    background_note : str
        Said in master_background's message when it runs (e.g. why nothing is subtracted).
    locate_source : LocateSource or None
        Where resample_spec records the source in the output grid (for
        extract_1d's aperture), when the mode finds it from the pointing.
    """

    name: str
    exp_types: tuple[str, ...]
    read_cutouts: ReadCutouts
    plan: tuple[str, ...]
    build_grid: BuildGrid
    products: Mapping[str, Layout]
    naming: SourceNaming
    background_2d: Background2D
    background_note: str = ""
    image_exposures: bool = False
    extraction: Extraction = Extraction()
    locate_source: LocateSource | None = None

    @property
    def resampled(self) -> bool:
        """resample_spec is in the plan; otherwise extract_1d runs on every exposure."""
        return "resample_spec" in self.plan

    def product_base(self, template: str, source_key: str, cutout_metas: Sequence[Mapping[str, Any]]) -> str:
        """Base name of a source's products (see :meth:`SourceNaming.product_base`)."""
        return self.naming.product_base(template, source_key, cutout_metas)
