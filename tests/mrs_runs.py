"""A ``spec3c run`` on a simulated MIRI MRS observation that several test modules look at.

Channels 1 and 3, sub-bands SHORT and MEDIUM, one exposure, outlier_detection
skipped, with the simulator's reference files: the ch1-medium spectrum leaks
into ch3-short, so spectral_leak has something to correct.  Built once per
session (:func:`shared_cache.shared`) and read-only: copy its store to change it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from shared_cache import shared

from spec3c.cli import main
from spec3c.errors import Spec3cWarning
from spec3c.simulate import SimOptions, simulate
from spec3c.simulate.miri.reffiles import reference_file_paths

LEAK_OPTIONS = SimOptions(seed=3, n_exposures=1, channels=(1, 3), bands=("SHORT", "MEDIUM"))


def run_args(asn: Path, out: Path, *extra: str) -> list[str]:
    """``spec3c run`` of a simulated MRS set with the simulator's reference files."""
    args = ["run", str(asn), "--output-dir", str(out), "--workers", "1", "--skip", "outlier_detection", *extra]
    for step, params in reference_file_paths(asn).jwst_overrides().items():
        args += [f"--steps.{step}.{k}={v}" for k, v in params.items()]
    return args


def spectral_leak_run(tmp_path_factory: Any) -> tuple[Path, Path]:
    """(association, products folder with its ``spec3c.store``) of the shared run."""

    def build(root: Path) -> tuple[Path, Path, int, str]:
        res = simulate("miri-mrs", root / "input", LEAK_OPTIONS)
        with warnings.catch_warnings():
            # (libtiledb 2.30 may fail to consolidate this run's results fragments; reads stay correct)
            warnings.filterwarnings("ignore", ".*consolidation .* failed", Spec3cWarning)
            result = CliRunner().invoke(main, run_args(res.asn_path, root / "out"), catch_exceptions=False)
        return res.asn_path, root / "out", result.exit_code, result.output[-3000:]

    asn, out, exit_code, output = shared(tmp_path_factory, "mrs-spectral-leak", build)
    assert exit_code == 0, output
    return asn, out
