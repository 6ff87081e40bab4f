"""The QA page: ``index.html`` (a sortable table of sources) and one page per source.

Self-contained HTML: the CSS and the sorting script are inline, nothing is
fetched from the network, every value taken from the store is escaped.  The
table sorts by any column on a click (again: reversed) or on Enter; the query
``index.html?sort=<column key>&order=desc`` opens it sorted (column keys:
``source``, ``type``, ``slit``, ``snr``, ``flagged``, ``step:<step name>``).
Once its script has run, the page's ``<body>`` has ``data-qa-ready="1"``.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from ..results import COMPLETE, FAILED, SKIPPED
from .collect import SourceQa

#: how a step status shows in the table, and its sort rank (problems first in ascending order)
_BADGES: dict[str, tuple[str, str, int]] = {
    FAILED: ("FAILED", "failed", 0),
    SKIPPED: ("skipped", "skipped", 1),
    COMPLETE: ("done", "complete", 2),
}
#: the figures of a source page, in page order, with their captions
FIGURES: dict[str, str] = {
    "s2d": "Rectified 2-D spectrum (s2d) with the extraction aperture",
    "s3d": "White-light image of each cube (s3d, mean over wavelength)",
    "x1d": "1-D spectra with their error band (grey: each exposure's spectrum)",
    "outliers": "Each exposure's outlier map (red: pixels outlier_detection flagged)",
}
#: the figure a table row shows as its thumbnail, by preference
_THUMBNAILS = ("x1d", "s2d", "s3d", "outliers")


@dataclass
class SourceRow:
    """One source's line in the index: its summary and its files (relative to the ``sources`` folder)."""

    source: str
    page: str
    images: dict[str, str] = field(default_factory=dict)
    steps: dict[str, tuple[str, str]] = field(default_factory=dict)
    snr: float | None = None
    flagged_fraction: float | None = None
    n_flagged: int = 0
    source_type: str = ""
    slit: str = ""
    processed: bool = False
    error: str | None = None

    @classmethod
    def of(cls, qa: SourceQa, page: str, images: Mapping[str, str], plan: Sequence[str] = ()) -> SourceRow:
        """The row of a collected source; its steps in ``plan`` order, then the others."""
        steps = {step: qa.steps[step] for step in _in_order(set(qa.steps), plan)}
        return cls(qa.source, page, dict(images), steps, qa.snr, qa.flagged_fraction, qa.n_flagged,
                   qa.source_type, qa.slit, qa.processed, qa.error)


@dataclass
class PageInfo:
    """What the index's heading says: the association's product name, the mode, the store."""

    title: str
    mode: str
    store: str
    version: str
    steps: Sequence[str] = ()


_CSS = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.2em 2em; color: #1d232b;
       background: #fff; }
h1 { font-size: 1.4em; margin: 0 0 .2em; }
.meta, .hint { color: #59636e; margin: .2em 0; }
table { border-collapse: collapse; margin-top: .8em; }
th, td { border-bottom: 1px solid #dde2e7; padding: .3em .55em; text-align: left; vertical-align: middle; }
thead th { background: #f2f5f8; position: sticky; top: 0; font-size: .85em; cursor: pointer; user-select: none; }
thead th.nosort { cursor: default; }
thead th[aria-sort="ascending"]::after { content: " \\25B2"; }
thead th[aria-sort="descending"]::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.failed td { background: #fff1f1; }
.badge { display: inline-block; padding: .05em .45em; border-radius: .6em; font-size: .8em; }
.badge.complete { background: #dcf3e1; color: #18622b; }
.badge.skipped { background: #eceff2; color: #59636e; }
.badge.failed { background: #ffd9d9; color: #9c1111; font-weight: 600; }
img.thumb { width: 260px; height: auto; display: block; border: 1px solid #dde2e7; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; border: 1px solid #dde2e7; }
figcaption { color: #59636e; font-size: .9em; }
.error { color: #9c1111; font-weight: 600; }
"""

_SORT_SCRIPT = """
(function () {
  "use strict";
  var table = document.getElementById("sources");
  var body = table.tBodies[0];
  var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
  function key(row, index) {
    var cell = row.cells[index];
    return cell.hasAttribute("data-value") ? cell.getAttribute("data-value") : cell.textContent.trim();
  }
  function sortBy(index, descending) {
    var numeric = headers[index].getAttribute("data-type") === "number";
    var rows = Array.prototype.slice.call(body.rows).map(function (row, i) {
      return {row: row, key: key(row, index), i: i};
    });
    rows.sort(function (a, b) {
      var aEmpty = a.key === "", bEmpty = b.key === "";
      if (aEmpty !== bEmpty) { return aEmpty ? 1 : -1; }  /* missing values last, either way */
      var order = 0;
      if (!aEmpty) {
        order = numeric ? parseFloat(a.key) - parseFloat(b.key)
                        : a.key.localeCompare(b.key, undefined, {numeric: true, sensitivity: "base"});
      }
      return (descending ? -order : order) || a.i - b.i;
    });
    rows.forEach(function (r) { body.appendChild(r.row); });
    headers.forEach(function (th) { th.removeAttribute("aria-sort"); });
    headers[index].setAttribute("aria-sort", descending ? "descending" : "ascending");
  }
  headers.forEach(function (th, index) {
    if (th.classList.contains("nosort")) { return; }
    th.tabIndex = 0;
    function activate() { sortBy(index, th.getAttribute("aria-sort") === "ascending"); }
    th.addEventListener("click", activate);
    th.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); activate(); }
    });
  });
  var query = new URLSearchParams(window.location.search);
  var wanted = query.get("sort");
  var found = headers.findIndex(function (th) { return th.getAttribute("data-key") === wanted; });
  if (wanted && found >= 0) { sortBy(found, query.get("order") === "desc"); }
  document.body.setAttribute("data-qa-ready", "1");
})();
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _href(*parts: str) -> str:
    return "/".join(quote(p) for p in parts)


def _document(title: str, body: str, script: str = "") -> str:
    js = f"<script>{script}</script>\n" if script else ""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}\n{js}</body>\n</html>\n")


def _write(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def _badge(status: tuple[str, str] | None) -> tuple[str, str]:
    """(cell html, sort value) of a step status."""
    if status is None:
        return "", ""
    name, message = status
    label, css, rank = _BADGES.get(name, (name.lower() or "?", "skipped", 1))
    return f'<span class="badge {css}" title="{_e(message)}">{_e(label)}</span>', str(rank)


def _number(value: float | None, scale: float = 1.0, digits: int = 1) -> tuple[str, str]:
    if value is None:
        return "", ""
    return f"{value * scale:.{digits}f}", repr(float(value))


def _step_header(step: str) -> str:
    return _e(step).replace("_", "_<wbr>")


def _row(row: SourceRow, steps: Sequence[str]) -> str:
    snr, snr_key = _number(row.snr)
    flagged, flagged_key = _number(row.flagged_fraction, 100.0, 2)
    cells = [
        f'<td data-value="{_e(row.source)}"><a href="{_href("sources", row.page)}">{_e(row.source)}</a></td>',
        f"<td>{_e(row.source_type)}</td>",
        f"<td>{_e(row.slit)}</td>",
        f'<td class="num" data-value="{snr_key}">{snr}</td>',
        f'<td class="num" data-value="{flagged_key}" title="{row.n_flagged} pixels">{flagged}</td>',
    ]
    for step in steps:
        badge, rank = _badge(row.steps.get(step))
        cells.append(f'<td data-value="{rank}">{badge}</td>')
    thumb = next((row.images[k] for k in _THUMBNAILS if k in row.images), None)
    preview = "" if thumb is None else (
        f'<a href="{_href("sources", row.page)}"><img class="thumb" src="{_href("sources", thumb)}" '
        f'alt="{_e(thumb.rsplit("_", 1)[-1][:-4])} of source {_e(row.source)}" loading="lazy"></a>')
    if row.error:
        preview = f'<span class="error">{_e(row.error)}</span>' + preview
    elif not row.processed:
        preview = "<span>not processed</span>" + preview
    cells.append(f"<td>{preview}</td>")
    failed = row.error is not None or any(s == FAILED for s, _ in row.steps.values())
    return ('<tr class="failed">' if failed else "<tr>") + "".join(cells) + "</tr>"


def _in_order(steps: set[str], plan: Sequence[str]) -> list[str]:
    return [s for s in plan if s in steps] + sorted(steps - set(plan))


def step_columns(rows: Sequence[SourceRow], plan: Sequence[str]) -> list[str]:
    """The steps the table has a column for: the mode's plan order, then any other step a source ran."""
    return _in_order({step for row in rows for step in row.steps}, plan)


def index_html(rows: Sequence[SourceRow], info: PageInfo) -> str:
    """The index page: a heading and a sortable table with a line per source."""
    steps = step_columns(rows, info.steps)
    header = [
        '<th data-key="source" data-type="text">source</th>', '<th data-key="type" data-type="text">type</th>',
        '<th data-key="slit" data-type="text">slit</th>', '<th data-key="snr" data-type="number">S/N</th>',
        '<th data-key="flagged" data-type="number">flagged %</th>',
        *(f'<th data-key="step:{_e(s)}" data-type="number">{_step_header(s)}</th>' for s in steps),
        '<th class="nosort">spectrum</th>',
    ]
    n_failed = sum(1 for r in rows if r.error is not None or any(s == FAILED for s, _ in r.steps.values()))
    summary = f"{len(rows)} sources, {n_failed} failed" + (
        f", {sum(1 for r in rows if not r.processed)} not processed" if any(not r.processed for r in rows) else "")
    body = "\n".join([
        f"<h1>spec3c QA: {_e(info.title)}</h1>",
        f'<p class="meta">{_e(info.mode)} &middot; {_e(summary)} &middot; store {_e(info.store)} &middot; '
        f"spec3c {_e(info.version)}</p>",
        '<p class="hint">S/N: median flux / error of the final spectrum; flagged: outlier-flagged share of '
        "the exposures' pixels. Click a column to sort it (again to reverse).</p>",
        f'<table id="sources">\n<thead><tr>{"".join(header)}</tr></thead>',
        "<tbody>", *(_row(r, steps) for r in rows), "</tbody>\n</table>",
    ])
    return _document(f"spec3c QA: {info.title}", body, _SORT_SCRIPT)


def source_html(row: SourceRow) -> str:
    """A source's page: its summary, its step statuses and messages, and its figures."""
    snr, _ = _number(row.snr)
    flagged, _ = _number(row.flagged_fraction, 100.0, 2)
    facts = [f"type {row.source_type}" if row.source_type else "", f"slit {row.slit}" if row.slit else "",
             f"median S/N {snr}" if snr else "", f"{flagged}% flagged ({row.n_flagged} pixels)" if flagged else ""]
    parts = [f"<h1>source {_e(row.source)}</h1>",
             f'<p class="meta"><a href="../index.html">all sources</a> &middot; '
             f"{' &middot; '.join(_e(f) for f in facts if f)}</p>"]
    if row.error:
        parts.append(f'<p class="error">processing failed: {_e(row.error)}</p>')
    if row.steps:
        lines = "".join(f"<tr><td>{_e(step)}</td><td>{_badge(status)[0]}</td><td>{_e(status[1])}</td></tr>"
                        for step, status in row.steps.items())
        parts.append(f"<table><thead><tr><th>step</th><th>status</th><th>message</th></tr></thead>"
                     f"<tbody>{lines}</tbody></table>")
    for kind, caption in FIGURES.items():
        if kind in row.images:
            parts.append(f'<figure id="{kind}"><img src="{_href(row.images[kind])}" alt="{_e(kind)} of source '
                         f'{_e(row.source)}"><figcaption>{_e(caption)}</figcaption></figure>')
    if not row.images:
        parts.append("<p>Nothing to show: the source has no s2d, spectra or outlier maps in the store.</p>")
    return _document(f"spec3c QA: source {row.source}", "\n".join(parts))


def write_source_page(row: SourceRow, folder: Path) -> None:
    _write(folder / row.page, source_html(row))


def write_index(rows: Sequence[SourceRow], info: PageInfo, folder: Path) -> Path:
    path = folder / "index.html"
    _write(path, index_html(rows, info))
    return path
