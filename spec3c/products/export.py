"""``spec3c export``: write a store's per-source products as FITS files.

A product is written again only when its source was recomputed since it was
written, or the file is missing or differs from what was written: each
export records, in the store, the sha256 of every file it wrote for an output
folder together with the source's ``run`` id (``status``).  Every product
carries its provenance (:func:`spec3c.products.meta.product_stamp`).
Sources whose processing failed are not exported; they are reported at the
end (:class:`ExportIncomplete`) after every other source was written.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Spec3cError
from ..log import logger
from ..modes.base import ASSOCIATION, CUBE, EXPOSURE, SOURCE, Layout
from ..modes.registry import mode_of_store
from ..naming import ProductNaming
from ..parallel import (
    JobResults,
    ProgressFn,
    map_sources,
    share_with_helper,
    shared_workers_running,
)
from ..provenance import file_sha256
from ..results import ASSOCIATION_SOURCE, S3D, STATUS, X1D, IfuCube, crf_key
from ..store import Store, open_store
from ..store.records import ALL_PLANES, Cutout
from .fits_io import finished_in_background
from .ifu_crf import crf_exposures, write_ifu_crfs
from .ifu_x1d import write_cube_x1ds
from .meta import product_stamp, stamping, step_params, step_statuses
from .s3d import write_s3d
from .soss import write_soss_c1d, write_soss_x1d
from .wfss import write_wfss_c1d, write_wfss_x1d
from .writers import (
    _resolved,
    write_exposure_crfs,
    write_exposure_x1ds,
    write_s2d,
    write_source_c1d,
    write_source_cal,
    write_source_crf,
    write_x1d,
)

__all__ = ["DEFAULT_SUFFIXES", "ExportIncomplete", "ExportRequest", "ExportedPaths", "ProcessedSource",
           "export_processed", "export_request", "export_source", "export_store", "products_available"]

_log = logger("export")

#: writes one product of one source: (store, source, naming, output folder) -> path(s) written
Writer = Callable[[Store, str, ProductNaming, "str | os.PathLike[str]"], "Path | list[Path]"]

DEFAULT_SUFFIXES = ("cal", "crf", "s2d", "s3d", "x1d", "c1d")

#: (suffix, layout) -> writer; a mode's ``products`` picks the layout of each suffix it writes
_WRITERS: dict[tuple[str, Layout], Writer] = {
    ("cal", SOURCE): write_source_cal,
    ("crf", SOURCE): write_source_crf,
    ("crf", EXPOSURE): write_exposure_crfs,
    ("s2d", SOURCE): write_s2d,
    ("s3d", SOURCE): write_s3d,
    ("x1d", SOURCE): write_x1d,
    ("x1d", EXPOSURE): write_exposure_x1ds,
    ("x1d", CUBE): write_cube_x1ds,
    ("c1d", SOURCE): write_source_c1d,
}
#: writes one product holding every source: (store, naming, output folder, sources or None) -> paths
AssociationWriter = Callable[[Store, ProductNaming, "str | os.PathLike[str]", "Sequence[str] | None"], "list[Path]"]

#: suffix -> writer of the ASSOCIATION layout (WFSS: one x1d and one c1d for all sources)
_ASSOCIATION_WRITERS: dict[str, AssociationWriter] = {
    "x1d": write_wfss_x1d,
    "c1d": write_wfss_c1d,
}
#: modes whose association products are not WFSS's: mode name -> suffix -> writer
_MODE_ASSOCIATION_WRITERS: dict[str, dict[str, AssociationWriter]] = {
    "niriss-soss": {"x1d": write_soss_x1d, "c1d": write_soss_c1d},
}
_SUFFIXES = tuple(dict.fromkeys([*(suffix for suffix, _ in _WRITERS), *_ASSOCIATION_WRITERS]))


def _has_result(suffix: str, layout: Layout, keys: set[str], outlier_ran: bool) -> bool:
    """Whether ``process`` left what the ``suffix`` product is written from."""
    if suffix == "cal":
        return True
    if suffix == "crf":
        return outlier_ran or any(k.startswith("crf/") for k in keys)
    if suffix == "x1d" and layout in (EXPOSURE, CUBE):
        return any(k.startswith(f"{X1D}/") for k in keys)  # one spectrum per exposure, or per IFU cube
    if suffix == S3D:
        return any(k.startswith(f"{S3D}/") for k in keys)  # one result per cube
    return suffix in keys


def products_available(store: Store, source: str) -> list[str]:
    """Suffixes of the store's mode that can be written for ``source``: ``cal`` always;
    ``crf`` when a crf result exists or outlier_detection ran (a step skipped by its ``skip``
    parameter saves nothing in the reference, stpipe's ``Step.run``; one that skipped itself,
    e.g. with one exposure, saves its ``crf``); the others when their result exists.  Without
    a ``status`` (never processed, or a run that stopped half way) only ``cal``: results
    without a status are not complete."""
    keys = {key for _, key in store.list_results(source)}
    if STATUS not in keys:
        keys = set()
    outlier_ran = STATUS in keys and _ran("outlier_detection", store.get_result(source, STATUS)[1])
    products = {s: layout for s, layout in mode_of_store(store).products.items() if layout != ASSOCIATION}
    return [s for s in _SUFFIXES if s in products and _has_result(s, products[s], keys, outlier_ran)]


def _ran(step: str, status: Mapping[str, Any]) -> bool:
    """Whether ``step`` has a status and was not skipped by its ``skip`` parameter."""
    return step in step_statuses(status) and not step_params(status, step).get("skip", False)


def _writer(store: Store, suffix: str) -> Writer:
    mode = mode_of_store(store)
    if suffix == "crf" and mode.cube is not None:  # IFU: full-frame IFUImageModel exposures
        return write_ifu_crfs
    return _WRITERS[(suffix, mode.products[suffix])]


@dataclass
class ProcessedSource:
    """What processing one source read and wrote, as the store returns it: ``cutouts`` (every
    plane, as read before the steps changed them) and ``results`` (key -> (arrays, meta)).  The
    worker that processed the source exports it from these (:func:`export_processed`) instead of
    reading them back; what is not here is read from the store."""

    source: str
    cutouts: list[Cutout] | None = None
    results: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)


def _with_planes(cutouts: list[Cutout], planes: Any) -> list[Cutout]:
    """``cutouts`` as a store's ``read_cutouts(source, planes)`` returns them."""
    if planes is None:
        return cutouts
    wanted = [p for p in planes if p in ALL_PLANES]
    return [Cutout(c.source, c.exposure, c.slit, c.meta, {p: c.planes[p] for p in wanted if p in c.planes},
                   c.wcs_asdf) for c in cutouts]


class _CachedStore:
    """Read-through cache over a store for one export: every writer of a
    source asks for the same exposures, cutouts and results.  ``processed``: what processing the
    source has just read and written, served without reading the store."""

    def __init__(self, store: Store, processed: ProcessedSource | None = None) -> None:
        self._store = store
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._processed = processed
        if processed is not None:
            for key, result in processed.results.items():
                self._cache[("get_result", processed.source, key)] = result

    def _cached(self, name: str, *args: Any) -> Any:
        key = (name, *args)
        if key not in self._cache:
            self._cache[key] = getattr(self._store, name)(*args)
        return self._cache[key]

    def list_exposures(self) -> Any:
        return self._cached("list_exposures")

    def list_cutouts(self, source: str | None = None) -> Any:
        return self._cached("list_cutouts", source)

    def read_cutouts(self, source: str, planes: Any = None) -> Any:
        known = self._processed
        if known is not None and known.source == source and known.cutouts is not None:
            return _with_planes(known.cutouts, planes)
        return self._cached("read_cutouts", source, planes)

    def list_results(self, source: str | None = None) -> Any:
        return self._cached("list_results", source)

    def get_result(self, source: str, key: str) -> Any:
        if "/planes/" in key or key in self._frame_results(source):  # streamed into their products, never all held
            return self._store.get_result(source, key)
        if ("get_result", source, key) not in self._cache:
            self._read_family(source, key)
        if ("get_result", source, key) not in self._cache:
            raise KeyError(f"no result {key!r} for source {source!r}")
        return self._cache[("get_result", source, key)]

    def _read_family(self, source: str, key: str) -> None:
        """Read ``key`` with the source's other results in one query, not one query each: a
        source's every result (its status, ``crf/...`` of each exposure, s2d, x1d...: what its
        products are made of) but its cube tiles and frame-sized ones (:meth:`_frame_results`), the
        association's results of the key's family only."""
        family = key.split("/", 1)[0] + "/"
        alone = self._frame_results(source)
        keys = {key} | {k for _, k in self.list_results(source) if "/planes/" not in k and k not in alone and (
            source != ASSOCIATION_SOURCE or ("/" in key and k.startswith(family)))}
        unread = sorted(k for k in keys if ("get_result", source, k) not in self._cache)
        for name, result in (self._store.get_results_of(source, unread) if unread else {}).items():
            self._cache.setdefault(("get_result", source, name), result)

    def _frame_results(self, source: str) -> set[str]:
        """The source's results of a whole detector frame each: the outlier-flagged DQ of the
        exposures of a mode ingested as full frames (IFU).  They are read one
        at a time as their ``_crf`` is written: one query for 24 MIRI frames' (96 MB) held ~4x that
        in tiledb-py's buffers and their copies."""
        if not self._full_frames:
            return set()
        return {crf_key(c.exposure, c.slit) for c in self.list_cutouts(source)}

    @functools.cached_property
    def _full_frames(self) -> bool:
        """Whether the store's mode ingests its exposures as full frames (IFU)."""
        try:
            return mode_of_store(self).read_frames is not None  # type: ignore[arg-type]
        except Spec3cError:  # no (or mixed) science exposures: none of full frames either
            return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@dataclass
class SourceExport:
    """What exporting one source did: ``products`` is ``{suffix: {file name: sha256}}`` of
    every product it has in the folder (written now or before), ``run`` its status's run id."""

    source: str
    run: str | None
    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    products: dict[str, dict[str, str]] = field(default_factory=dict)
    available: list[str] = field(default_factory=list)  # the suffixes the source has

    @property
    def paths(self) -> list[Path]:
        return self.written + self.unchanged

    def record(self) -> dict[str, Any]:
        """What the store keeps of it (the folder's manifest entry of the source)."""
        return {"run": self.run, "products": self.products, "available": self.available}


def _status(store: Store, source: str) -> dict[str, Any] | None:
    try:
        return store.get_result(source, STATUS)[1]
    except KeyError:
        return None


def _unchanged(out_dir: Path, previous: Mapping[str, Any] | None, run: str | None, suffix: str) -> list[Path] | None:
    """The ``suffix`` products of a source that are still what an earlier export wrote for the
    same run of the source (None if any is missing, differs, or the source was recomputed)."""
    if run is None or not previous or previous.get("run") != run:
        return None
    files = previous.get("products", {}).get(suffix)
    if not files:
        return None
    paths = [out_dir / name for name in files]
    if all(p.is_file() and file_sha256(p) == files[p.name] for p in paths):
        return paths
    return None


def _up_to_date(source: str, out_dir: Path, previous: Mapping[str, Any] | None, run: str | None,
                wanted: Sequence[str]) -> SourceExport | None:
    """The source's export when every wanted product is still what an earlier export wrote for
    the same run of the source (None: something is to be written)."""
    if run is None or not previous or previous.get("run") != run or "available" not in previous:
        return None
    done = SourceExport(source, run, available=list(previous["available"]))
    for suffix in (s for s in wanted if s in done.available):
        kept = _unchanged(out_dir, previous, run, suffix)
        if kept is None:
            return None
        done.unchanged += kept
        done.products[suffix] = {p.name: previous["products"][suffix][p.name] for p in kept}
    return done


def _export_source(store: Store, source: str, naming: ProductNaming, out_dir: str | os.PathLike[str],  # noqa: PLR0913
                   suffixes: Iterable[str], previous: Mapping[str, Any] | None = None,
                   only: Mapping[str, Collection[str]] | None = None) -> SourceExport:
    """``only``: suffix -> the items of it to write (:func:`_product_items`), the others' not."""
    wanted = list(suffixes)
    unknown = [s for s in wanted if s not in _SUFFIXES]
    if unknown:
        raise ValueError(f"unknown product suffix(es) {unknown}; choose from {list(_SUFFIXES)}")
    cached = store if isinstance(store, _CachedStore) else _CachedStore(store)
    status = _status(cached, source)  # type: ignore[arg-type]
    if status is not None and "error" in status:
        raise Spec3cError(f"source {source}: not exported, its processing failed ({status['error']}); "
                          "run `spec3c process` again")
    done = SourceExport(source, None if status is None else status.get("run"))
    available = done.available = products_available(cached, source)  # type: ignore[arg-type]
    out = Path(out_dir)
    written: dict[str, list[Path]] = {}
    with stamping(product_stamp(status, source)), finished_in_background():
        for suffix in (s for s in wanted if s in available):
            kept = _unchanged(out, previous, done.run, suffix)
            if kept is not None:
                done.unchanged += kept
                done.products[suffix] = {p.name: previous["products"][suffix][p.name] for p in kept}  # type: ignore[index]
                continue
            write = _writer(cached, suffix)  # type: ignore[arg-type]
            if only is not None:
                write = functools.partial(write, only=only.get(suffix, ()))  # type: ignore[call-arg]
            files = write(cached, source, naming, out_dir)  # type: ignore[arg-type]
            written[suffix] = files if isinstance(files, list) else [files]
    for suffix, files in written.items():  # in place now (finished_in_background)
        done.written += files
        done.products[suffix] = {p.name: file_sha256(p) for p in files}
    if only is None:  # (a part's: the whole source's is said once, _export_in_parts)
        _log.info("source %s: %d product(s) written, %d unchanged (%s)", source, len(done.written),
                  len(done.unchanged), ", ".join(s for s in wanted if s in done.products))
    _log.debug("source %s: wrote %s", source, ", ".join(p.name for p in done.written))
    return done


def export_source(
    store: Store,
    source: str,
    naming: ProductNaming,
    out_dir: str | os.PathLike[str],
    suffixes: Iterable[str] = DEFAULT_SUFFIXES,
) -> list[Path]:
    """Write the requested products of one source that exist; return their paths.

    Raises :class:`~spec3c.errors.Spec3cError` if the source's processing failed.
    """
    return _export_source(store, source, naming, out_dir, suffixes).written


@dataclass(frozen=True)
class ExportRequest:
    """``spec3c run``'s export of each source it processes, made by the worker that processed it
    (:func:`spec3c.process.process_store`'s ``export``); ``naming`` as :func:`export_request` completes it."""

    out_dir: str
    naming: ProductNaming
    suffixes: tuple[str, ...]


def export_request(store: Store, out_dir: str | os.PathLike[str], naming: ProductNaming,
                   suffixes: Iterable[str] = DEFAULT_SUFFIXES) -> ExportRequest:
    """The request of an export of ``store``'s sources to ``out_dir`` (absolute), made while they are processed."""
    return ExportRequest(str(Path(out_dir).resolve()), _resolved_once(store, naming), tuple(suffixes))


def export_processed(store: Store, processed: ProcessedSource, request: ExportRequest) -> SourceExport:
    """Write the products of a source just processed (its products are new: nothing is kept), from
    what its processing read and wrote and, for the rest, from ``store``."""
    cached = _CachedStore(store, processed)
    return _export_source(cached, processed.source, request.naming, request.out_dir,  # type: ignore[arg-type]
                          request.suffixes)


def _export_one(source: str, store_path: str, naming: ProductNaming, out_dir: str,
                suffixes: tuple[str, ...], previous: dict[str, Any] | None) -> SourceExport:
    with open_store(store_path) as store:
        return _export_source(store, source, naming, out_dir, suffixes, previous)


# -- one source's products in parts (IFU) -------------------------------------------------

#: the IFU products written one item at a time: suffix -> the items of a source, in writing order
_ITEMS: dict[str, Callable[[Store, str], list[str]]] = {
    "s3d": IfuCube.names,
    "crf": crf_exposures,
    "x1d": IfuCube.names,
}
#: parts of a source's products at most: each opens the store and reads the source's status again
_MAX_PARTS = 16


def exports_in_parts(store: Store) -> bool:
    """Whether the store's products can be written in parts (an IFU mode's: :func:`_product_items`)."""
    return mode_of_store(store).cube is not None


def _product_items(store: Store, source: str, suffixes: Sequence[str]) -> list[tuple[str, str]]:
    """``(suffix, item)`` of every product of an IFU source that can be written on its own (a
    cube's ``s3d`` and ``x1d``, an exposure's ``crf``), the large ones first; none for other modes."""
    if not exports_in_parts(store):
        return []
    available = products_available(store, source)
    return [(suffix, item) for suffix in _ITEMS if suffix in suffixes and suffix in available
            for item in _ITEMS[suffix](store, source)]


def _export_part(source: str, store_path: str, naming: ProductNaming, out_dir: str,
                 items: tuple[tuple[str, str], ...]) -> SourceExport:
    only: dict[str, list[str]] = {}
    for suffix, item in items:
        only.setdefault(suffix, []).append(item)
    with open_store(store_path) as store:
        return _export_source(store, source, naming, out_dir, list(only), only=only)


def _export_part_job(item: str, store_path: str, naming: ProductNaming, out_dir: str,
                     items: tuple[tuple[str, str], ...]) -> SourceExport:
    """:func:`_export_part` as a pool job (``item``: ``<source>#<part number>``)."""
    return _export_part(item.rsplit("#", 1)[0], store_path, naming, out_dir, items)


def _on_pool(source: str, parts: list[tuple[Any, ...]], workers: int | None) -> list[SourceExport]:
    """The parts as jobs of the open local pool, in the order of ``parts``; the first failure raised."""
    jobs = {f"{source}#{k}": part for k, part in enumerate(parts)}
    outcome = map_sources(_export_part_job, jobs, workers=workers)
    if outcome.errors:
        raise Spec3cError(next(iter(outcome.errors.values())))
    return [outcome.results[item] for item in jobs]


def _export_in_parts(source: str, store_path: str, naming: ProductNaming, out_dir: str,
                     items: list[tuple[str, str]], workers: int | None = None) -> SourceExport:
    """A source's products written part by part: by the open local pool's workers, else by this
    process and a helper process (:func:`~spec3c.parallel.share_with_helper`)."""
    size = -(-len(items) // _MAX_PARTS)
    parts = [(store_path, naming, out_dir, tuple(items[k:k + size])) for k in range(0, len(items), size)]
    done: SourceExport | None = None
    written = (_on_pool(source, parts, workers) if shared_workers_running()
               else share_with_helper(_export_part, source, parts, ("spec3c.products.export",)))
    for part in written:
        if done is None:
            done = SourceExport(source, part.run, available=part.available)
        done.written += part.written
        for suffix, files in part.products.items():
            done.products.setdefault(suffix, {}).update(files)
    assert done is not None
    _log.info("source %s: %d product(s) written in %d parts (%s)", source, len(done.written), len(parts),
              ", ".join(done.products))
    return done


def _split_export(store_path: Path, jobs: Mapping[str, tuple[Any, ...]], workers: int | None,
                  scheduler: str | None) -> tuple[str, list[tuple[str, str]]] | None:
    """(source, items) when the one source to export is best written in parts, by the local pool's
    workers or beside a helper process: an IFU source, nothing of it to keep from an earlier
    export, a second core."""
    if len(jobs) != 1 or scheduler is not None or (workers or os.cpu_count() or 1) < 2:
        return None
    source, (_, _, _, wanted, previous) = next(iter(jobs.items()))
    if previous:
        return None
    with open_store(store_path) as store:
        items = _product_items(store, source, wanted)
    return (source, items) if len(items) > 1 else None


# -- what an output folder holds (kept in the store) -------------------------------------

def _resolved_once(store: Store, naming: ProductNaming) -> ProductNaming:
    """``naming`` completed from the store once for every source's job (the writers then find
    nothing to look up); as it is if the store cannot complete it (the writers say why)."""
    try:
        return _resolved(store, naming)
    except (KeyError, ValueError):
        return naming


def _manifest_key(out_dir: Path) -> str:
    return "exported/" + hashlib.sha256(str(out_dir).encode()).hexdigest()[:16]


def _naming_id(naming: ProductNaming) -> list[str | None]:
    return [naming.template, naming.asn_id, naming.exp_type, naming.asn_table_name, naming.asn_pool]


def _load_manifest(store: Store, out_dir: Path, naming: ProductNaming) -> dict[str, Any]:
    """``{source: {"run": ..., "products": ...}}`` of the last exports to ``out_dir`` with the same naming."""
    try:
        meta = store.get_result(ASSOCIATION_SOURCE, _manifest_key(out_dir))[1]
    except KeyError:
        return {}
    same = meta.get("out_dir") == str(out_dir) and meta.get("naming") == _naming_id(naming)
    return dict(meta.get("sources", {})) if same else {}


def _save_manifest(store_path: Path, out_dir: Path, naming: ProductNaming, sources: Mapping[str, Any]) -> None:
    with open_store(store_path, mode="a") as store:
        store.put_result(ASSOCIATION_SOURCE, _manifest_key(out_dir), {},
                         {"out_dir": str(out_dir), "naming": _naming_id(naming), "sources": dict(sources)})


class ExportedPaths(list[Path]):
    """Every product of the exported sources in the folder (a list of paths), with ``written``
    (written by this export), ``unchanged`` (left as they were) and ``failed`` (source -> error)."""

    def __init__(self, written: Sequence[Path] = (), unchanged: Sequence[Path] = (),
                 failed: Mapping[str, str] | None = None) -> None:
        super().__init__([*written, *unchanged])
        self.written, self.unchanged = list(written), list(unchanged)
        self.failed = dict(failed or {})


class ExportIncomplete(Spec3cError):
    """Some sources were not exported; ``exported`` holds what the others wrote."""

    def __init__(self, exported: ExportedPaths, out_dir: str | os.PathLike[str]) -> None:
        self.exported = exported
        lines = [f"{source}: {error}" for source, error in exported.failed.items()]
        super().__init__(f"{len(exported.failed)} source(s) not exported ({len(exported.written)} products "
                         f"written, {len(exported.unchanged)} unchanged in {out_dir}):\n  " + "\n  ".join(lines))


def export_store(  # noqa: PLR0913 - each is a CLI option
    store_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    naming: ProductNaming,
    suffixes: Iterable[str] = DEFAULT_SUFFIXES,
    sources: Sequence[str] | None = None,
    progress: ProgressFn | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    written_by_process: Mapping[str, SourceExport] | None = None,
) -> ExportedPaths:
    """Export every source (or ``sources``) of the store at ``store_path``.

    Sources are written by ``workers`` local processes (default: CPU count;
    1 = in this process), or on a Dask cluster (``scheduler``, as
    :func:`spec3c.process.process_store`).  ``progress(source, done, total)``
    is called after each source.  Products still identical to what an earlier
    export wrote for the same computation are left alone.  ``written_by_process``: sources
    whose products were written as they were processed (:func:`export_processed`),
    only recorded here.

    Raises
    ------
    ExportIncomplete
        After every other source was exported, if some could not be.
    """
    store_path, out_dir = Path(store_path).resolve(), Path(out_dir).resolve()
    with open_store(store_path) as store:
        known = store.sources()
        manifest = _load_manifest(store, out_dir, naming)
        mode = mode_of_store(store)
        resolved = _resolved_once(store, naming)  # for the jobs (the manifest is the caller's naming's)
        layouts = mode.products
        association_writers = _MODE_ASSOCIATION_WRITERS.get(mode.name, _ASSOCIATION_WRITERS)
        with_status = {src for src, key in store.list_results() if key == STATUS} if manifest else set()
        runs = {s: (_status(store, s) or {}).get("run") for s in with_status}
    keys = list(known) if sources is None else [str(s) for s in sources]
    missing = set(keys) - set(known)
    if missing and all(layout == ASSOCIATION for layout in layouts.values()):
        missing = set()  # sources of spectra inputs have no cutouts; the association writers pick them
    if missing:
        raise KeyError(f"sources not in store {store_path}: {sorted(missing)}")
    per_source = any(layouts[s] != ASSOCIATION for s in suffixes if s in layouts)
    wanted = tuple(suffixes)
    # decided here, so that a folder already up to date needs no workers at all
    kept = {s: done for s, done in (written_by_process or {}).items() if s in keys and per_source}
    kept |= {s: done for s in (keys if per_source else []) if s not in kept
             if (done := _up_to_date(s, out_dir, manifest.get(s), runs.get(s), wanted))}
    jobs = {s: (str(store_path), resolved, str(out_dir), wanted, manifest.get(s))
            for s in (keys if per_source else []) if s not in kept}
    split = _split_export(store_path, jobs, workers, scheduler)
    if split is None:
        outcome = map_sources(_export_one, jobs, workers=workers, scheduler=scheduler, progress=progress)
    else:
        outcome = _exported_in_parts(split[0], store_path, resolved, out_dir, split[1], progress, workers)
    written: list[Path] = []
    unchanged: list[Path] = []
    for source in keys:
        done = kept.get(source) or outcome.results.get(source)
        if done is not None:
            written += done.written
            unchanged += done.unchanged
            manifest[source] = done.record()
    with open_store(store_path) as store, stamping(product_stamp(None)):
        for suffix in (s for s in suffixes if layouts.get(s) == ASSOCIATION):  # one file for all sources
            written += association_writers[suffix](store, naming, out_dir, sources)
    if sources is None:  # association-level products go with a whole-store export
        from .masterbg import write_master_background_products

        with open_store(store_path) as store, stamping(product_stamp(None)):
            written += write_master_background_products(store, naming, out_dir)
    _save_manifest(store_path, out_dir, naming, manifest)
    exported = ExportedPaths(written, unchanged, {s: outcome.errors[s] for s in keys if s in outcome.errors})
    if exported.failed:
        raise ExportIncomplete(exported, out_dir)
    return exported


def _exported_in_parts(source: str, store_path: Path, naming: ProductNaming, out_dir: Path,  # noqa: PLR0913
                       items: list[tuple[str, str]], progress: ProgressFn | None,
                       workers: int | None) -> JobResults[SourceExport]:
    outcome: JobResults[SourceExport] = JobResults()
    try:
        outcome.results[source] = _export_in_parts(source, str(store_path), naming, str(out_dir), items, workers)
    except Exception as exc:  # noqa: BLE001 - a source's error is reported with the others'
        outcome.errors[source] = f"{type(exc).__name__}: {exc}"
    if progress is not None:
        progress(source, 1, 1)
    return outcome
