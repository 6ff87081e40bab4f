"""TileDB backend (the default).

Layout (a folder holding a manifest and four TileDB arrays)::

    STORE/spec3c-store.json
    STORE/exposures   sparse, dim name              attr record (JSON)
    STORE/cutouts     sparse, dims source, exposure, slit; capacity 2;
                      attrs ny, nx, meta, wcs, one var-length attribute per plane
    STORE/images      sparse, dims exposure, plane  attrs shape, dtype, data (zstd)
    STORE/results     sparse, dims source, key      attrs meta, data (packed arrays, zstd)

Each write is a TileDB fragment, which appears atomically.  An exposure's
cutouts and images are written first and its record last, so readers (which
only see cutouts of recorded exposures) never see a half-written exposure;
re-ingesting overwrites the orphaned cells (no duplicates allowed: the newest
fragment wins).
"""

from __future__ import annotations

import gc
import time
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import tiledb

from ..errors import Spec3cWarning, StoreError
from .base import (
    ALL_PLANES,
    Cutout,
    CutoutInfo,
    ExposureRecord,
    Store,
    dumps_meta,
    loads_meta,
    pack_arrays,
    unpack_arrays,
)
from .layout import read_manifest, write_manifest

_ARRAYS = ("exposures", "cutouts", "images", "results")


def _config(threads: int = 2) -> tiledb.Config:
    return tiledb.Config(
        {
            "sm.compute_concurrency_level": str(threads),
            "sm.io_concurrency_level": str(threads),
            # small batches keep cutout reads fast after consolidation
            "vfs.min_batch_size": str(256 * 1024),
            "sm.consolidation.mode": "fragments",
            # the default 10 GiB budget makes even tiny consolidations take seconds
            "sm.mem.total_budget": str(256 * 2**20),
        }
    )


def _filters(level: int = 1) -> tiledb.FilterList:
    return tiledb.FilterList([tiledb.ByteShuffleFilter(), tiledb.ZstdFilter(level=level)])


def _dim(name: str, ctx: tiledb.Ctx) -> tiledb.Dim:
    return tiledb.Dim(name, domain=(None, None), tile=None, dtype="ascii", ctx=ctx)


def _schema(dims: tuple[str, ...], attrs: list[tiledb.Attr], ctx: tiledb.Ctx, capacity: int) -> tiledb.ArraySchema:
    return tiledb.ArraySchema(
        domain=tiledb.Domain(*[_dim(d, ctx) for d in dims], ctx=ctx),
        sparse=True,
        attrs=attrs,
        capacity=capacity,
        allows_duplicates=False,
        ctx=ctx,
    )


def _create_arrays(root: Path, ctx: tiledb.Ctx) -> None:
    text = {"dtype": str, "var": True, "ctx": ctx}
    blob = {"dtype": bytes, "var": True, "filters": _filters(), "ctx": ctx}
    plane_attrs = [
        tiledb.Attr(name, dtype=dt.newbyteorder("="), var=True, filters=_filters(), ctx=ctx)
        for name, dt in ALL_PLANES.items()
    ]
    schemas = {
        "exposures": _schema(("name",), [tiledb.Attr("record", **text)], ctx, 64),
        "cutouts": _schema(
            ("source", "exposure", "slit"),
            [
                tiledb.Attr("ny", dtype=np.int32, ctx=ctx),
                tiledb.Attr("nx", dtype=np.int32, ctx=ctx),
                tiledb.Attr("meta", **text),
                tiledb.Attr("wcs", **blob),
                *plane_attrs,
            ],
            ctx,
            2,
        ),
        "images": _schema(
            ("exposure", "plane"),
            [tiledb.Attr("meta", **text), tiledb.Attr("data", **blob)],
            ctx,
            1,
        ),
        "results": _schema(
            ("source", "key"), [tiledb.Attr("meta", **text), tiledb.Attr("data", **blob)], ctx, 4
        ),
    }
    for name, schema in schemas.items():
        tiledb.Array.create(str(root / name), schema, ctx=ctx)


def _objects(values: list[Any]) -> np.ndarray:
    """1-D object array of var-length cells (np.array would stack equal-length cells)."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


def _text(values: Iterable[Any]) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _eq(dim: str, value: str) -> str:
    """A TileDB query condition ``dim == value`` with the value safely quoted."""
    if "'" in value and '"' in value:
        raise StoreError(f"key {value!r} contains both quote characters")
    quote = '"' if "'" in value else "'"
    return f"{dim} == {quote}{value}{quote}"


class TileDBStore(Store):
    backend = "tiledb"

    def __init__(self, path: str | Path, mode: str = "r", threads: int = 2) -> None:
        super().__init__(path)
        assert self.path is not None
        self._writable = mode != "r"
        self.ctx = tiledb.Ctx(_config(threads))
        if mode == "w" and not (self.path / "cutouts").exists():
            write_manifest(self.path, self.backend)
            _create_arrays(self.path, self.ctx)
        self._manifest = read_manifest(self.path, expected_backend=self.backend)

    @property
    def schema_version(self) -> int:
        return int(self._manifest["schema_version"])

    def _uri(self, name: str) -> str:
        assert self.path is not None
        return str(self.path / name)

    def _open(self, name: str, mode: str = "r") -> tiledb.Array:
        if mode != "r" and not self._writable:
            raise StoreError(f"{self.path}: store opened read-only")
        return tiledb.open(self._uri(name), mode, ctx=self.ctx)

    def _read_all(self, name: str, attrs: list[str], cond: str | None = None) -> dict[str, Any]:
        with self._open(name) as arr:
            query = arr.query(attrs=attrs, cond=cond) if cond else arr.query(attrs=attrs)
            ndim = arr.schema.ndim
            return query.multi_index[tuple(slice(None) for _ in range(ndim))]

    # -- exposures --------------------------------------------------------
    def list_exposures(self) -> list[ExposureRecord]:
        rows = self._read_all("exposures", ["record"])
        return sorted(
            (ExposureRecord.from_json(t) for t in _text(rows["record"])), key=lambda r: r.name
        )

    def get_exposure(self, name: str) -> ExposureRecord | None:
        rows = self._read_all("exposures", ["record"], cond=_eq("name", name))
        records = _text(rows["record"])
        return ExposureRecord.from_json(records[0]) if records else None

    def _committed(self) -> set[str]:
        return set(_text(self._read_all("exposures", [])["name"]))

    def _commit_exposure(
        self, record: ExposureRecord, cutouts: list[Cutout], images: Mapping[str, np.ndarray]
    ) -> None:
        self._delete_stale(record.name, {(c.source, c.slit) for c in cutouts}, set(images))
        if cutouts:
            self._write_cutouts(cutouts)
        if images:
            self._write_images(record.name, images)
        with self._open("exposures", "w") as arr:  # the commit point
            arr[np.array([record.name])] = {"record": np.array([record.to_json()])}

    def _write_cutouts(self, cutouts: list[Cutout]) -> None:
        data: dict[str, Any] = {
            "ny": np.array([c.shape[0] for c in cutouts], dtype=np.int32),
            "nx": np.array([c.shape[1] for c in cutouts], dtype=np.int32),
            "meta": np.array([dumps_meta({**c.meta, "_planes": sorted(c.planes)}) for c in cutouts]),
            "wcs": _objects([c.wcs_asdf for c in cutouts]),
        }
        for plane, dtype in ALL_PLANES.items():
            empty = np.empty(0, dtype=dtype)
            data[plane] = _objects([c.planes.get(plane, empty).ravel() for c in cutouts])
        keys = [np.array([getattr(c, k) for c in cutouts]) for k in ("source", "exposure", "slit")]
        with self._open("cutouts", "w") as arr:
            arr[tuple(keys)] = data

    def _write_images(self, exposure: str, images: Mapping[str, np.ndarray]) -> None:
        names = sorted(images)
        metas = [dumps_meta({"shape": list(images[n].shape), "dtype": images[n].dtype.str}) for n in names]
        blobs = [np.ascontiguousarray(images[n]).tobytes() for n in names]
        with self._open("images", "w") as arr:
            arr[np.array([exposure] * len(names)), np.array(names)] = {
                "meta": np.array(metas),
                "data": _objects(blobs),
            }

    def _delete_stale(self, exposure: str, keep: set[tuple[str, str]], planes: set[str]) -> None:
        """Delete cells of an earlier ingest of ``exposure`` that the new one does not overwrite."""
        old = self._read_all("cutouts", [], cond=_eq("exposure", exposure))
        old_keys = set(zip(_text(old["source"]), _text(old["slit"]), strict=True))
        old_planes = set(_text(self._read_all("images", [], cond=_eq("exposure", exposure))["plane"]))
        if old_keys - keep or old_planes - planes:
            self._delete_cells("cutouts", exposure)
            self._delete_cells("images", exposure)
            # a delete hides cells written in the same millisecond: write strictly later
            time.sleep(0.005)

    def _delete_cells(self, array: str, exposure: str) -> None:
        with self._open(array, "d") as arr:
            arr.query(cond=_eq("exposure", exposure)).submit()

    def delete_exposure(self, name: str) -> None:
        with self._open("exposures", "d") as arr:
            arr.query(cond=_eq("name", name)).submit()
        self._delete_cells("cutouts", name)
        self._delete_cells("images", name)

    # -- cutouts ----------------------------------------------------------
    def list_cutouts(self, source: str | None = None) -> list[CutoutInfo]:
        cond = _eq("source", source) if source is not None else None
        rows = self._read_all("cutouts", ["ny", "nx", "meta"], cond=cond)
        committed = self._committed()
        infos = []
        for src, exp, slit, ny, nx, meta in zip(
            _text(rows["source"]), _text(rows["exposure"]), _text(rows["slit"]),
            rows["ny"], rows["nx"], _text(rows["meta"]), strict=True,
        ):
            if exp in committed:
                m = loads_meta(meta)
                m.pop("_planes", None)
                infos.append(CutoutInfo(src, exp, slit, (int(ny), int(nx)), m))
        return sorted(infos, key=lambda i: (i.source, i.exposure, i.slit))

    def read_cutouts(self, source: str, planes: Iterable[str] | None = None) -> list[Cutout]:
        wanted = list(ALL_PLANES) if planes is None else [p for p in planes if p in ALL_PLANES]
        rows = self._read_all("cutouts", ["ny", "nx", "meta", "wcs", *wanted], cond=_eq("source", source))
        committed = self._committed()
        out = []
        for i, (exp, slit) in enumerate(zip(_text(rows["exposure"]), _text(rows["slit"]), strict=True)):
            if exp not in committed:
                continue
            meta = loads_meta(rows["meta"][i])
            stored = set(meta.pop("_planes", ALL_PLANES))
            shape = (int(rows["ny"][i]), int(rows["nx"][i]))
            arrays = {p: np.array(rows[p][i]).reshape(shape) for p in wanted if p in stored}
            out.append(Cutout(source, exp, slit, meta, arrays, bytes(rows["wcs"][i])))
        del rows
        gc.collect()  # tiledb-py frees large query buffers only in the cycle collector
        return sorted(out, key=lambda c: (c.exposure, c.slit))

    # -- images -----------------------------------------------------------
    def _image_rows(self, exposure: str, attrs: list[str]) -> dict[str, Any]:
        if exposure not in self._committed():
            return {"plane": [], "meta": [], "data": []}
        return self._read_all("images", attrs, cond=_eq("exposure", exposure))

    def read_image(self, exposure: str, plane: str) -> np.ndarray:
        rows = self._image_rows(exposure, ["meta", "data"])
        for name, meta, blob in zip(_text(rows["plane"]), rows["meta"], rows["data"], strict=True):
            if name == plane:
                m = loads_meta(meta)
                image = np.frombuffer(bytes(blob), dtype=m["dtype"]).reshape(m["shape"]).copy()
                del rows
                gc.collect()
                return image
        raise KeyError(f"exposure {exposure!r} has no image plane {plane!r}")

    def read_images(self, exposure: str) -> dict[str, np.ndarray]:
        rows = self._image_rows(exposure, ["meta", "data"])
        out = {}
        for name, meta, blob in zip(_text(rows["plane"]), rows["meta"], rows["data"], strict=True):
            m = loads_meta(meta)
            out[name] = np.frombuffer(bytes(blob), dtype=m["dtype"]).reshape(m["shape"]).copy()
        del rows
        gc.collect()
        return out

    def list_images(self, exposure: str) -> list[str]:
        return sorted(_text(self._image_rows(exposure, ["meta"])["plane"]))

    # -- results ----------------------------------------------------------
    def put_result(
        self, source: str, key: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
    ) -> None:
        with self._open("results", "w") as arr:
            arr[np.array([source]), np.array([key])] = {
                "meta": np.array([dumps_meta(meta)]),
                "data": _objects([pack_arrays(arrays)]),
            }

    def get_result(self, source: str, key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        rows = self._read_all("results", ["meta", "data"], cond=f"{_eq('source', source)} and {_eq('key', key)}")
        if len(rows["meta"]) == 0:
            raise KeyError(f"no result {key!r} for source {source!r}")
        return unpack_arrays(bytes(rows["data"][0])), loads_meta(rows["meta"][0])

    def list_results(self, source: str | None = None) -> list[tuple[str, str]]:
        cond = _eq("source", source) if source is not None else None
        rows = self._read_all("results", [], cond=cond)
        return sorted(zip(_text(rows["source"]), _text(rows["key"]), strict=True))

    def _delete_result(self, source: str, key: str) -> None:
        with self._open("results", "d") as arr:
            arr.query(cond=f"{_eq('source', source)} and {_eq('key', key)}").submit()

    # -- maintenance ------------------------------------------------------
    def consolidate(self) -> None:
        """Merge fragments and vacuum; call when no other process reads the store.

        Commit consolidation is not done: after delete queries libtiledb 2.30
        fails on it (missing ``.del`` files).  Consolidation only speeds up
        reads, so a failure is reported as a warning, never an error.
        """
        for name in _ARRAYS:
            uri = self._uri(name)
            for mode in ("fragments", "fragment_meta"):
                cfg = _config()
                cfg["sm.consolidation.mode"] = mode
                cfg["sm.vacuum.mode"] = mode
                try:
                    tiledb.consolidate(uri, config=cfg, ctx=self.ctx)
                    tiledb.vacuum(uri, config=cfg, ctx=self.ctx)
                except tiledb.TileDBError as exc:
                    warnings.warn(f"{uri}: consolidation ({mode}) failed, reads may be slower: {exc}",
                                  Spec3cWarning, stacklevel=2)
