"""The scale that hurts survey users: NIRSpec MOS, many sources x many exposures (issue 10).

    python benchmarks/bench_scale.py [--sources 600] [--exposures 24] [--n-columns 200]
        [--executors pool,cluster] [--reference-sources 10,30] [--workdir bench_out/scale]
        [--reuse-input] [--reuse-reference]

1. Simulates NIRSpec MOS with ``--sources`` slitlets in ``--exposures``
   exposures (cutouts ``--n-columns`` long along the dispersion, ~24 rows).
2. Times spec3c's ``ingest``, ``process`` and ``export`` (fresh processes,
   2 workers) with each executor: ``pool`` (the local process pool) and
   ``cluster`` (``--scheduler local:2``, a Dask LocalCluster); peak memory is
   the PSS summed over the whole process tree (Dask nanny and workers
   included), sampled every 50 ms (``measure.py``; the reference the same way).
3. Runs the reference (jwst calwebb_spec3) on subsets of the *same* data:
   the first K slitlets of every exposure, for each K of
   ``--reference-sources``; its per-source cost at two sizes shows whether
   it is linear, and the line through them (a fixed cost plus a marginal cost
   per source) extrapolates it to ``--sources`` and ``--project-to``.
   spec3c's products are compared with the reference's on the largest subset.
4. Re-runs ``process`` and ``export`` once more (nothing changed: the
   incremental no-op), and prints one table.

Cutout size: ``--n-columns`` sets the stored bytes (about 56 bytes per pixel
in the store, 600 x 24 x 24 x 200 pixels = 3.9 GB; the _cal inputs as much
again): pick it for the disk at hand.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from measure import Measured, load_oracle, measure, measure_reference  # noqa: E402

APERTURE = {"id": "NRS_MSASPEC", "region_type": "target", "disp_axis": 1, "extract_width": 5,
            "use_source_posn": True}
EXECUTORS = {"pool": ["--workers", "2"], "cluster": ["--scheduler", "local:2"]}


def run_spec3c(asn: Path, aperture: Path, work: Path, executor: str) -> dict[str, Measured]:
    """ingest, process, export, then process + export again (nothing changed)."""
    exe = str(Path(sys.executable).with_name("spec3c"))
    store, out = work / f"{executor}.store", work / f"{executor}_out"
    for p in (store, out):
        shutil.rmtree(p, ignore_errors=True)
    how = EXECUTORS[executor]
    process = [exe, "process", str(store), *how, f"--steps.extract_1d.override_extract1d={aperture}"]
    export = [exe, "export", str(store), "--output-dir", str(out), *how]
    return {
        "ingest": measure([exe, "ingest", str(asn), "--store", str(store)], work / f"{executor}_ingest.log"),
        "process": measure(process, work / f"{executor}_process.log"),
        "export": measure(export, work / f"{executor}_export.log"),
        "again": measure(process, work / f"{executor}_process_again.log"),
        "export again": measure(export, work / f"{executor}_export_again.log"),
    }


def subsets(asn: Path, dest: dict[int, Path]) -> dict[int, Path]:
    """The same exposures with only their first ``k`` slitlets, in folder ``dest[k]`` for each ``k``
    (the reference's subsets of the data): each exposure opened once (HDU lookups indexed: a 600-slit
    file opens in ~20 s instead of ~150 s), its metadata and first slits saved at each size."""
    from stdatamodels.jwst import datamodels as dm

    from spec3c.fitsio import indexed_hdus

    doc = json.loads(asn.read_text())
    sizes = sorted(dest)
    for k in sizes:
        dest[k].mkdir(parents=True, exist_ok=True)
        (dest[k] / asn.name).write_text(json.dumps(doc, indent=2))
    for member in doc["products"][0]["members"]:
        with indexed_hdus(), dm.open(asn.parent / member["expname"]) as model:
            for k in sizes:
                with dm.MultiSlitModel() as part:
                    part.update(model)  # the exposure's metadata
                    for slit in model.slits[:k]:
                        part.slits.append(slit)
                    part.save(dest[k] / member["expname"])
    return {k: dest[k] / asn.name for k in sizes}


def _line(points: list[tuple[int, float]]) -> tuple[float, float]:
    """(intercept, seconds per source) through the two extreme (sources, seconds) points."""
    (n0, t0), (n1, t1) = points[0], points[-1]
    slope = (t1 - t0) / (n1 - n0) if n1 != n0 else t1 / n1
    return t1 - slope * n1, slope


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=600)
    parser.add_argument("--exposures", type=int, default=24)
    parser.add_argument("--n-columns", type=int, default=200, help="Cutout length along the dispersion.")
    parser.add_argument("--executors", default="pool,cluster", help="pool (local processes), cluster (Dask).")
    parser.add_argument("--reference-sources", default="10,30", help="Subset sizes the reference runs on; "
                        "empty: no reference.")
    parser.add_argument("--reference-timeout", type=float, default=None, help="Seconds before a reference run is stopped.")
    parser.add_argument("--workdir", type=Path, default=Path("bench_out/scale"))
    parser.add_argument("--reuse-input", action="store_true", help="Keep the simulated inputs of an earlier run.")
    parser.add_argument("--reuse-reference", action="store_true",
                        help="Take the reference's figures and products from an earlier run on the same inputs "
                             "(its reference.json in the workdir) instead of running it again; implies --reuse-input.")
    parser.add_argument("--project-to", type=int, default=600,
                        help="Also extrapolate both pipelines linearly to this many sources.")
    args = parser.parse_args()
    oracle = load_oracle()
    from spec3c.simulate import SimOptions, simulate

    work = (args.workdir / f"mos{args.sources}x{args.exposures}").resolve()
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    existing = sorted((work / "input").glob("*_asn.json"))
    if (args.reuse_input or args.reuse_reference) and existing:
        asn = existing[0]
    else:
        shutil.rmtree(work / "input", ignore_errors=True)
        asn = simulate("nirspec-mos", work / "input", SimOptions(seed=args.sources, n_sources=args.sources,
                       n_exposures=args.exposures, n_columns=args.n_columns)).asn_path
    simulated = time.perf_counter() - t0
    aperture = oracle.write_extract1d_json(work / "extract1d.json", [APERTURE])
    ours = {name: run_spec3c(asn, aperture, work, name) for name in args.executors.split(",") if name}

    reference = _reference(args, asn, aperture, work, oracle)
    _print(args, simulated, ours, reference, work)


def _reference(args, asn: Path, aperture: Path, work: Path, oracle) -> list[tuple[int, float, float]]:  # type: ignore[no-untyped-def]
    """(sources, wall s, peak PSS MiB) of the reference on each subset: run, or an earlier run's record."""
    record = work / "reference.json"
    if args.reuse_reference:
        if not record.exists():
            sys.exit(f"--reuse-reference: no {record} from an earlier run")
        return [tuple(row) for row in json.loads(record.read_text())]  # type: ignore[misc]
    reference: list[tuple[int, float, float]] = []
    sizes = [int(k) for k in args.reference_sources.split(",") if k]
    if sizes and oracle.jwst_python() is None:
        print("no jwst venv: the reference is not run")
        sizes = []
    subset_asn = subsets(asn, {k: work / f"ref{k}" / "input" for k in sizes}) if sizes else {}
    for k in sizes:
        sub = subset_asn[k]
        shutil.rmtree(work / f"ref{k}" / "out", ignore_errors=True)
        run = measure_reference(sub, work / f"ref{k}" / "out", extract1d=aperture, timeout=args.reference_timeout)
        if not run.ok:
            sys.exit(f"reference on {k} sources failed ({run.returncode}); log {run.log_path}")
        reference.append((k, run.wall_seconds, run.peak_pss_mb))
        record.write_text(json.dumps(reference))
    return reference


def _print(args, simulated, ours, reference, work) -> None:  # type: ignore[no-untyped-def]
    store_gb = sum(p.stat().st_size for p in work.glob("*.store/**/*") if p.is_file()) / 2**30 / max(1, len(ours))
    inputs_gb = sum(p.stat().st_size for p in (work / "input").glob("*.fits")) / 2**30
    print(f"\nNIRSpec MOS, {args.sources} sources x {args.exposures} exposures, cutouts ~24 x {args.n_columns} "
          f"pixels; inputs {inputs_gb:.1f} GiB, store {store_gb:.1f} GiB; simulated in {simulated:.0f} s; "
          f"{psutil.cpu_count()} cores\n")
    print(f"{'spec3c':<9} {'ingest s':>9} {'process s':>10} {'export s':>9} {'total s':>8} {'total min':>9} "
          f"{'peak PSS MiB':>13} {'no-op process s':>16} {'no-op export s':>15}")
    for name, m in ours.items():
        total = sum(m[k].seconds for k in ("ingest", "process", "export"))
        peak = max(m[k].peak_pss_mb for k in ("ingest", "process", "export"))
        print(f"{name:<9} {m['ingest'].seconds:9.1f} {m['process'].seconds:10.1f} {m['export'].seconds:9.1f} "
              f"{total:8.1f} {total / 60:9.1f} {peak:13.0f} {m['again'].seconds:16.1f} {m['export again'].seconds:15.1f}")
    if not reference:
        return
    print(f"\n{'jwst on':<9} {'wall s':>9} {'s/source':>10} {'peak PSS MiB':>13}")
    for k, wall, peak in reference:
        print(f"{k:<3}sources {wall:9.1f} {wall / k:10.1f} {peak:13.0f}")
    intercept, per_source = _line([(k, wall) for k, wall, _ in reference])
    est = intercept + per_source * args.sources
    print(f"\njwst extrapolated to {args.sources} sources: {intercept:.0f} s + {per_source:.1f} s/source = "
          f"{est:.0f} s ({est / 3600:.1f} h)")
    for name, m in ours.items():
        total = sum(m[k].seconds for k in ("ingest", "process", "export"))
        print(f"speed-up, spec3c {name} (ingest+process+export): {est / total:.1f}x")
        x1d, n, s2d_med, s2d_95, pairs = _agreement(work / f"{name}_out", work / f"ref{reference[-1][0]}" / "out", work)
        print(f"  agreement with jwst on its {reference[-1][0]} sources: x1d median |dflux|/flux {x1d:.1e} "
              f"({n} sources with S/N > 10), s2d median {s2d_med:.1e}, p95 {s2d_95:.1e} ({pairs} s2d)")
    if args.project_to != args.sources:
        far = intercept + per_source * args.project_to
        print(f"\nprojected to {args.project_to} sources (linear): jwst {far / 3600:.1f} h", end="")
        for name, m in ours.items():
            total = sum(m[k].seconds for k in ("ingest", "process", "export"))
            print(f"; spec3c {name} {total * args.project_to / args.sources / 60:.0f} min", end="")
        print()


def _agreement(ours: Path, ref: Path, work: Path) -> tuple[float, int, float, float, int]:
    """bench_slit's x1d (S/N > 10 sources, from the truth) and s2d agreement measures."""
    spec = importlib.util.spec_from_file_location("spec3c_bench_slit", HERE / "bench_slit.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules["spec3c_bench_slit"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    from spec3c.simulate import load_truth

    truth = load_truth(next((work / "input").glob("*_truth.asdf")))
    return module.x1d_agreement(ours, ref, truth) + module.s2d_agreement(ours, ref)


if __name__ == "__main__":
    main()
