"""Running spec3c on a simulated NIRISS SOSS association (the truth and oracle tests share it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spec3c.config import resolve_config
from spec3c.ingest import ingest
from spec3c.process import process_store
from spec3c.products import ProductNaming, export_store
from spec3c.results import load_association
from spec3c.store import open_store


def soss_overrides(sim: Any, photom: bool = False, **extract: Any) -> dict[str, dict[str, Any]]:
    """Step parameters pointing extract_1d (box extraction) and, with ``photom``, photom at the simulator's
    reference files."""
    files = sim.reference_files
    refs = {f"override_{k}": str(files[k]) for k in ("pastasoss", "specprofile", "speckernel")}
    return {"extract_1d": {"soss_atoca": False, **refs, **extract},
            "photom": {"override_photom": str(files["photom"]) if photom else "N/A", "override_area": "N/A"}}


def run_spec3c(sim: Any, root: Path, photom: bool = False, **extract: Any) -> Path:
    """ingest, process and export the association of ``sim`` under ``root``; the products folder."""
    store = root / "soss.store"
    ingest(sim.asn_path, store)
    report = process_store(store, config=resolve_config(overrides=soss_overrides(sim, photom, **extract)),
                           workers=1)
    assert not report.failed, [r.error for r in report.failed]
    with open_store(store) as s:
        a = load_association(s)
    out = root / "out"
    export_store(store, out, ProductNaming(a["product_name"], a["asn_id"], a["exp_type"], a["table_name"]),
                 workers=1)
    return out
