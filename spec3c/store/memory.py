"""In-memory store: the reference backend of the contract suite, and a
scratch store for tests and small interactive work."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .base import (
    SCHEMA_VERSION,
    Cutout,
    CutoutInfo,
    ExposureRecord,
    Store,
)


class MemoryStore(Store):
    backend = "memory"
    #: one process's memory: other processes cannot open it
    supports_concurrent_writes = False

    def __init__(self) -> None:
        super().__init__(None)
        self._exposures: dict[str, ExposureRecord] = {}
        self._cutouts: dict[tuple[str, str, str], Cutout] = {}
        self._images: dict[str, dict[str, np.ndarray]] = {}
        self._results: dict[tuple[str, str], tuple[dict[str, np.ndarray], dict[str, Any]]] = {}

    @property
    def schema_version(self) -> int:
        return SCHEMA_VERSION

    def list_exposures(self) -> list[ExposureRecord]:
        return [self._exposures[k] for k in sorted(self._exposures)]

    def _commit_exposure(
        self, record: ExposureRecord, cutouts: Sequence[Cutout], images: Mapping[str, np.ndarray]
    ) -> None:
        self.delete_exposure(record.name)
        for c in cutouts:
            self._cutouts[c.key] = c
        self._images[record.name] = {k: np.array(v) for k, v in images.items()}
        self._exposures[record.name] = record

    def delete_exposure(self, name: str) -> None:
        self._exposures.pop(name, None)
        self._images.pop(name, None)
        for key in [k for k in self._cutouts if k[1] == name]:
            del self._cutouts[key]

    def list_cutouts(self, source: str | None = None) -> list[CutoutInfo]:
        return [
            CutoutInfo(c.source, c.exposure, c.slit, c.shape, dict(c.meta))
            for key, c in sorted(self._cutouts.items())
            if (source is None or key[0] == source) and key[1] in self._exposures
        ]

    def read_cutouts(self, source: str, planes: Iterable[str] | None = None) -> list[Cutout]:
        wanted = None if planes is None else set(planes)
        out = []
        for info in self.list_cutouts(source):
            c = self._cutouts[(info.source, info.exposure, info.slit)]
            chosen = {
                k: v.copy() for k, v in c.planes.items() if wanted is None or k in wanted
            }
            out.append(Cutout(c.source, c.exposure, c.slit, copy.deepcopy(c.meta), chosen, c.wcs_asdf))
        return out

    def read_image(self, exposure: str, plane: str) -> np.ndarray:
        if exposure not in self._exposures:
            raise KeyError(f"no committed exposure {exposure!r}")
        return self._images[exposure][plane].copy()

    def list_images(self, exposure: str) -> list[str]:
        return sorted(self._images.get(exposure, {})) if exposure in self._exposures else []

    def put_result(
        self, source: str, key: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
    ) -> None:
        self._results[(source, key)] = (
            {k: np.array(v) for k, v in arrays.items()},
            copy.deepcopy(dict(meta)),
        )

    def result_as_read(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
                       ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {k: np.array(v) for k, v in arrays.items()}, copy.deepcopy(dict(meta))

    def get_result(self, source: str, key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, meta = self._results[(source, key)]
        return {k: v.copy() for k, v in arrays.items()}, copy.deepcopy(meta)

    def list_results(self, source: str | None = None) -> list[tuple[str, str]]:
        return sorted(k for k in self._results if source is None or k[0] == source)

    def _delete_result(self, source: str, key: str) -> None:
        self._results.pop((source, key), None)
