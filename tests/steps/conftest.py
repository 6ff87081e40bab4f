"""Step contexts on small simulated stores: every step is ``run(ctx) -> StepOutcome``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from spec3c.config import PipelineConfig, resolve_config
from spec3c.ingest import ingest
from spec3c.modes.registry import mode_of_store
from spec3c.simulate import SimOptions, simulate
from spec3c.steps.context import StepContext, science_inputs
from spec3c.store import Store, open_store

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _ingested(root: Path, mode: str, options: SimOptions) -> Path:
    sim = simulate(mode, root / "in", options)
    ingest(sim.asn_path, root / "store")
    return root / "store"


@pytest.fixture(scope="session")
def fs_store(tmp_path_factory) -> Path:
    """NIRSpec FS, 3 nods (3 sources), sky left in and 2 background members."""
    return _ingested(tmp_path_factory.mktemp("session-fs"), "nirspec-fs",
                     SimOptions(seed=5, n_exposures=3, with_background=2, nod_subtracted=False))


@pytest.fixture(scope="session")
def slitless_store(tmp_path_factory) -> Path:
    """MIRI LRS slitless, 3 exposures of one source."""
    return _ingested(tmp_path_factory.mktemp("session-slitless"), "miri-lrs-slitless", SimOptions(seed=5, n_exposures=3))


@pytest.fixture
def make_context(tmp_path) -> Callable[..., StepContext]:
    """``make_context(store_path, overrides=None, source=None)``: a StepContext on a fresh copy of the store
    (steps write results), for the first source unless one is named."""
    import shutil

    opened: list[Store] = []

    def make(store_path: Path, overrides: dict | None = None, source: str | None = None) -> StepContext:
        copy = tmp_path / f"store{len(opened)}"
        shutil.copytree(store_path, copy)
        store = open_store(copy, mode="a")
        opened.append(store)
        config: PipelineConfig = resolve_config(overrides=overrides or {})
        key = source or store.sources()[0]
        return StepContext(store, key, mode_of_store(store), science_inputs(store, key), config)

    yield make
    for store in opened:
        store.close()


def aperture_file(tmp_path: Path, apertures: list[dict]) -> str:
    path = tmp_path / "extract1d.json"
    path.write_text(json.dumps({"apertures": apertures}))
    return str(path)
