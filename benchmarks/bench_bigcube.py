"""A ``multi`` IFU cube of more than 1e9 voxels, built within a memory budget (issue 14).

The reference's cube_build holds the whole cube (36 bytes per voxel) and
fails beyond ~1e9 voxels (jwst#9835).  spec3c builds a cube whose accumulator
does not fit in ``--max-memory`` in wavelength tiles kept in the store.  This
benchmark simulates MIRI MRS exposures (spec3c's simulator), ingests them and
runs ``spec3c process`` with ``output_type=multi`` and a small ``scalexy``,
then prints the cube's voxels, its wavelength tiles, and the wall time and
peak memory (PSS summed over the process tree, :mod:`measure`) of each command.

    python benchmarks/bench_bigcube.py                    # MRS ch1+ch2 SHORT, 2 dithers, scalexy 0.013"
    python benchmarks/bench_bigcube.py --scalexy 0.01 --max-memory 2GB --extract --reuse

``--extract`` also runs extract_1d on the cube (read tile by tile); the
``_s3d`` of such a cube is ~16 bytes per voxel on disk, so it is not exported
unless ``--export``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from measure import Measured, measure  # noqa: E402

LIMIT_MB = 4096.0
VOXELS_TARGET = 1e9


def simulated_asn(work: Path, exposures: int, reuse: bool) -> Path:
    """MIRI MRS ch1+ch2 SHORT (both on MIRIFUSHORT), ``exposures`` dithers, in ``work/input``."""
    from spec3c.simulate import SimOptions, simulate

    options = SimOptions(seed=3, n_exposures=exposures, channels=(1, 2), bands=("SHORT",))
    stamp = work / "input" / "options.txt"
    if reuse and stamp.exists() and stamp.read_text() == repr(options):
        return next((work / "input").glob("*_asn.json"))
    shutil.rmtree(work / "input", ignore_errors=True)
    asn = simulate("miri-mrs", work / "input", options).asn_path
    stamp.write_text(repr(options))
    return asn


def process_command(asn: Path, store: Path, args: argparse.Namespace) -> list[str]:
    from spec3c.simulate.miri.mrs import reference_file_paths

    steps = reference_file_paths(asn).jwst_overrides()
    steps["cube_build"].update(output_type="multi", scalexy=args.scalexy, max_memory=args.max_memory)
    steps["extract_1d"].update(ifu_rfcorr=False)
    exe = str(Path(sys.executable).with_name("spec3c"))
    cmd = [exe, "process", str(store)]
    cmd += [f"--steps.{step}.{k}={v}" for step, pars in steps.items() for k, v in pars.items()]
    skipped = ["outlier_detection", "spectral_leak"] + ([] if args.extract else ["extract_1d"])
    return cmd + [f"--skip={step}" for step in skipped]


def cube_figures(store: Path) -> tuple[str, tuple[int, int, int], int]:
    """Name, shape and number of wavelength tiles of the store's one cube."""
    import spec3c
    from spec3c.results import IfuCube

    with spec3c.open_store(store) as opened:
        name = IfuCube.names(opened, "1")[0]
        cube = IfuCube.load(opened, "1", name)
        return name, cube.shape, len(cube.tiles)


def row(label: str, m: Measured) -> str:
    ok = "" if m.returncode == 0 else f"  FAILED (exit {m.returncode})"
    return f"{label:<8} {m.seconds:8.1f} s  peak PSS {m.peak_pss_mb:7.0f} MiB{ok}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("bench_bigcube"))
    parser.add_argument("--exposures", type=int, default=2, help="Dithers simulated (default 2).")
    parser.add_argument("--scalexy", type=float, default=0.013,
                        help="Spaxel size, arcsec (default 0.013: ~1.2e9 voxels).")
    parser.add_argument("--max-memory", default="2.5GB", help="cube_build's memory budget (default 2.5GB).")
    parser.add_argument("--extract", action="store_true", help="Also run extract_1d on the cube.")
    parser.add_argument("--export", action="store_true", help="Also write the _s3d (large!).")
    parser.add_argument("--reuse", action="store_true", help="Reuse simulated inputs made with the same options.")
    args = parser.parse_args()

    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    asn = simulated_asn(work, args.exposures, args.reuse)
    store, out = work / "store", work / "out"
    shutil.rmtree(store, ignore_errors=True)
    exe = str(Path(sys.executable).with_name("spec3c"))
    runs = {"ingest": measure([exe, "ingest", str(asn), "--store", str(store)], work / "ingest.log", check=False)}
    runs["process"] = measure(process_command(asn, store, args), work / "process.log", check=False)
    if args.export and runs["process"].returncode == 0:
        shutil.rmtree(out, ignore_errors=True)
        runs["export"] = measure([exe, "export", str(store), "--output-dir", str(out), "--suffix", "s3d"],
                                 work / "export.log", check=False)
    for label, m in runs.items():
        print(row(label, m))
    if runs["process"].returncode != 0:
        print(f"process failed: see {work / 'process.log'}")
        sys.exit(1)
    name, shape, tiles = cube_figures(store)
    voxels = shape[0] * shape[1] * shape[2]
    peak = max(m.peak_pss_mb for m in runs.values())
    print(f"cube {name}: {'x'.join(map(str, shape))} = {voxels:.3e} voxels, {tiles} wavelength tiles, "
          f"max_memory {args.max_memory}")
    print(f"> 1e9 voxels: {'yes' if voxels > VOXELS_TARGET else 'NO'}; "
          f"peak PSS {peak:.0f} MiB < 4 GB: {'yes' if peak < LIMIT_MB else 'NO'}")


if __name__ == "__main__":
    main()
