"""One source's science inputs, as the steps and the modes see them.

A module of its own: the modes type their hooks with it without importing the step context,
which itself refers to the modes (``spec3c.modes.base`` <-> ``spec3c.steps.context`` was a cycle)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .algorithms.slit_grid import GridInput
from .errors import InputError
from .gwcs_asdf import wcs_from_asdf
from .store import Cutout, ExposureRecord

__all__ = ["SourceInputs"]


@dataclass
class SourceInputs:
    """One source's science cutouts (planes are updated in place by the steps)."""

    source: str
    cutouts: list[Cutout]
    exposures: dict[str, ExposureRecord]
    _wcs: dict[int, Any] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.cutouts)

    def wcs(self, k: int):  # type: ignore[no-untyped-def]
        """gwcs of input ``k`` (deserialised once, only when needed)."""
        if k not in self._wcs:
            self._wcs[k] = wcs_from_asdf(self.cutouts[k].wcs_asdf)
        return self._wcs[k]

    def exposure_meta(self, k: int) -> dict[str, Any]:
        return self.exposures[self.cutouts[k].exposure].meta

    def group_ids(self) -> list[str]:
        """Exposure group of each input (``meta.group_id``, else the exposure name)."""
        return [str(self.exposure_meta(k).get("meta.group_id") or c.exposure) for k, c in enumerate(self.cutouts)]

    def grid_inputs(self) -> list[GridInput]:
        return [
            GridInput(c.planes["sci"], c.planes["dq"], c.planes["wavelength"], c.planes["ra"],
                      c.planes["dec"], c.planes["slit_y"])
            for c in self.cutouts
        ]

    def exp_type(self, k: int = 0) -> str:
        return self.exposures[self.cutouts[k].exposure].exp_type

    def pixmap(self, grid: Any, k: int) -> np.ndarray:
        """Output-grid coordinates ``(ny, nx, 2)`` of input ``k``'s pixels."""
        p = self.cutouts[k].planes
        return grid.pixmap(p["ra"], p["dec"], p["wavelength"])

    def exposure_time(self, k: int) -> float:
        """Drizzle's exptime weight of input ``k``: TMEASURE, else EFFEXPTM (an error if neither is set)."""
        meta = self.exposure_meta(k)
        for key in ("meta.exposure.measurement_time", "meta.exposure.exposure_time"):
            if meta.get(key):
                return float(meta[key])
        record = self.exposures[self.cutouts[k].exposure]
        raise InputError(record.filename, "neither TMEASURE (meta.exposure.measurement_time) nor EFFEXPTM "
                                          "(meta.exposure.exposure_time) is set; the exptime weight needs one")

    def bunit(self, k: int) -> str:
        c = self.cutouts[k]
        return str(c.meta.get("meta.bunit_data") or self.exposure_meta(k).get("meta.bunit_data") or "")
