"""WFSS from spec2 ``_x1d`` inputs: exp_to_source of extracted spectra, then combine_1d per source.

Newer jwst (after 3.0.0) runs WFSS spec3 on the spec2 ``_x1d`` files: the
association's x1d product is those spectra regrouped (one table per exposure
group and order, one row per source) and the c1d product combines each
source's spectra.  Extraction is not repeated.  Here the stored tables of
every exposure (:func:`spec3c.modes.wfss.reader.read_wfss_file` keeps them as
images) are read once, split into per-source spectra, and every chosen
source's spectra are combined; the combined spectra and a status per source
are written in one batch.  The x1d product is written from the stored
tables at export (:mod:`spec3c.products.wfss`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ... import __version__
from ...errors import InputError, Spec3cError
from ...results import COMPLETE, SKIPPED, STATUS, X1D_COLUMNS, CombinedResult, Spectrum1D

if TYPE_CHECKING:
    from ...config import PipelineConfig
    from ...store import ExposureRecord, Store

__all__ = ["InputTable", "input_tables", "process_spectra", "spectra_by_source", "spectra_records"]

#: per-row attribute columns of a WFSS x1d table -> spectrum meta key
_ROW_ATTRIBUTES = {"SOURCE_TYPE": "source_type", "SOURCE_XPOS": "source_xpos", "SOURCE_YPOS": "source_ypos",
                   "SOURCE_RA": "source_ra", "SOURCE_DEC": "source_dec", "EXTRACT2D_XSTART": "extract2d_xstart",
                   "EXTRACT2D_YSTART": "extract2d_ystart", "EXTRACT2D_XSTOP": "extract2d_xstop",
                   "EXTRACT2D_YSTOP": "extract2d_ystop"}


@dataclass(frozen=True)
class InputTable:
    """One table of a spec2 WFSS x1d input: columns ``(n_rows, n)`` by upper-case name, and its attributes."""

    exposure: str
    index: int
    columns: dict[str, np.ndarray]
    attributes: dict[str, Any]

    @property
    def spectral_order(self) -> int:
        return int(self.attributes.get("spectral_order") or 1)

    def rows(self) -> Iterator[tuple[int, Spectrum1D]]:
        """(source id, spectrum) of every row holding a spectrum (``N_ALONGDISP`` > 0)."""
        ids = self.columns["SOURCE_ID"]
        lengths = self.columns.get("N_ALONGDISP", np.full(len(ids), self.columns["WAVELENGTH"].shape[-1]))
        for r, (sid, n) in enumerate(zip(ids.tolist(), lengths.tolist(), strict=True)):
            if n <= 0:
                continue
            columns = {c: np.asarray(self.columns[c][r, :n]) for c in X1D_COLUMNS if c in self.columns}
            meta: dict[str, Any] = {key: _scalar(self.columns[col][r]) for col, key in _ROW_ATTRIBUTES.items()
                                    if col in self.columns}
            meta.update(source_id=int(sid), spectral_order=self.spectral_order, exposure=self.exposure,
                        slit=f"{sid}:{self.spectral_order}", table=self.index,
                        dispersion_direction=self.attributes.get("dispersion_direction"),
                        flux_unit=self.attributes.get("flux_unit"), sb_unit=self.attributes.get("sb_unit"))
            yield int(sid), Spectrum1D(columns, meta)


def _scalar(value: Any) -> Any:
    if isinstance(value, bytes | np.bytes_):
        return value.decode().strip() or None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def input_tables(store: Store, records: Sequence[ExposureRecord]) -> list[InputTable]:
    """The spectral tables of the x1d science exposures, in exposure order then table order."""
    tables = []
    for record in records:
        images = store.read_images(record.name)
        n = 1 + max((int(k[4:].split(".", 1)[0]) for k in images if k.startswith("spec")), default=-1)
        for i in range(n):
            prefix = f"spec{i}."
            columns = {k[len(prefix):].upper(): v for k, v in images.items() if k.startswith(prefix)}
            attrs = {k.split(".", 2)[2]: v for k, v in record.meta.items() if k.startswith(f"spec.{i}.")}
            tables.append(InputTable(record.name, i, columns, attrs))
    return tables


def spectra_by_source(tables: Sequence[InputTable]) -> dict[str, list[Spectrum1D]]:
    """Every source's spectra (exp_to_source of spectra), sources in order of first appearance."""
    out: dict[str, list[Spectrum1D]] = {}
    for table in tables:
        for sid, spectrum in table.rows():
            out.setdefault(str(sid), []).append(spectrum)
    return out


def spectra_records(store: Store) -> list[ExposureRecord]:
    """The science exposures that are spec2 spectra (empty for a store of cal cutouts)."""
    return [r for r in store.list_exposures() if r.role == "science" and r.model_type.endswith("SpecModel")]


def _times(spectra: Sequence[Spectrum1D], tables: dict[tuple[str, int], InputTable],
           records: dict[str, ExposureRecord], kind: str) -> list[float]:
    """Each spectrum's weight: its table's EFFEXPTM (or EFFINTTM), else its exposure's; 1 for unit weight."""
    out = []
    for s in spectra:
        if kind == "unit_weight":
            out.append(1.0)
            continue
        record = records[s.meta["exposure"]]
        value = tables[(s.meta["exposure"], int(s.meta["table"]))].attributes.get(kind) or \
            record.meta.get(f"meta.exposure.{kind}")
        if not value:
            raise InputError(record.filename, f"meta.exposure.{kind} is not set; combine_1d weights by it "
                                              "(or set --steps.combine_1d.exptime_key=unit_weight)")
        out.append(float(value))
    return out


class _ResultBatch:
    """Collects what the results' ``save`` methods write, to store it in one go (:meth:`Store.put_results`)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, dict[str, np.ndarray], dict[str, Any]]] = []

    def put_result(self, source: str, key: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        self.items.append((source, key, dict(arrays), dict(meta)))


def process_spectra(store: Store, config: PipelineConfig, sources: Sequence[str] | None = None,
                    workers: int | None = None) -> dict[str, dict[str, Any]] | None:
    """Combine every (chosen) source of a store of spec2 x1d inputs; None for a store of cal cutouts.

    One pass in this process (``workers`` is not used: combining tables is quick).

    Returns each processed source's status record (also stored under ``status``).
    """
    from ...steps.combine_1d import combine_spectra, weight_kind  # noqa: PLC0415 - steps import the registry

    records = spectra_records(store)
    if not records:
        return None
    tables = input_tables(store, records)
    by_source = spectra_by_source(tables)
    unknown = [s for s in sources or () if s not in by_source]
    if unknown:
        raise Spec3cError(f"unknown source(s) {', '.join(unknown)} in {store.path}: no spectrum of the spec2 x1d "
                          "inputs has that SOURCE_ID")
    chosen = list(by_source) if not sources else list(dict.fromkeys(sources))
    table_index = {(t.exposure, t.index): t for t in tables}
    record_index = {r.name: r for r in records}
    params = config.combine_1d
    kind, _ = weight_kind(params.exptime_key)
    batch = _ResultBatch()
    statuses: dict[str, dict[str, Any]] = {}
    for source in chosen:
        t0 = time.perf_counter()
        spectra = by_source[source]
        steps: dict[str, dict[str, Any]] = {
            "exp_to_source": {"status": COMPLETE, "message": f"{len(spectra)} spec2 spectra"},
            "pixel_replace": {"status": SKIPPED, "message": "the inputs are extracted spectra"},
            "extract_1d": {"status": SKIPPED, "message": "the inputs are spec2 x1d spectra"},
        }
        if params.skip:
            steps["combine_1d"] = {"status": SKIPPED, "message": "skipped by parameter"}
        else:
            outcome, combined, spec_meta = combine_spectra(spectra, _times(spectra, table_index, record_index, kind),
                                                           params)
            if combined is not None:
                CombinedResult(combined, spec_meta).save(cast("Store", batch), source)
            steps["combine_1d"] = outcome.record(time.perf_counter() - t0)
        statuses[source] = {"steps": steps, "params": config.to_dict(), "spec3c_version": __version__,
                            "seconds": time.perf_counter() - t0, "inputs": "spec2 x1d"}
        batch.put_result(source, STATUS, {}, statuses[source])
    store.put_results(batch.items)
    return statuses
