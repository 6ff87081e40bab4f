"""``spec3c verify``: recompute a product from the store and say whether it is identical.

The product's PROVENANCE extension names its source and the resolved
parameters it was made with.  The source is processed again with those
parameters on an :class:`OverlayStore` (the store's inputs, results kept in
memory: the store is not written), the product is written again into a
temporary folder, and every HDU's data and header (but the file date) is
compared with the product's.  The key of the recomputation is compared with
the product's too, which says *why* a product differs when its inputs,
reference files or the spec3c version changed since it was made.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from .config import resolve_config
from .errors import InputError
from .naming import ProductNaming
from .process import plan_sources, run_source
from .products.export import export_source
from .products.meta import read_provenance
from .provenance import KEY_PARTS, SourceKey
from .results import ASSOCIATION_SOURCE, load_association
from .steps import master_background
from .store import Cutout, CutoutInfo, ExposureRecord, Store, open_store
from .store.memory import MemoryStore

__all__ = ["OverlayStore", "Verification", "compare_products", "verify_product"]

#: header keywords that differ between two writes of the same product
_VOLATILE_CARDS = frozenset({"DATE", "CHECKSUM", "DATASUM"})


class OverlayStore(Store):
    """A store's exposures, cutouts and images, with results in memory (writes never reach the store).

    The association's records (``_association``: the ASN, what was exported ...) are read from the
    store until written or deleted here; every source's results are only those written here.
    """

    backend = "overlay"
    supports_concurrent_writes = False

    def __init__(self, base: Store) -> None:
        super().__init__(base.path)
        self._base = base
        self._results = MemoryStore()
        self._deleted: set[tuple[str, str]] = set()

    @property
    def schema_version(self) -> int:
        return self._base.schema_version

    def list_exposures(self) -> list[ExposureRecord]:
        return self._base.list_exposures()

    def _commit_exposure(self, record: ExposureRecord, cutouts: Sequence[Cutout],
                         images: Mapping[str, np.ndarray]) -> None:
        raise TypeError("an overlay store does not take exposures")

    def delete_exposure(self, name: str) -> None:
        raise TypeError("an overlay store does not delete exposures")

    def list_cutouts(self, source: str | None = None) -> list[CutoutInfo]:
        return self._base.list_cutouts(source)

    def read_cutouts(self, source: str, planes: Iterable[str] | None = None) -> list[Cutout]:
        return self._base.read_cutouts(source, planes)

    def read_image(self, exposure: str, plane: str) -> np.ndarray:
        return self._base.read_image(exposure, plane)

    def read_cutouts_of(self, sources: Sequence[str], planes: Iterable[str] | None = None) -> dict[str, list[Cutout]]:
        return self._base.read_cutouts_of(sources, planes)

    def read_images(self, exposure: str, planes: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        return self._base.read_images(exposure, planes)

    def list_images(self, exposure: str) -> list[str]:
        return self._base.list_images(exposure)

    def put_result(self, source: str, key: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        self._deleted.discard((source, key))
        self._results.put_result(source, key, arrays, meta)

    def _inherited(self, source: str | None) -> list[tuple[str, str]]:
        if source not in (None, ASSOCIATION_SOURCE):
            return []
        return [item for item in self._base.list_results(ASSOCIATION_SOURCE) if item not in self._deleted]

    def get_result(self, source: str, key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        try:
            return self._results.get_result(source, key)
        except KeyError:
            if (source, key) not in self._inherited(source):
                raise
            return self._base.get_result(source, key)

    def list_results(self, source: str | None = None) -> list[tuple[str, str]]:
        return sorted(set(self._results.list_results(source)) | set(self._inherited(source)))

    def _delete_result(self, source: str, key: str) -> None:
        self._results.delete_result(source, key)
        self._deleted.add((source, key))


def _same_data(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    x, y = np.asarray(a), np.asarray(b)
    return x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()


def _cards(header: fits.Header) -> list[tuple[str, Any]]:
    return [(card.keyword, card.value) for card in header.cards if card.keyword not in _VOLATILE_CARDS]


def compare_products(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> list[str]:
    """Differences between two FITS products: HDU names, every HDU's data (bit for bit) and
    header (but DATE/CHECKSUM/DATASUM); the ASDF extension's tree is not compared."""
    with fits.open(a) as ha, fits.open(b) as hb:
        names_a, names_b = [h.name for h in ha], [h.name for h in hb]
        if names_a != names_b:
            return [f"extensions differ: {names_a} vs {names_b}"]
        out = []
        for index, (x, y) in enumerate(zip(ha, hb, strict=True)):
            if x.name == "ASDF":
                continue
            if not _same_data(x.data, y.data):
                out.append(f"HDU {index} ({x.name}): data differ")
            if _cards(x.header) != _cards(y.header):
                out.append(f"HDU {index} ({x.name}): header differs")
    return out


@dataclass
class Verification:
    """The outcome of :func:`verify_product`."""

    product: Path
    source: str
    identical: bool
    differences: list[str] = field(default_factory=list)
    key_changes: list[str] = field(default_factory=list)  # key parts that differ from the product's


def _recorded_key(rows: list[tuple[str, str, str]]) -> SourceKey | None:
    values = {name: (sha or value) for name, value, sha in rows}
    return SourceKey.from_record({part: values[part] for part in KEY_PARTS if part in values})


def verify_product(product: str | os.PathLike[str], store_path: str | os.PathLike[str]) -> Verification:
    """Recompute ``product`` from the store at ``store_path`` and compare (see the module docstring).

    Raises
    ------
    InputError
        The product has no PROVENANCE extension, or its source is not in the store.
    """
    product = Path(product)
    try:
        with fits.open(product) as hdul:
            prov = read_provenance(hdul)
    except OSError as exc:
        raise InputError(product, f"not a readable FITS file: {exc}") from exc
    if prov is None or not prov.source:
        raise InputError(product, "no PROVENANCE extension naming its source: not a spec3c product, "
                                  "or written before spec3c recorded provenance")
    suffix = product.stem.rpartition("_")[2]
    config = resolve_config(overrides=prov.parameters())
    with open_store(store_path) as base:
        if prov.source not in base.sources():
            raise InputError(product, f"its source {prov.source!r} is not in the store {store_path}")
        asn = load_association(base)
        naming = ProductNaming(asn["product_name"], asn["asn_id"], asn.get("exp_type"), asn.get("table_name"))
        store = OverlayStore(base)
        master_background.prepare_association(store, config.master_background)
        plan = plan_sources(store, config, [prov.source], selection=prov.reference_selection())[0]
        recorded = _recorded_key(prov.of_kind("key"))
        changes = plan.key.changes(recorded) if recorded is not None else list(KEY_PARTS)
        run_source(store, prov.source, config, plan.provenance)
        with tempfile.TemporaryDirectory(prefix="spec3c-verify-") as tmp:
            match = [p for p in export_source(store, prov.source, naming, tmp, [suffix]) if p.name == product.name]
            if not match:
                differences = [f"recomputing source {prov.source} gives no product named {product.name}"]
            else:
                differences = compare_products(product, match[0])
    return Verification(product, prov.source, not differences, differences, changes)
