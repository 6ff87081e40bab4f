"""IFU end to end (issue 14): ``spec3c run`` vs jwst calwebb_spec3 on the same simulated inputs.

    python benchmarks/bench_ifu.py [--cases mrs,nirspec-ifu] [--workdir bench_out/ifu]
        [--no-reference] [--reuse] [--small] [--reference-timeout S] [--reference-max-mb M]

Cases (spec3c's simulator, with the CUBEPAR/EXTRACT1D/APCORR/MRSPTCORR files
it writes beside the ASN; both pipelines get the same step parameters:
those files, ``cube_build.output_type=band``, ``extract_1d.apply_apcorr=True``,
``extract_1d.ifu_rfcorr=False``):

* ``mrs``: MIRI MRS, 4 dithers x 12 sub-bands (channels 1-4 x SHORT/MEDIUM/LONG,
  24 ``_cal`` files), 12 band cubes;
* ``nirspec-ifu``: NIRSpec IFU G395H, 4 dithers x NRS1+NRS2 full 2048-column
  detectors, one cube.

``--small``: 2 dithers, MRS channels 1+2 SHORT only, NIRSpec 128 columns (a smoke test).

spec3c: one ``spec3c run ASN -o OUT`` (ingest, process, export; 2 workers)
in a fresh process; jwst: one ``calwebb_spec3`` call as ``oracle.py`` makes
it.  Both are measured by ``measure.py``: wall time and peak PSS summed over
the process tree, sampled every 50 ms.  Printed: one table with both, their
ratios, the agreement (x1d: median and max over spectra of the median
|dFLUX|/FLUX; s3d: median and max of |dSCI|/|SCI| over voxels with WMAP > 0
on both sides and SCI/ERR > 5 in the reference, cubes of equal shape) and the
issue's targets (>= 10x faster end to end, <= 1/4 of the reference's peak
memory), met or not per case.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from measure import Measured, ReferenceMeasured, load_oracle, measure, measure_reference  # noqa: E402

SPEED_TARGET, MEMORY_TARGET = 10.0, 0.25


@dataclass(frozen=True)
class Case:
    mode: str
    full: dict[str, Any]
    small: dict[str, Any]
    label: str


CASES = {
    "mrs": Case("miri-mrs", {"seed": 3, "n_exposures": 4, "channels": (1, 2, 3, 4),
                             "bands": ("SHORT", "MEDIUM", "LONG")},
                {"seed": 3, "n_exposures": 2, "channels": (1, 2), "bands": ("SHORT",)},
                "MIRI MRS, {n} dithers x {bands} sub-bands, band cubes"),
    "nirspec-ifu": Case("nirspec-ifu", {"seed": 21, "n_exposures": 4, "n_columns": 2048},
                        {"seed": 21, "n_exposures": 2, "n_columns": 128},
                        "NIRSpec IFU G395H, {n} dithers x NRS1+NRS2, {cols} columns"),
}


def simulated_inputs(case: Case, work: Path, small: bool, reuse: bool) -> Path:
    """The case's ASN in ``work/input``: simulated unless ``reuse`` finds one made with the same options."""
    from spec3c.simulate import SimOptions, simulate

    options = SimOptions(**(case.small if small else case.full))
    stamp = work / "input" / "options.txt"
    if reuse and stamp.exists() and stamp.read_text() == repr(options):
        return next((work / "input").glob("*_asn.json"))
    shutil.rmtree(work / "input", ignore_errors=True)
    asn = simulate(case.mode, work / "input", options).asn_path
    stamp.write_text(repr(options))
    return asn


def step_parameters(mode: str, asn: Path) -> dict[str, dict[str, Any]]:
    """The simulator's reference files, band cubes, aperture correction on, no residual fringe correction."""
    if mode == "miri-mrs":
        from spec3c.simulate.miri.mrs import reference_file_paths
    else:
        from spec3c.simulate.nirspec.ifu import reference_file_paths
    steps = reference_file_paths(asn).jwst_overrides()
    steps["extract_1d"].update(apply_apcorr=True, ifu_rfcorr=False)
    steps["cube_build"]["output_type"] = "band"
    return steps


def run_spec3c(asn: Path, steps: dict[str, dict[str, Any]], work: Path) -> Measured:
    """``spec3c run`` in a fresh process (its store is kept in the output folder)."""
    out = work / "spec3c"
    shutil.rmtree(out, ignore_errors=True)
    exe = str(Path(sys.executable).with_name("spec3c"))
    cmd = [exe, "run", str(asn), "--output-dir", str(out), "--workers", "2"]
    cmd += [f"--steps.{step}.{k}={v}" for step, pars in steps.items() for k, v in pars.items()]
    return measure(cmd, work / "spec3c.log", check=False)


def run_jwst(asn: Path, steps: dict[str, dict[str, Any]], work: Path, args: argparse.Namespace
             ) -> ReferenceMeasured:
    """The reference run, or with ``--reuse`` the figures of an earlier complete one."""
    out, saved = work / "jwst", work / "jwst" / "measured.json"
    if args.reuse and saved.exists():
        data = json.loads(saved.read_text())
        if data["returncode"] == 0 and data["steps"] == json.loads(json.dumps(steps)):
            return ReferenceMeasured(data["wall_seconds"], data["peak_pss_mb"], 0, out / "oracle.log",
                                     load_oracle().find_products(out))
    shutil.rmtree(out, ignore_errors=True)
    run = measure_reference(asn, out, steps=steps, timeout=args.reference_timeout, max_mb=args.reference_max_mb)
    record = {k: v for k, v in asdict(run).items() if k in ("wall_seconds", "peak_pss_mb", "returncode", "stopped")}
    saved.write_text(json.dumps({**record, "steps": steps}, indent=1))
    return run


def x1d_agreement(ours: Path, ref: Path) -> tuple[float, float, int, list[str]]:
    """(median, max) over the reference's x1d of the median |dFLUX|/FLUX; spectra compared; names missing."""
    from astropy.io import fits

    medians, missing = [], []
    for ref_file in sorted(ref.glob("*_x1d.fits")):
        mine = ours / ref_file.name
        if not mine.exists():
            missing.append(ref_file.name)
            continue
        with fits.open(ref_file) as a, fits.open(mine) as b:
            for ha, hb in zip(_spectra(a), _spectra(b), strict=False):
                rw, rf = np.asarray(ha["WAVELENGTH"], float), np.asarray(ha["FLUX"], float)
                mf = np.interp(rw, np.asarray(hb["WAVELENGTH"], float), np.asarray(hb["FLUX"], float),
                               left=np.nan, right=np.nan)
                ok = np.isfinite(rf) & np.isfinite(mf) & (rf != 0)
                if ok.any():
                    medians.append(float(np.median(np.abs(mf[ok] - rf[ok]) / np.abs(rf[ok]))))
    if not medians:
        return float("nan"), float("nan"), 0, missing
    return float(np.median(medians)), float(np.max(medians)), len(medians), missing


def _spectra(hdul) -> list:  # type: ignore[no-untyped-def]
    return [h.data for h in hdul if h.name == "EXTRACT1D"]


def s3d_agreement(ours: Path, ref: Path) -> tuple[float, float, int, list[str]]:
    """(median, max) |dSCI|/|SCI| over the selected voxels of all cubes; cubes compared; cubes skipped."""
    from astropy.io import fits

    rel, skipped = [], []
    for ref_file in sorted(ref.glob("*_s3d.fits")):
        mine = ours / ref_file.name
        if not mine.exists():
            skipped.append(f"{ref_file.name} (missing)")
            continue
        with fits.open(ref_file) as a, fits.open(mine) as b:
            if a["SCI"].data.shape != b["SCI"].data.shape:
                skipped.append(f"{ref_file.name} (shape {b['SCI'].data.shape} vs {a['SCI'].data.shape})")
                continue
            r = _voxel_rel(a, b)
        if r.size:
            rel.append(r)
    if not rel:
        return float("nan"), float("nan"), 0, skipped
    allrel = np.concatenate(rel)
    return float(np.median(allrel)), float(np.max(allrel)), len(rel), skipped


def _voxel_rel(a, b) -> np.ndarray:  # type: ignore[no-untyped-def]
    """|dSCI|/|SCI| over voxels with WMAP > 0 on both sides and reference S/N > 5."""
    rs, re_, ms = (np.asarray(h, float) for h in (a["SCI"].data, a["ERR"].data, b["SCI"].data))
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = (a["WMAP"].data > 0) & (b["WMAP"].data > 0) & np.isfinite(rs) & np.isfinite(ms) & (rs / re_ > 5)
    return np.abs(ms[ok] - rs[ok]) / np.abs(rs[ok])


def describe(name: str, case: Case, asn: Path, small: bool) -> str:
    opts = case.small if small else case.full
    cal = json.loads(asn.read_text())["products"][0]["members"]
    size = sum((asn.parent / m["expname"]).stat().st_size for m in cal) / 2**30
    text = case.label.format(n=opts["n_exposures"], bands=len(opts.get("channels", ())) * len(opts.get("bands", ())),
                             cols=opts.get("n_columns"))
    return f"{name}: {text}; {len(cal)} _cal files, {size:.2f} GiB"


def run_case(name: str, args: argparse.Namespace) -> dict[str, Any]:
    case = CASES[name]
    work = (args.workdir / (f"{name}-small" if args.small else name)).resolve()
    work.mkdir(parents=True, exist_ok=True)
    asn = simulated_inputs(case, work, args.small, args.reuse)
    steps = step_parameters(case.mode, asn)
    print(f"{name}: spec3c run ...", flush=True)
    row: dict[str, Any] = {"name": name, "about": describe(name, case, asn, args.small),
                           "ours": run_spec3c(asn, steps, work), "log": work / "spec3c.log"}
    if row["ours"].returncode != 0:
        return row
    if not args.no_reference and load_oracle().jwst_python() is not None:
        print(f"{name}: jwst calwebb_spec3 ...", flush=True)
        row["ref"] = ref = run_jwst(asn, steps, work, args)
        if ref.products.get("x1d") or ref.products.get("s3d"):
            row["x1d"] = x1d_agreement(work / "spec3c", work / "jwst")
            row["s3d"] = s3d_agreement(work / "spec3c", work / "jwst")
    return row


def _cells(row: dict[str, Any]) -> list[str]:
    ours, ref = row["ours"], row.get("ref")
    cells = [row["name"], f"{ours.seconds:.1f}", f"{ours.peak_pss_mb:.0f}"]
    if ours.returncode != 0:
        return [*cells, f"spec3c failed ({ours.returncode}), log {row['log']}"]
    if ref is None:
        return cells
    # a stopped reference: its time and memory are lower bounds
    lower, upper = (">", "<") if ref.returncode != 0 else ("", "")
    speed, mem = ref.wall_seconds / ours.seconds, ours.peak_pss_mb / ref.peak_pss_mb
    x1d, s3d = row.get("x1d", (np.nan,) * 3), row.get("s3d", (np.nan,) * 3)
    cells += [f"{lower}{ref.wall_seconds:.1f}", f"{ref.peak_pss_mb:.0f}", f"{lower}{speed:.1f}x", f"{upper}{mem:.3f}",
              f"{x1d[0]:.1e} / {x1d[1]:.1e} ({x1d[2]})", f"{s3d[0]:.1e} / {s3d[1]:.1e} ({s3d[2]})"]
    met = (speed >= SPEED_TARGET, mem <= MEMORY_TARGET)
    return [*cells, " ".join(f"{what} {'met' if ok else 'NOT met'}" for what, ok in zip(("speed", "memory"), met,
                                                                                      strict=True))]


HEAD = ["case", "spec3c s", "spec3c MiB", "jwst s", "jwst MiB", "speed-up", "MiB ratio",
        "x1d |dF|/F med / max (n)", "s3d |dSCI|/SCI med / max (n)", "targets (>=10x, <=1/4 memory)"]


def print_table(rows: list[dict[str, Any]]) -> None:
    print("\nIFU end to end, 2 cores; peak memory = PSS summed over the process tree (sampled every 50 ms)")
    for row in rows:
        print(f"  {row['about']}")
    table = [HEAD, *(_cells(r) for r in rows)]
    widths = [max(len(r[i]) for r in table if i < len(r)) for i in range(len(HEAD))]
    print()
    for r in table:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=False))))
    print()
    for row in rows:
        _notes(row)


def _notes(row: dict[str, Any]) -> None:
    ref = row.get("ref")
    if ref is not None and ref.returncode != 0:
        print(f"{row['name']}: jwst stopped ({ref.stopped or f'returncode {ref.returncode}'}) after "
              f"{ref.wall_seconds:.0f} s at {ref.peak_pss_mb:.0f} MiB; log {ref.log_path}")
    for key in ("x1d", "s3d"):
        if key in row and row[key][3]:
            print(f"{row['name']}: {key} not compared: {', '.join(row[key][3])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="mrs,nirspec-ifu", help=f"Comma-separated, of {', '.join(CASES)}.")
    parser.add_argument("--workdir", type=Path, default=Path("bench_out/ifu"))
    parser.add_argument("--no-reference", action="store_true", help="Time spec3c only.")
    parser.add_argument("--reuse", action="store_true",
                        help="Reuse simulated inputs and a complete reference run of an earlier run in --workdir.")
    parser.add_argument("--small", action="store_true", help="2 dithers, MRS 1A+2A only, NIRSpec 128 columns.")
    parser.add_argument("--reference-timeout", type=float, default=None, help="Stop jwst after this many seconds.")
    parser.add_argument("--reference-max-mb", type=float, default=None, help="Stop jwst above this peak PSS (MiB).")
    args = parser.parse_args()
    names = [n for n in args.cases.split(",") if n]
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {unknown}; known: {sorted(CASES)}")
    print_table([run_case(n, args) for n in names])


if __name__ == "__main__":
    main()
