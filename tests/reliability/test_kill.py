"""Killed at any moment: SIGKILL a command's whole process tree, run it again, and the products
are the uninterrupted run's (every HDU's data) and the store passes ``spec3c check``.

A few seeded trials here, one per command; ``make soak`` runs 50 or more (``soak.py``).
Also: the same products whatever runs the sources (1 or 2 local workers, Dask).
"""

from __future__ import annotations

import pytest
from harness import (
    FS_APERTURES,
    PHASES,
    asn_of,
    data_differences,
    product_data,
    run_spec3c,
    run_trial,
)

#: seed of the CI trial of each command (the kill lands just after a write chosen by the seed)
SEEDS = {"run": 3, "ingest": 5, "process": 7, "export": 11}


@pytest.mark.slow
@pytest.mark.parametrize("phase", PHASES)
def test_killed_then_rerun_equals_uninterrupted(fs_baseline, tmp_path, phase):
    result = run_trial(fs_baseline, SEEDS[phase], tmp_path / "trial", phase=phase, targeted=True)
    print(f"{phase}: killed {result.kill} ({result.killed_in}), workers {result.workers}")
    assert not result.differences, result.differences
    assert not result.check_problems, result.check_problems


@pytest.mark.slow
def test_worker_counts_and_dask_give_identical_products(fs_input, fs_output, fs_baseline, tmp_path):
    """fs_output ran with 1 worker in this process; the baseline with 2 worker processes."""
    assert data_differences(product_data(fs_output), fs_baseline.data) == []
    pytest.importorskip("distributed")
    out = tmp_path / "dask"
    run_spec3c("run", asn_of(fs_input), "-o", out, "--scheduler", "local:2", FS_APERTURES)
    assert data_differences(product_data(out), fs_baseline.data) == []
