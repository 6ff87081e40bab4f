"""A source's cutouts stacked across exposures (what ``store.source(id)`` returns)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Cutout


@dataclass
class SourceStack:
    """All cutouts of one source, in (exposure, slit) order.

    ``stack[plane]`` (or :meth:`stacked`) returns an ``(n, ny, nx)`` array;
    cutouts smaller than the largest are padded (NaN for floats, 0 for DQ) at
    the top/right, so index ``k`` of the stack is ``cutouts[k]``.
    """

    source: str
    cutouts: list[Cutout]

    def __len__(self) -> int:
        return len(self.cutouts)

    @property
    def exposures(self) -> list[str]:
        return [c.exposure for c in self.cutouts]

    @property
    def slits(self) -> list[str]:
        return [c.slit for c in self.cutouts]

    @property
    def shapes(self) -> list[tuple[int, int]]:
        return [c.shape for c in self.cutouts]

    @property
    def planes(self) -> list[str]:
        return sorted(set.intersection(*(set(c.planes) for c in self.cutouts))) if self.cutouts else []

    def stacked(self, plane: str) -> np.ndarray:
        """``(n, ny_max, nx_max)`` array of ``plane`` across the cutouts."""
        if not self.cutouts:
            raise KeyError(f"source {self.source!r} has no cutouts")
        first = self.cutouts[0].planes[plane]
        ny = max(s[0] for s in self.shapes)
        nx = max(s[1] for s in self.shapes)
        fill = np.nan if first.dtype.kind == "f" else 0
        out = np.full((len(self), ny, nx), fill, dtype=first.dtype)
        for k, c in enumerate(self.cutouts):
            arr = c.planes[plane]
            out[k, : arr.shape[0], : arr.shape[1]] = arr
        return out

    def __getitem__(self, plane: str) -> np.ndarray:
        return self.stacked(plane)
