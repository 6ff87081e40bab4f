"""Re-apply a source's association-level input steps when its inputs are exported.

``process`` changes a source's cutouts in memory before outlier detection:
assign_mtwcs shifts the sky coordinates and adds the ``moving_target`` frame,
master_background subtracts the 2-D background.  The store keeps the cutouts
as ingested, so the exporter replays exactly those two steps (with the
values ``process`` recorded) to write the reference's source-based ``_cal``
and ``_crf`` products.  Both steps are cheap and deterministic.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..modes.registry import mode_of_store
from ..results import COMPLETE
from ..store import Cutout, Store
from . import assign_mtwcs, master_background
from .context import SourceInputs

__all__ = ["REPLAYED", "replay_input_steps", "replayed_steps"]

#: the steps replayed, in their order
REPLAYED = ("assign_mtwcs", "master_background")


#: the last replay, reused when called again with the very same cutout list and status objects
#: (the exporter's cached store hands every writer of a source the same ones: cal, crf, s2d and
#: x1d then share one replay; re-serialising the moving-target gwcs was 27 % of such an export)
_LAST: dict[str, Any] = {}


def replay_input_steps(store: Store, source: str, cutouts: list[Cutout], status: dict[str, Any]) -> list[Cutout]:
    """Copies of ``cutouts`` as the source's later steps saw them (the originals are not touched).

    The result is shared by calls with the same ``cutouts`` and ``status`` objects: treat it as read-only.
    """
    if _LAST.get("cutouts") is cutouts and _LAST.get("status") is status and _LAST.get("source") == source:
        return _LAST["result"]
    result = _replay(store, source, cutouts, status)
    _LAST.update(cutouts=cutouts, status=status, source=source, result=result)  # keeps the keys alive
    return result


def replayed_steps(status: dict[str, Any]) -> set[str]:
    """The input steps that a source's recorded ``status`` says ran, which its export replays."""
    steps = status.get("steps", {})
    return {name for name, step in steps.items() if step.get("status") == COMPLETE} & set(REPLAYED)


def _replay(store: Store, source: str, cutouts: list[Cutout], status: dict[str, Any]) -> list[Cutout]:
    done = replayed_steps(status)
    if not done:
        return cutouts
    science = {r.name: r for r in store.list_exposures() if r.role == "science"}
    copies = [dataclasses.replace(c, planes=dict(c.planes), meta=dict(c.meta)) for c in cutouts]
    inputs = SourceInputs(source, copies, science)
    if "assign_mtwcs" in done:
        assign_mtwcs.align(inputs, assign_mtwcs.association_positions(store.list_cutouts(), science))
    if "master_background" in done:
        master_background.subtract(inputs, master_background.load_for_source(store, source),
                                   mode_of_store(store))
    return inputs.cutouts
