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
    from ..config import PipelineConfig
    from ..source_inputs import SourceInputs
    from ..store.base import Store
    from ..store.records import Cutout
    from .ifu.extraction import IfuExtraction
    from .ifu.traits import IfuTraits

#: how a product is laid out: one file per source, one file per input exposure, one file
#: holding every source of the association (WFSS), or one file per IFU cube of the source
Layout = Literal["source", "exposure", "association", "cube"]
SOURCE: Layout = "source"
EXPOSURE: Layout = "exposure"
ASSOCIATION: Layout = "association"
CUBE: Layout = "cube"

#: (datamodel, exposure name, file path) -> the exposure's cutouts with coordinates
ReadCutouts = Callable[[Any, str, Path], "list[Cutout]"]
#: (datamodel, exposure name, file path) -> (cutouts, full-frame image planes) of an exposure
ReadFrames = Callable[[Any, str, Path], "tuple[list[Cutout], dict[str, np.ndarray]]"]
#: (file path, exposure name) -> what ingest stores of a science file, read without the generic
#: datamodel reader (see :class:`ScienceFile`)
ReadFile = Callable[[Path, str], "ScienceFile"]
#: (store, parameters, chosen sources or None, workers or None) -> {source: status record} of every
#: source processed, or None when the store's inputs are not spectra (see :attr:`Mode.process_spectra`)
ProcessSpectra = Callable[["Store", "PipelineConfig", "Sequence[str] | None", "int | None"],
                          "dict[str, dict[str, Any]] | None"]
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
    whole_cutout : bool
        The aperture is the whole cutout and EXTRACT1D files are not read (WFSS:
        extract_2d made each cutout the extraction region of its source).
    several_per_exposure : bool
        A source has several cutouts in one exposure (WFSS spectral orders): its
        per-exposure spectra are kept per exposure and slit.
    ifu : IfuExtraction or None
        IFU modes: the spectra are extracted from the cubes (:mod:`spec3c.steps.extract_1d_ifu`).
    """

    aperture_by_slit: bool = False
    center_on_source: bool = False
    apcorr: ApcorrSpec | None = None
    whole_cutout: bool = False
    several_per_exposure: bool = False
    ifu: IfuExtraction | None = None


@dataclass(frozen=True)
class ScienceFile:
    """A science file as a mode's own reader (:attr:`Mode.read_file`) gives it to ingest.

    ``meta`` is the flat ``meta.*`` metadata of the file's model (as
    :func:`spec3c.ingest.cutouts.model_meta`), ``model_type`` its datamodel
    class name; ``cutouts`` and ``images`` are stored as for any exposure.
    """

    model_type: str
    meta: dict[str, Any]
    cutouts: list[Cutout]
    images: dict[str, np.ndarray]


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
    read_frames : ReadFrames or None
        Modes ingested as full frames (IFU): the exposure's cutouts and its
        full-frame planes (store images), read in one pass; ingest uses it
        instead of ``read_cutouts``.
    cube : IfuTraits or None
        IFU modes: the instrument's bands and cube naming (``cube_build``).
    read_file : ReadFile or None
        Reads (and checks) a science file itself, instead of the generic
        datamodel reader and ``read_cutouts`` (WFSS: thousands of slits, read
        straight from the FITS extensions; spec2 ``_x1d`` inputs).
    process_spectra : ProcessSpectra or None
        Modes whose science inputs may be extracted spectra (WFSS spec2 ``_x1d``):
        ``process`` hands such a store to this function (exp_to_source of the
        spectra, then the plan's steps that apply to spectra) instead of the
        per-source plan; SOSS always (its one exposure's integrations are shared
        among ``workers`` threads).
    reference_types : tuple of str
        Reference types only this mode's steps read (their ``override_<type>`` parameters; the
        SOSS extraction's PASTASOSS, SPECPROFILE, SPECKERNEL); other modes neither look them up
        nor name them.
    inline_steps : tuple of str
        Steps of :data:`spec3c.config.STEP_PARAMS` the mode's own pass (``process_spectra``) runs
        besides the plan's (SOSS: photom); their reference files are chosen with the plan's.
    batch_size : int
        Sources per ``process`` job.  Above 1 a job reads the inputs of its
        sources in one store query and writes their results in one store
        write (modes with thousands of small sources, WFSS); each source still
        runs the plan on its own.
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
    read_frames: ReadFrames | None = None
    cube: IfuTraits | None = None
    read_file: ReadFile | None = None
    process_spectra: ProcessSpectra | None = None
    reference_types: tuple[str, ...] = ()
    inline_steps: tuple[str, ...] = ()
    batch_size: int = 1

    @property
    def resampled(self) -> bool:
        """resample_spec is in the plan; otherwise extract_1d runs on every exposure."""
        return "resample_spec" in self.plan

    def product_base(self, template: str, source_key: str, cutout_metas: Sequence[Mapping[str, Any]]) -> str:
        """Base name of a source's products (see :meth:`SourceNaming.product_base`)."""
        return self.naming.product_base(template, source_key, cutout_metas)
