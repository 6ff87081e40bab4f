"""NIRSpec MOS end to end: ``spec3c run`` vs jwst calwebb_spec3.

    python benchmarks/bench_slit.py [--sizes 50,200] [--n-columns 2048] [--workdir bench_out/slit] [--no-reference]

For each size: simulate MOS (N sources x 3 exposures, cutouts ``--n-columns``
long along the dispersion: 2048, a full detector row, as issue 9's cases;
the simulator's default is 800), write one EXTRACT1D
aperture file used by both pipelines (NRS_MSASPEC, width 5, centred on the
source), run ``spec3c run`` (ingest, process and export in one command, as
the reference is one call; 2 workers) and the reference in fresh processes,
and print one table: wall time and peak memory (PSS summed over the process
tree, sampled every 50 ms by ``measure.py``, both pipelines) of each, their
ratio, spec3c's stages (from its ``run:`` line; start-up is the rest of the
wall time), and the agreement of products — per-source median |dflux|/flux
of x1d for sources with S/N > 10 (from the simulator truth), and the s2d
relative difference over pixels with weight > 0.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from measure import Measured, load_oracle, measure, measure_reference  # noqa: E402

__all__ = ["run_spec3c", "s2d_agreement", "x1d_agreement"]  # bench_scale.py uses the agreement measures

APERTURE = {"id": "NRS_MSASPEC", "region_type": "target", "disp_axis": 1, "extract_width": 5,
            "use_source_posn": True}


@dataclass
class SpecRun:
    """One ``spec3c run``: measured, and its stages' seconds as it reports them."""

    measured: Measured
    stages: dict[str, float]

    @property
    def startup(self) -> float:
        """Seconds before ingest and between the stages (imports, starting the workers)."""
        return self.measured.seconds - sum(self.stages.values())


def run_spec3c(asn: Path, aperture: Path, work: Path) -> SpecRun:
    exe = str(Path(sys.executable).with_name("spec3c"))
    out, log = work / "spec3c_out", work / "spec3c_run.log"
    shutil.rmtree(out, ignore_errors=True)
    measured = measure([exe, "run", str(asn), "--output-dir", str(out), "--workers", "2",
                        f"--steps.extract_1d.override_extract1d={aperture}"], log)
    return SpecRun(measured, _stages(log.read_text(errors="replace")))


def _stages(log: str) -> dict[str, float]:
    """``{"ingest": s, "process": s, "export": s}`` from the ``run: ingest 8.1 s, ...`` line."""
    line = next(x for x in reversed(log.splitlines()) if x.startswith("run: "))
    return {stage: float(sec) for stage, sec in re.findall(r"(\w+) ([0-9.]+) s", line)}


def x1d_agreement(ours: Path, ref: Path, truth) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """Median over S/N>10 sources of the per-source median |dflux|/flux, and the source count."""
    from stdatamodels.jwst import datamodels

    per_source = []
    for ref_file in sorted(ref.glob("*_x1d.fits")):
        mine = ours / ref_file.name
        if not mine.exists():
            continue
        with datamodels.open(ref_file) as r, datamodels.open(mine) as m:
            rs, ms = r.spec[0], m.spec[0]
            key = rs.source_name if rs.source_name else str(rs.source_id)
            src = truth.sources.get(key)
            if src is None or src.kind != "science" or src.snr_median <= 10:
                continue
            col = "FLUX" if src.source_type == "POINT" else "SURF_BRIGHT"
            rw, rf = rs.spec_table["WAVELENGTH"], rs.spec_table[col]
            mf = np.interp(rw, ms.spec_table["WAVELENGTH"], ms.spec_table[col], left=np.nan, right=np.nan)
            ok = np.isfinite(rf) & np.isfinite(mf) & (rf != 0)
            if ok.any():
                per_source.append(float(np.median(np.abs(mf[ok] - rf[ok]) / np.abs(rf[ok]))))
    return (float(np.median(per_source)) if per_source else float("nan")), len(per_source)


def s2d_agreement(ours: Path, ref: Path) -> tuple[float, float, int]:
    """(median, 95th percentile) of |dsci|/|sci_ref| over pixels with weight > 0, same-shape s2d pairs."""
    from stdatamodels.jwst import datamodels

    rel, pairs = [], 0
    for ref_file in sorted(ref.glob("*_s2d.fits")):
        mine = ours / ref_file.name
        if not mine.exists():
            continue
        with datamodels.open(ref_file) as r, datamodels.open(mine) as m:
            if r.data.shape != m.data.shape:
                continue
            ok = (r.wht > 0) & (m.wht > 0) & np.isfinite(r.data) & np.isfinite(m.data) & (r.data != 0)
            rel.append(np.abs(m.data[ok] - r.data[ok]) / np.abs(r.data[ok]))
            pairs += 1
    if not rel:
        return float("nan"), float("nan"), 0
    allrel = np.concatenate(rel)
    return float(np.median(allrel)), float(np.percentile(allrel, 95)), pairs


@dataclass
class _Sim:
    asn_path: Path
    truth_path: Path


@dataclass
class _LoggedRun:
    wall_seconds: float
    peak_pss_mb: float
    partial: int | None = None


def _existing_simulation(folder: Path) -> _Sim:
    return _Sim(next(folder.glob("*_asn.json")), next(folder.glob("*_truth.asdf")))


def _logged_reference(folder: Path) -> _LoggedRun:
    """Wall time of an earlier reference run from its log (ORACLE_TIMING line).

    A run that was stopped before the end has no such line: its wall time is
    then the span of the log's timestamps, a lower bound, and ``partial`` is
    the number of sources it finished.
    """
    text = (folder / "oracle.log").read_text(errors="replace").splitlines()
    for line in text:
        if line.startswith("ORACLE_TIMING"):
            parts = dict(item.split("=") for item in line.split()[1:])
            return _LoggedRun(float(parts["import"]) + float(parts["run"]), float("nan"))
    stamps = [datetime.strptime(x[:23], "%Y-%m-%d %H:%M:%S,%f") for x in text if x[:4].isdigit()]
    done = sum("Step extract_1d done" in x for x in text)
    return _LoggedRun((stamps[-1] - stamps[0]).total_seconds(), float("nan"), partial=done)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="50,200")
    parser.add_argument("--n-exposures", type=int, default=3)
    parser.add_argument("--n-columns", type=int, default=2048, help="Cutout length along the dispersion.")
    parser.add_argument("--workdir", type=Path, default=Path("bench_out/slit"))
    parser.add_argument("--no-reference", action="store_true", help="Time spec3c only.")
    parser.add_argument("--reuse-reference", action="store_true",
                        help="Keep the simulated inputs and reference products of an earlier run in --workdir "
                             "(reference wall time from its log; peak memory is not re-measured).")
    args = parser.parse_args()
    oracle = load_oracle()
    from spec3c.simulate import SimOptions, load_truth, simulate

    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        work = (args.workdir / f"mos{n}x{args.n_columns}").resolve()
        if args.reuse_reference:
            sim = _existing_simulation(work / "input")
        else:
            sim = simulate(
                "nirspec-mos",
                work / "input",
                SimOptions(seed=n, n_sources=n, n_exposures=args.n_exposures, n_columns=args.n_columns),
            )
        aperture = oracle.write_extract1d_json(work / "extract1d.json", [APERTURE])
        ours = run_spec3c(sim.asn_path, aperture, work)
        ref = None
        if args.reuse_reference:
            ref = _logged_reference(work / "reference")
        elif not args.no_reference and oracle.jwst_python() is not None:
            shutil.rmtree(work / "reference", ignore_errors=True)
            ref = measure_reference(sim.asn_path, work / "reference", extract1d=aperture)
        truth = load_truth(sim.truth_path)
        agree = (x1d_agreement(work / "spec3c_out", work / "reference", truth) + s2d_agreement(
            work / "spec3c_out", work / "reference")) if ref else None
        rows.append((n, ours, ref, agree))
    _print(rows, args.n_exposures, args.n_columns)


def _print(rows, n_exposures: int, n_columns: int) -> None:  # type: ignore[no-untyped-def]
    print(f"\nNIRSpec MOS, {n_exposures} exposures per source, {n_columns}-px cutouts, `spec3c run` with 2 workers, "
          "2 cores "
          "(peak = PSS summed over the process tree)\n")
    head = (f"{'sources':>7} {'start-up s':>10} {'ingest s':>9} {'process s':>10} {'export s':>9} "
            f"{'spec3c s':>9} {'spec3c MiB':>11} {'jwst s':>8} {'jwst MiB':>9} {'speed-up':>9} {'memory':>7} "
            f"{'x1d med|df|/f':>14} {'n':>4} {'s2d med':>9} {'s2d p95':>9} {'n':>4}")
    print(head)
    for n, ours, ref, agree in rows:
        m, st = ours.measured, ours.stages
        line = (f"{n:7d} {ours.startup:10.1f} {st.get('ingest', float('nan')):9.1f} "
                f"{st.get('process', float('nan')):10.1f} {st.get('export', float('nan')):9.1f} "
                f"{m.seconds:9.1f} {m.peak_pss_mb:11.0f}")
        if ref is not None:
            x1d, nx, s2d_med, s2d_95, ns = agree
            line += (f" {ref.wall_seconds:8.1f} {ref.peak_pss_mb:9.0f} {ref.wall_seconds / m.seconds:9.1f} "
                     f"{m.peak_pss_mb / ref.peak_pss_mb:7.2f} {x1d:14.1e} {nx:4d} {s2d_med:9.2e} {s2d_95:9.2e} {ns:4d}")
        print(line)
        if ref is not None and getattr(ref, "partial", None) is not None:
            print(f"{'':7} ^ the reference was stopped after {ref.partial} of {n} sources: its wall time "
                  "and the speed-ups are lower bounds; agreement is over the sources it finished")
    print("\nspeed-up: jwst wall / spec3c wall; memory: spec3c peak / jwst peak")


if __name__ == "__main__":
    main()
