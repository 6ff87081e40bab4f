"""Ingest benchmark: wall time, peak memory and store size for both backends.

    python benchmarks/bench_ingest.py [--n-sources 200] [--n-exposures 3] [--workdir bench_out]

Simulates a NIRSpec MOS association once, then runs ``spec3c ingest`` in a
fresh subprocess per backend (so peak RSS is that of the ingest alone) and a
second time to show the no-op re-ingest.  The reference pipeline has no
ingest stage; its equivalent cost (opening the MultiSlit files) is part of
the end-to-end benchmarks in bench_slit.py.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path


def run_timed(cmd: list[str]) -> tuple[float, str]:
    """Wall seconds and stdout of a command (exit on failure)."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"command failed: {' '.join(cmd)}\n{proc.stderr}")
    return time.perf_counter() - start, proc.stdout


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-sources", type=int, default=200)
    parser.add_argument("--n-exposures", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("bench_out/ingest"))
    args = parser.parse_args()
    spec3c = str(Path(sys.executable).with_name("spec3c"))
    sim = args.workdir / "input"
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    t0 = time.perf_counter()
    subprocess.run([spec3c, "simulate", "nirspec-mos", "--output-dir", str(sim), "--n-sources",
                    str(args.n_sources), "--n-exposures", str(args.n_exposures)], check=True,
                   capture_output=True)
    sim_seconds = time.perf_counter() - t0
    asn = next(sim.glob("*_asn.json"))
    input_bytes = sum(p.stat().st_size for p in sim.glob("*_cal.fits"))
    rows = []
    for backend in ("tiledb", "hdf5"):
        store = args.workdir / f"store-{backend}"
        # ru_maxrss of RUSAGE_CHILDREN is a running maximum: a fresh wrapper per
        # backend reports the peak of its one ingest child
        wall, out = run_timed([sys.executable, "-c", _CHILD, spec3c, str(asn), str(store), backend])
        peak = float(out.strip().splitlines()[-1])
        wall2, out2 = run_timed([spec3c, "ingest", str(asn), "--store", str(store)])
        rows.append((backend, wall, peak, dir_size(store), wall2, "nothing to do" in out2))
    print(f"\nNIRSpec MOS: {args.n_sources} sources x {args.n_exposures} exposures; "
          f"input {input_bytes / 2**20:.1f} MiB of _cal.fits (simulated in {sim_seconds:.1f} s)\n")
    print(f"{'backend':8} {'ingest s':>9} {'peak MiB':>9} {'store MiB':>10} {'store/input':>12} "
          f"{'re-ingest s':>12} {'no-op':>6}")
    for backend, wall, peak, size, wall2, noop in rows:
        print(f"{backend:8} {wall:9.1f} {peak:9.0f} {size / 2**20:10.1f} {size / input_bytes:12.2f} "
              f"{wall2:12.1f} {str(noop):>6}")


_CHILD = """
import resource, subprocess, sys
spec3c, asn, store, backend = sys.argv[1:]
subprocess.run([spec3c, "ingest", asn, "--store", store, "--backend", backend], check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0)
"""

if __name__ == "__main__":
    main()
