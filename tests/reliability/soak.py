"""``make soak``: many seeded kill trials (``harness.py``) on a small simulated association.

    python tests/reliability/soak.py --trials 50 [--seed 1000] [--workdir DIR] [--keep]

Each trial SIGKILLs ``spec3c run``, ``ingest``, ``process`` or ``export`` (the
whole process tree) at a random moment, runs it again and finishes the
pipeline, then compares the products with an uninterrupted run and checks the
store.  Prints one line per trial and the totals: trials run, what the kills
interrupted, mismatches (the exit status is 1 if any).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import EXAMPLES, Baseline, run_trial  # noqa: E402

from spec3c.simulate import SimOptions, simulate  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1000, help="seed of the first trial (then +1 each)")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="spec3c-soak-", dir=args.workdir))
    try:
        return _soak(work, args.trials, args.seed)
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _soak(work: Path, trials: int, first_seed: int) -> int:
    start = time.perf_counter()
    sim = simulate("nirspec-fs", work / "in", SimOptions(seed=11, n_exposures=2, n_columns=100))
    aperture = f"--steps.extract_1d.override_extract1d={EXAMPLES / 'extract1d_nirspec_fs.json'}"
    (work / "baseline").mkdir()
    baseline = Baseline(sim.asn_path, work / "baseline", (aperture,)).build()
    times = ", ".join(f"{k} {v:.1f} s" for k, v in baseline.seconds.items())
    print(f"baseline: {times}; {len(baseline.data)} products", flush=True)
    killed_in: Counter[str] = Counter()
    commands: Counter[str] = Counter()
    failures = []
    for seed in range(first_seed, first_seed + trials):
        result = run_trial(baseline, seed, work / f"trial-{seed}")
        killed_in[result.killed_in] += 1
        commands[result.phase] += 1
        verdict = "ok" if result.ok else "MISMATCH " + "; ".join(result.differences + result.check_problems)
        print(f"seed {seed}: {result.phase:<7} workers {result.workers} killed {result.kill} "
              f"({result.killed_in}), {result.seconds:.0f} s: {verdict}", flush=True)
        if not result.ok:
            failures.append(seed)
        else:
            shutil.rmtree(work / f"trial-{seed}", ignore_errors=True)
    print(f"\ntrials: {trials} in {time.perf_counter() - start:.0f} s")
    print("commands killed: " + ", ".join(f"{k} {v}" for k, v in sorted(commands.items())))
    print("killed during:   " + ", ".join(f"{k} {v}" for k, v in killed_in.most_common()))
    print(f"mismatches:      {len(failures)}" + (f" (seeds {failures})" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
