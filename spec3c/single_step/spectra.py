"""Single steps on spectral products: ``extract_1d`` on ``_s2d`` files (and IFU ``_s3d`` cubes,
:mod:`.cubes`), ``combine_1d`` on ``_x1d`` files.

Each 2-D spectrum of an ``_s2d`` (a SlitModel, or every slit of a
MultiSlitModel, written by jwst or by spec3c) becomes the
:class:`~spec3c.results.Resampled2D` that ``resample_spec`` would have left in
memory, with what extraction reads of it recovered from the file's gwcs: the
slit-frame y of every row (to centre the aperture on SRCYPOS) and, for modes
that locate the source from the pointing (MIRI LRS), the pointing's column.
:func:`spec3c.steps.extract_1d.extract_spectrum` then extracts it.  The
``_x1d`` written is a MultiSpecModel with one spectrum per slit whose primary
header is the input's (as the reference's ``update(input, only="PRIMARY")``).

``_x1d`` inputs are read back into :class:`~spec3c.results.Spectrum1D` and
combined by :func:`spec3c.steps.combine_1d.combine_spectra`.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import PipelineConfig
from ..errors import InputError, Spec3cError
from ..ingest.cutouts import model_meta, slit_meta
from ..ingest.reader import exposure_name, sha256_of
from ..modes.base import Mode
from ..modes.registry import mode_for
from ..results import COMPLETE, X1D_COLUMNS, Resampled2D, Spectrum1D
from ..steps.combine_1d import _weight_time, combine_spectra, weight_kind
from ..steps.context import StepOutcome
from ..steps.extract_1d import SPEC_ATTRIBUTES, Spectrum, extract_spectrum
from ..store.records import Cutout, ExposureRecord
from .cubes import extract_cube_file, is_cube, write_cube_x1d

__all__ = ["combine_files", "extract_file", "read_s2d_slit", "read_x1d"]

#: optional planes of an s2d and their value when the file has none
_OPTIONAL_PLANES = {"wht": 1.0, "var_poisson": 0.0, "var_rnoise": 0.0, "var_flat": 0.0}


def _open(path: Path) -> Any:
    from ..ingest.validate import open_model  # the readers' own error messages for unreadable files

    return open_model(path)


def _record(path: Path, model: Any) -> ExposureRecord:
    """The input file as the writers see an exposure (its flat metadata)."""
    meta = model_meta(model)
    return ExposureRecord(name=exposure_name(path), filename=str(path.resolve()), sha256=sha256_of(path),
                          role="science", exp_type=str(meta.get("meta.exposure.type") or ""),
                          model_type=type(model).__name__, meta=meta)


# -- extract_1d ----------------------------------------------------------------------


def _parts(model: Any) -> list[Any]:
    return list(model.slits) if hasattr(model, "slits") else [model]


def _exp_type(part: Any, model: Any) -> str:
    meta = getattr(part, "meta", None)
    own = getattr(getattr(meta, "exposure", None), "type", None) if meta is not None else None
    return str(own or model.meta.exposure.type or "")


def _plane(path: Path, part: Any, attr: str, shape: tuple[int, ...], fill: float) -> np.ndarray:
    value = part.instance.get(attr)
    if value is None:
        return np.full(shape, fill, np.float32)
    array = np.asarray(value, dtype=np.float32)
    if array.shape != shape:
        raise InputError(path, f"{attr.upper()} has shape {array.shape}, SCI has {shape}")
    return array


def _wavelength(part: Any, wcs: Any, shape: tuple[int, ...]) -> np.ndarray:
    """The WAVELENGTH plane (µm, float64); evaluated from the gwcs when the file has none."""
    value = part.instance.get("wavelength")
    if value is not None and np.shape(value) == shape and np.any(np.isfinite(value) & (np.asarray(value) != 0)):
        return np.asarray(value, dtype=np.float64)
    y, x = np.indices(shape, dtype=np.float64)
    return np.asarray(wcs(x, y, with_bounding_box=True)[-1], dtype=np.float64)


def _bounding_box(wcs: Any, shape: tuple[int, ...]) -> tuple[tuple[float, float], tuple[float, float]]:
    try:
        box = wcs.bounding_box
    except NotImplementedError:
        box = None
    if box is None:
        return (-0.5, shape[1] - 0.5), (-0.5, shape[0] - 0.5)
    (x0, x1), (y0, y1) = box.bounding_box(order="F") if hasattr(box, "bounding_box") else box
    return (float(x0), float(x1)), (float(y0), float(y1))


def _middle_wavelength(wcs: Any, shape: tuple[int, ...], dispaxis: int) -> float:
    """Mean wavelength across the spectrum at the middle of the gwcs bounding box along dispersion."""
    (x0, x1), (y0, y1) = _bounding_box(wcs, shape)
    if dispaxis == 2:
        x = np.arange(int(round(x1)), dtype=np.float64)
        y = np.full(x.size, (y0 + y1) / 2.0)
    else:
        y = np.arange(int(round(y1)), dtype=np.float64)
        x = np.full(y.size, (x0 + x1) / 2.0)
    wavelength = np.asarray(wcs(x, y)[-1], dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all NaN: no middle wavelength
        return float(np.nanmean(wavelength)) if np.isfinite(wavelength).any() else float("nan")


def _pointing_location(part: Any, model: Any, wcs: Any, shape: tuple[int, ...], dispaxis: int) -> float | None:
    """Cross-dispersion pixel of the dithered pointing (DITHRA/DITHDEC) at the middle wavelength,
    for modes that locate the source from the pointing; None if unknown or off the image."""
    dither = part.meta.dither if part is not model else model.meta.dither
    ra = getattr(dither, "dithered_ra", None) or model.meta.dither.dithered_ra
    dec = getattr(dither, "dithered_dec", None) or model.meta.dither.dithered_dec
    if ra is None or dec is None:
        return None
    middle_wl = _middle_wavelength(wcs, shape, dispaxis)
    x, y = wcs.backward_transform(ra, dec, middle_wl)
    location = float(x if dispaxis == 2 else y)
    size = shape[1] if dispaxis == 2 else shape[0]
    return location if np.isfinite(location) and -0.5 <= location <= size - 0.5 else None


def _slit_rows(wcs: Any, shape: tuple[int, ...]) -> list[float]:
    """Slit-frame y of every row at the middle column (the ``slit_y`` table resample_spec keeps)."""
    if "slit_frame" not in wcs.available_frames:
        return []
    ny, nx = shape
    to_slit = wcs.get_transform("detector", "slit_frame")
    rows = np.arange(ny, dtype=np.float64)
    slit_y = np.asarray(to_slit(np.full(ny, (nx - 1) / 2.0), rows)[1], dtype=np.float64)
    return np.nan_to_num(slit_y).tolist()


def _spatial_scale(wcs: Any, shape: tuple[int, ...], dispaxis: int) -> float | None:
    """Arcsec per pixel across the dispersion at the middle of the spectrum."""
    ny, nx = shape
    x, y = (nx - 1) / 2.0, (ny - 1) / 2.0
    dx, dy = (1.0, 0.0) if dispaxis == 2 else (0.0, 1.0)
    ra0, dec0, _ = wcs(x, y)
    ra1, dec1, _ = wcs(x + dx, y + dy)
    if not np.all(np.isfinite([ra0, dec0, ra1, dec1])):
        return None
    cos = np.cos(np.deg2rad((dec0 + dec1) / 2.0))
    return float(3600.0 * np.hypot((ra1 - ra0) * cos, dec1 - dec0))


def _s2d_meta(part: Any, model: Any, wcs: Any, shape: tuple[int, ...], mode: Mode) -> dict[str, Any]:
    """What extraction (and the x1d writer) read of a resampled spectrum's header."""
    meta: dict[str, Any] = {a: part.instance[a] for a in SPEC_ATTRIBUTES if part.instance.get(a) is not None}
    meta.setdefault("source_type", model.meta.target.source_type)
    part_meta = part.meta if part is not model else model.meta
    dispaxis = int(part_meta.wcsinfo.dispersion_direction or model.meta.wcsinfo.dispersion_direction or 1)
    meta.update(
        bunit_data=part_meta.bunit_data or model.meta.bunit_data,
        pixelarea_steradians=part_meta.photometry.pixelarea_steradians or model.meta.photometry.pixelarea_steradians,
        dispersion_direction=dispaxis,
        filter=model.meta.instrument.filter,
        grating=model.meta.instrument.grating,
        pupil=model.meta.instrument.pupil,
        subarray=model.meta.subarray.name,
        slit_y=_slit_rows(wcs, shape),
        spatial_scale=_spatial_scale(wcs, shape, dispaxis),
    )
    if mode.locate_source is not None:  # the mode locates the source from the pointing (MIRI LRS)
        meta["source_location"] = _pointing_location(part, model, wcs, shape, dispaxis)
    return {k: v for k, v in meta.items() if v is not None}


def _extract_cube(path: Path) -> None:
    """``_s3d`` inputs are IFU cubes, extracted by :func:`extract_file` (:mod:`.cubes`), not slit by slit."""
    raise InputError(path, "an IFU cube (_s3d): extract_file extracts it whole (spec3c.single_step.cubes)")


def read_s2d_slit(path: Path, model: Any, part: Any) -> tuple[Resampled2D, Spectrum]:
    """One 2-D spectrum of an ``_s2d`` file as extraction takes it, and its mode's extraction facts."""
    sci = np.asarray(part.data, dtype=np.float32)
    if sci.ndim == 3:
        _extract_cube(path)
    if sci.ndim != 2:
        raise InputError(path, f"SCI has {sci.ndim} dimensions; extract_1d takes 2-D spectra (_s2d)")
    wcs = part.meta.wcs
    if wcs is None:
        raise InputError(path, f"{getattr(part, 'name', None) or 'the spectrum'} has no gwcs (meta.wcs)")
    shape = sci.shape
    exp_type = _exp_type(part, model)
    mode = mode_for(exp_type, where=str(path))
    if mode.cube is not None:
        _extract_cube(path)
    if not mode.resampled or model.meta.cal_step.resample != COMPLETE:
        raise InputError(path, f"extract_1d here takes resampled 2-D spectra (_s2d files, S_RESAMP COMPLETE) of "
                               f"a mode that resamples; this {type(model).__name__} of {mode.name} is not one "
                               "(run `spec3c step resample_spec` first)")
    planes = {name: _plane(path, part, name, shape, fill) for name, fill in _OPTIONAL_PLANES.items()}
    err = _plane(path, part, "err", shape, np.nan)
    con = np.asarray(part.instance["con"], dtype=np.int32) if part.instance.get("con") is not None \
        else np.zeros((1, *shape), np.int32)
    from ..gwcs_asdf import wcs_to_asdf

    s2d = Resampled2D(sci=sci, err=err, con=con, wavelength=_wavelength(part, wcs, shape), wcs_asdf=wcs_to_asdf(wcs),
                      meta=_s2d_meta(part, model, wcs, shape, mode), **planes)
    what = Spectrum(mode.extraction, exp_type, model.meta.cal_step.photom == COMPLETE,
                    located=mode.locate_source is not None)
    return s2d, what


def extract_file(path: Path, config: PipelineConfig, out_path: Path) -> tuple[Path | None, list[StepOutcome]]:
    """Extract every 2-D spectrum of ``path`` and write them to ``out_path`` (an ``_x1d`` MultiSpecModel).

    Returns the written path (None when no spectrum could be extracted) and each slit's outcome.
    """
    start = time.perf_counter()
    with _open(path) as model:
        config = _choose_references(config, _record(path, model))
        if is_cube(model):  # an IFU cube: one spectrum, the IFU extraction
            spectrum, outcome = extract_cube_file(path, model, config)
            if spectrum is None:
                return None, [outcome]
            status = _status("extract_1d", [outcome], config, time.perf_counter() - start)
            return write_cube_x1d(model, spectrum, config, status, out_path), [outcome]
        record, params = _record(path, model), config.extract_1d
        spectra: list[tuple[Spectrum1D, Cutout]] = []
        outcomes = []
        for index, part in enumerate(_parts(model)):
            s2d, what = read_s2d_slit(path, model, part)
            outcome, spectrum = extract_spectrum(s2d, what, params)
            outcomes.append(outcome)
            if spectrum is not None:
                name = str(getattr(part, "name", None) or index)
                spectra.append((spectrum, Cutout("1", record.name, name, slit_meta(part), {}, b"")))
        if not spectra:
            return None, outcomes
        status = _status("extract_1d", outcomes, config, time.perf_counter() - start)
        return _write_x1d(model, record, spectra, config, status, out_path), outcomes


def _choose_references(config: PipelineConfig, record: ExposureRecord) -> PipelineConfig:
    """``config`` with extract_1d's reference files chosen as ``spec3c process`` chooses them
    (override, else CRDS from the input's metadata, else none: :mod:`spec3c.reffiles`)."""
    from ..reffiles import reference_header, select_references

    return select_references(config, ("extract_1d",), reference_header([record])).config


def _status(step: str, outcomes: Sequence[StepOutcome], config: PipelineConfig, seconds: float) -> dict[str, Any]:
    """The ``status`` record a product's stamp is made from (what ran, with which parameters)."""
    done = any(o.status == COMPLETE for o in outcomes)
    message = "; ".join(o.message for o in outcomes if o.message)
    notes = tuple(dict.fromkeys(note for o in outcomes for note in o.notes))
    record = StepOutcome(COMPLETE if done else outcomes[0].status, message, notes=notes).record(seconds)
    return {"steps": {step: record}, "params": {step: dataclasses.asdict(config.step(step))}}


def _write_x1d(model: Any, record: ExposureRecord, spectra: Sequence[tuple[Spectrum1D, Cutout]],
               config: PipelineConfig, status: dict[str, Any], path: Path) -> Path:
    from stdatamodels.jwst import datamodels as dm

    from ..products.fits_io import atomic_save
    from ..products.meta import product_stamp, stamping
    from ..products.wcs import spectral_gwcs
    from ..products.writers import _COUNT_UNITS, CALIBRATED_UNITS, _spec_attributes, spec_table

    nodes = []
    for spectrum, cutout in spectra:
        counts = str(spectrum.meta.get("flux_unit", "")).upper().startswith("DN")
        attrs = _spec_attributes(spectrum, [cutout], record)
        ra = attrs.get("slit_ra", attrs.get("source_ra", float("nan")))
        dec = attrs.get("slit_dec", attrs.get("source_dec", float("nan")))
        nodes.append({"spec_table": spec_table(spectrum, _COUNT_UNITS if counts else CALIBRATED_UNITS),
                      "meta": {"wcs": spectral_gwcs(ra, dec, spectrum.columns["WAVELENGTH"])}, **attrs})
    params = config.extract_1d
    with dm.MultiSpecModel({"spec": nodes}, validate_on_assignment=False) as out:
        out.update(model, only="PRIMARY")  # as the reference: the input's primary header
        out.meta.cal_step.extract_1d = status["steps"]["extract_1d"]["status"]
        out.meta.ref_file.extract1d.name = str(params.override_extract1d or "N/A")
        applied = [s.meta.get("apcorr") for s, _ in spectra if s.meta.get("apcorr")]
        if applied:
            out.meta.ref_file.apcorr.name = str(applied[0])
        out.meta.filename = path.name
        with stamping(product_stamp(status)):
            return atomic_save(out, path)


# -- combine_1d ----------------------------------------------------------------------


def _column_unit(table: Any, name: str) -> str | None:
    try:
        unit = table.columns[name].unit
    except (AttributeError, KeyError):
        return None
    return str(unit) if unit else None


def read_x1d(path: Path, model: Any) -> list[Spectrum1D]:
    """Every spectrum of an ``_x1d`` file (MultiSpecModel) as :class:`Spectrum1D`."""
    if not hasattr(model, "spec") or not list(model.spec):
        raise InputError(path, f"combine_1d takes extracted spectra (_x1d files); this {type(model).__name__} "
                               "holds none")
    spectra = []
    for spec in model.spec:
        table = spec.spec_table
        names = table.dtype.names or ()
        if "WAVELENGTH" not in names or "FLUX" not in names:
            raise InputError(path, "a spectrum without WAVELENGTH and FLUX columns")
        columns = {name: np.asarray(table[name]) for name in X1D_COLUMNS if name in names}
        meta = {key: spec.instance.get(key) for key in ("spectral_order", "source_id", "source_type",
                                                        "dispersion_direction", "source_ra", "source_dec")}
        meta.update(flux_unit=_column_unit(table, "FLUX"), sb_unit=_column_unit(table, "SURF_BRIGHT"))
        spectra.append(Spectrum1D(columns, {k: v for k, v in meta.items() if v is not None}))
    return spectra


def combine_files(paths: Sequence[Path], config: PipelineConfig, out_path: Path) -> tuple[Path | None, StepOutcome]:
    """Combine every spectrum of the ``_x1d`` files ``paths`` into one ``_c1d`` at ``out_path``.

    Each spectrum is weighted by its file's exposure (or integration) time
    (``exptime_key``), as the reference's combine_1d on an association.
    """
    params = config.combine_1d
    start = time.perf_counter()
    kind, _ = weight_kind(params.exptime_key)
    spectra: list[Spectrum1D] = []
    times: list[float] = []
    first: ExposureRecord | None = None
    for path in paths:
        with _open(path) as model:
            record = _record(path, model)
            found = read_x1d(path, model)
        first = first or record
        weight = 1.0 if kind == "unit_weight" else _weight_time(record.meta, record.filename, kind)
        spectra += found
        times += [weight] * len(found)
    outcome, combined, spec_meta = combine_spectra(spectra, times, params)
    if combined is None or first is None:
        return None, outcome
    status = {"steps": {"combine_1d": outcome.record(time.perf_counter() - start)},
              "params": {"combine_1d": dataclasses.asdict(params)}}
    return _write_c1d(first, combined, spec_meta, status, out_path), outcome


def _write_c1d(record: ExposureRecord, combined: Any, spec_meta: dict[int, dict[str, Any]],
               status: dict[str, Any], path: Path) -> Path:
    from ..products.c1d import write_c1d
    from ..products.meta import product_stamp, stamping, top_level_meta

    tree = top_level_meta(record)
    for key in ("wcs", "wcsinfo", "photometry", "bunit_data", "bunit_err"):
        tree.pop(key, None)
    meta = {"instrument": record.meta.get("meta.instrument.name", ""), "exp_type": record.exp_type,
            "tree": tree, "spec": spec_meta}
    try:
        with stamping(product_stamp(status)):
            return write_c1d(combined, meta, path)
    except ValueError as exc:
        raise Spec3cError(f"{path}: {exc}") from exc
