"""Readers during writes: ``spec3c ls``, ``spec3c show`` and ``open_store().source()`` in a loop while
``process`` writes (and, at its end, consolidates and vacuums) the store.  They never error and
never see a partial result."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from harness import FS_APERTURES, spec3c_command

from spec3c.cli import main
from spec3c.ingest import ingest
from spec3c.results import STATUS
from spec3c.store import CUTOUT_PLANES, open_store

#: result key a completed step leaves (a reader seeing the status must see these)
STEP_RESULTS = {"resample_spec": "s2d", "extract_1d": "x1d"}


def _read_everything(store_path: Path, sources: list[str], n: int) -> list[str]:
    """One round of reading; returns what was wrong."""
    problems = []
    runner = CliRunner()
    for args in (["ls", str(store_path), "--sources"], ["show", str(store_path), "--source", sources[n % len(sources)]]):
        res = runner.invoke(main, args)
        if res.exit_code != 0:
            problems.append(f"{args[0]}: {res.output[-300:]} {res.exception!r}")
    try:
        with open_store(store_path) as store:
            stack = store.source(sources[n % len(sources)])
            if not all(set(CUTOUT_PLANES) <= set(c.planes) for c in stack.cutouts):
                problems.append("a cutout without all its planes")
            keys: dict[str, set[str]] = {}
            statuses: dict[str, dict] = {}
            for source, key in store.list_results():
                try:
                    arrays, meta = store.get_result(source, key)
                except KeyError:  # listed, then removed: its source is being recomputed (process --force)
                    continue
                keys.setdefault(source, set()).add(key)
                if key == STATUS:
                    statuses[source] = meta
                if key == "s2d" and not {"sci", "err", "wcs_asdf"} <= set(arrays):
                    problems.append(f"partial s2d of {source}")
            for source, status in statuses.items():
                steps = status.get("steps", {})
                problems += [f"{source}: status says {step} COMPLETE, its {key} is not there"
                             for step, key in STEP_RESULTS.items()
                             if steps.get(step, {}).get("status") == "COMPLETE" and key not in keys[source]]
    except Exception as exc:  # noqa: BLE001 - any error of a reader is what this test looks for
        problems.append(f"open_store: {type(exc).__name__}: {exc}")
    return problems


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tiledb", "hdf5"])
def test_readers_during_process(fs_input, fs_baseline, tmp_path, backend):
    if backend == "tiledb":
        store = Path(shutil.copytree(fs_baseline.ingested, tmp_path / "store"))
    else:
        store = tmp_path / "store"
        ingest(fs_baseline.asn, store, backend="hdf5")
    with open_store(store) as s:
        sources = s.sources()
    rounds, problems = 0, []
    for force in ((), ("--force",)):  # the first run writes every result, the second replaces them
        proc = subprocess.Popen(spec3c_command("process", store, "--workers", "2", FS_APERTURES, *force),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        while proc.poll() is None:
            problems += _read_everything(store, sources, rounds)
            rounds += 1
        assert proc.wait() == 0, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.1)
    problems += _read_everything(store, sources, rounds)
    print(f"{backend}: {rounds} reading rounds during two process runs")
    assert rounds >= 4
    assert problems == []
