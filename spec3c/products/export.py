"""``spec3c export``: write a store's per-source products as FITS files."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from ..results import S2D, STATUS, X1D
from ..store import Store, open_store
from .meta import step_statuses
from .naming import ProductNaming
from .writers import write_s2d, write_source_cal, write_source_crf, write_x1d

__all__ = ["DEFAULT_SUFFIXES", "export_source", "export_store", "products_available"]

DEFAULT_SUFFIXES = ("cal", "crf", "s2d", "x1d")
_WRITERS = {"cal": write_source_cal, "crf": write_source_crf, "s2d": write_s2d, "x1d": write_x1d}

ProgressFn = Callable[[str, int, int], None]


def products_available(store: Store, source: str) -> list[str]:
    """Suffixes that can be written for ``source``: ``cal`` always; ``crf``
    when a crf result or an outlier_detection status exists; ``s2d``/``x1d``
    when their result exists."""
    keys = {key for _, key in store.list_results(source)}
    out = ["cal"]
    has_outlier = False
    if STATUS in keys:
        has_outlier = "outlier_detection" in step_statuses(store.get_result(source, STATUS)[1])
    if has_outlier or any(k.startswith("crf/") for k in keys):
        out.append("crf")
    out += [s for s in (S2D, X1D) if s in keys]
    return out


def export_source(
    store: Store,
    source: str,
    naming: ProductNaming,
    out_dir: str | os.PathLike[str],
    suffixes: Iterable[str] = DEFAULT_SUFFIXES,
) -> list[Path]:
    """Write the requested products of one source that exist; return their paths."""
    wanted = list(suffixes)
    unknown = [s for s in wanted if s not in _WRITERS]
    if unknown:
        raise ValueError(f"unknown product suffix(es) {unknown}; choose from {list(_WRITERS)}")
    available = products_available(store, source)
    return [_WRITERS[s](store, source, naming, out_dir) for s in wanted if s in available]


def export_store(
    store_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    naming: ProductNaming,
    suffixes: Iterable[str] = DEFAULT_SUFFIXES,
    sources: Sequence[str] | None = None,
    progress: ProgressFn | None = None,
) -> list[Path]:
    """Export every source (or ``sources``) of the store at ``store_path``.

    ``progress(source, done, total)`` is called after each source.
    """
    wanted = tuple(suffixes)
    written: list[Path] = []
    with open_store(store_path) as store:
        keys = list(store.sources()) if sources is None else [str(s) for s in sources]
        missing = set(keys) - set(store.sources())
        if missing:
            raise KeyError(f"sources not in store {store_path}: {sorted(missing)}")
        for done, source in enumerate(keys, start=1):
            written += export_source(store, source, naming, out_dir, wanted)
            if progress:
                progress(source, done, len(keys))
    return written
