"""``spec3c qa``: a quality-assurance web page of a processed store.

For every source (or the chosen ones) a page ``sources/<source>.html`` with
PNG figures of what the store holds for it: the s2d with the extraction
aperture (IFU: each cube's white-light image), the 1-D spectra with their
error band, and each exposure's outlier map; and an ``index.html`` with a
sortable table of the sources (median S/N, outlier-flagged fraction, step
statuses) linking to them.  Nothing in it needs the network.

The figures are drawn with matplotlib, an optional dependency (``pip install
'spec3c[qa]'``); sources are drawn in parallel like ``export``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..errors import Spec3cError
from ..modes.registry import mode_of_store
from ..parallel import ProgressFn, map_sources
from ..results import ASSOCIATION_SOURCE, STATUS, load_association
from ..store import Store, open_store
from .collect import SourceQa, collect_source
from .page import PageInfo, SourceRow, write_index, write_source_page
from .plots import draw_source, require_matplotlib

__all__ = ["QaReport", "SourceQa", "collect_source", "file_stems", "qa_sources", "write_qa"]

#: the folder of the per-source pages and figures, inside the output folder
SOURCES_FOLDER = "sources"


@dataclass
class QaReport:
    """What :func:`write_qa` wrote: the index page, a row per source, the sources whose figures failed."""

    index: Path
    rows: list[SourceRow] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def n_images(self) -> int:
        return sum(len(row.images) for row in self.rows)


def qa_sources(store: Store) -> list[str]:
    """Every source of the store: those with cutouts (store order), then those with only results
    (WFSS from spec2 x1d inputs)."""
    keys = dict.fromkeys(store.sources())
    for source, key in store.list_results():
        if key == STATUS and source != ASSOCIATION_SOURCE:
            keys.setdefault(source, None)
    return list(keys)


def file_stems(sources: Sequence[str]) -> dict[str, str]:
    """A distinct, file-name-safe stem per source: the key itself when it is safe, else its safe
    characters and a hash of it (so ``a/b`` and ``a_b`` do not meet, even on a case-blind disk)."""
    stems: dict[str, str] = {}
    used: set[str] = set()
    for source in sources:
        safe = re.sub(r"[^A-Za-z0-9_-]+", "_", source)[:60] or "source"
        stem = safe
        if safe != source or safe.lower() in used:
            stem = f"{safe}-{hashlib.sha256(source.encode()).hexdigest()[:10]}"
        used.add(stem.lower())
        stems[source] = stem
    return stems


def _draw_one(source: str, store_path: str, folder: str, stem: str, plan: tuple[str, ...]) -> SourceRow:
    """One source's figures and page (a job of :func:`map_sources`)."""
    with open_store(store_path) as store:
        qa = collect_source(store, source)
    images = draw_source(qa, Path(folder), stem)
    row = SourceRow.of(qa, f"{stem}.html", images, plan)
    write_source_page(row, Path(folder))
    return row


def _page_info(store: Store, store_path: Path) -> PageInfo:
    mode = mode_of_store(store)
    try:  # the association's product name without its per-source fields ({source_id} ...)
        title = re.sub(r"[-_]?\{[^{}]*\}", "", str(load_association(store)["product_name"]))
    except KeyError:
        title = store_path.name
    return PageInfo(title, mode.name, str(store_path), __version__, ("exp_to_source", *mode.plan))


def write_qa(  # noqa: PLR0913 - each is a CLI option
    store_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    sources: Sequence[str] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: ProgressFn | None = None,
) -> QaReport:
    """Write the QA page of the store at ``store_path`` into ``output_dir``.

    Sources are drawn by ``workers`` local processes (default: CPU count; 1:
    in this process) or on a Dask cluster (``scheduler``); ``progress(source,
    done, total)`` is called after each.  A source whose figures could not be
    drawn still has its line in the index, with the error, and is listed in
    :attr:`QaReport.failed`.

    Raises
    ------
    Spec3cError
        If matplotlib is missing or ``sources`` names a source the store does not have.
    """
    require_matplotlib()
    store_path, out = Path(store_path).resolve(), Path(output_dir)
    with open_store(store_path) as store:
        known = qa_sources(store)
        info = _page_info(store, store_path)
    keys = known if sources is None else list(dict.fromkeys(str(s) for s in sources))
    unknown = [s for s in keys if s not in set(known)]
    if unknown:
        raise Spec3cError(f"unknown source(s) {', '.join(unknown)} in {store_path}; "
                          "`spec3c ls STORE --sources` lists them")
    folder = out / SOURCES_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    stems = file_stems(keys)
    plan = tuple(info.steps)
    jobs = {s: (str(store_path), str(folder), stems[s], plan) for s in keys}
    outcome = map_sources(_draw_one, jobs, workers=workers, scheduler=scheduler, progress=progress)
    rows = []
    for source in keys:
        row = outcome.results.get(source)
        if row is None:
            row = SourceRow(source, f"{stems[source]}.html", error=f"QA figures failed: {outcome.errors[source]}")
            write_source_page(row, folder)
        rows.append(row)
    return QaReport(write_index(rows, info, out), rows, dict(outcome.errors))
