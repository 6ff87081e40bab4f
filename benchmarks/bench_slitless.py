"""Slitless end to end (issue 13): ``spec3c run`` vs jwst calwebb_spec3 on the same simulated inputs.

    python benchmarks/bench_slitless.py [--cases wfss,soss] [--sources 1000] [--exposures 4]
        [--scaling 100,300] [--integrations 100] [--workdir bench_out/slitless]
        [--no-reference] [--reference-timeout S]

Cases:

* ``wfss``: NIRISS WFSS (GR150C), ``--sources`` sources x ``--exposures``
  exposures.  spec3c runs twice, from the spec2 ``_cal`` files and from the
  spec2 ``_x1d`` files; jwst 3.0.0 runs from the ``_cal`` files only (its
  extract_1d fails on spec2 ``_x1d`` inputs).  ``--scaling`` repeats spec3c
  at smaller source counts, for the per-source cost.  jwst runs at the
  ``--reference-sources`` counts (it takes seconds per source: 1000 sources
  are hours) and is extrapolated linearly to the others (marked ``~``): the
  line through its two extreme measured points, or proportionally from one.
* ``soss``: NIRISS SOSS, ``--integrations`` integrations, ATOCA on
  (``soss_atoca=True``), both pipelines with the simulator's reference files.
  ``--scaling`` is not used; the per-integration cost is the wall time over
  the integrations.

Both pipelines run in fresh processes measured by ``measure.py``: wall time and
peak PSS summed over the whole process tree, sampled every 50 ms.  Printed: one
table with both, the speed-up against the issue's targets (WFSS >= 20x, SOSS
>= 10x) and the agreement of the x1d/c1d spectra (median over spectra of the
median |dFLUX|/FLUX).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from measure import Measured, ReferenceMeasured, load_oracle, measure, measure_reference  # noqa: E402

TARGETS = {"wfss": 20.0, "soss": 10.0}


@dataclass
class Row:
    case: str
    size: str
    units: int  # sources (WFSS) or integrations (SOSS)
    ours: dict[str, Measured]  # run label -> measured
    ref: ReferenceMeasured | None = None
    agreement: float = float("nan")
    ref_extrapolated: float | None = None  # jwst seconds extrapolated from smaller runs


def run_spec3c(asn: Path, out: Path, steps: dict[str, dict[str, Any]] | None = None) -> Measured:
    shutil.rmtree(out, ignore_errors=True)
    exe = str(Path(sys.executable).with_name("spec3c"))
    cmd = [exe, "run", str(asn), "--output-dir", str(out), "--workers", "2"]
    cmd += [f"--steps.{step}.{k}={v}" for step, pars in (steps or {}).items() for k, v in pars.items()]
    return measure(cmd, out.with_suffix(".log"), check=False)


def spectra_agreement(ours: Path, ref: Path, suffixes: tuple[str, ...] = ("x1d", "c1d")) -> float:
    """Median over every spectrum (table row or SPEC extension) of the median |dFLUX|/FLUX."""
    from stdatamodels.jwst import datamodels as dm

    medians = []
    for suffix in suffixes:
        for ref_file in sorted(ref.glob(f"*_{suffix}.fits")):
            mine = ours / ref_file.name
            if not mine.exists():
                continue
            with dm.open(ref_file) as a, dm.open(mine) as b:
                for sa, sb in zip(a.spec, b.spec, strict=False):
                    medians += _row_medians(sa.spec_table, sb.spec_table)
    return float(np.median(medians)) if medians else float("nan")


def _row_medians(ta, tb) -> list[float]:  # type: ignore[no-untyped-def]
    """Per spectrum: a WFSS table holds one source per row (arrays), other tables one spectrum."""
    flux_a, flux_b = np.asarray(ta["FLUX"], float), np.asarray(tb["FLUX"], float)
    if flux_a.ndim == 1:
        flux_a, flux_b = flux_a[None, :], flux_b[None, :]
    out = []
    for fa, fb in zip(flux_a, flux_b, strict=False):
        n = min(len(fa), len(fb))
        ok = np.isfinite(fa[:n]) & np.isfinite(fb[:n]) & (fa[:n] != 0)
        if ok.any():
            out.append(float(np.median(np.abs(fb[:n][ok] / fa[:n][ok] - 1))))
    return out


def wfss_rows(args: argparse.Namespace) -> list[Row]:
    from spec3c.simulate import SimOptions, simulate

    rows = []
    reference = not args.no_reference and load_oracle().jwst_python() is not None
    for n in sorted({*args.scaling, *args.reference_sources, args.sources}):
        work = (args.workdir / f"wfss{n}x{args.exposures}").resolve()
        shutil.rmtree(work, ignore_errors=True)
        sim = simulate("niriss-wfss", work / "input",
                       SimOptions(seed=7, n_sources=n, n_exposures=args.exposures))
        print(f"wfss {n} sources: spec3c from _cal, from _x1d ...", flush=True)
        row = Row("wfss", f"NIRISS WFSS {n} sources x {args.exposures} exposures", n,
                  {"from _cal": run_spec3c(sim.asn_path, work / "from_cal"),
                   "from _x1d": run_spec3c(sim.x1d_asn_path, work / "from_x1d")})
        if reference and n in args.reference_sources:
            print(f"wfss {n} sources: jwst calwebb_spec3 from _cal ...", flush=True)
            row.ref = measure_reference(sim.asn_path, work / "jwst", timeout=args.reference_timeout)
            if row.ref.ok:
                row.agreement = spectra_agreement(work / "from_cal", work / "jwst")
        rows.append(row)
    _extrapolate_reference(rows)
    return rows


def _extrapolate_reference(rows: list[Row]) -> None:
    """jwst's seconds for the rows it did not run: linear in sources through its measured runs."""
    points = [(r.units, r.ref.wall_seconds) for r in rows if r.ref is not None and r.ref.ok]
    if not points:
        return
    (n0, t0), (n1, t1) = points[0], points[-1]
    slope = (t1 - t0) / (n1 - n0) if n1 != n0 else t1 / n1
    for row in rows:
        if row.ref is None:
            row.ref_extrapolated = t1 + slope * (row.units - n1)


def soss_rows(args: argparse.Namespace) -> list[Row]:
    from spec3c.simulate import SimOptions, simulate

    work = (args.workdir / f"soss{args.integrations}").resolve()
    shutil.rmtree(work, ignore_errors=True)
    sim = simulate("niriss-soss", work / "input", SimOptions(seed=11, n_integrations=args.integrations))
    steps = _soss_steps(sim)
    print(f"soss {args.integrations} integrations: spec3c (ATOCA) ...", flush=True)
    row = Row("soss", f"NIRISS SOSS {args.integrations} integrations, ATOCA", args.integrations,
              {"run": run_spec3c(sim.asn_path, work / "spec3c", steps)})
    if not args.no_reference and load_oracle().jwst_python() is not None:
        print("soss: jwst calwebb_spec3 (ATOCA) ...", flush=True)
        row.ref = measure_reference(sim.asn_path, work / "jwst", steps=steps, timeout=args.reference_timeout)
        if row.ref.ok:
            row.agreement = spectra_agreement(work / "spec3c", work / "jwst")
    return [row]


def _soss_steps(sim: Any) -> dict[str, dict[str, Any]]:
    """The simulator's SOSS reference files for both pipelines (PASTASOSS, SPECPROFILE, SPECKERNEL,
    PHOTOM), ATOCA on."""
    files = sim.reference_files
    refs = {f"override_{k}": str(files[k]) for k in ("pastasoss", "specprofile", "speckernel")}
    return {"extract_1d": {"soss_atoca": True, **refs},
            "photom": {"override_photom": str(files["photom"]), "override_area": "N/A"}}


def print_table(rows: list[Row]) -> None:
    head = (f"{'case':<44} {'run':<10} {'spec3c s':>9} {'MiB':>7} {'jwst s':>9} {'MiB':>7} "
            f"{'speed-up':>9} {'mem':>6} {'target':>7} {'per unit ours/jwst (s)':>24} {'agreement':>10}")
    print("\n" + head + "\n" + "-" * len(head))
    for row in rows:
        ref = row.ref if row.ref is not None and row.ref.ok else None
        ref_s = ref.wall_seconds if ref else (row.ref_extrapolated or float("nan"))
        ref_text = f"{ref_s:>9.1f}" if ref or row.ref_extrapolated is None else f"{'~' + format(ref_s, '.0f'):>9}"
        for label, ours in row.ours.items():
            speed = ref_s / ours.seconds if ours.returncode == 0 else float("nan")
            mem = ours.peak_pss_mb / ref.peak_pss_mb if ref else float("nan")
            target = TARGETS[row.case]
            met = "met" if speed >= target else ("no" if np.isfinite(speed) else "-")
            per = f"{ours.seconds / row.units:.3f}/" + (f"{ref_s / row.units:.3f}" if np.isfinite(ref_s) else "-")
            failed = "" if ours.returncode == 0 else f" (exit {ours.returncode})"
            print(f"{row.size:<44} {label:<10} {ours.seconds:>9.1f} {ours.peak_pss_mb:>7.0f} "
                  f"{ref_text} {(ref.peak_pss_mb if ref else float('nan')):>7.0f} "
                  f"{speed:>8.1f}x {mem:>6.2f} {target:>5.0f}x {met:<3}{per:>21} {row.agreement:>10.2e}{failed}")
        if row.ref is not None and not row.ref.ok:
            print(f"  jwst failed or was stopped (exit {row.ref.returncode}); log {row.ref.log_path}")
    if any(r.ref_extrapolated is not None for r in rows):
        print("~ jwst extrapolated linearly in sources from its measured runs")
    _print_scaling(rows)


def _print_scaling(rows: list[Row]) -> None:
    """Marginal cost per source between the smallest and largest WFSS runs (fixed costs removed)."""
    wfss = [r for r in rows if r.case == "wfss"]
    if len(wfss) < 2:
        return
    lo, hi = wfss[0], wfss[-1]
    dn = hi.units - lo.units
    for label in lo.ours:
        dt = hi.ours[label].seconds - lo.ours[label].seconds
        print(f"wfss spec3c {label}: {dt / dn * 1000:.1f} ms per additional source")
    measured = [r for r in wfss if r.ref is not None and r.ref.ok]
    if len(measured) >= 2:
        a, b = measured[0], measured[-1]
        per = (b.ref.wall_seconds - a.ref.wall_seconds) / (b.units - a.units)  # type: ignore[union-attr]
        print(f"wfss jwst from _cal: {per * 1000:.1f} ms per additional source ({a.units} -> {b.units} sources)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="wfss,soss")
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument("--exposures", type=int, default=4)
    parser.add_argument("--scaling", default="100", help="Smaller WFSS source counts spec3c also runs (comma-separated).")
    parser.add_argument("--reference-sources", default="50,100",
                        help="WFSS source counts jwst runs (comma-separated); extrapolated to the others.")
    parser.add_argument("--integrations", type=int, default=100)
    parser.add_argument("--workdir", type=Path, default=Path("bench_out/slitless"))
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--reference-timeout", type=float, default=None)
    args = parser.parse_args()
    args.scaling = [int(n) for n in args.scaling.split(",") if n]
    args.reference_sources = [int(n) for n in args.reference_sources.split(",") if n]
    rows: list[Row] = []
    for case in [c.strip() for c in args.cases.split(",") if c.strip()]:
        if case not in ("wfss", "soss"):
            sys.exit(f"unknown case {case!r}: wfss or soss")
        rows += wfss_rows(args) if case == "wfss" else soss_rows(args)
    print_table(rows)


if __name__ == "__main__":
    main()
