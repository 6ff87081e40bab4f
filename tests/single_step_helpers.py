"""Helpers of the single-step and SlitModel tests.

* :func:`run_pipeline`: spec3c's pipeline in memory (as ``process`` +
  ``export``), to compare single steps with;
* :func:`split_slits`: SlitModel cal files (one slit per file) made from the
  simulator's MultiSlit exposures.  Some stage-2 tools write NIRSpec FS/MOS
  exposures this way; jwst 3.0.0's calwebb_spec3 processes them (as one
  source per association).  Each file carries the exposure's metadata and the
  slit's own attributes and gwcs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from stdatamodels.jwst import datamodels as dm

from spec3c.asn import Association
from spec3c.config import PipelineConfig
from spec3c.naming import ProductNaming
from spec3c.process import run_source
from spec3c.products.export import export_source
from spec3c.single_step.exposures import load_store
from spec3c.steps import master_background


def run_pipeline(asn: Association, config: PipelineConfig, out: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """The pipeline in memory, as ``process`` + ``export`` run it: association-level preparation, then
    every source through the mode's plan, then its products; returns the files written."""
    store = load_store(asn)
    master_background.prepare_association(store, config.master_background)
    naming = ProductNaming.from_association(asn)
    written = []
    for source in store.sources():
        run_source(store, source, config)
        written += export_source(store, source, naming, out, suffixes)
    return written


def split_slits(cal_paths: Iterable[Path], out_dir: Path, slits: Sequence[str] | None = None) -> list[Path]:
    """Write ``<exposure root>_<slit>_cal.fits`` SlitModels for the chosen (default: all) slits."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in cal_paths:
        root = Path(path).name.removesuffix("_cal.fits")
        with dm.open(path) as multi:
            for slit in multi.slits:
                if slits is not None and slit.name not in slits:
                    continue
                with dm.SlitModel() as single:
                    single.update(multi)  # the exposure's primary metadata
                    for key, value in slit.instance.items():
                        if key != "meta":
                            single.instance[key] = value
                    for key, value in slit.meta.instance.items():  # the slit's own meta (wcs, bunit, wcsinfo)
                        single.meta.instance[key] = value
                    target = out_dir / f"{root}_{slit.name.lower()}_cal.fits"
                    single.meta.filename = target.name
                    single.save(target)
                    written.append(target)
    return written


def write_asn(path: Path, members: Sequence[Path], product_name: str, asn_id: str = "o022") -> Path:
    """A spec3 association of ``members`` (science) in ``path``'s folder."""
    doc = {"asn_type": "spec3", "asn_rule": "candidate_Asn_Lv3SpecAux", "asn_id": asn_id, "program": "01309",
           "target": "t001", "asn_pool": "jw01309_pool",
           "products": [{"name": product_name,
                         "members": [{"expname": m.name, "exptype": "science"} for m in members]}]}
    path.write_text(json.dumps(doc, indent=1))
    return path
