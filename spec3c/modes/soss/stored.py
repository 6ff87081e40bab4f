"""Where a SOSS association's results live in the store: light enough for export to import
without the extraction (:mod:`.process`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from ...store import Store

__all__ = ["SOSS_SOURCE", "X1D_KEY", "stored_spectra"]

#: the source key of a SOSS association's results (the one target)
SOSS_SOURCE = "1"
#: result key of the extracted spectra (one array per order and column, integrations by rows)
X1D_KEY = "soss_x1d"


def stored_spectra(store: Store) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The stored extraction (arrays ``<order>.<COLUMN>``, metadata), KeyError if there is none."""
    return store.get_result(SOSS_SOURCE, X1D_KEY)
