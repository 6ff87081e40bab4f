"""The master_background products (``save_background``): association-level, not per source.

* ``<first background member>_<asn_id>_masterbg1d.fits``: the master spectrum
  as a ``MultiCombinedSpecModel`` (only when it was combined from background
  members; a user background is not re-saved, as the reference);
* ``<science exposure>_<asn_id>_masterbg2d.fits`` per science exposure: a
  ``MultiSlitModel`` copy of the exposure whose SCI is the 2-D background
  that was subtracted and whose DQ has the out-of-range pixels flagged
  (IFU: an ``IFUImageModel`` of the full frame, DQ as the exposure's).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from stdatamodels.jwst import datamodels as dm

from ..algorithms.combine1d import CombinedSpectrum
from ..gwcs_asdf import wcs_from_asdf
from ..modes.base import Mode
from ..modes.registry import mode_of_store
from ..naming import ProductNaming, exposure_product_filename
from ..steps.master_background import MasterBackground, frame_background, load_association_master
from ..store import Cutout, ExposureRecord, Store
from .c1d import write_c1d
from .fits_io import atomic_save
from .meta import merge_tree, primary_meta, top_level_meta
from .models import class_schema, schema_model
from .writers import _asn_meta, _exposure_node, _resolved

__all__ = ["write_master_background_products"]


def write_master_background_products(store: Store, naming: ProductNaming,
                                     out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write the masterbg products if the run asked for them (``save_background``)."""
    master = load_association_master(store)
    if master is None or not master.subtract or not master.save_background:
        return []
    naming = _resolved(store, naming)
    records = store.list_exposures()
    paths = []
    backgrounds = [r for r in records if r.role == "background"]
    if master.origin == "background members" and backgrounds:
        paths.append(_write_1d(master, backgrounds[0], naming, Path(out_dir)))
    cutouts = _cutouts_by_exposure(store)
    mode = mode_of_store(store)
    for record in (r for r in records if r.role == "science"):
        if mode.cube is not None:
            paths.append(_write_ifu_2d(store, master, record, cutouts.get(record.name, []), naming, Path(out_dir)))
            continue
        paths.append(_write_2d(master, mode, record, cutouts.get(record.name, []), naming, Path(out_dir)))
    return paths


def _write_1d(master: MasterBackground, first: ExposureRecord, naming: ProductNaming, out: Path) -> Path:
    c = master.columns
    spectrum = CombinedSpectrum(c["WAVELENGTH"], c["FLUX"], c["ERROR"], c["SURF_BRIGHT"], c["SB_ERROR"],
                                c["DQ"], c["WEIGHT"], c["N_INPUT"])
    meta = first.meta
    path = out / exposure_product_filename(Path(first.filename).name, naming.asn_id, "masterbg1d")
    # the reference copies the primary keywords of the first background x1d
    tree = merge_tree(top_level_meta(first), _asn_meta(naming))
    tree = primary_meta(tree, class_schema(dm.MultiCombinedSpecModel), keep_unmapped=True)
    return write_c1d({1: spectrum}, {
        "instrument": meta.get("meta.instrument.name", ""), "exp_type": first.exp_type, "tree": tree,
        "source_type": "EXTENDED", "dispersion_direction": meta.get("meta.wcsinfo.dispersion_direction"),
    }, path)


def _cutouts_by_exposure(store: Store) -> dict[str, list[Cutout]]:
    out: dict[str, list[Cutout]] = {}
    for source in store.sources():
        for cutout in store.read_cutouts(source):
            out.setdefault(cutout.exposure, []).append(cutout)
    for cutouts in out.values():
        cutouts.sort(key=lambda c: int(c.meta.get("slit_index", 0)))
    return out


def _write_2d(master: MasterBackground, mode: Mode, record: ExposureRecord,
              cutouts: list[Cutout], naming: ProductNaming, out: Path) -> Path:
    nodes: list[dict[str, Any]] = []
    for cutout in cutouts:
        bkg, dq = mode.background_2d(cutout, master.columns)
        node = _exposure_node(cutout, record, {})
        node["data"], node["dq"] = bkg, np.asarray(cutout.planes["dq"] | dq, dtype=np.uint32)
        node["meta"].pop("pointing", None)  # a slit of an exposure: the pointing is the exposure's
        nodes.append(node)
    path = out / exposure_product_filename(Path(record.filename).name, naming.asn_id, "masterbg2d")
    if mode.image_exposures:  # the background of the whole image
        image = schema_model(dm.ImageModel, {k: v for k, v in nodes[0].items() if k in _IMAGE_ARRAYS})
        return _save(image, record, path, naming, wcs=nodes[0]["meta"].get("wcs"))
    return _save(schema_model(dm.MultiSlitModel, {"slits": nodes}), record, path, naming)


def _write_ifu_2d(store: Store, master: MasterBackground, record: ExposureRecord, cutouts: list[Cutout],
                  naming: ProductNaming, out: Path) -> Path:
    """An IFU exposure's background: an IFUImageModel copy of the exposure whose SCI is the expanded
    master background (its DQ the exposure's: the reference flags nothing for IFUs)."""
    frames = store.read_images(record.name, planes=(*_IMAGE_PLANES, "wavelength"))
    node = {attr: np.array(frames[plane], dtype=np.uint32 if plane == "dq" else np.float32)
            for plane, attr in _IMAGE_PLANES.items() if plane in frames}
    node["data"] = frame_background(master, frames, record.meta)
    path = out / exposure_product_filename(Path(record.filename).name, naming.asn_id, "masterbg2d")
    wcs = wcs_from_asdf(cutouts[0].wcs_asdf) if cutouts else None
    return _save(schema_model(dm.IFUImageModel, node), record, path, naming, wcs=wcs)


#: stored frame plane -> IFUImageModel attribute of the background copy
_IMAGE_PLANES = {"sci": "data", "dq": "dq", "err": "err", "var_poisson": "var_poisson", "var_rnoise": "var_rnoise",
                 "var_flat": "var_flat"}

#: arrays an ImageModel background copy carries (as the reference's copy of the cal)
_IMAGE_ARRAYS = ("data", "dq", "err", "var_poisson", "var_rnoise", "var_flat")


def _save(model: Any, record: ExposureRecord, path: Path, naming: ProductNaming, wcs: Any = None) -> Path:
    with model:
        top = merge_tree(top_level_meta(record), _asn_meta(naming))
        if wcs is not None:
            top["wcs"] = wcs
        model.instance["meta"] = merge_tree(dict(model.instance.get("meta", {})),
                                            primary_meta(top, model.schema, keep_unmapped=True))
        xposure = top.get("exposure", {}).get("effective_exposure_time")
        if xposure is not None:  # XPOSURE in the first SCI header, as the reference
            model.instance["meta"].setdefault("exposure", {})["effective_exposure_time"] = xposure
        return atomic_save(model, path, fast=True)
