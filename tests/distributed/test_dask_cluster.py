"""spec3c on a real Dask cluster (a scheduler and two workers, separate processes on 127.0.0.1):
the products are bit-identical to the local pool's, and a worker that dies mid-job is retried."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from astropy.io import fits
from click.testing import CliRunner

from spec3c.asn import read_association
from spec3c.cli import main
from spec3c.ingest import ingest
from spec3c.parallel import DaskExecutor, open_executor
from spec3c.process import process_store
from spec3c.products import ProductNaming, export_store
from spec3c.simulate import SimOptions, simulate
from spec3c.verify import compare_products

pytest.importorskip("distributed")

import dask_jobs  # noqa: E402 - this folder's job functions, also on the workers' path

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mos(tmp_path_factory):
    root = tmp_path_factory.mktemp("mos")
    sim = simulate("nirspec-mos", root / "in", SimOptions(seed=11, n_sources=4, n_exposures=3, n_columns=100))
    ingest(sim.asn_path, root / "store")
    return root, ProductNaming.from_association(read_association(sim.asn_path))


def _hdus(path: Path) -> list[str]:
    with fits.open(path) as hdul:
        return [h.name for h in hdul]


def test_cluster_products_identical_to_local_pool(mos, dask_cluster, tmp_path):
    root, naming = mos
    local, remote = tmp_path / "local.store", tmp_path / "dask.store"
    shutil.copytree(root / "store", local)
    shutil.copytree(root / "store", remote)

    ours = process_store(local, workers=2)
    theirs = process_store(remote, scheduler=dask_cluster)
    assert not ours.failed and not theirs.failed
    assert sorted(r.source for r in theirs.processed) == sorted(r.source for r in ours.processed)
    assert len(theirs.processed) == 4

    calls: list[tuple[str, int, int]] = []
    a = export_store(local, tmp_path / "local", naming, workers=2)
    b = export_store(remote, tmp_path / "dask", naming, scheduler=dask_cluster,
                     progress=lambda s, i, n: calls.append((s, i, n)))
    assert [c[1:] for c in calls] == [(i, 4) for i in range(1, 5)]
    assert sorted(p.name for p in a) == sorted(p.name for p in b) and len(a) == 4 * 4
    for path in sorted(a):
        other = tmp_path / "dask" / path.name
        assert "PROVENANCE" in _hdus(path)
        assert compare_products(path, other) == [], path.name  # every HDU's data, bit for bit

    # the CLI on the same cluster: nothing left to do
    res = CliRunner().invoke(main, ["process", str(remote), "--scheduler", dask_cluster])
    assert res.exit_code == 0, res.output
    assert "processed 0 sources" in res.output and "4 already complete" in res.output


def test_dask_executor_maps_and_reports_errors(dask_cluster):
    with open_executor(dask_cluster) as executor:
        assert isinstance(executor, DaskExecutor) and executor.slots == 2
        out = executor.map(dask_jobs.square, {str(i): (1,) for i in range(5)})
        assert out.results == {str(i): i * i + 1 for i in range(5)} and not out.errors
        bad = executor.map(dask_jobs.fail, {"x": (), "y": ()})
        assert not bad.results and bad.errors == {"x": "ValueError: bad item x", "y": "ValueError: bad item y"}


def test_a_worker_that_dies_is_retried(dask_cluster, tmp_path):
    """Each item kills its worker process the first time it runs: the scheduler retries it."""
    with open_executor(dask_cluster) as executor:
        out = executor.map(dask_jobs.die_once, {item: (str(tmp_path), "ac") for item in "abcd"})
    assert sorted(out.results) == list("abcd") and not out.errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "c"]
