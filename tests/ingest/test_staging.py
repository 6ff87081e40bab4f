"""Ingest's staging of exposures read and checked: in memory within a budget, else spilled to a
private folder, drained in order and removed at the end."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spec3c.ingest.reader import ExposureData
from spec3c.ingest.staging import Staging
from spec3c.testing.store import make_cutout, make_record


def _exposure(name: str, columns: int) -> ExposureData:
    return ExposureData(make_record(name), [make_cutout("1", name, "1", shape=(10, columns))], {})


def _where(staged: Staging) -> list[str]:
    return ["disk" if isinstance(item, Path) else "memory" for item in staged._held]


def test_within_the_budget_everything_stays_in_memory():
    with Staging(budget=10**8) as staged:
        for k, name in enumerate("abc"):
            staged.add(_exposure(name, 50), last=k == 2)
        assert _where(staged) == ["memory"] * 3
        assert [d.record.name for d in staged.drain()] == list("abc")


def test_once_one_exposure_is_spilled_the_last_is_too():
    """Committed from disk one at a time: the last exposure read does not stay in memory beside
    the one being committed."""
    small = sum(a.nbytes for a in _exposure("x", 50).cutouts[0].planes.values())
    with Staging(budget=small) as staged:
        for k, name in enumerate("abc"):
            staged.add(_exposure(name, 50), last=k == 2)
        assert _where(staged) == ["memory", "disk", "disk"]
        folder = staged.folder()
        drained = [(d.record.name, d.cutouts[0].planes["sci"].shape) for d in staged.drain()]
        assert drained == [("a", (10, 50)), ("b", (10, 50)), ("c", (10, 50))]
        assert not list(folder.iterdir())  # each spilled file removed once loaded
    assert not folder.exists()


def test_a_lone_last_exposure_stays_in_memory_whatever_its_size():
    with Staging(budget=0) as staged:
        staged.add(_exposure("a", 50), last=True)
        assert _where(staged) == ["memory"]
        assert np.isnan(next(staged.drain()).cutouts[0].planes["sci"][0, 0])
