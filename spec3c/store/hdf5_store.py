"""HDF5 backend: a folder of HDF5 files, one per exposure and one per result.

Layout::

    STORE/spec3c-store.json            backend + schema version
    STORE/exposures/<name>.h5          record (attr), cutouts/<source>/<slit>/<plane>, images/<plane>
    STORE/results/<source>/<key>.h5    arrays + meta (attr)

One file per exposure (rather than one big file) makes every commit atomic
(write a temporary file, then ``os.replace``), lets readers open files
read-only while another process ingests, and lets process workers write the
results of different sources concurrently without HDF5 locking.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import h5py
import numpy as np

from ..errors import StoreError
from .base import (
    Cutout,
    CutoutInfo,
    ExposureRecord,
    Store,
    dumps_meta,
    loads_meta,
)
from .layout import read_manifest, write_manifest

_COMPRESSION = {"compression": "lzf", "shuffle": True}
#: opens of a result file tried while it exists (a concurrent writer may replace or remove it)
_OPEN_ATTEMPTS = 3


def _safe(name: str) -> str:
    """Reversible file/group-safe encoding of a key."""
    return quote(name, safe="")


@contextmanager
def _atomic_h5(path: Path) -> Iterator[h5py.File]:
    """An h5py.File written under a temporary name and renamed to ``path`` on success."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w", libver="latest") as f:
            yield f
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class HDF5Store(Store):
    backend = "hdf5"

    def __init__(self, path: str | Path, mode: str = "r") -> None:
        super().__init__(path)
        assert self.path is not None
        self._writable = mode != "r"
        if mode == "w":
            write_manifest(self.path, self.backend)
        self._manifest = read_manifest(self.path, expected_backend=self.backend)
        if self._writable:
            for sub in ("exposures", "results"):
                (self.path / sub).mkdir(exist_ok=True)

    @property
    def schema_version(self) -> int:
        return int(self._manifest["schema_version"])

    # -- helpers ----------------------------------------------------------
    def _exposure_file(self, name: str) -> Path:
        assert self.path is not None
        return self.path / "exposures" / f"{_safe(name)}.h5"

    def _exposure_files(self) -> list[Path]:
        assert self.path is not None
        folder = self.path / "exposures"
        return sorted(folder.glob("*.h5")) if folder.exists() else []

    def _require_writable(self) -> None:
        if not self._writable:
            raise StoreError(f"{self.path}: store opened read-only")

    @staticmethod
    def _open(path: Path) -> h5py.File:
        return h5py.File(path, "r", locking=False)

    # -- exposures --------------------------------------------------------
    def list_exposures(self) -> list[ExposureRecord]:
        records = []
        for path in self._exposure_files():
            with self._open(path) as f:
                records.append(ExposureRecord.from_json(f.attrs["record"]))
        return sorted(records, key=lambda r: r.name)

    def get_exposure(self, name: str) -> ExposureRecord | None:
        path = self._exposure_file(name)
        if not path.exists():
            return None
        with self._open(path) as f:
            return ExposureRecord.from_json(f.attrs["record"])

    def _commit_exposure(
        self, record: ExposureRecord, cutouts: Sequence[Cutout], images: Mapping[str, np.ndarray]
    ) -> None:
        self._require_writable()
        index = []
        with _atomic_h5(self._exposure_file(record.name)) as f:
            f.attrs["record"] = record.to_json()
            for c in cutouts:
                grp = f.require_group(f"cutouts/{_safe(c.source)}/{_safe(c.slit)}")
                for plane, arr in c.planes.items():
                    grp.create_dataset(plane, data=arr, **_COMPRESSION)
                grp.attrs["meta"] = dumps_meta(c.meta)
                grp.create_dataset("wcs_asdf", data=np.frombuffer(c.wcs_asdf, dtype=np.uint8))
                index.append([c.source, c.slit, list(c.shape), c.meta])
            for plane, arr in images.items():
                f.create_dataset(f"images/{plane}", data=arr, chunks=True, **_COMPRESSION)
            f.attrs["cutout_index"] = dumps_meta({"cutouts": index})

    def delete_exposure(self, name: str) -> None:
        self._require_writable()
        self._exposure_file(name).unlink(missing_ok=True)

    # -- cutouts ----------------------------------------------------------
    def list_cutouts(self, source: str | None = None) -> list[CutoutInfo]:
        infos = []
        for path in self._exposure_files():
            with self._open(path) as f:
                exposure = ExposureRecord.from_json(f.attrs["record"]).name
                for src, slit, shape, meta in loads_meta(f.attrs["cutout_index"])["cutouts"]:
                    if source is None or src == source:
                        infos.append(CutoutInfo(src, exposure, slit, tuple(shape), meta))
        return sorted(infos, key=lambda i: (i.source, i.exposure, i.slit))

    def read_cutouts(self, source: str, planes: Iterable[str] | None = None) -> list[Cutout]:
        wanted = None if planes is None else set(planes)
        out = []
        for path in self._exposure_files():
            with self._open(path) as f:
                exposure = ExposureRecord.from_json(f.attrs["record"]).name
                src_grp = f.get(f"cutouts/{_safe(source)}")
                if src_grp is None:
                    continue
                for slit_key in sorted(src_grp):
                    grp = src_grp[slit_key]
                    arrays = {
                        k: grp[k][()]
                        for k in grp
                        if k != "wcs_asdf" and (wanted is None or k in wanted)
                    }
                    out.append(
                        Cutout(
                            source,
                            exposure,
                            unquote(slit_key),
                            loads_meta(grp.attrs["meta"]),
                            arrays,
                            grp["wcs_asdf"][()].tobytes(),
                        )
                    )
        return sorted(out, key=lambda c: (c.exposure, c.slit))

    # -- images -----------------------------------------------------------
    def read_image(self, exposure: str, plane: str) -> np.ndarray:
        path = self._exposure_file(exposure)
        if not path.exists():
            raise KeyError(f"no committed exposure {exposure!r}")
        with self._open(path) as f:
            if f"images/{plane}" not in f:
                raise KeyError(f"exposure {exposure!r} has no image plane {plane!r}")
            return f[f"images/{plane}"][()]

    def list_images(self, exposure: str) -> list[str]:
        path = self._exposure_file(exposure)
        if not path.exists():
            return []
        with self._open(path) as f:
            return sorted(f["images"]) if "images" in f else []

    # -- results ----------------------------------------------------------
    def _result_file(self, source: str, key: str) -> Path:
        assert self.path is not None
        return self.path / "results" / _safe(source) / f"{_safe(key)}.h5"

    def put_result(
        self, source: str, key: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
    ) -> None:
        self._require_writable()
        path = self._result_file(source, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _atomic_h5(path) as f:
            f.attrs["meta"] = dumps_meta(meta)
            for name, arr in arrays.items():
                arr = np.asarray(arr)
                opts = _COMPRESSION if arr.ndim and arr.size > 1 else {}
                f.create_dataset(name, data=arr, **opts)

    def result_as_read(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
                       ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        # h5py lists a group's datasets by name, and reads a 0-d dataset as a numpy scalar
        return {k: np.array(arrays[k])[()] for k in sorted(arrays)}, loads_meta(dumps_meta(meta))

    def get_result(self, source: str, key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        path = self._result_file(source, key)
        with self._open_result(path, f"no result {key!r} for source {source!r}") as f:
            return {k: f[k][()] for k in f}, loads_meta(f.attrs["meta"])

    def _open_result(self, path: Path, missing: str) -> h5py.File:
        """A result file, opened; KeyError(``missing``) when there is none.  Another process may
        remove it (``process --force``) between a reader's listing and its open, or while HDF5
        opens it (which then fails on the file's name: "can't retrieve stat info"): an open that
        fails is tried again while the file exists."""
        for attempt in range(_OPEN_ATTEMPTS):
            if not path.exists():
                raise KeyError(missing)
            try:
                return self._open(path)
            except OSError as exc:
                if not path.exists():
                    raise KeyError(missing) from exc
                if attempt == _OPEN_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def list_results(self, source: str | None = None) -> list[tuple[str, str]]:
        assert self.path is not None
        root = self.path / "results"
        if not root.exists():
            return []
        folders = [root / _safe(source)] if source is not None else sorted(root.iterdir())
        pairs = []
        for folder in folders:
            if folder.is_dir():
                pairs += [(unquote(folder.name), unquote(p.stem)) for p in folder.glob("*.h5")]
        return sorted(pairs)

    def _delete_result(self, source: str, key: str) -> None:
        self._require_writable()
        self._result_file(source, key).unlink(missing_ok=True)
