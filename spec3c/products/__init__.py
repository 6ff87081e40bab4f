"""Exported stage-3 products: names and FITS writers for each suffix.

>>> naming = ProductNaming("jw01345-o066_{source_id}_nirspec_f170lp-g235m", "o066")  # doctest: +SKIP
>>> export_store("prog.store", "out/", naming)                                       # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from ..naming import ProductNaming

__all__ = [
    "ProductNaming",
    "export_source",
    "export_store",
    "product_path",
    "write_s2d",
    "write_source_cal",
    "write_source_crf",
    "write_x1d",
]

_LAZY = {
    "export_source": "export",
    "export_store": "export",
    "product_path": "writers",
    "write_s2d": "writers",
    "write_source_cal": "writers",
    "write_source_crf": "writers",
    "write_x1d": "writers",
}


def __getattr__(name: str) -> Any:
    # writers import the store and stdatamodels; keep `import spec3c.products` light
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
