"""The kill harness: run spec3c commands, SIGKILL them at a random moment, run again, compare.

Used by ``test_kill.py`` (a handful of trials) and ``soak.py`` (``make
soak``, 50 or more).  One :class:`Baseline` is an uninterrupted run of the
stages (ingest, process, export) on a small simulated association, with the
store kept after each stage; a :class:`Trial` starts one command in its own
process group, kills the whole group at a seeded random moment, runs the
command again, completes the remaining stages, and then compares:

* the products with the baseline's, HDU by HDU (every array and table byte
  for byte; the ASDF extension without its history and dates);
* the store with ``spec3c check`` (every committed exposure complete, every
  result readable, no leftover of the killed writer).
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

from spec3c.parallel import INLINE_BYTES_ENV

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
#: the four commands a trial can kill
PHASES = ("run", "ingest", "process", "export")

#: the aperture file of the simulated NIRSpec fixed slits
FS_APERTURES = f"--steps.extract_1d.override_extract1d={EXAMPLES / 'extract1d_nirspec_fs.json'}"


def asn_of(folder: Path) -> Path:
    """The association file in ``folder``."""
    return next(folder.glob("*_asn.json"))


def spec3c_command(*args: str | Path) -> list[str]:
    """The command line of ``spec3c ARGS`` with this interpreter."""
    return [sys.executable, "-m", "spec3c.cli", *map(str, args)]


def pool_env(workers: int | str) -> dict[str, str] | None:
    """The environment of a command with ``workers`` > 1: worker processes even for this small data set
    (spec3c runs small ones in its own process), so the kills also hit a process pool."""
    return {**os.environ, INLINE_BYTES_ENV: "0"} if int(workers) > 1 else None


def run_spec3c(*args: str | Path, timeout: float = 600, env: dict[str, str] | None = None,
               check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``spec3c ARGS`` to completion (an AssertionError with its output if it fails and ``check``)."""
    res = subprocess.run(spec3c_command(*args), capture_output=True, text=True, timeout=timeout,
                         env=env, check=False)
    if check:
        assert res.returncode == 0, f"spec3c {' '.join(map(str, args))}: exit {res.returncode}\n{res.stderr[-3000:]}"
    return res


# -- what is compared -------------------------------------------------------------

def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """``{relative path: (size, sha256)}`` of every file under ``folder`` (hidden ones too)."""
    out = {}
    for path in sorted(folder.rglob("*")) if folder.exists() else []:
        if path.is_file() and not path.is_symlink():
            out[str(path.relative_to(folder))] = (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
    return out


_VOLATILE = re.compile(rb"^\s*(date|_fits_hash|time): .*$", re.MULTILINE)


def _asdf_digest(raw: bytes) -> str:
    """The ASDF extension without its ``history`` block (software list, in use order) and dates."""
    start, end = raw.find(b"\nhistory:"), raw.find(b"\n", raw.find(b"\nhistory:") + 1)
    if start >= 0:  # drop the indented history block
        lines = raw[end + 1:].split(b"\n")
        rest = [i for i, line in enumerate(lines) if line and not line.startswith((b" ", b"-"))]
        raw = raw[:start] + b"\n" + b"\n".join(lines[rest[0]:] if rest else [])
    return hashlib.sha256(_VOLATILE.sub(b"", raw)).hexdigest()


def hdu_digests(path: Path) -> dict[str, str]:
    """``{EXTNAME,EXTVER: sha256 of the data}`` for every HDU of a FITS file."""
    out = {}
    with fits.open(path, memmap=False) as hdul:
        for index, hdu in enumerate(hdul):
            key = f"{index}:{hdu.name},{hdu.ver}"
            data = hdu.data
            if data is None:
                out[key] = "-"
            elif hdu.name == "ASDF":
                out[key] = _asdf_digest(np.asarray(data[data.columns[0].name][0]).tobytes())
            else:
                out[key] = hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()
    return out


def product_data(folder: Path) -> dict[str, dict[str, str]]:
    """``{product name: hdu_digests}`` of every FITS product in ``folder``."""
    return {p.name: hdu_digests(p) for p in sorted(folder.glob("*.fits"))}


def data_differences(ours: dict[str, dict[str, str]], ref: dict[str, dict[str, str]],
                     ignore: tuple[str, ...] = ()) -> list[str]:
    """What differs between two :func:`product_data` results (empty: identical); HDUs named in
    ``ignore`` are not compared."""
    diffs = [f"missing {n}" for n in sorted(set(ref) - set(ours))]
    diffs += [f"extra {n}" for n in sorted(set(ours) - set(ref))]
    for name in sorted(set(ours) & set(ref)):
        diffs += [f"{name} HDU {k}" for k in sorted(set(ours[name]) | set(ref[name]))
                  if ours[name].get(k) != ref[name].get(k) and k.split(":")[1].split(",")[0] not in ignore]
    return diffs


def temporaries(folder: Path) -> list[Path]:
    """Temporary files of product writes left in ``folder``."""
    return sorted(folder.glob(".*.tmp"))


# -- the baseline ------------------------------------------------------------------

@dataclass
class Baseline:
    """An uninterrupted ingest, process and export of ``asn``, its stores and timings."""

    asn: Path
    root: Path
    args: tuple[str, ...]
    seconds: dict[str, float] = field(default_factory=dict)
    #: paths (files and folders) each stage adds
    writes: dict[str, int] = field(default_factory=dict)

    @property
    def ingested(self) -> Path:
        return self.root / "ingested.store"

    @property
    def processed(self) -> Path:
        return self.root / "processed.store"

    @property
    def products(self) -> Path:
        return self.root / "products"

    def build(self, workers: int = 2) -> Baseline:
        """Run the three stages; time them and count the files each leaves (store and products)."""
        store = self.root / "work.store"
        for phase, args in (("ingest", ("ingest", self.asn, "--store", store)),
                            ("process", ("process", store, "--workers", workers, *self.args)),
                            ("export", ("export", store, "-o", self.products, "--workers", workers))):
            before = _paths(self.root)
            t0 = time.perf_counter()
            run_spec3c(*args, env=pool_env(workers))
            self.seconds[phase] = time.perf_counter() - t0
            self.writes[phase] = len(_paths(self.root) - before)
            if phase != "export":
                shutil.copytree(store, self.ingested if phase == "ingest" else self.processed)
        self.seconds["run"] = sum(self.seconds.values())
        self.writes["run"] = sum(self.writes.values())
        shutil.rmtree(store)
        self.data = product_data(self.products)
        return self


def _paths(folder: Path) -> set[str]:
    """Every path under ``folder`` (files and folders; a folder may vanish while it is walked)."""
    found = set()
    for parent, dirs, files in os.walk(folder):
        found.update(os.path.join(parent, name) for name in (*dirs, *files))
    return found


# -- one trial ---------------------------------------------------------------------

@dataclass
class TrialResult:
    seed: int
    phase: str
    workers: int
    kill: Kill
    killed_in: str  # what the killed command was doing: a stage, "startup" or "after completion"
    differences: list[str]
    check_problems: list[str]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.differences and not self.check_problems


def _killed_in(phase: str, store: Path, out: Path, baseline: Baseline, unchanged: bool) -> str:
    """Which stage a kill interrupted, from what it left behind."""
    from spec3c.results import STATUS
    from spec3c.store import open_store

    if unchanged:
        return "startup (nothing written yet)"
    if not (store / "spec3c-store.json").exists():
        return "ingest (creating the store)"
    with open_store(baseline.processed) as ref, open_store(store) as st:
        n_exposures, sources = len(ref.list_exposures()), ref.sources()
        if len(st.list_exposures()) < n_exposures:
            return "ingest"
        done = {s for s, k in st.list_results() if k == STATUS}
    if phase == "ingest":
        return "ingest (consolidating)"
    if not set(sources) <= done:
        return "process"
    if phase == "process" or not out.exists():
        return "process (consolidating)"
    return "export"


def _kill_group(proc: subprocess.Popen[bytes], when: Kill, work: Path) -> bool:
    """SIGKILL the process group of ``proc`` at the moment ``when`` names; True if it had finished by then."""
    start, before = time.perf_counter(), _paths(work)
    while proc.poll() is None:
        elapsed = time.perf_counter() - start
        if when.after_writes:
            if len(_paths(work) - before) >= when.after_writes:
                time.sleep(when.seconds)
                break
        elif elapsed >= when.seconds:
            break
        time.sleep(0.005)
    if proc.poll() is not None:
        return True
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return False


@dataclass(frozen=True)
class Kill:
    """When to kill: ``seconds`` after the start, or (``after_writes``) that long after the
    command has added that many paths to the trial's folder."""

    seconds: float
    after_writes: int = 0

    def __str__(self) -> str:
        if self.after_writes:
            return f"{self.seconds * 1000:.0f} ms after write {self.after_writes}"
        return f"at {self.seconds:.2f} s"


def draw_kill(rng: random.Random, baseline: Baseline, phase: str, targeted: bool | None = None) -> Kill:
    """A kill at a uniform time, or (``targeted``) just after a uniformly chosen write of the
    command, past its start-up; ``None``: either, half the time each."""
    if targeted is None:
        targeted = rng.random() >= 0.5
    if not targeted:
        return Kill(rng.uniform(0.0, 1.1 * baseline.seconds[phase]))
    return Kill(rng.uniform(0.0, 0.05), rng.randint(1, max(1, baseline.writes[phase])))


def _command(phase: str, baseline: Baseline, store: Path, out: Path, workers: int) -> list[str | Path]:
    w = ("--workers", str(workers))
    return {
        "run": ["run", baseline.asn, "-o", out, *w, *baseline.args],
        "ingest": ["ingest", baseline.asn, "--store", store],
        "process": ["process", store, *w, *baseline.args],
        "export": ["export", store, "-o", out, *w],
    }[phase]


def _complete(phase: str, baseline: Baseline, store: Path, out: Path, workers: int) -> None:
    """Run the killed command again, then the stages after it."""
    order = ["ingest", "process", "export"] if phase != "run" else ["run"]
    for stage in order[order.index(phase) if phase != "run" else 0:]:
        run_spec3c(*_command(stage, baseline, store, out, workers), env=pool_env(workers))


def run_trial(baseline: Baseline, seed: int, work: Path, phase: str | None = None,  # noqa: PLR0913
              workers: int | None = None, targeted: bool | None = None) -> TrialResult:
    """One seeded trial in ``work`` (created): kill, re-run, compare, check."""
    from spec3c.check import check_store

    rng = random.Random(seed)
    phase = phase or rng.choice(PHASES)
    workers = workers or rng.choice((1, 2))
    kill = draw_kill(rng, baseline, phase, targeted)
    work.mkdir(parents=True)
    out = work / "out"
    store = out / "spec3c.store" if phase == "run" else work / "trial.store"
    if phase in ("process", "export"):
        shutil.copytree(baseline.ingested if phase == "process" else baseline.processed, store)
    before = snapshot(work)
    t0 = time.perf_counter()
    proc = subprocess.Popen(spec3c_command(*_command(phase, baseline, store, out, workers)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env=pool_env(workers))
    finished = _kill_group(proc, kill, work)
    killed_in = ("after completion" if finished
                 else _killed_in(phase, store, out, baseline, snapshot(work) == before))
    _complete(phase, baseline, store, out, workers)
    differences = data_differences(product_data(out), baseline.data)
    differences += [f"temporary file left: {p.name}" for p in temporaries(out)]
    report = check_store(store)
    problems = [str(p) for p in report.problems] + [f"leftover {item}" for item in report.leftovers]
    return TrialResult(seed, phase, workers, kill, killed_in, differences, problems, time.perf_counter() - t0)
