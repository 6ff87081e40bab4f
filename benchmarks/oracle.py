"""Run the reference pipeline (jwst ``calwebb_spec3``) offline and measure it.

    python benchmarks/oracle.py ASN --output-dir D [--extract1d FILE] [--step STEP.PAR=VALUE ...]

jwst is never imported here: it runs in its own virtual environment
(``SPEC3C_JWST_PYTHON``, default ``/work/.venv-jwst/bin/python`` or
``<repo>/.venv-jwst/bin/python``) as a child process, with no CRDS server
(see ``docs/ORACLE.md``): a minimal CRDS cache, offline environment
variables and an override for every reference file of every step.

Importable (``from benchmarks.oracle import run_reference`` with the repo
root on ``sys.path``, or load the file by path)::

    run = run_reference(asn, "out", extract1d="ap.json",
                        steps={"outlier_detection": {"skip": True}})
    run.wall_seconds, run.peak_rss_mb, run.products["x1d"]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_OVERRIDES",
    "JWST_VERSION",
    "ReferenceRun",
    "ensure_jwst_venv",
    "find_products",
    "jwst_python",
    "make_crds_cache",
    "offline_env",
    "reference_steps",
    "run_reference",
    "write_extract1d_json",
]

JWST_VERSION = "3.0.0"
_REPO = Path(__file__).resolve().parent.parent
_CANDIDATES = (Path("/work/.venv-jwst/bin/python"), _REPO / ".venv-jwst" / "bin" / "python")

#: every reference type of every (possibly) executed spec3 step, set to "no file"
DEFAULT_OVERRIDES: dict[str, dict[str, Any]] = {
    "extract_1d": {
        "override_extract1d": "N/A",
        "override_apcorr": "N/A",
        "apply_apcorr": False,
        "override_psf": "N/A",
        "override_pastasoss": "N/A",
        "override_specprofile": "N/A",
        "override_speckernel": "N/A",
    },
    "photom": {"override_photom": "N/A", "override_area": "N/A"},
    "cube_build": {"override_cubepar": "N/A"},
    "spectral_leak": {"override_mrsptcorr": "N/A"},
}

# Runs inside the jwst venv: argv = asn, output_dir, steps JSON.
_CHILD = """\
import json, sys, time
t0 = time.perf_counter()
from jwst.pipeline import Spec3Pipeline
t1 = time.perf_counter()
asn, out, steps = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
Spec3Pipeline.call(asn, output_dir=out, save_results=True, steps=steps)
t2 = time.perf_counter()
print(f"ORACLE_TIMING import={t1 - t0:.3f} run={t2 - t1:.3f}", flush=True)
"""


def jwst_python() -> Path | None:
    """Python of the jwst venv, or None if absent.

    ``SPEC3C_JWST_PYTHON`` wins when set (an empty value disables the oracle);
    else the first of ``/work/.venv-jwst/bin/python`` and
    ``<repo>/.venv-jwst/bin/python`` that exists.
    """
    env = os.environ.get("SPEC3C_JWST_PYTHON")
    if env is not None:
        cands: tuple[Path, ...] = (Path(env),) if env.strip() else ()
    else:
        cands = _CANDIDATES
    for p in cands:
        if p.is_file() and os.access(p, os.X_OK):
            return p
    return None


def ensure_jwst_venv(path: str | Path, version: str = JWST_VERSION) -> Path:
    """Create a venv at ``path`` with ``jwst==version`` unless it has it; return its python.

    Only called on explicit request (it downloads ~40 packages).
    """
    venv = Path(path)
    py = venv / "bin" / "python"
    if py.is_file():
        probe = subprocess.run(
            [str(py), "-c", "import jwst; print(jwst.__version__)"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return py
    else:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", f"jwst=={version}"], check=True)
    return py


def make_crds_cache(folder: str | Path) -> Path:
    """Write the minimal CRDS cache of ORACLE.md into ``folder``; return ``folder``.

    With it (and :func:`offline_env`), a reference lookup that was not
    overridden fails with ``CrdsDownloadError`` instead of ``SystemExit``.
    """
    root = Path(folder)
    cfg_dir = root / "config" / "jwst"
    cfg_dir.mkdir(parents=True, exist_ok=True)
    null = {"jwst": "file:///dev/null"}
    server_config = {
        "observatory": "jwst",
        "operational_context": "jwst_offline.pmap",
        "edit_context": "jwst_offline.pmap",
        "bad_files": "",
        "bad_files_list": [],
        "force_remote_mode": False,
        "crds_version": {"str": "14.0.3"},
        "download_metadata": "",
        "last_synced": "2024-01-01 00:00:00",
        "reference_url": {"checked": dict(null), "unchecked": dict(null)},
        "mapping_url": {"checked": dict(null), "unchecked": dict(null)},
    }
    (cfg_dir / "server_config").write_text(repr(server_config) + "\n")
    return root


def offline_env(crds_cache: str | Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for an offline jwst run using the cache at ``crds_cache``."""
    env = dict(os.environ if base is None else base)
    env.update(
        CRDS_PATH=str(Path(crds_cache).resolve()),
        CRDS_MODE="local",
        CRDS_SERVER_URL="https://jwst-serverless-mode.invalid",
        STPIPE_DISABLE_CRDS_STEPPARS="true",
        PYTHONUNBUFFERED="1",
    )
    env.pop("PYTHONPATH", None)  # never leak spec3c's path into the jwst venv
    return env


def write_extract1d_json(
    path: str | Path,
    apertures: list[dict[str, Any]],
    *,
    instrument: str = "NIRSPEC",
    exp_type: str = "NRS_MSASPEC",
) -> Path:
    """Write a jwst-format EXTRACT1D JSON reference file.

    jwst 3.0.0 reads only ``apertures`` (a list matched by ``id`` == slit name,
    ``"ANY"``, or ``"NRS_MSASPEC"`` for resampled MOS spectra); each aperture
    may carry ``region_type`` ("target"), ``spectral_order``, ``disp_axis``,
    ``xstart/xstop/ystart/ystop`` (0-based, inclusive), ``extract_width``,
    ``src_coeff``, ``bkg_coeff``, ``bkg_fit``, ``bkg_order``,
    ``smoothing_length``, ``independent_var`` and ``use_source_posn``.  The
    header keys are informational (as in CRDS files).
    """
    aps = []
    for ap in apertures:
        if "id" not in ap:
            raise ValueError(f"aperture without 'id': {ap!r}")
        aps.append({"region_type": "target", "disp_axis": 1, **ap})
    ref = {
        "reftype": "EXTRACT1D",
        "instrument": instrument,
        "telescope": "JWST",
        "exp_type": exp_type,
        "pedigree": "DUMMY",
        "author": "spec3c benchmarks/oracle.py",
        "description": "spec3c oracle aperture definitions",
        "useafter": "2000-01-01T00:00:00",
        "apertures": aps,
    }
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(ref, indent=2) + "\n")
    return p


def reference_steps(
    extract1d: str | Path | None = None, steps: dict[str, dict[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """Step parameters: :data:`DEFAULT_OVERRIDES`, the aperture file, then ``steps``."""
    merged = {name: dict(pars) for name, pars in DEFAULT_OVERRIDES.items()}
    if extract1d is not None:
        merged["extract_1d"]["override_extract1d"] = str(Path(extract1d).resolve())
    for name, pars in (steps or {}).items():
        merged.setdefault(name, {}).update(pars)
    return merged


def strun_command(asn: str | Path, output_dir: str | Path, steps: dict[str, dict[str, Any]]) -> str:
    """The equivalent ``strun`` command line (for notes and logs)."""

    def fmt(v: Any) -> str:
        return str(v).lower() if isinstance(v, bool) else str(v)

    args = [f"strun calwebb_spec3 {asn} --output_dir {output_dir}"]
    for name, pars in steps.items():
        args += [f"--steps.{name}.{k}={fmt(v)}" for k, v in pars.items()]
    return " \\\n  ".join(args)


@dataclass
class ReferenceRun:
    """Outcome of one reference run."""

    wall_seconds: float
    peak_rss_mb: float
    returncode: int
    log_path: Path
    products: dict[str, list[Path]] = field(default_factory=dict)
    import_seconds: float | None = None
    step_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def find_products(output_dir: str | Path) -> dict[str, list[Path]]:
    """``{suffix: sorted paths}`` of the FITS products in ``output_dir``."""
    found: dict[str, list[Path]] = {}
    for p in sorted(Path(output_dir).glob("*.fits")):
        found.setdefault(p.stem.rsplit("_", 1)[-1], []).append(p)
    return found


def _wait(proc: subprocess.Popen, timeout: float | None) -> tuple[int, float]:
    """Reap ``proc`` with ``os.wait4``; return (returncode, peak RSS MiB of the child tree).

    ``ru_maxrss`` from ``wait4`` covers the child and every descendant it waited for.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.01
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if deadline is not None and time.monotonic() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = -9
            raise subprocess.TimeoutExpired(proc.args, timeout or 0.0)
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    rc = os.waitstatus_to_exitcode(status)
    proc.returncode = rc  # tell Popen the child is reaped
    scale = 1024.0 if sys.platform != "darwin" else 1.0  # Linux: KiB, macOS: bytes
    return rc, usage.ru_maxrss * scale / 2**20


def _parse_log(text: str) -> tuple[float | None, dict[str, float]]:
    """Import time and per-step wall seconds (from stpipe's timestamped log lines)."""
    imp = None
    for line in text.splitlines():
        if line.startswith("ORACLE_TIMING"):
            imp = float(line.split("import=")[1].split()[0])
    steps: dict[str, float] = {}
    starts: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split(" - ", 3)
        if len(parts) < 4:
            continue
        try:
            ts = time.mktime(time.strptime(parts[0].split(",")[0], "%Y-%m-%d %H:%M:%S"))
            ts += float("0." + parts[0].split(",")[1]) if "," in parts[0] else 0.0
        except (ValueError, IndexError):
            continue
        msg = parts[3]
        if msg.startswith("Step ") and " running with args" in msg:
            starts[msg.split()[1]] = ts
        elif msg.startswith("Step ") and msg.rstrip().endswith(" done"):
            name = msg.split()[1]
            if name in starts:
                steps[name] = steps.get(name, 0.0) + ts - starts.pop(name)
    return imp, steps


def run_reference(
    asn: str | Path,
    output_dir: str | Path,
    *,
    extract1d: str | Path | None = None,
    steps: dict[str, dict[str, Any]] | None = None,
    timeout: float | None = None,
    python: str | Path | None = None,
    crds_cache: str | Path | None = None,
) -> ReferenceRun:
    """Run jwst ``calwebb_spec3`` on ``asn`` with ``output_dir`` as cwd; measure it.

    Parameters
    ----------
    asn : path
        Spec3 association (members resolved relative to it).
    output_dir : path
        Created; products, ``oracle.log`` and (by default) the CRDS cache go here.
    extract1d : path, optional
        EXTRACT1D JSON (:func:`write_extract1d_json`); None = whole-slit apertures.
    steps : dict, optional
        Extra step parameters, e.g. ``{"outlier_detection": {"skip": True}}``.
    timeout : float, optional
        Seconds before the child is killed (``subprocess.TimeoutExpired``).
    python : path, optional
        jwst venv python (default :func:`jwst_python`).
    crds_cache : path, optional
        CRDS cache folder (default ``output_dir/crds_cache``, created).

    Returns
    -------
    ReferenceRun
        Wall time and peak RSS of the child process tree, return code, log
        path and products by suffix (``cal``, ``crf``, ``s2d``, ``x1d`` ...).
    """
    py = Path(python) if python is not None else jwst_python()
    if py is None:
        raise FileNotFoundError("no jwst venv: set SPEC3C_JWST_PYTHON or create /work/.venv-jwst")
    out = Path(output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cache = make_crds_cache(crds_cache if crds_cache is not None else out / "crds_cache")
    pars = reference_steps(extract1d, steps)
    asn_abs = Path(asn).resolve()
    log_path = out / "oracle.log"
    with log_path.open("w") as log:
        log.write("# " + strun_command(asn_abs, out, pars).replace("\n", "\n# ") + "\n")
        log.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [str(py), "-c", _CHILD, str(asn_abs), str(out), json.dumps(pars)],
            cwd=out,
            env=offline_env(cache),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        rc, peak = _wait(proc, timeout)
        wall = time.perf_counter() - t0
    imp, step_seconds = _parse_log(log_path.read_text(errors="replace"))
    return ReferenceRun(wall, peak, rc, log_path, find_products(out), imp, step_seconds)


def _parse_step_args(items: list[str]) -> dict[str, dict[str, Any]]:
    steps: dict[str, dict[str, Any]] = {}
    for item in items:
        key, _, raw = item.partition("=")
        name, _, par = key.partition(".")
        if not par or not _:
            raise SystemExit(f"--step wants STEP.PAR=VALUE, got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = {"True": True, "False": False, "None": None}.get(raw, raw)
        steps.setdefault(name, {})[par] = value
    return steps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("asn", type=Path)
    ap.add_argument("--output-dir", type=Path, required=True)
    ap.add_argument("--extract1d", type=Path, default=None, help="EXTRACT1D JSON aperture file")
    ap.add_argument(
        "--step",
        action="append",
        default=[],
        metavar="STEP.PAR=VALUE",
        help="extra step parameter (JSON value), repeatable",
    )
    ap.add_argument("--timeout", type=float, default=None)
    args = ap.parse_args(argv)
    run = run_reference(
        args.asn,
        args.output_dir,
        extract1d=args.extract1d,
        steps=_parse_step_args(args.step),
        timeout=args.timeout,
    )
    print(
        f"returncode {run.returncode}  wall {run.wall_seconds:.1f} s  "
        f"peak RSS {run.peak_rss_mb:.0f} MiB  log {run.log_path}"
    )
    if run.import_seconds is not None:
        print(f"jwst import {run.import_seconds:.1f} s")
    for name, sec in run.step_seconds.items():
        print(f"  {name:20s} {sec:7.2f} s")
    for suffix, paths in run.products.items():
        print(f"{suffix}: {len(paths)}")
        for p in paths:
            print(f"  {p.name}")
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
