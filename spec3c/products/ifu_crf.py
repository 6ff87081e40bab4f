"""The IFU modes' ``_crf`` products: each exposure's frames with the outlier flags.

The reference's outlier_detection (mode ifu) saves its updated inputs, one
IFUImageModel per input file named ``<input root>_<asn_id>_crf.fits``: the
input's SCI, ERR, DQ and VAR_* planes with DQ OR-ed with the outlier flags
and every plane NaN where DQ has DO_NOT_USE (``match_nans_and_flags``), all
of the input's metadata and its WCS.  spec3c keeps the frames in the store
(``images``) and the flagged DQ as ``crf/<exposure>/<slit>``
(:mod:`spec3c.steps.outlier_detection_ifu`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from stdatamodels.jwst import datamodels as dm

from ..gwcs_asdf import wcs_from_asdf
from ..naming import ProductNaming, exposure_product_filename
from ..results import crf_key
from ..store import Store
from .fits_io import atomic_save
from .meta import cal_steps_for, flat_to_tree, merge_tree
from .writers import PathLike, _asn_meta, _cutouts, _nan_flagged, _records, _resolved, _status

#: stored frame plane -> IFUImageModel attribute
FRAME_PLANES = {"sci": "data", "err": "err", "var_poisson": "var_poisson", "var_rnoise": "var_rnoise",
                "var_flat": "var_flat"}


def write_ifu_crfs(
    store: Store, source: str, naming: ProductNaming, out_dir: PathLike, suffix: str = "crf"
) -> list[Path]:
    """One IFUImageModel ``<exposure>_<asn_id>_crf.fits`` per exposure of ``source`` (see the module)."""
    naming = _resolved(store, naming)
    status = _status(store, source)
    records = _records(store)
    keys = {key for _, key in store.list_results(source)}
    extra = {**_asn_meta(naming), **({"cal_step": s} if (s := cal_steps_for("crf", status)) else {})}
    paths = []
    for cutout in _cutouts(store, source):
        record = records.get(cutout.exposure)
        if record is None or record.role != "science":
            continue
        frames = store.read_images(cutout.exposure, planes=(*FRAME_PLANES, "dq"))
        node = {attr: np.array(frames[plane], dtype=np.float32) for plane, attr in FRAME_PLANES.items()
                if plane in frames}
        key = crf_key(cutout.exposure, cutout.slit)
        dq = store.get_result(source, key)[0]["dq"] if key in keys else frames["dq"]
        node["dq"] = np.array(dq, dtype=np.uint32)
        _nan_flagged(node)
        meta = merge_tree(flat_to_tree(record.meta), extra)
        meta["wcs"] = wcs_from_asdf(cutout.wcs_asdf)
        path = Path(out_dir) / exposure_product_filename(Path(record.filename).name, naming.asn_id, suffix)
        with dm.IFUImageModel(node, validate_on_assignment=False) as model:
            model.instance["meta"] = merge_tree(dict(model.instance.get("meta", {})), meta)
            model.meta.filename = path.name
            paths.append(atomic_save(model, path, fast=True))
    return paths
