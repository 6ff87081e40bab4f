"""``spec3c export``: write a store's per-source products as FITS files."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ..modes.base import EXPOSURE, SOURCE, Layout
from ..modes.registry import mode_of_store
from ..naming import ProductNaming
from ..parallel import ProgressFn, map_sources
from ..results import STATUS, X1D
from ..store import Store, open_store
from .meta import step_statuses
from .writers import (
    write_exposure_crfs,
    write_exposure_x1ds,
    write_s2d,
    write_source_c1d,
    write_source_cal,
    write_source_crf,
    write_x1d,
)

__all__ = ["DEFAULT_SUFFIXES", "export_source", "export_store", "products_available"]

#: writes one product of one source: (store, source, naming, output folder) -> path(s) written
Writer = Callable[[Store, str, ProductNaming, "str | os.PathLike[str]"], "Path | list[Path]"]

DEFAULT_SUFFIXES = ("cal", "crf", "s2d", "x1d", "c1d")

#: (suffix, layout) -> writer; a mode's ``products`` picks the layout of each suffix it writes
_WRITERS: dict[tuple[str, Layout], Writer] = {
    ("cal", SOURCE): write_source_cal,
    ("crf", SOURCE): write_source_crf,
    ("crf", EXPOSURE): write_exposure_crfs,
    ("s2d", SOURCE): write_s2d,
    ("x1d", SOURCE): write_x1d,
    ("x1d", EXPOSURE): write_exposure_x1ds,
    ("c1d", SOURCE): write_source_c1d,
}
_SUFFIXES = tuple(dict.fromkeys(suffix for suffix, _ in _WRITERS))


def _has_result(suffix: str, layout: Layout, keys: set[str], outlier_ran: bool) -> bool:
    """Whether ``process`` left what the ``suffix`` product is written from."""
    if suffix == "cal":
        return True
    if suffix == "crf":
        return outlier_ran or any(k.startswith("crf/") for k in keys)
    if suffix == "x1d" and layout == EXPOSURE:
        return any(k.startswith(f"{X1D}/") for k in keys)  # one spectrum per exposure
    return suffix in keys


def products_available(store: Store, source: str) -> list[str]:
    """Suffixes of the store's mode that can be written for ``source``: ``cal`` always;
    ``crf`` when a crf result or an outlier_detection status exists; the others when
    their result exists."""
    keys = {key for _, key in store.list_results(source)}
    outlier_ran = STATUS in keys and "outlier_detection" in step_statuses(store.get_result(source, STATUS)[1])
    products = mode_of_store(store).products
    return [s for s in _SUFFIXES if s in products and _has_result(s, products[s], keys, outlier_ran)]


def _writer(store: Store, suffix: str) -> Writer:
    return _WRITERS[(suffix, mode_of_store(store).products[suffix])]


class _CachedStore:
    """Read-through cache over a store for one export: every writer of a
    source asks for the same exposures, cutouts and results."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cache: dict[tuple[Any, ...], Any] = {}

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
        return self._cached("read_cutouts", source, planes)

    def list_results(self, source: str | None = None) -> Any:
        return self._cached("list_results", source)

    def get_result(self, source: str, key: str) -> Any:
        return self._cached("get_result", source, key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def export_source(
    store: Store,
    source: str,
    naming: ProductNaming,
    out_dir: str | os.PathLike[str],
    suffixes: Iterable[str] = DEFAULT_SUFFIXES,
) -> list[Path]:
    """Write the requested products of one source that exist; return their paths."""
    wanted = list(suffixes)
    unknown = [s for s in wanted if s not in _SUFFIXES]
    if unknown:
        raise ValueError(f"unknown product suffix(es) {unknown}; choose from {list(_SUFFIXES)}")
    cached = store if isinstance(store, _CachedStore) else _CachedStore(store)
    available = products_available(cached, source)  # type: ignore[arg-type]
    paths: list[Path] = []
    for suffix in (s for s in wanted if s in available):
        written = _writer(cached, suffix)(cached, source, naming, out_dir)  # type: ignore[arg-type]
        paths += written if isinstance(written, list) else [written]
    return paths


def _export_one(source: str, store_path: str, naming: ProductNaming, out_dir: str,
                suffixes: tuple[str, ...]) -> list[Path]:
    with open_store(store_path) as store:
        return export_source(store, source, naming, out_dir, suffixes)


def export_store(  # noqa: PLR0913 - each is a CLI option
    store_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    naming: ProductNaming,
    suffixes: Iterable[str] = DEFAULT_SUFFIXES,
    sources: Sequence[str] | None = None,
    progress: ProgressFn | None = None,
    workers: int | None = None,
) -> list[Path]:
    """Export every source (or ``sources``) of the store at ``store_path``.

    Sources are written by ``workers`` processes (default: CPU count; 1 =
    in this process).  ``progress(source, done, total)`` is called after
    each source.
    """
    with open_store(store_path) as store:
        known = store.sources()
    keys = list(known) if sources is None else [str(s) for s in sources]
    missing = set(keys) - set(known)
    if missing:
        raise KeyError(f"sources not in store {store_path}: {sorted(missing)}")
    args = (str(store_path), naming, str(out_dir), tuple(suffixes))
    results = map_sources(_export_one, keys, args, workers=workers, progress=progress)
    paths = [path for source in keys for path in results[source]]
    if sources is None:  # association-level products go with a whole-store export
        from .masterbg import write_master_background_products

        with open_store(store_path) as store:
            paths += write_master_background_products(store, naming, out_dir)
    return paths
