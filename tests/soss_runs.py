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


def orders_scene(folder: Path, pwcpos: float, n_int: int, seed: int, dtype: Any = float) -> tuple[Any, dict, Any]:
    """Orders 1 and 2 of the simulated star on SUBSTRIP256, ``n_int`` noisy integrations (reference
    pixels flagged), with the simulator's reference files in ``folder``: (references, each order's
    noiseless image, the infilled cube)."""
    import numpy as np

    from spec3c.modes.soss.box import infill
    from spec3c.modes.soss.reffiles import read_soss_references
    from spec3c.simulate.niriss import soss as sim
    from spec3c.simulate.niriss.soss_reffiles import write_reference_files

    files = write_reference_files(folder, pwcpos, "SUBSTRIP256")
    refs = read_soss_references(files.pastasoss, files.specprofile, files.speckernel)
    images = sim.render_orders(pwcpos, "SUBSTRIP256", (1, 2))
    clean = images[1] + images[2]
    rng = np.random.default_rng(seed)
    err = 0.1 * np.sqrt(np.abs(clean) + 20.0**2)
    sci = clean[None] + rng.normal(0.0, 1.0, (n_int, *clean.shape)) * err
    dq = np.zeros(sci.shape, np.uint32)
    dq[:, :, :4] = dq[:, :, -4:] = dq[:, -4:, :] = 2**31  # REFERENCE_PIXEL
    cube = infill(sci.astype(dtype), np.repeat(err[None], n_int, axis=0).astype(dtype), dq)
    return refs, images, cube
