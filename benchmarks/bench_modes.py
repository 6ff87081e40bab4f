"""Issue-4 modes end to end: spec3c (ingest, process, export) vs jwst calwebb_spec3.

    python benchmarks/bench_modes.py [--cases fs-background,mos-moving,lrs-fs,lrs-fs-background,lrs-slitless]
                                     [--workdir bench_out/modes] [--no-reference]

Cases (simulated with spec3c's simulator, same inputs and EXTRACT1D aperture
file for both pipelines):

* ``fs-background``: NIRSpec FS, 3 exposures with the sky left in + 2
  background exposures (master_background);
* ``mos-moving``: NIRSpec MOS, 12 (``--mos-sources``) slitlets x 3 nods, a moving target (assign_mtwcs);
* ``lrs-fs``: MIRI LRS fixed slit, 2-point nod (interpolated resample grid);
* ``lrs-fs-background``: MIRI LRS FS, sky left in + 2 background exposures;
* ``lrs-slitless``: MIRI LRS slitless, 3 exposures: extract_1d per exposure and
  combine_1d (the reference is run with ``resample_spec.skip=true``: jwst 3.0.0
  otherwise resamples non-TSO LRS slitless, unlike its documented flow).

Printed per case: spec3c's start-up, ingest, process and export seconds (from
its ``run:`` line; start-up is the rest of its wall time), wall time and peak
memory (PSS summed over the process tree, sampled every 50 ms by
``measure.py``, for both pipelines; spec3c: one ``spec3c run`` command, store
in the output folder), the ratio, and the agreement of the products: x1d (and
c1d), the median over spectra of the median |dflux|/flux where the
reference's FLUX/FLUX_ERROR > 10; s2d (where the mode writes one), the median
and 95th percentile of |dsci|/|sci| over pixels with weight > 0 (as
``bench_slit.py``); and each pipeline's median flux / simulated truth.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_slit import SpecRun, s2d_agreement  # noqa: E402 - the same measures as the MOS benchmark
from bench_slit import run_spec3c as _run_spec3c  # noqa: E402
from measure import load_oracle, measure_reference  # noqa: E402

CASES = ("fs-background", "mos-moving", "lrs-fs", "lrs-fs-background", "lrs-slitless")


@dataclass
class Case:
    name: str
    mode: str
    sim: dict
    apertures: list[dict]
    exp_type: str
    instrument: str
    ref_steps: dict


def _cases(mos_sources: int = 12) -> dict[str, Case]:
    lrs_fs = [{"id": "MIR_LRS-FIXEDSLIT", "disp_axis": 2, "extract_width": 9, "use_source_posn": True}]
    nrs_fs = [{"id": "ANY", "disp_axis": 1, "extract_width": 9, "use_source_posn": True}]
    return {c.name: c for c in (
        Case("fs-background", "nirspec-fs", {"n_exposures": 3, "with_background": 2}, nrs_fs,
             "NRS_FIXEDSLIT", "NIRSPEC", {}),
        Case("mos-moving", "nirspec-mos", {"n_exposures": 3, "n_sources": mos_sources, "moving_target": True,
                                           "n_columns": 800},
             [{"id": "NRS_MSASPEC", "disp_axis": 1, "extract_width": 5, "use_source_posn": True}],
             "NRS_MSASPEC", "NIRSPEC", {}),
        Case("lrs-fs", "miri-lrs-fs", {"n_exposures": 2}, lrs_fs, "MIR_LRS-FIXEDSLIT", "MIRI", {}),
        Case("lrs-fs-background", "miri-lrs-fs", {"n_exposures": 2, "with_background": 2}, lrs_fs,
             "MIR_LRS-FIXEDSLIT", "MIRI", {}),
        Case("lrs-slitless", "miri-lrs-slitless", {"n_exposures": 3}, [], "MIR_LRS-SLITLESS", "MIRI",
             {"resample_spec": {"skip": True}}),
    )}


def run_spec3c(asn: Path, aperture: Path, work: Path) -> SpecRun:
    """``spec3c run`` (ingest, process, export in one command, as the reference is one call), its
    products in ``work/spec3c_out``, its stages from its ``run:`` line."""
    return _run_spec3c(asn, aperture, work)


def _spectra(path: Path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    from stdatamodels.jwst import datamodels

    with datamodels.open(path) as model:
        return [_spectra_row(spec) for spec in model.spec]


def agreement(ours: Path, ref: Path, suffix: str) -> tuple[float, int]:
    """Median over spectra of median |dflux|/flux (reference S/N > 10), and the number of spectra."""
    per = []
    for ref_file in sorted(ref.glob(f"*_{suffix}.fits")):
        mine = ours / ref_file.name
        if not mine.exists():
            continue
        for (rw, rf, re_), (mw, mf, _) in zip(_spectra(ref_file), _spectra(mine), strict=False):
            order = np.argsort(mw)
            m = np.interp(rw, mw[order], mf[order], left=np.nan, right=np.nan)
            ok = np.isfinite(rf) & np.isfinite(m) & (rf != 0) & (np.abs(rf) > 10 * np.abs(re_))
            if ok.any():
                per.append(float(np.median(np.abs(m[ok] - rf[ok]) / np.abs(rf[ok]))))
    return (float(np.median(per)) if per else float("nan")), len(per)


def truth_ratio(folder: Path, suffix: str, truth) -> float:  # type: ignore[no-untyped-def]
    """Median FLUX / truth over the point sources' spectra (S/N > 10) of the ``suffix`` products."""
    ratios = []
    points = {k: s for k, s in truth.sources.items() if s.kind == "science" and s.source_type == "POINT"}
    for path in sorted(folder.glob(f"*_{suffix}.fits")):
        from stdatamodels.jwst import datamodels

        with datamodels.open(path) as model:
            for spec in model.spec:
                key = str(spec.source_name or spec.source_id) if len(points) > 1 else next(iter(points), None)
                if key not in points:
                    continue
                w, f, e = _spectra_row(spec)
                t = truth.flux_at(key, w)
                ok = np.isfinite(f) & np.isfinite(t) & (t > 0) & (f > 10 * e)
                if ok.any():
                    ratios.append(float(np.median(f[ok] / t[ok])))
    return float(np.median(ratios)) if ratios else float("nan")


def _spectra_row(spec):  # type: ignore[no-untyped-def]
    """(WAVELENGTH, FLUX, FLUX_ERROR or ERROR) of one x1d/c1d spectrum."""
    t = spec.spec_table
    err = t["FLUX_ERROR"] if "FLUX_ERROR" in t.dtype.names else t["ERROR"]
    return np.array(t["WAVELENGTH"]), np.array(t["FLUX"]), np.array(err)


def run_case(case: Case, work: Path, reference: bool, oracle) -> dict:  # type: ignore[no-untyped-def]
    from spec3c.simulate import SimOptions, load_truth, simulate
    from spec3c.simulate.miri import slitless_aperture

    shutil.rmtree(work, ignore_errors=True)
    sim = simulate(case.mode, work / "input", SimOptions(seed=4, **case.sim))
    truth = load_truth(sim.truth_path)
    aps = case.apertures or [slitless_aperture(truth)]
    ap = oracle.write_extract1d_json(work / "extract1d.json", aps, instrument=case.instrument, exp_type=case.exp_type)
    row = {"case": case.name, "inputs": len(json.loads(sim.asn_path.read_text())["products"][0]["members"])}
    ours = run_spec3c(sim.asn_path, ap, work)
    row["spec3c_s"], row["spec3c_mb"] = ours.measured.seconds, ours.measured.peak_pss_mb
    row["stages"] = {"start-up": ours.startup, **ours.stages}
    out = work / "spec3c_out"
    suffix = "c1d" if case.name == "lrs-slitless" else "x1d"
    row["spec3c_truth"] = truth_ratio(out, suffix, truth)
    if reference:
        ref = measure_reference(sim.asn_path, work / "reference", extract1d=ap, steps=case.ref_steps)
        if not ref.ok:
            sys.exit(f"reference failed, see {ref.log_path}")
        row["jwst_s"], row["jwst_mb"] = ref.wall_seconds, ref.peak_pss_mb
        row["x1d_rel"], row["x1d_n"] = agreement(out, work / "reference", "x1d")
        row["s2d_med"], row["s2d_p95"], row["s2d_n"] = s2d_agreement(out, work / "reference")
        if case.name == "lrs-slitless":
            row["c1d_rel"], _ = agreement(out, work / "reference", "c1d")
        row["jwst_truth"] = truth_ratio(work / "reference", suffix, truth)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--workdir", type=Path, default=Path("bench_out/modes"))
    ap.add_argument("--no-reference", action="store_true", help="time spec3c only")
    ap.add_argument("--mos-sources", type=int, default=12, help="slitlets of the mos-moving case")
    args = ap.parse_args()
    oracle = load_oracle()
    cases = _cases(args.mos_sources)
    rows = []
    for name in args.cases.split(","):
        print(f"[{datetime.now():%H:%M:%S}] {name} ...", flush=True)
        rows.append(run_case(cases[name], args.workdir / name, not args.no_reference, oracle))
    _print(rows)


def _print(rows: list[dict]) -> None:
    head = ("case", "inputs", "start-up/ingest/process/export s", "spec3c s", "spec3c MiB", "jwst s", "jwst MiB",
            "speed-up", "mem ratio", "x1d |df|/f (n)", "c1d |df|/f", "s2d med/p95 (n)", "flux/truth spec3c",
            "flux/truth jwst")
    print("  ".join(head))
    nan = float("nan")
    for r in rows:
        jwst_s, jwst_mb = r.get("jwst_s", nan), r.get("jwst_mb", nan)
        stages = "/".join(f"{r['stages'].get(k, nan):.2f}" for k in ("start-up", "ingest", "process", "export"))
        s2d = (f"{r.get('s2d_med', nan):.1e}/{r.get('s2d_p95', nan):.1e} ({r.get('s2d_n', 0)})"
               if r.get("s2d_n") else "-")
        print("  ".join([
            r["case"], str(r["inputs"]), stages, f"{r['spec3c_s']:.2f}", f"{r['spec3c_mb']:.0f}", f"{jwst_s:.2f}",
            f"{jwst_mb:.0f}", f"{jwst_s / r['spec3c_s']:.2f}x", f"{r['spec3c_mb'] / jwst_mb:.2f}",
            f"{r.get('x1d_rel', nan):.1e} ({r.get('x1d_n', 0)})", f"{r.get('c1d_rel', nan):.1e}", s2d,
            f"{r['spec3c_truth']:.4f}", f"{r.get('jwst_truth', nan):.4f}",
        ]))


if __name__ == "__main__":
    main()
