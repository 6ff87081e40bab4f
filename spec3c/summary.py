"""Text summaries of a store for ``spec3c ls`` and ``spec3c show``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from . import dqflags
from .store import open_store


def _size(nbytes: int) -> str:
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{value:.1f} GiB"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*r) for r in rows]


def store_summary(path: Path, list_sources: bool = False) -> str:
    """Exposures, sources, slits and counts of the store at ``path``."""
    with open_store(path) as store:
        exposures = store.list_exposures()
        infos = store.list_cutouts()
        per_exposure = Counter(i.exposure for i in infos)
        pixels = sum(i.shape[0] * i.shape[1] for i in infos)
        sources = store.sources()
        slits = sorted({i.slit for i in infos})
        lines = [
            f"store    {path}  ({store.backend}, schema v{store.schema_version}, {_size(store.nbytes_on_disk())})",
            f"contents {len(exposures)} exposures, {len(sources)} sources, {len(slits)} slits, "
            f"{len(infos)} cutouts, {pixels:,} pixels, {len(store.list_results())} results",
            "",
        ]
        rows = [
            [r.name, r.role, r.exp_type, r.model_type, str(per_exposure.get(r.name, 0)), r.sha256[:12]]
            for r in exposures
        ]
        lines += _table(["exposure", "role", "exp_type", "model", "cutouts", "sha256"], rows)
        if list_sources:
            lines.append("")
            by_source: dict[str, list] = {}
            for i in infos:
                by_source.setdefault(i.source, []).append(i)
            rows = [
                [src, str(by_source[src][0].meta.get("source_id", "")),
                 str(by_source[src][0].meta.get("source_type", "")), str(len(by_source[src])),
                 ",".join(sorted({i.slit for i in by_source[src]}))]
                for src in sources
            ]
            lines += _table(["source", "source_id", "type", "cutouts", "slits"], rows)
    return "\n".join(lines)


def _range(arr: np.ndarray) -> str:
    finite = arr[np.isfinite(arr)]
    return f"{finite.min():.4f}-{finite.max():.4f}" if finite.size else "n/a"


def source_summary(path: Path, source: str) -> str:
    """One line per cutout of ``source``: shape, coordinates, data quality."""
    with open_store(path) as store:
        stack = store.source(source)
        rows = []
        for c in stack.cutouts:
            p = c.planes
            bad = int(np.count_nonzero(p["dq"] & dqflags.DO_NOT_USE))
            centre = np.nanmedian(p["ra"]), np.nanmedian(p["dec"])
            rows.append([
                c.exposure, c.slit, f"{c.shape[0]}x{c.shape[1]}", str(c.meta.get("source_type", "")),
                _range(p["wavelength"]), f"{centre[0]:.6f} {centre[1]:+.6f}", _range(p["slit_y"]),
                f"{np.nanmedian(p['sci']):.4g}", f"{bad}",
            ])
    header = ["exposure", "slit", "shape", "type", "lambda_um", "ra_dec_median", "slit_y", "median_sci", "do_not_use"]
    first = stack.cutouts[0].meta
    title = (f"source {source}: source_id {first.get('source_id')}, {first.get('source_type')}, "
             f"{len(stack)} cutouts in {len(set(stack.exposures))} exposures")
    return "\n".join([title, ""] + _table(header, rows))
