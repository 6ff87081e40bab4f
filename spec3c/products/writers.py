"""Writers of the per-source stage-3 products: ``cal``, ``crf``, ``s2d``, ``x1d``.

Each writer reads one source's cutouts and results from the store, builds the
stdatamodels model the reference pipeline saves for that suffix, validates it
and writes it atomically (:func:`~spec3c.products.fits_io.atomic_save`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from stdatamodels.jwst import datamodels as dm

from .. import __version__, dqflags
from .._core import match_nans_and_flags
from ..algorithms.footprint import s2d_s_region
from ..gwcs_asdf import StoredWcs, wcs_from_asdf
from ..modes.base import Mode
from ..modes.registry import mode_for
from ..naming import ProductNaming, exposure_product_filename, product_filename
from ..results import (
    STATUS,
    CombinedResult,
    Resampled2D,
    Spectrum1D,
    crf_key,
    load_association,
    x1d_exposure_key,
)
from ..steps.extract_1d import APERTURE_RADEC, extraction_position
from ..steps.replay import replay_input_steps, replayed_steps
from ..store import Store
from ..store.records import OPTIONAL_PLANES, Cutout, CutoutInfo, ExposureRecord
from .blend import (
    attach_hdrtab,
    blended_values,
    hdrtab_table,
    s_region_slit_band,
)
from .fits_io import atomic_save
from .meta import (
    SLIT_ATTRIBUTES,
    cal_steps_for,
    exposure_slit_meta,
    flat_to_tree,
    merge_tree,
    primary_meta,
    step_params,
    top_level_meta,
)
from .models import class_schema, new_model, schema_model
from .wcs import WCS_TABLE, WCS_TABLE_COLUMN, s2d_fits_wcs, spectral_gwcs, wcs_table

__all__ = ["product_path", "write_s2d", "write_source_cal", "write_source_crf", "write_x1d"]

PathLike = str | os.PathLike[str]

#: store plane -> slit datamodel attribute (all float32 but dq)
_EXPOSURE_PLANES = {
    "sci": "data",
    "err": "err",
    "dq": "dq",
    "var_poisson": "var_poisson",
    "var_rnoise": "var_rnoise",
    "var_flat": "var_flat",
    "wavelength": "wavelength",
    **{p: p for p in OPTIONAL_PLANES},
}

#: slit attributes the reference copies from the (last) input into the s2d
_S2D_SLIT_ATTRIBUTES = (
    "name", "xstart", "xsize", "ystart", "ysize", "slitlet_id", "source_id", "source_name",
    "source_alias", "stellarity", "source_type", "source_xpos", "source_ypos", "shutter_state",
)  # fmt: skip

#: specmeta (EXTRACT1D header) attributes of an x1d spectrum
_SPEC_ATTRIBUTES = (
    "name", "slitlet_id", "source_id", "source_name", "source_alias", "stellarity",
    "source_type", "ta_xpos", "ta_ypos", "source_xpos", "source_ypos", "source_ra",
    "source_dec", "extraction_x", "extraction_y", "extraction_xstart", "extraction_xstop",
    "extraction_ystart", "extraction_ystop", "shutter_state", "slit_ra", "slit_dec", "quadrant",
    "slit_xscale", "slit_yscale", "spectral_order", "dispersion_direction", "detector",
    "wavelength_corrected", "pathloss_correction_type", "barshadow_corrected", "s_region",
    "position_angle",
)  # fmt: skip
#: attributes the reference copies from the input slit when the spectrum lacks them
_SPEC_FROM_SLIT = (
    "slitlet_id", "source_id", "source_xpos", "source_ypos", "source_ra", "source_dec",
    "shutter_state", "source_name", "source_alias", "source_type", "stellarity", "quadrant",
    "slit_xscale", "slit_yscale", "wavelength_corrected", "pathloss_correction_type",
    "barshadow_corrected",
)  # fmt: skip
_SPEC_INT = ("slitlet_id", "source_id", "quadrant", "spectral_order", "dispersion_direction")
_SPEC_FLOAT = (
    "stellarity", "ta_xpos", "ta_ypos", "source_xpos", "source_ypos", "source_ra", "source_dec",
    "extraction_x", "extraction_y", "extraction_xstart", "extraction_xstop", "extraction_ystart",
    "extraction_ystop", "slit_ra", "slit_dec", "slit_xscale", "slit_yscale", "position_angle",
)  # fmt: skip

CALIBRATED_UNITS = {"flux": "Jy", "flux_var": "Jy^2", "sb": "MJy/sr", "sb_var": "MJy^2 / sr^2"}
_COUNT_UNITS = {"flux": "DN/s", "flux_var": "DN^2 / s^2", "sb": "DN/s", "sb_var": "DN^2 / s^2"}
_COLUMN_UNIT_KIND = {
    "WAVELENGTH": None, "FLUX": "flux", "FLUX_ERROR": "flux", "FLUX_VAR_POISSON": "flux_var",
    "FLUX_VAR_RNOISE": "flux_var", "FLUX_VAR_FLAT": "flux_var", "SURF_BRIGHT": "sb",
    "SB_ERROR": "sb", "SB_VAR_POISSON": "sb_var", "SB_VAR_RNOISE": "sb_var",
    "SB_VAR_FLAT": "sb_var", "DQ": None, "BACKGROUND": "sb", "BKGD_ERROR": "sb",
    "BKGD_VAR_POISSON": "sb_var", "BKGD_VAR_RNOISE": "sb_var", "BKGD_VAR_FLAT": "sb_var",
    "NPIXELS": None,
}  # fmt: skip


# -- shared pieces -------------------------------------------------------------


def product_path(
    store: Store, source: str, naming: ProductNaming, out_dir: PathLike, suffix: str
) -> Path:
    """Where the ``suffix`` product of ``source`` goes (no file is touched)."""
    naming = _resolved(store, naming)
    base = _source_base(naming, source, store.list_cutouts(source))
    return Path(out_dir) / product_filename(base, suffix)


def _resolved(store: Store, naming: ProductNaming) -> ProductNaming:
    """``naming`` with ``exp_type`` (from the store's science exposures if unset) and the
    mode's source naming rules filled in."""
    if naming.asn_pool is None:  # ASNPOOL: the association's pool, as ingest recorded it
        try:
            pool = load_association(store).get("asn_pool")
        except KeyError:
            pool = None
        if pool:
            naming = dataclasses.replace(naming, asn_pool=str(pool))
    exp_type = naming.exp_type
    if not exp_type:
        exp_type = next((r.exp_type for r in store.list_exposures() if r.role == "science" and r.exp_type), None)
    if not exp_type:
        raise ValueError("ProductNaming.exp_type is not set and the store has no science exposure")
    if naming.source_naming is not None and exp_type == naming.exp_type:
        return naming
    model_type = next((r.model_type for r in store.list_exposures() if r.role == "science"), None)
    mode = mode_for(exp_type, model_type=model_type)  # SlitModel inputs have their own mode
    return dataclasses.replace(naming, exp_type=exp_type, source_naming=mode.naming)


def _source_base(naming: ProductNaming, source: str, cutouts: Sequence[Cutout | CutoutInfo]) -> str:
    return naming.source_base(source, [c.meta for c in cutouts])


def _records(store: Store) -> dict[str, ExposureRecord]:
    return {rec.name: rec for rec in store.list_exposures()}


def _cutouts(store: Store, source: str, planes: tuple[str, ...] | None = None) -> list[Cutout]:
    cutouts = store.read_cutouts(source, planes)
    if not cutouts:
        raise KeyError(f"no source {source!r} in store {store.path}")
    return cutouts


def _source_cutouts(store: Store, source: str, status: dict[str, Any]) -> list[Cutout]:
    """A source's cutouts as its products show them (:func:`replay_input_steps`): the planes the
    products hold, all of them if input steps are replayed (they shift the sky coordinates)."""
    planes = None if replayed_steps(status) else tuple(_EXPOSURE_PLANES)
    return replay_input_steps(store, source, _cutouts(store, source, planes), status)


def _status(store: Store, source: str) -> dict[str, Any]:
    try:
        return store.get_result(source, STATUS)[1]
    except KeyError:
        return {}


def _asn_meta(naming: ProductNaming) -> dict[str, Any]:
    asn: dict[str, Any] = {}
    if naming.asn_table_name:
        asn["table_name"] = naming.asn_table_name
    if naming.asn_pool:
        asn["pool_name"] = naming.asn_pool
    return {"asn": asn} if asn else {}


def _slit_scalars(cutout: Cutout) -> dict[str, Any]:
    """Every scalar slit attribute of the input slit (not the store's own bookkeeping)."""
    return {
        k: v
        for k, v in cutout.meta.items()
        if not k.startswith("meta.") and k != "slit_index" and v is not None
    }


def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


# -- cal / crf -----------------------------------------------------------------


def _exposure_node(
    cutout: Cutout,
    record: ExposureRecord,
    extra_meta: Mapping[str, Any],
    dq: np.ndarray | None = None,
) -> dict[str, Any]:
    node: dict[str, Any] = _slit_scalars(cutout)
    for plane, attr in _EXPOSURE_PLANES.items():
        if plane in cutout.planes:
            arr = cutout.planes[plane]
            node[attr] = np.array(arr, dtype=np.uint32) if plane == "dq" else _f32(arr).copy()
    if dq is not None:
        node["dq"] = np.array(dq, dtype=np.uint32)
    meta = merge_tree(exposure_slit_meta(record, cutout), extra_meta)
    if cutout.wcs_asdf:  # written into the product as the store holds it (gwcs_asdf.StoredWcs)
        meta["wcs"] = StoredWcs(cutout.wcs_asdf)
    node["meta"] = meta
    return node


def _crf_dq(store: Store, source: str, cutout: Cutout) -> np.ndarray | None:
    """The outlier-flagged DQ of a cutout (None if outlier_detection wrote none)."""
    try:
        return store.get_result(source, crf_key(cutout.exposure, cutout.slit))[0]["dq"]
    except KeyError:
        return None


def _nan_flagged(node: dict[str, Any]) -> None:
    """match_nans_and_flags on one exposure node (SCI/ERR/VAR_* NaN where DO_NOT_USE)."""
    arrays = [node.get(k) for k in ("err", "var_poisson", "var_rnoise", "var_flat")]
    match_nans_and_flags(node["data"], node["dq"], *arrays, do_not_use=dqflags.DO_NOT_USE)


def _write_multiexposure(
    store: Store, source: str, naming: ProductNaming, out_dir: PathLike, suffix: str, product: str
) -> Path:
    naming = _resolved(store, naming)
    status = _status(store, source)
    cutouts = _source_cutouts(store, source, status)
    records = _records(store)
    steps = cal_steps_for(product, status)
    extra = {**_asn_meta(naming), **({"cal_step": steps} if steps else {})}
    # the reference saves the source-based crf before it records S_OUTLIR in the primary header
    top_steps = {k: v for k, v in steps.items() if k != "outlier_detection"}
    exposures = []
    for c in cutouts:
        dq = _crf_dq(store, source, c) if product == "crf" else None
        node = _exposure_node(c, records[c.exposure], extra, dq)
        if product == "crf":
            _nan_flagged(node)
        exposures.append(node)
    first = cutouts[0]
    top = merge_tree(top_level_meta(records[first.exposure]), _asn_meta(naming))
    if top_steps:
        merge_tree(top, {"cal_step": top_steps})
    slit_exp_type = exposures[0]["meta"].get("exposure", {}).get("type")
    if slit_exp_type:
        top.setdefault("exposure", {})["type"] = slit_exp_type
    path = Path(out_dir) / product_filename(_source_base(naming, source, cutouts), suffix)
    with new_model(dm.MultiExposureModel, {"exposures": exposures}) as model:
        model.instance["meta"] = merge_tree(
            dict(model.instance.get("meta", {})),
            primary_meta(top, model.schema, keep_unmapped=True),
        )
        xposure = top.get("exposure", {}).get("effective_exposure_time")
        if xposure is not None:  # the reference keeps it: XPOSURE in the first SCI header
            model.instance["meta"].setdefault("exposure", {})["effective_exposure_time"] = xposure
        return atomic_save(model, path, fast=True, direct=True)


def write_source_cal(
    store: Store, source: str, naming: ProductNaming, out_dir: PathLike, suffix: str = "cal"
) -> Path:
    """Write a source's exposures as the reference's source-based ``_cal`` product.

    A :class:`~stdatamodels.jwst.datamodels.MultiExposureModel` with one
    entry per cutout (in exposure order): SCI/ERR/DQ/VAR_*/WAVELENGTH (+
    pathloss/flat/photom planes when stored), the slit attributes, and the
    exposure's metadata merged over the slit's (``exp_to_source``) with the
    slit gwcs as ``meta.wcs``.  Top-level metadata comes from the first
    exposure; ``meta.filename`` is the product name.

    Returns
    -------
    Path
        The written file, ``<out_dir>/<product>_<suffix>.fits``.
    """
    return _write_multiexposure(store, source, naming, out_dir, suffix, "cal")


def write_source_crf(
    store: Store, source: str, naming: ProductNaming, out_dir: PathLike, suffix: str = "crf"
) -> Path:
    """Write the outlier-flagged exposures of a source (``_crf``).

    As :func:`write_source_cal`, but DQ is the stored ``crf/<exposure>/<slit>``
    result where present and SCI, ERR and VAR_* are NaN wherever DQ has
    DO_NOT_USE (the reference's ``match_nans_and_flags``); ``meta.cal_step``
    carries the outlier_detection status.
    """
    return _write_multiexposure(store, source, naming, out_dir, suffix, "crf")


# -- s2d -----------------------------------------------------------------------


def _exposure_times(records: Sequence[ExposureRecord]) -> tuple[dict[str, Any], int]:
    """Exposure-time keywords of a combined product (unique exposure groups summed), number of groups."""
    groups: dict[str, Mapping[str, Any]] = {}
    for rec in records:
        groups.setdefault(str(rec.meta.get("meta.group_id", rec.name)), rec.meta)
    out: dict[str, Any] = {}
    for key in ("exposure_time", "measurement_time", "duration"):
        values: list[Any] = [m.get(f"meta.exposure.{key}") for m in groups.values()]
        if values and all(v is not None for v in values):
            out[key] = float(sum(values))
    if "exposure_time" in out:
        out["effective_exposure_time"] = out["exposure_time"]
    starts: list[Any] = [r.meta.get("meta.exposure.start_time") for r in records]
    ends: list[Any] = [r.meta.get("meta.exposure.end_time") for r in records]
    mids: list[Any] = [r.meta.get("meta.exposure.mid_time") for r in records]
    if starts and ends and all(v is not None for v in starts + ends):
        start, end = float(min(starts)), float(max(ends))
        out.update(start_time=start, end_time=end)
        # EXPMID: the mean of the inputs' (model_blender's "mean" rule)
        out["mid_time"] = float(np.mean(mids)) if all(v is not None for v in mids) else (start + end) / 2
    if "duration" in out:
        out["elapsed_exposure_time"] = out["duration"]  # TELAPSE: summed as DURATION (stcal resample)
    return out, len(groups)


def _resample_meta(status: Mapping[str, Any], s2d: Resampled2D, pointings: int) -> dict[str, Any]:
    params = step_params(status, "resample_spec") or step_params(status, "resample")
    out: dict[str, Any] = {"pointings": pointings}
    psr = s2d.meta.get("pixel_scale_ratio", params.get("pixel_scale_ratio"))
    if psr is not None:
        out["pixel_scale_ratio"] = float(psr)
    for key in ("pixfrac", "kernel", "fillval", "weight_type"):
        value = s2d.meta.get(key, params.get(key))
        if value is not None:
            out[key] = float(value) if key == "pixfrac" else str(value)
    if out.get("weight_type") not in (None, "exptime", "ivm"):
        del out["weight_type"]  # the schema's enum: None (mask only) is not recorded
    return out


def write_s2d(
    store: Store, source: str, naming: ProductNaming, out_dir: PathLike, suffix: str = "s2d"
) -> Path:
    """Write a source's rectified 2-D spectrum (``_s2d``) as a ``SlitModel``.

    SCI/ERR/WHT/CON/VAR_*/WAVELENGTH from the stored :class:`Resampled2D`,
    ``meta.wcs`` the output gwcs (detector -> slit_frame -> world), slit
    attributes copied from the last input (as ``ResampleSpecStep``),
    BUNIT, PIXAR_SR/PIXAR_A2, exposure times summed over the exposures
    (TELAPSE as DURATION), ``meta.resample``, S_REGION (the footprint of the
    output) and step statuses; keywords combined over the inputs as the
    reference's model_blender does, and its ``HDRTAB`` table (one row of
    keywords per input).  For FITS-only readers the SCI header also
    gets a ``WAVE-TAB`` spectral axis (``PS1_0 = 'WCS-TABLE'``, ``PS1_1 =
    'wavelength'``, table in a ``WCS-TABLE`` extension) and a linear
    ``SPATIAL`` axis in arcsec; the reference (jwst 3.0) writes neither.
    """
    naming = _resolved(store, naming)
    status = _status(store, source)
    cutouts = _source_cutouts(store, source, status)
    records = _records(store)
    s2d = Resampled2D.load(store, source)
    ny, nx = s2d.sci.shape
    meta, inputs = _s2d_meta(naming, status, cutouts, records, s2d)
    axis = 2 if s2d.meta.get("dispersion_direction") == 2 else 1  # MIRI LRS: wavelength along y
    wcsinfo = meta["wcsinfo"]
    first_region = records[cutouts[0].exposure].meta.get("meta.wcsinfo.s_region")
    if wcsinfo.get("s_region"):
        s_region = None  # the resampling gave one
    elif _image_inputs(cutouts, records) and first_region:  # a slit in an image (MIRI LRS)
        s_region = s_region_slit_band(str(first_region), meta["wcs"].wcs())
    else:
        s_region = s2d_s_region(meta["wcs"].wcs(), (ny, nx))
    if s_region:
        wcsinfo["s_region"] = s_region

    attrs = _s2d_slit_attributes(cutouts, records, s2d)
    table = hdrtab_table(inputs)
    tree: dict[str, Any] = {
        "meta": meta,
        **attrs,
        "data": _f32(s2d.sci),
        "err": _f32(s2d.err),
        "wht": _f32(s2d.wht),
        "con": np.ascontiguousarray(s2d.con, dtype=np.int32),
        "var_poisson": _f32(s2d.var_poisson),
        "var_rnoise": _f32(s2d.var_rnoise),
        "var_flat": _f32(s2d.var_flat),
        "wavelength": _f32(s2d.wavelength),
        "extra_fits": {
            "SCI": {
                "header": [
                    [f"PS{axis}_0", WCS_TABLE, "spectral axis lookup table extension"],
                    [f"PS{axis}_1", WCS_TABLE_COLUMN, "spectral axis lookup table column"],
                ]
            },
            WCS_TABLE: {"data": wcs_table(_central_wavelengths(s2d.wavelength.T if axis == 2 else s2d.wavelength))},
        },
    }
    path = Path(out_dir) / product_filename(_source_base(naming, source, cutouts), suffix)
    with new_model(dm.SlitModel, tree) as model:
        if table is not None:
            attach_hdrtab(model, table)
        return atomic_save(model, path, direct=True)


def _mode(naming: ProductNaming, records: Mapping[str, ExposureRecord]) -> Mode:
    model_type = next((r.model_type for r in records.values() if r.role == "science"), None)
    return mode_for(str(naming.exp_type), model_type=model_type)


def _image_inputs(cutouts: Sequence[Cutout], records: Mapping[str, ExposureRecord]) -> bool:
    """The source's inputs are whole-exposure images (ImageModel), not slits."""
    return records[cutouts[0].exposure].model_type == "ImageModel"


def _input_meta(record: ExposureRecord, cutout: Cutout | None, naming: ProductNaming,
                steps: Mapping[str, str], image: bool) -> dict[str, Any]:
    """Metadata tree of one input as it entered resample_spec or cube_build (an HDRTAB row);
    ``cutout`` (its slit) is used unless the input is a whole ``image``."""
    meta = flat_to_tree(record.meta) if image or cutout is None else exposure_slit_meta(record, cutout)
    merge_tree(meta, _asn_meta(naming))
    merge_tree(meta, {"cal_step": dict(steps)})
    meta["filename"] = Path(record.filename).name
    meta["model_type"] = record.model_type if image else "SlitModel"
    meta["calibration_software_version"] = __version__
    meta["calibration_software_revision"] = f"spec3c-{__version__}"
    return meta


def _s2d_meta(naming: ProductNaming, status: Mapping[str, Any], cutouts: Sequence[Cutout],
              records: Mapping[str, ExposureRecord], s2d: Resampled2D) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The metadata tree of a source's s2d (the reference's: the first input's, keywords
    blended over the inputs, the resampling's exposure times) and the inputs' trees."""
    image = _image_inputs(cutouts, records)
    first = records[cutouts[0].exposure]
    meta = flat_to_tree(first.meta) if image else top_level_meta(first, cutouts[0], keep_sci=True)
    for key in ("model_type", "filename", "date"):
        meta.pop(key, None)
    merge_tree(meta, _asn_meta(naming))
    input_steps = {k: v for k, v in cal_steps_for("s2d", status).items() if k != "resample"}
    inputs = [_input_meta(records[c.exposure], c, naming, input_steps, image) for c in cutouts]
    for path, value in blended_values(inputs).items():
        node = meta
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    times, pointings = _exposure_times([records[c.exposure] for c in cutouts])
    merge_tree(meta, {"exposure": times, "resample": _resample_meta(status, s2d, pointings)})
    steps = cal_steps_for("s2d", status)
    if steps:
        merge_tree(meta, {"cal_step": steps})
    for key in ("bunit_data", "bunit_err"):
        if s2d.meta.get(key):
            meta[key] = s2d.meta[key]
    photometry = {
        k: float(s2d.meta[k])
        for k in ("pixelarea_steradians", "pixelarea_arcsecsq")
        if s2d.meta.get(k) is not None
    }
    if photometry:
        meta["photometry"] = photometry
    else:
        meta.pop("photometry", None)
    wcsinfo = dict(meta.get("wcsinfo", {}))
    wcsinfo.pop("s_region", None)
    wcsinfo.update(s2d.meta.get("fits_wcsinfo") or s2d_fits_wcs(s2d.sci.shape, s2d.meta))
    if s2d.meta.get("s_region"):
        wcsinfo["s_region"] = str(s2d.meta["s_region"])
    meta["wcsinfo"] = wcsinfo
    meta["wcs"] = StoredWcs(s2d.wcs_asdf)  # written as stored; .wcs() the gwcs object
    return meta, inputs


#: slit attributes resample_spec leaves out for image (ImageModel) inputs, which have none
_IMAGE_NO_SLIT = ("name", "xstart", "xsize", "ystart", "ysize", "source_id", "slitlet_id")


def _s2d_slit_attributes(cutouts: Sequence[Cutout], records: Mapping[str, ExposureRecord],
                         s2d: Resampled2D) -> dict[str, Any]:
    """Slit attributes of an s2d: the first input's (keywords only), then those ResampleSpecStep
    copies from the last input, then the resampling's own."""
    keyworded = _slit_keywords()
    attrs = {k: v for k, v in _slit_scalars(cutouts[0]).items() if k in keyworded}
    attrs.update({k: v for k, v in _slit_scalars(cutouts[-1]).items() if k in _S2D_SLIT_ATTRIBUTES})
    attrs.update({k: s2d.meta[k] for k in _S2D_SLIT_ATTRIBUTES if s2d.meta.get(k) is not None})
    if _image_inputs(cutouts, records):
        for key in _IMAGE_NO_SLIT:
            attrs.pop(key, None)
    return attrs


@functools.cache
def _slit_keywords() -> frozenset[str]:
    """Slit attributes the SlitModel schema writes as keywords."""
    schema = class_schema(dm.SlitModel)
    props = schema.get("properties", {})
    for sub in schema.get("allOf", []):
        props = {**props, **sub.get("properties", {})}
    return frozenset(name for name in SLIT_ATTRIBUTES
                     if isinstance(props.get(name), Mapping) and "fits_keyword" in props[name])


def _central_wavelengths(wavelength: np.ndarray) -> np.ndarray:
    """Wavelengths (µm) along the dispersion axis (x) at the central row (NaN -> column median)."""
    lam = np.asarray(wavelength, dtype=np.float64)
    central = lam[lam.shape[0] // 2].copy()
    bad = ~np.isfinite(central)
    if bad.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
            central[bad] = np.nanmedian(lam[:, bad], axis=0)
    return central


# -- x1d -----------------------------------------------------------------------


_SPEC_MODELS = threading.local()


def spec_table(spectrum: Spectrum1D, units: Mapping[str, str] = CALIBRATED_UNITS) -> fits.FITS_rec:
    """The EXTRACT1D table as a FITS_rec with TUNITn set (stdatamodels does the uint32 DQ casting).

    The table is cast by assigning it to a SpecModel made once per thread
    (making one loads and walks its schema: a tenth of writing an x1d), which
    does not validate it on assignment: the table is spec3c's own, and the
    validation (12 ms of the 13 ms an assignment took) changes none of its
    bytes; the tests validate every x1d with stdatamodels.
    """
    spec = getattr(_SPEC_MODELS, "model", None)
    if spec is None:
        spec = _SPEC_MODELS.model = schema_model(dm.SpecModel)
    spec.spec_table = spectrum.table()
    table = spec.spec_table
    del spec.spec_table
    for name in table.dtype.names:
        kind = _COLUMN_UNIT_KIND.get(name)
        unit = "um" if name == "WAVELENGTH" else (units[kind] if kind else None)
        if unit is not None:
            table.columns[name].unit = unit
    return table


def _spec_attributes(
    spectrum: Spectrum1D, cutouts: Sequence[Cutout], record: ExposureRecord
) -> dict[str, Any]:
    slit = _slit_scalars(cutouts[-1])
    attrs: dict[str, Any] = {k: slit[k] for k in _SPEC_FROM_SLIT if slit.get(k) is not None}
    if slit.get("name") is not None:
        attrs["name"] = slit["name"]
    attrs.update(
        {k: spectrum.meta[k] for k in _SPEC_ATTRIBUTES if spectrum.meta.get(k) is not None}
    )
    if "detector" not in attrs and record.meta.get("meta.instrument.detector"):
        attrs["detector"] = record.meta["meta.instrument.detector"]
    attrs.setdefault(
        "dispersion_direction", int(record.meta.get("meta.wcsinfo.dispersion_direction", 1))
    )
    for key in _SPEC_INT:
        if key in attrs:
            attrs[key] = int(attrs[key])
    for key in _SPEC_FLOAT:
        if key in attrs:
            attrs[key] = float(attrs[key])
    for key in (
        "name",
        "source_name",
        "source_alias",
        "source_type",
        "shutter_state",
        "detector",
        "s_region",
    ):
        if key in attrs:
            attrs[key] = str(attrs[key])
    return attrs


def write_x1d(
    store: Store, source: str, naming: ProductNaming, out_dir: PathLike, suffix: str = "x1d"
) -> Path:
    """Write a source's extracted spectrum (``_x1d``) as a ``MultiSpecModel``.

    One ``EXTRACT1D`` table (stdatamodels ``spectable`` column order; units
    um, Jy, Jy^2, MJy/sr, MJy^2 / sr^2 — DN/s when the spectrum's
    ``flux_unit`` says so), the spectrum header (SLTNAME, SOURCEID, SRCTYPE,
    SRCXPOS/YPOS, SRCRA/SRCDEC, EXTR*, SLIT_RA/DEC, SPORDER, DISPAXIS ...) and a
    per-spectrum spectral gwcs in the ASDF tree, as the reference's
    ``extract_1d``.  Primary metadata from the first exposure (no SCI-header
    keywords, so the file has no empty SCI extension).
    """
    naming = _resolved(store, naming)
    status = _status(store, source)
    cutouts = _source_cutouts(store, source, status)
    path = Path(out_dir) / product_filename(_source_base(naming, source, cutouts), suffix)
    try:
        s2d: Resampled2D | None = Resampled2D.load(store, source)
    except KeyError:
        s2d = None
    return _write_spectrum(store, naming, status, Spectrum1D.load(store, source), cutouts, path, s2d)


def write_exposure_x1ds(
    store: Store, source: str, naming: ProductNaming, out_dir: PathLike, suffix: str = "x1d"
) -> list[Path]:
    """Slitless (never resampled): one ``<product>_<i>_x1d.fits`` per exposure, as the reference."""
    naming = _resolved(store, naming)
    status = _status(store, source)
    cutouts = _source_cutouts(store, source, status)
    base = _source_base(naming, source, cutouts)
    paths = []
    for i, cutout in enumerate(cutouts):
        spectrum = Spectrum1D.load(store, source, x1d_exposure_key(cutout.exposure))
        path = Path(out_dir) / product_filename(f"{base}_{i}", suffix)
        paths.append(_write_spectrum(store, naming, status, spectrum, [cutout], path))
    return paths


def _place(attrs: dict[str, Any], spectrum: Spectrum1D, record: ExposureRecord, wcs: Callable[[], Any]) -> None:
    """Extraction limits as the reference records them (x across, y along the dispersion when it
    is along y), SLIT_RA/SLIT_DEC at the aperture centre (as extraction found it, else from ``wcs()``,
    the spectrum's gwcs), PA_APER; in place."""
    if attrs.get("dispersion_direction") == 2:
        for a, b in (("extraction_xstart", "extraction_ystart"), ("extraction_xstop", "extraction_ystop")):
            va, vb = attrs.pop(a, None), attrs.pop(b, None)
            attrs.update({k: v for k, v in ((a, vb), (b, va)) if v is not None})
    found = APERTURE_RADEC in spectrum.meta
    centre = spectrum.meta[APERTURE_RADEC] if found else extraction_position(spectrum.meta, wcs())
    if centre is not None:
        attrs["slit_ra"], attrs["slit_dec"] = centre
    angle = record.meta.get("meta.aperture.position_angle")
    if angle is not None:
        attrs.setdefault("position_angle", float(angle))


def _write_spectrum(store: Store, naming: ProductNaming, status: Mapping[str, Any], spectrum: Spectrum1D,
                    cutouts: Sequence[Cutout], path: Path, s2d: Resampled2D | None = None) -> Path:
    """One x1d: the extraction of the s2d (``s2d`` given: the s2d's primary keywords, as the
    reference's extract_1d copies them) or of an unresampled exposure (that exposure's)."""
    records = _records(store)
    record = records[cutouts[0].exposure]
    image = _image_inputs(cutouts, records)

    units = (
        _COUNT_UNITS
        if str(spectrum.meta.get("flux_unit", "")).upper().startswith("DN")
        else CALIBRATED_UNITS
    )
    attrs = _spec_attributes(spectrum, cutouts, record)
    if s2d is not None:
        meta = _s2d_meta(naming, status, cutouts, records, s2d)[0]
        wcs = meta["wcs"].wcs
        if not _mode(naming, records).extraction.aperture_by_slit:
            attrs["name"] = naming.exp_type  # extract_1d names a resampled slit by its EXP_TYPE
        if image:
            attrs.pop("source_id", None)  # ImageModel inputs have no source id
    else:
        meta = top_level_meta(record, cutouts[0])
        wcs_asdf = cutouts[0].wcs_asdf
        wcs = functools.partial(wcs_from_asdf, wcs_asdf) if wcs_asdf else lambda: None
        if image:
            for key in ("source_id", "source_type", "slitlet_id"):
                attrs.pop(key, None)
    _place(attrs, spectrum, record, wcs)
    ra = attrs.get("slit_ra", attrs.get("source_ra", float("nan")))
    dec = attrs.get("slit_dec", attrs.get("source_dec", float("nan")))
    spec_node = {
        "spec_table": spec_table(spectrum, units),
        "meta": {"wcs": spectral_gwcs(ra, dec, spectrum.columns["WAVELENGTH"])},
        **attrs,
    }
    for key in ("wcs", "model_type", "filename", "date"):
        meta.pop(key, None)
    merge_tree(meta, _asn_meta(naming))
    steps = cal_steps_for("x1d", status)
    if steps:
        merge_tree(meta, {"cal_step": steps})
    with new_model(dm.MultiSpecModel, {"spec": [spec_node]}) as model:
        # as the reference (update(..., only="PRIMARY")): primary keywords only
        model.instance["meta"] = merge_tree(
            dict(model.instance.get("meta", {})),
            primary_meta(meta, model.schema, keep_unmapped=False),
        )
        return atomic_save(model, path, direct=True)


# -- whole-association image modes (MIRI LRS): exposure crf, c1d ------------------------


def write_exposure_crfs(
    store: Store, source: str, naming: ProductNaming, out_dir: PathLike, suffix: str = "crf"
) -> list[Path]:
    """ImageModel (and SlitModel) inputs: one ``<exposure>_<asn_id>_crf.fits`` per input file, of
    the input's class (the reference's outlier_detection output), DQ with the outlier flags, NaN
    where DO_NOT_USE; a SlitModel keeps its slit attributes and WAVELENGTH."""
    naming = _resolved(store, naming)
    status = _status(store, source)
    cutouts = _source_cutouts(store, source, status)
    records = _records(store)
    extra = {**_asn_meta(naming), **({"cal_step": s} if (s := cal_steps_for("crf", status)) else {})}
    paths = []
    for cutout in cutouts:
        record = records[cutout.exposure]
        dq = _crf_dq(store, source, cutout)
        slit_model = record.model_type == "SlitModel"
        left_out = ("dq",) if slit_model else ("dq", "wavelength")
        node = {attr: _f32(cutout.planes[plane]).copy() for plane, attr in _EXPOSURE_PLANES.items()
                if plane in cutout.planes and plane not in left_out}
        if slit_model:
            node.update(_slit_scalars(cutout))
        node["dq"] = np.array(cutout.planes["dq"] if dq is None else dq, dtype=np.uint32)
        _nan_flagged(node)
        meta = merge_tree(flat_to_tree(record.meta), extra)
        meta["wcs"] = StoredWcs(cutout.wcs_asdf)
        path = Path(out_dir) / exposure_product_filename(Path(record.filename).name, naming.asn_id, suffix)
        with new_model(dm.SlitModel, node) if slit_model else schema_model(dm.ImageModel, node) as model:
            # all of the input's metadata, SCI keywords (BUNIT, PIXAR_*, WCS) included, as the reference
            model.instance["meta"] = merge_tree(dict(model.instance.get("meta", {})), meta)
            model.meta.filename = path.name
            paths.append(atomic_save(model, path, fast=True, direct=True))
    return paths


def write_source_c1d(
    store: Store, source: str, naming: ProductNaming, out_dir: PathLike, suffix: str = "c1d"
) -> Path:
    """The combined spectrum (``_c1d``) of a source's per-exposure spectra."""
    from .c1d import write_c1d

    naming = _resolved(store, naming)
    cutouts = _cutouts(store, source, ())  # for their exposures only
    record = _records(store)[cutouts[0].exposure]
    combined = CombinedResult.load(store, source)
    tree = merge_tree(top_level_meta(record), _asn_meta(naming))
    for key in ("wcs", "wcsinfo", "photometry", "bunit_data", "bunit_err"):
        tree.pop(key, None)
    # the reference copies the first x1d's primary keywords (its step statuses included); no
    # SCI-header keyword, so the file has no empty SCI extension
    merge_tree(tree, {"cal_step": cal_steps_for("x1d", _status(store, source))})
    tree = primary_meta(tree, class_schema(dm.MultiCombinedSpecModel), keep_unmapped=True)
    spec_meta = combined.spec_meta
    if _image_inputs(cutouts, _records(store)):  # ImageModel inputs have no source id or type
        spec_meta = {order: {k: v for k, v in m.items() if k not in ("source_id", "source_type")}
                     for order, m in spec_meta.items()}
    meta = {"instrument": record.meta.get("meta.instrument.name", ""), "exp_type": record.exp_type,
            "tree": tree, "spec": spec_meta}
    path = Path(out_dir) / product_filename(_source_base(naming, source, cutouts), suffix)
    return write_c1d(combined.orders, meta, path, direct=True)
