"""The IFU modes' ``_crf`` products: each exposure's frames with the outlier flags.

The reference's outlier_detection (mode ifu) saves its updated inputs (after
assign_mtwcs and master_background: the ``moving_target`` frame in the WCS and
SCI background-subtracted), one
IFUImageModel per input file named ``<input root>_<asn_id>_crf.fits``: the
input's SCI, ERR, DQ and VAR_* planes with DQ OR-ed with the outlier flags
and every plane NaN where DQ has DO_NOT_USE (``match_nans_and_flags``), all
of the input's metadata and its WCS.  spec3c keeps the frames in the store
(``images``) and the flagged DQ as ``crf/<exposure>/<slit>``
(:mod:`spec3c.steps.outlier_detection_ifu`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

import numpy as np
from stdatamodels.jwst import datamodels as dm

from ..algorithms.moving_target import add_moving_target_frame
from ..gwcs_asdf import StoredWcs
from ..heap import long_lived_objects_frozen
from ..naming import ProductNaming, exposure_product_filename
from ..results import COMPLETE, crf_key
from ..steps.assign_mtwcs import cutout_position
from ..steps.master_background import load_for_source, subtract_from_frames
from ..store import Store
from ..store.records import ExposureRecord
from .fits_io import atomic_save
from .meta import cal_steps_for, flat_to_tree, merge_tree, step_statuses
from .models import schema_model
from .writers import PathLike, _asn_meta, _cutouts, _nan_flagged, _records, _resolved, _status

#: stored frame plane -> IFUImageModel attribute
FRAME_PLANES = {"sci": "data", "err": "err", "var_poisson": "var_poisson", "var_rnoise": "var_rnoise",
                "var_flat": "var_flat"}


def crf_exposures(store: Store, source: str, records: Mapping[str, ExposureRecord] | None = None) -> list[str]:
    """The exposures of ``source`` that have a ``_crf`` product (its science exposures);
    ``records``: the store's exposure records, when already read."""
    records = _records(store) if records is None else records
    return [c.exposure for c in store.list_cutouts(source)
            if (r := records.get(c.exposure)) is not None and r.role == "science"]


def write_ifu_crfs(
    store: Store, source: str, naming: ProductNaming, out_dir: PathLike, suffix: str = "crf",
    only: Collection[str] | None = None,
) -> list[Path]:
    """One IFUImageModel ``<exposure>_<asn_id>_crf.fits`` per exposure of ``source`` (see the
    module); ``only``: of these exposures."""
    naming = _resolved(store, naming)
    status = _status(store, source)
    records = _records(store)
    keys = {key for _, key in store.list_results(source)}
    done = step_statuses(status)
    master = load_for_source(store, source) if done.get("master_background") == COMPLETE else None
    mean = _moving_target_mean(status) if done.get("assign_mtwcs") == COMPLETE else None
    extra = {**_asn_meta(naming), **({"cal_step": s} if (s := cal_steps_for("crf", status)) else {})}
    exposures = {e for e in crf_exposures(store, source, records) if only is None or e in only}
    paths = []
    with long_lived_objects_frozen():  # a full collection follows each exposure's frames read
        for cutout in _cutouts(store, source):
            if cutout.exposure not in exposures:
                continue
            record = records[cutout.exposure]
            frames = store.read_images(cutout.exposure, planes=(*FRAME_PLANES, "dq"))
            subtract_from_frames(store, source, cutout.exposure, frames, record.meta, master)
            node = {attr: np.array(frames[plane], dtype=np.float32) for plane, attr in FRAME_PLANES.items()
                    if plane in frames}
            key = crf_key(cutout.exposure, cutout.slit)
            dq = store.get_result(source, key)[0]["dq"] if key in keys else frames["dq"]
            node["dq"] = np.array(dq, dtype=np.uint32)
            _nan_flagged(node)
            meta = merge_tree(flat_to_tree(record.meta), extra)
            meta["wcs"] = StoredWcs(cutout.wcs_asdf)  # written as stored (its slice map: ~1 s as objects)
            if mean is not None:
                mt_ra, mt_dec = cutout_position(cutout.meta, record.meta)
                if mt_ra is not None and mt_dec is not None:
                    meta["wcs"] = add_moving_target_frame(meta["wcs"].wcs(), mt_ra, mt_dec, *mean)
                    merge_tree(meta, {"wcsinfo": {"mt_avra": mean[0], "mt_avdec": mean[1]}})
            path = Path(out_dir) / exposure_product_filename(Path(record.filename).name, naming.asn_id, suffix)
            with schema_model(dm.IFUImageModel, node) as model:
                model.instance["meta"] = merge_tree(dict(model.instance.get("meta", {})), meta)
                model.meta.filename = path.name
                paths.append(atomic_save(model, path, fast=True, direct=True))
    return paths


def _moving_target_mean(status: dict) -> tuple[float, float] | None:
    """(mt_avra, mt_avdec) assign_mtwcs recorded in the source's status."""
    entry = status.get("steps", {}).get("assign_mtwcs", {})
    if entry.get("mt_avra") is None or entry.get("mt_avdec") is None:
        return None
    return float(entry["mt_avra"]), float(entry["mt_avdec"])
