"""``spec3c step extract_1d`` on IFU cubes (``_s3d`` IFUCubeModel files, written by jwst or spec3c).

The cube is read whole from the file and extracted by
:func:`spec3c.steps.extract_1d_ifu.extract_cube`, as ``process`` extracts a
stored cube; the ``_x1d`` written (``<input root>_extract1dstep.fits``) is an
``MRSMultiSpecModel`` (MIRI) or ``MultiSpecModel`` (NIRSpec) whose primary
header is the cube's, as the reference's ``Extract1dStep`` writes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..algorithms.cube_wcs import plane_wavelengths
from ..config import PipelineConfig
from ..errors import InputError
from ..ingest.cutouts import model_meta
from ..modes.registry import mode_for
from ..results import COMPLETE, Spectrum1D
from ..steps.context import StepOutcome
from ..steps.extract_1d_ifu import CubeSource, extract_cube, references

__all__ = ["extract_cube_file", "is_cube", "write_cube_x1d"]

_SINGLE_CHANNELS = ("1", "2", "3", "4")
_SINGLE_BANDS = ("short", "medium", "long")


def is_cube(model: Any) -> bool:
    """An IFU cube: a 3-D SCI with a weight map (IFUCubeModel)."""
    data = getattr(model, "data", None)
    return type(model).__name__ == "IFUCubeModel" or (data is not None and np.ndim(data) == 3
                                                       and model.instance.get("weightmap") is not None)


def _source(path: Path, model: Any) -> CubeSource:
    sci = np.asarray(model.data, dtype=np.float32)
    if sci.ndim != 3:
        raise InputError(path, f"SCI has {sci.ndim} dimensions; an IFU cube has 3")
    if model.instance.get("weightmap") is None:
        raise InputError(path, "the cube has no WMAP (weight map): extract_1d needs it to know the covered spaxels")
    info = dict(model.meta.wcsinfo.instance)
    missing = [k for k in ("crpix1", "crpix2", "crval1", "crval2", "cdelt1", "cdelt2") if info.get(k) is None]
    if missing:
        raise InputError(path, f"the cube's WCS keywords lack {', '.join(k.upper() for k in missing)}")
    for key, default in (("pc1_1", 1.0), ("pc1_2", 0.0), ("pc2_1", 0.0), ("pc2_2", 1.0)):
        info.setdefault(key, default)
    table = None
    if str(info.get("ctype3", "")).upper() == "WAVE-TAB":
        table = np.asarray(model.wavetable["wavelength"]).reshape(-1)
    err = np.asarray(model.err, dtype=np.float32) if model.instance.get("err") is not None \
        else np.full(sci.shape, np.nan, np.float32)
    wmap = np.asarray(model.weightmap, dtype=np.float32)
    meta = model_meta(model)
    channel = str(meta.get("meta.instrument.channel") or "")
    band = str(meta.get("meta.instrument.band") or "").lower()

    def slabs() -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        yield 0, sci, err, wmap

    return CubeSource(path.name.removesuffix(".fits"), sci.shape, info,
                      plane_wavelengths(info, sci.shape[0], table), meta.get("meta.photometry.pixelarea_steradians"),
                      meta, channel in _SINGLE_CHANNELS and band in _SINGLE_BANDS, slabs)


def extract_cube_file(path: Path, model: Any, config: PipelineConfig) -> tuple[Spectrum1D | None, StepOutcome]:
    """Extract the cube ``model`` (read from ``path``): its spectrum (None: not extracted) and the outcome."""
    exp_type = str(model.meta.exposure.type or "")
    rules = mode_for(exp_type, where=str(path)).extraction.ifu
    if rules is None:
        raise InputError(path, f"a 3-D {type(model).__name__} of EXP_TYPE {exp_type}: not an IFU cube")
    params = config.extract_1d
    done = extract_cube(_source(path, model), references(params, rules), params, rules)
    if done.spectrum is None:
        return None, StepOutcome("SKIPPED", done.message, notes=done.notes, warn=True)
    return done.spectrum, StepOutcome(COMPLETE, done.message, notes=done.notes)


def write_cube_x1d(model: Any, spectrum: Spectrum1D, config: PipelineConfig, status: dict[str, Any],
                   out_path: Path) -> Path:
    """The cube's spectrum as the reference's Extract1dStep writes it: the cube's primary header."""
    from ..products.fits_io import atomic_save
    from ..products.ifu_x1d import model_class, spectrum_node
    from ..products.meta import product_stamp, stamping

    params = config.extract_1d
    with model_class(spectrum)({"spec": [spectrum_node(spectrum, model.meta.instrument.detector)]},
                               validate_on_assignment=False) as out:
        out.update(model, only="PRIMARY")
        out.meta.cal_step.extract_1d = COMPLETE
        out.meta.ref_file.extract1d.name = str(params.override_extract1d or "N/A")  # (no R_APCORR, as jwst)
        out.meta.filename = out_path.name
        with stamping(product_stamp(status)):
            return atomic_save(out, out_path)
