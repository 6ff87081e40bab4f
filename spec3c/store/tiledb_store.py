"""TileDB backend (the default).

Layout (a folder holding a manifest and four TileDB arrays)::

    STORE/spec3c-store.json
    STORE/exposures   sparse, dim name              attr record (JSON)
    STORE/cutouts     sparse, dims source, exposure, slit; capacity 2;
                      attrs ny, nx, meta, wcs, one var-length attribute per plane
    STORE/images      sparse, dims exposure, plane  attrs shape, dtype, data (zstd)
    STORE/frames/<exposure>.<id>
                      dense, dims y, x (tiles 64 x 512), or z, y, x (tiles 1 x 64 x 512)
                      for stacks of frames; one attribute per full-frame image plane
                      (shuffle + zstd): the 2-D or 3-D planes of an exposure that share
                      its largest shape (IFU frames, SOSS integrations); their
                      ``images`` cells only name the array and attribute
    STORE/results     sparse, dims source, key; capacity 1
                      attrs meta, data (packed arrays, zstd)

Each write is a TileDB fragment, which appears atomically.  An exposure's
cutouts and images are written first and its record last, so readers (which
only see cutouts of recorded exposures) never see a half-written exposure;
re-ingesting overwrites the orphaned cells (no duplicates allowed: the newest
fragment wins).  A re-ingested exposure gets a new frames array; the old one is
removed once the new record is committed.  A frames array may be written by
another process before the commit (:func:`write_frames_beforehand`: an ingest
worker), which then only names it.
"""

from __future__ import annotations

import functools
import gc
import os
import shutil
import signal
import threading
import time
import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import tiledb

from ..errors import Spec3cWarning, StoreError
from .base import (
    ALL_PLANES,
    Chained,
    Cutout,
    CutoutInfo,
    ExposureRecord,
    LazyCutouts,
    Store,
    WrittenFrames,
    cutout_keys,
    dumps_meta,
    loads_meta,
    pack_arrays,
    unpack_arrays,
)
from .layout import read_manifest, write_manifest

_ARRAYS = ("exposures", "cutouts", "images", "results")
#: arrays whose fragments are merged only once they hold superseded cells (see TileDBStore.consolidate)
_MERGED_WHEN_SUPERSEDED = ("cutouts", "results")
#: ... once more than this share of their stored cells is superseded: a few such cells (the x1d
#: spectral_leak corrects, one source of many processed again) cost reads little, while merging
#: rewrites every cell (a MIRI MRS association's cubes: 2.6 s, and ~500 MB more held meanwhile)
_SUPERSEDED_SHARE = 0.1
#: folder of the dense full-frame arrays, one per exposure (not consolidated: written once)
_FRAMES = "frames"
#: tile extents (rows, columns) of the full-frame arrays, read whole: whole rows, so that an MRS or
#: NIRSpec frame is 4-8 tiles a plane (64 x 512 tiles: a ZSTD context and tile header per 32k pixels)
_FRAME_TILE = (256, 2048)
#: memory budgets tried in turn for a consolidation: a cell must fit the buffers.  The first is small (a
#: consolidation's buffers were the peak of a MOS-50 run: 256 MiB cost ~80 MiB more and no time); not more
#: than the last: on the results of a 1e9-voxel cube libtiledb still reads 0 cells with 8 GiB, after 70 s and 3 GB
_CONSOLIDATION_BUDGETS = (64 * 2**20, 2 * 2**30)
#: bytes of planes per write of cutouts: a bound on the memory a write takes, not so small that an
#: exposure makes many fragments (consolidation merges them) or pays a write's fixed ~25 ms too often
#: (a 182 MB MOS member: 0.67 s in 16 MB writes, 0.49-0.54 s in 32 MB, the run's peak unchanged)
_WRITE_BYTES = 32 * 2**20
#: reads retried after a concurrent consolidation vacuumed the fragments they had opened
_READ_ATTEMPTS = 5
#: query-result bytes read before the cycle collector is run to free them (see _release)
_RELEASE_BYTES = 64 * 2**20
#: reads of images and results this large are released at once (an IFU exposure's frames, a cube): IFU
#: runs hold little else, and their peak memory is what they read
_RELEASE_AT_ONCE = 4 * 2**20


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
            # libtiledb 2.30's asynchronous tile merge in the sparse global-order reader (every read of
            # these no-duplicates arrays) crashed a worker in MergeUnit::~MergeUnit: read without it
            "sm.query.sparse_global_order.preprocess_tile_merge": "0",
        }
    )


def new_context(config: tiledb.Config) -> tiledb.Ctx:
    """A TileDB context, with this process's Ctrl-C handling left as it was.

    libtiledb's first context replaces the SIGINT handler with its own, which
    chains to the one before it; when SIGINT was ignored (a background job) it
    calls that ``SIG_IGN`` as a function and the process dies with SIGSEGV.
    The handler is put back (from the main thread, where Python allows it).
    """
    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGINT) if main else None
    try:
        return tiledb.Ctx(config)
    finally:
        if before is not None:
            signal.signal(signal.SIGINT, before)


def _filters(level: int = 1) -> tiledb.FilterList:
    return tiledb.FilterList([tiledb.ByteShuffleFilter(), tiledb.ZstdFilter(level=level)])


def _blob_filters() -> tiledb.FilterList:
    """Opaque blobs (packed result arrays, WCS bytes): LZ4, no shuffle (a byte shuffle of uint8 cells
    is the identity, and it ran as a byte-by-byte copy).  Against shuffle + ZSTD level 1, on the MIRI
    MRS bench: ``spec3c process`` 17.2/22.1 -> 16.2/19.6 s, the store's results 27 % larger."""
    return tiledb.FilterList([tiledb.LZ4Filter()])


def _frame_filters() -> tiledb.FilterList:
    """The full frames' compression: LZ4, written once at ingest and read whole by every step.  Against
    ZSTD level 1 in 64 x 512 tiles, per MIRI MRS frames array (19 planes): written in 0.32 s instead
    of 0.45 s, read in 0.10 s instead of 0.14 s, 30 % larger (29.5 MB against 22.6 MB)."""
    return tiledb.FilterList([tiledb.ByteShuffleFilter(), tiledb.LZ4Filter()])


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
    # opaque blobs as var-length uint8: tiledb-py writes Python bytes cells ~12x slower
    blob = {"dtype": np.uint8, "var": True, "filters": _blob_filters(), "ctx": ctx}
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
        # one cell per tile: a read unfilters whole tiles, and a result can be an 8 MB slab of an IFU
        # cube (capacity 4: a MIRI MRS export's 72 slabs read in 2.3 s, 1.0 s with capacity 1)
        "results": _schema(
            ("source", "key"), [tiledb.Attr("meta", **text), tiledb.Attr("data", **blob)], ctx, 1
        ),
    }
    for name, schema in schemas.items():
        uri = root / name
        if tiledb.object_type(str(uri), ctx=ctx) == "array":  # created whole: only a complete
            continue  # array is ever renamed to its name
        if uri.exists():  # a store of an earlier version whose creation was killed: never written
            shutil.rmtree(uri)
        # created under a temporary name, then renamed: a kill mid-creation (a schema file half
        # written) leaves only the temporary folder, removed by the next attempt
        creating = root / f".{name}.creating"
        if creating.exists():
            shutil.rmtree(creating)
        tiledb.Array.create(str(creating), schema, ctx=ctx)
        os.rename(creating, uri)


def _objects(values: list[Any]) -> np.ndarray:
    """1-D object array of var-length cells (np.array would stack equal-length cells)."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = np.frombuffer(v, dtype=np.uint8) if isinstance(v, bytes | bytearray) else v
    return out


def _cutout_cells(cutouts: list[Cutout]) -> tuple[tuple[np.ndarray, ...], dict[str, Any]]:
    """The coordinates (source, exposure, slit) and attribute values of ``cutouts``' cells."""
    data: dict[str, Any] = {
        "ny": np.array([c.shape[0] for c in cutouts], dtype=np.int32),
        "nx": np.array([c.shape[1] for c in cutouts], dtype=np.int32),
        "meta": np.array([dumps_meta({**c.meta, "_planes": sorted(c.planes)}) for c in cutouts]),
        "wcs": _objects([c.wcs_asdf for c in cutouts]),
    }
    for plane, dtype in ALL_PLANES.items():
        empty = np.empty(0, dtype=dtype)
        data[plane] = _objects([c.planes.get(plane, empty).ravel() for c in cutouts])
    keys = tuple(np.array([getattr(c, k) for c in cutouts]) for k in ("source", "exposure", "slit"))
    return keys, data


def _write_cells(arr: tiledb.Array, cutouts: list[Cutout]) -> None:
    """One write (a fragment) of ``cutouts``' cells."""
    keys, data = _cutout_cells(cutouts)
    arr[keys] = data


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
        self.ctx = new_context(_config(threads))
        self._unreleased = 0  # bytes of query results read since the last collection
        if mode == "w":  # a new store, or one whose creation was interrupted
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
        for attempt in range(_READ_ATTEMPTS):
            try:
                with self._open(name) as arr:
                    query = arr.query(attrs=attrs, cond=cond) if cond else arr.query(attrs=attrs)
                    ndim = arr.schema.ndim
                    return query.multi_index[tuple(slice(None) for _ in range(ndim))]
            except tiledb.TileDBError:
                # a writer's vacuum removed fragments this reader had listed: reopen and read again
                if attempt == _READ_ATTEMPTS - 1:
                    raise
                time.sleep(0.02 * (attempt + 1))
        raise AssertionError("unreachable")

    def _read_ranges(self, name: str, attrs: list[str], ranges: tuple[Any, ...]) -> dict[str, Any]:
        """Cells in ``ranges`` (one entry per dimension: ``slice(None)``, a key, a list of keys and
        ``slice(lo, hi)``), read through the array's index (a condition reads every cell)."""
        for attempt in range(_READ_ATTEMPTS):
            try:
                with self._open(name) as arr:
                    return arr.query(attrs=attrs).multi_index[ranges]
            except tiledb.TileDBError:  # a concurrent vacuum (see _read_all)
                if attempt == _READ_ATTEMPTS - 1:
                    raise
                time.sleep(0.02 * (attempt + 1))
        raise AssertionError("unreachable")

    def _release(self, nbytes: int, at_once: int = _RELEASE_BYTES) -> None:
        """tiledb-py frees query buffers only in the cycle collector: run it once ``_RELEASE_BYTES``
        were read, or at once after a read of ``at_once`` bytes or more (a full collection costs
        ~0.03-2 s in a process holding many objects, so not after every small read)."""
        self._unreleased += nbytes
        if self._unreleased >= _RELEASE_BYTES or nbytes >= at_once:
            gc.collect()
            self._unreleased = 0

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
        self, record: ExposureRecord, cutouts: Sequence[Cutout], images: Mapping[str, np.ndarray]
    ) -> None:
        self._commit_exposures([(record, cutouts, images)])  # type: ignore[list-item]  # (a LazyCutouts)

    def _commit_exposures(
        self, exposures: Sequence[tuple[ExposureRecord, LazyCutouts, Mapping[str, np.ndarray]]],
        written: Mapping[str, WrittenFrames] | None = None,
    ) -> None:
        """Their cutouts in writes of :data:`_WRITE_BYTES`, each one's full frames in a dense array of its
        own (or the one ``written`` names), all their image cells in one write, then all their records in
        one: the commit point of all."""
        written = written or {}
        for record, cutouts, images in exposures:
            planes = set(images) | set(written[record.name].planes if record.name in written else ())
            self._delete_stale(record.name, {(source, slit) for source, _, slit in cutout_keys(cutouts)}, planes)
        if any(len(cutouts) for _, cutouts, _ in exposures):
            self._write_cutouts(Chained([cutouts for _, cutouts, _ in exposures]))
        cells: list[tuple[str, list[str], list[str], list[bytes]]] = []
        folders: dict[str, str | None] = {}  # each exposure's frames array (None: it has none)
        for record, _, images in exposures:
            if record.name in written:
                cells.append(_written_cells(record.name, images, written[record.name]))
                folders[record.name] = written[record.name].folder
            else:
                framed = self._write_frames_of(record.name, images)
                cells.append(_image_cells(record.name, images, framed))
                folders[record.name] = next(iter(framed.values()))[0] if framed else None
        if any(names for _, names, _, _ in cells):
            self._write_image_cells(cells)
        with self._open("exposures", "w") as arr:
            arr[np.array([record.name for record, _, _ in exposures])] = {
                "record": np.array([record.to_json() for record, _, _ in exposures])}
        if self._writable:
            for exposure, folder in folders.items():
                self._remove_frames(exposure, keep=folder)

    takes_written_frames = True

    def _commit_with_written(
        self, exposures: Sequence[tuple[ExposureRecord, LazyCutouts, Mapping[str, np.ndarray]]],
        written: Mapping[str, WrittenFrames],
    ) -> None:
        for name, frames in written.items():
            if not Path(self._uri(f"{_FRAMES}/{frames.folder}")).is_dir():
                raise StoreError(f"exposure {name!r}: its frames array {frames.folder!r} is not in {self.path}")
        self._commit_exposures(exposures, written)

    def _write_cutouts(self, cutouts: Sequence[Cutout]) -> None:
        """In writes of at most :data:`_WRITE_BYTES` of planes each (libtiledb holds about twice a
        write's cells while it filters them), each cutout loaded when its write is made up, in key
        order: each fragment then holds a contiguous run of sources, a source's read opens about one
        fragment per exposure, and the fragments need not be merged (see :meth:`consolidate`).  The
        exposure's record, written after, commits them."""
        keys = cutout_keys(cutouts)
        with self._open("cutouts", "w") as arr:
            batch: list[Cutout] = []
            size = 0
            for index in sorted(range(len(keys)), key=keys.__getitem__):
                c = cutouts[index]
                nbytes = sum(a.nbytes for a in c.planes.values())
                if batch and size + nbytes > _WRITE_BYTES:
                    _write_cells(arr, batch)
                    batch, size = [], 0
                batch.append(c)
                size += nbytes
            if batch:
                _write_cells(arr, batch)

    def _write_frames_of(self, exposure: str, images: Mapping[str, np.ndarray]) -> dict[str, tuple[str, str]]:
        """The full frames of ``images`` in a new dense array: ``{plane: (folder, attribute)}`` (none: {})."""
        frames = _frame_planes(images)
        if not frames:
            return {}
        folder = self._write_frames(exposure, {n: images[n] for n in frames})
        return {n: (folder, attr) for n, attr in frames.items()}

    def _write_image_cells(self, cells: Sequence[tuple[str, list[str], list[str], list[bytes]]]) -> None:
        """One write of the image cells of several exposures (:func:`_image_cells`)."""
        keys = [exposure for exposure, names, _, _ in cells for _ in names]
        names = [name for _, names, _, _ in cells for name in names]
        with self._open("images", "w") as arr:
            arr[np.array(keys), np.array(names)] = {
                "meta": np.array([m for _, _, metas, _ in cells for m in metas]),
                "data": _objects([b for _, _, _, blobs in cells for b in blobs])}

    def _write_frames(self, exposure: str, planes: Mapping[str, np.ndarray]) -> str:
        """A new dense array holding ``planes`` (one shape); returns its folder name."""
        return _new_frames_array(Path(self._uri(".")), self.ctx, exposure, planes)

    def _remove_frames(self, exposure: str, keep: str | None = None) -> None:
        """Remove the frames arrays of ``exposure`` but ``keep``."""
        root = Path(self._uri(_FRAMES))
        if root.is_dir():
            prefix = f"{quote(exposure, safe='')}."
            for folder in root.iterdir():
                if folder.name.startswith(prefix) and "." not in folder.name[len(prefix):] and folder.name != keep:
                    shutil.rmtree(folder, ignore_errors=True)

    def _delete_stale(self, exposure: str, keep: set[tuple[str, str]], planes: set[str]) -> None:
        """Delete cells of an earlier ingest of ``exposure`` that the new one does not overwrite."""
        old = self._read_ranges("cutouts", [], (slice(None), [exposure], slice(None)))
        old_keys = set(zip(_text(old["source"]), _text(old["slit"]), strict=True))
        old_planes = set(_text(self._read_ranges("images", [], ([exposure], slice(None)))["plane"]))
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
        self._remove_frames(name)

    # -- cutouts ----------------------------------------------------------
    def list_cutouts(self, source: str | None = None) -> list[CutoutInfo]:
        rows = (self._read_all("cutouts", ["ny", "nx", "meta"]) if source is None else
                self._read_ranges("cutouts", ["ny", "nx", "meta"], ([source], slice(None), slice(None))))
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
        rows = self._read_ranges("cutouts", ["ny", "nx", "meta", "wcs", *wanted], ([source], slice(None), slice(None)))
        return self._cutouts_of_rows(rows, wanted).get(source, [])

    def read_cutouts_of(self, sources: Sequence[str], planes: Iterable[str] | None = None) -> dict[str, list[Cutout]]:
        wanted = list(ALL_PLANES) if planes is None else [p for p in planes if p in ALL_PLANES]
        keys = list(dict.fromkeys(str(s) for s in sources))
        if not keys:
            return {}
        rows = self._read_ranges("cutouts", ["ny", "nx", "meta", "wcs", *wanted], (keys, slice(None), slice(None)))
        found = self._cutouts_of_rows(rows, wanted)
        return {s: found.get(s, []) for s in keys}

    def _cutouts_of_rows(self, rows: dict[str, Any], wanted: list[str]) -> dict[str, list[Cutout]]:
        """Cutouts of committed exposures in a query result, by source, sorted by (exposure, slit)."""
        committed = self._committed()
        out: dict[str, list[Cutout]] = {}
        for i, (src, exp, slit) in enumerate(zip(_text(rows["source"]), _text(rows["exposure"]),
                                                 _text(rows["slit"]), strict=True)):
            if exp not in committed:
                continue
            meta = loads_meta(rows["meta"][i])
            stored = set(meta.pop("_planes", ALL_PLANES))
            shape = (int(rows["ny"][i]), int(rows["nx"][i]))
            arrays = {p: np.array(rows[p][i]).reshape(shape) for p in wanted if p in stored}
            out.setdefault(src, []).append(Cutout(src, exp, slit, meta, arrays, bytes(rows["wcs"][i])))
        nbytes = sum(int(ny) * int(nx) for ny, nx in zip(rows["ny"], rows["nx"], strict=True)) * 8 * (len(wanted) + 1)
        del rows
        self._release(nbytes)
        return {s: sorted(c, key=lambda c: (c.exposure, c.slit)) for s, c in out.items()}

    # -- images -----------------------------------------------------------
    def _image_rows(self, exposure: str, attrs: list[str]) -> dict[str, Any]:
        if exposure not in self._committed():
            return {"plane": [], "meta": [], "data": []}
        return self._read_ranges("images", attrs, ([exposure], slice(None)))

    def read_image(self, exposure: str, plane: str) -> np.ndarray:
        rows = self._image_rows(exposure, ["meta", "data"])
        for name, meta, blob in zip(_text(rows["plane"]), rows["meta"], rows["data"], strict=True):
            if name == plane:
                m = loads_meta(meta)
                if "frame" in m:
                    image = self._read_frames(m["frame"], {plane: m["attr"]})[plane]
                else:
                    image = np.frombuffer(bytes(blob), dtype=m["dtype"]).reshape(m["shape"]).copy()
                del rows
                self._release(image.nbytes, at_once=_RELEASE_AT_ONCE)
                return image
        raise KeyError(f"exposure {exposure!r} has no image plane {plane!r}")

    def read_images(self, exposure: str, planes: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        wanted = None if planes is None else set(planes)
        rows = self._image_rows(exposure, ["meta", "data"])
        out = {}
        frames: dict[str, dict[str, str]] = {}
        for name, meta, blob in zip(_text(rows["plane"]), rows["meta"], rows["data"], strict=True):
            if wanted is not None and name not in wanted:
                continue
            m = loads_meta(meta)
            if "frame" in m:
                frames.setdefault(m["frame"], {})[name] = m["attr"]
            else:
                out[name] = np.frombuffer(bytes(blob), dtype=m["dtype"]).reshape(m["shape"]).copy()
        del rows
        for folder, attrs in frames.items():
            out.update(self._read_frames(folder, attrs))
        self._release(sum(a.nbytes for a in out.values()), at_once=_RELEASE_AT_ONCE)
        return out

    def _read_frames(self, folder: str, attrs: Mapping[str, str]) -> dict[str, np.ndarray]:
        """Planes ``{name: attribute}`` of one frames array, whole."""
        with tiledb.open(self._uri(f"{_FRAMES}/{folder}"), ctx=self.ctx) as arr:
            data = arr.query(attrs=list(attrs.values()))[:]
        return {name: data[attr] for name, attr in attrs.items()}

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

    def put_results(
        self, results: Iterable[tuple[str, str, Mapping[str, np.ndarray], Mapping[str, Any]]]
    ) -> None:
        items = list(results)
        if not items:
            return
        latest = {(src, key): (arrays, meta) for src, key, arrays, meta in items}  # one cell per key
        keys = list(latest)
        with self._open("results", "w") as arr:
            arr[np.array([k[0] for k in keys]), np.array([k[1] for k in keys])] = {
                "meta": np.array([dumps_meta(latest[k][1]) for k in keys]),
                "data": _objects([pack_arrays(latest[k][0]) for k in keys]),
            }

    def result_as_read(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
                       ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return unpack_arrays(pack_arrays(arrays)), loads_meta(dumps_meta(meta))

    def get_results(self, key: str) -> dict[tuple[str, str], tuple[dict[str, np.ndarray], dict[str, Any]]]:
        ranges = [key, slice(f"{key}/", f"{key}0")]  # the key and every "key/..." ('0' follows '/')
        rows = self._read_ranges("results", ["meta", "data"], (slice(None), ranges))
        out = {(src, k): (unpack_arrays(blob), loads_meta(meta)) for src, k, meta, blob in
               zip(_text(rows["source"]), _text(rows["key"]), rows["meta"], rows["data"], strict=True)
               if k == key or k.startswith(f"{key}/")}
        del rows
        self._release(sum(a.nbytes for arrays, _ in out.values() for a in arrays.values()), at_once=_RELEASE_AT_ONCE)
        return out

    def get_results_of(self, source: str, keys: Sequence[str]) -> dict[str, tuple[dict[str, np.ndarray], dict[str, Any]]]:
        if not keys:
            return {}
        rows = self._read_ranges("results", ["meta", "data"], ([source], sorted(set(keys))))
        out = {k: (unpack_arrays(blob), loads_meta(meta))
               for k, meta, blob in zip(_text(rows["key"]), rows["meta"], rows["data"], strict=True)}
        self._release(sum(len(blob) for blob in rows["data"]))
        return out

    def get_result(self, source: str, key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        rows = self._read_ranges("results", ["meta", "data"], ([source], [key]))
        if len(rows["meta"]) == 0:
            raise KeyError(f"no result {key!r} for source {source!r}")
        return unpack_arrays(rows["data"][0]), loads_meta(rows["meta"][0])

    def list_results(self, source: str | None = None) -> list[tuple[str, str]]:
        if source is None:
            rows = self._read_all("results", [])
        else:  # through the index: a condition would scan every source's results
            rows = self._read_ranges("results", [], ([source], slice(None)))
        return sorted(zip(_text(rows["source"]), _text(rows["key"]), strict=True))

    def _delete_result(self, source: str, key: str) -> None:
        with self._open("results", "d") as arr:
            arr.query(cond=f"{_eq('source', source)} and {_eq('key', key)}").submit()

    # -- maintenance ------------------------------------------------------
    def consolidate(self) -> None:
        """Merge fragments and vacuum; call when no other process reads the store.

        The cutouts' and results' fragments are merged only when more than a tenth
        of their cells are ones reads skip (exposures ingested again or deleted, sources
        processed again): cutouts written in key order read almost as fast unmerged (MOS 50 x 3
        at 2048 px: 2.6 s of merging saved, ~0.3 s more reading), and merging
        rewrites every pixel (a MIRI MRS association's twelve cubes: 5.6 s, with
        no slower export).  Their fragment metadata is always consolidated.  Commit consolidation is
        not done: after delete queries libtiledb 2.30 fails on it (missing
        ``.del`` files).  Consolidation only speeds up reads, so a failure is
        reported as a warning, never an error.
        """
        for name in _ARRAYS:
            uri = self._uri(name)
            merge = name not in _MERGED_WHEN_SUPERSEDED or self._superseded(name)
            for mode in ("fragments", "fragment_meta") if merge else ("fragment_meta",):
                try:
                    self._consolidate(uri, mode)
                except tiledb.TileDBError as exc:
                    warnings.warn(f"{uri}: consolidation ({mode}) failed, reads may be slower: {exc}",
                                  Spec3cWarning, stacklevel=2)

    def _superseded(self, name: str) -> bool:
        """Whether more than :data:`_SUPERSEDED_SHARE` of the cells the fragments of array ``name``
        hold are ones a read skips (overwritten or deleted)."""
        stored = sum(f.cell_num for f in tiledb.array_fragments(self._uri(name), ctx=self.ctx))
        return stored - len(self._read_all(name, [])["source"]) > _SUPERSEDED_SHARE * stored

    def _consolidate(self, uri: str, mode: str) -> None:
        """Consolidate then vacuum ``uri``; with a larger memory budget when one cell does not fit in it.

        A result cell (an IFU cube's planes) can be larger than the consolidation
        buffers of the small default budget: libtiledb then reads 0 cells.
        """
        for budget in _CONSOLIDATION_BUDGETS:
            cfg = _config()
            cfg["sm.consolidation.mode"] = mode
            cfg["sm.vacuum.mode"] = mode
            cfg["sm.mem.total_budget"] = str(budget)
            try:
                tiledb.consolidate(uri, config=cfg, ctx=self.ctx)
            except tiledb.TileDBError as exc:
                if "read 0 cells" not in str(exc) or budget == _CONSOLIDATION_BUDGETS[-1]:
                    raise
                continue
            tiledb.vacuum(uri, config=cfg, ctx=self.ctx)
            return


def _new_frames_array(root: Path, ctx: tiledb.Ctx, exposure: str, planes: Mapping[str, np.ndarray]) -> str:
    """A new dense array under ``root/frames`` holding ``planes`` (one shape); returns its folder name."""
    folder = f"{quote(exposure, safe='')}.{uuid.uuid4().hex[:12]}"
    uri = str(root / _FRAMES / folder)
    (root / _FRAMES).mkdir(exist_ok=True)
    shape = next(iter(planes.values())).shape
    names, tiles = ("z", "y", "x")[-len(shape):], (1, *_FRAME_TILE)[-len(shape):]  # a stack: one frame per tile
    domain = tiledb.Domain(*[
        tiledb.Dim(name, domain=(0, size - 1), tile=min(tile, size), dtype=np.int32, ctx=ctx)
        for name, size, tile in zip(names, shape, tiles, strict=True)], ctx=ctx)
    attrs = _frame_attrs(planes)
    schema = tiledb.ArraySchema(domain=domain, sparse=False, ctx=ctx, attrs=[
        tiledb.Attr(attr, dtype=planes[name].dtype.newbyteorder("="), filters=_frame_filters(), ctx=ctx)
        for name, attr in attrs.items()])
    tiledb.Array.create(uri, schema, ctx=ctx)
    with tiledb.open(uri, "w", ctx=ctx) as arr:
        arr[:] = {attr: np.ascontiguousarray(planes[name], dtype=planes[name].dtype.newbyteorder("="))
                  for name, attr in attrs.items()}
    return folder


@functools.cache
def _writer_context(threads: int) -> tiledb.Ctx:
    """This process's context for :func:`write_frames_beforehand` (made once: it starts thread pools)."""
    return new_context(_config(threads))


def write_frames_beforehand(root: str | os.PathLike[str], exposure: str, images: Mapping[str, np.ndarray],
                            threads: int = 1) -> tuple[WrittenFrames | None, dict[str, np.ndarray]]:
    """Write the full frames of ``images`` (:func:`_frame_planes`) into a new dense array of the TileDB
    store at ``root``, from any process (an ingest worker: the frames then need not be passed to
    the process committing them).  Nothing refers to the array until the exposure is committed with
    it (:meth:`Store.commit_exposures`); the caller removes it if that does not happen.  Returns the
    array's :class:`WrittenFrames` (None: no frames) and the other images."""
    frames = _frame_planes(images)
    rest = {n: a for n, a in images.items() if n not in frames}
    if not frames:
        return None, rest
    folder = _new_frames_array(Path(root), _writer_context(threads), exposure, {n: images[n] for n in frames})
    return WrittenFrames(folder, {n: (attr, tuple(images[n].shape), images[n].dtype.str)
                                  for n, attr in frames.items()}), rest


def _image_cells(exposure: str, images: Mapping[str, np.ndarray],
                 framed: Mapping[str, tuple[str, str]]) -> tuple[str, list[str], list[str], list[bytes]]:
    """The image cells of ``exposure`` (plane names, metas, data): each plane's array, or for a plane of
    ``framed`` where its frames array holds it."""
    names, metas, blobs = [], [], []
    for n in sorted(images):
        meta: dict[str, Any] = {"shape": list(images[n].shape), "dtype": images[n].dtype.str}
        in_frames = framed.get(n)
        if in_frames is not None:
            meta.update(frame=in_frames[0], attr=in_frames[1])
        names.append(n)
        metas.append(dumps_meta(meta))
        blobs.append(b"" if in_frames is not None else np.ascontiguousarray(images[n]).tobytes())
    return exposure, names, metas, blobs


def _written_cells(exposure: str, images: Mapping[str, np.ndarray],
                   written: WrittenFrames) -> tuple[str, list[str], list[str], list[bytes]]:
    """:func:`_image_cells` of an exposure whose full frames were written beforehand."""
    _, names, metas, blobs = _image_cells(exposure, {n: a for n, a in images.items() if n not in written.planes}, {})
    for n, (attr, shape, dtype) in written.planes.items():
        names.append(n)
        metas.append(dumps_meta({"shape": list(shape), "dtype": dtype, "frame": written.folder, "attr": attr}))
        blobs.append(b"")
    return exposure, names, metas, blobs


def _frame_planes(images: Mapping[str, np.ndarray]) -> dict[str, str]:
    """The full-frame planes of an exposure's images: the 2-D frames or 3-D stacks of frames of
    the largest shape, each with the attribute name it gets in the dense array."""
    shapes = [a.shape for a in images.values() if a.ndim in (2, 3) and a.size > 0]
    if not shapes:
        return {}
    frame = max(shapes, key=lambda sh: (int(np.prod(sh)), sh))
    names = sorted(n for n, a in images.items() if a.shape == frame)
    return {n: f"p{k}" for k, n in enumerate(names)}


def _frame_attrs(planes: Mapping[str, np.ndarray]) -> dict[str, str]:
    return {n: f"p{k}" for k, n in enumerate(sorted(planes))}
