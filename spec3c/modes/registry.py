"""The registry: which mode serves which EXP_TYPE.

Adding a mode is a folder in ``spec3c/modes/`` defining a :class:`~.base.Mode`
and one line in :data:`MODES`.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import Spec3cError
from ..store import Store
from .base import Mode
from .lrs import MIRI_LRS_FS
from .slit import NIRSPEC_FS, NIRSPEC_MOS
from .slitless import MIRI_LRS_SLITLESS

#: every mode spec3c serves, one line each
MODES: tuple[Mode, ...] = (
    NIRSPEC_FS,
    NIRSPEC_MOS,
    MIRI_LRS_FS,
    MIRI_LRS_SLITLESS,
)

#: EXP_TYPEs of the IFUs: not served yet, but their background spectra use the
#: BACKGROUND column for extended sources (master_background, ALGORITHMS.md §6)
IFU_EXP_TYPES = ("MIR_MRS", "NRS_IFU")


def _by_exp_type(modes: Iterable[Mode]) -> dict[str, Mode]:
    table: dict[str, Mode] = {}
    for mode in modes:
        for exp_type in mode.exp_types:
            if exp_type in table:
                raise RuntimeError(f"EXP_TYPE {exp_type} is claimed by modes {table[exp_type].name} and {mode.name}")
            table[exp_type] = mode
    return table


_BY_EXP_TYPE = _by_exp_type(MODES)


def supported_exp_types() -> tuple[str, ...]:
    return tuple(_BY_EXP_TYPE)


def mode_for(exp_type: str, *, where: str = "") -> Mode:
    """The mode serving ``exp_type``; a :class:`Spec3cError` naming ``where`` if none does."""
    key = str(exp_type or "").strip().upper()
    if key in _BY_EXP_TYPE:
        return _BY_EXP_TYPE[key]
    prefix = f"{where}: " if where else ""
    shown = exp_type if exp_type else "(no EXP_TYPE)"
    raise Spec3cError(f"{prefix}EXP_TYPE {shown} is not supported by spec3c yet "
                      f"(supported: {', '.join(supported_exp_types())})")


def mode_named(name: str) -> Mode:
    for mode in MODES:
        if mode.name == name:
            return mode
    raise Spec3cError(f"unknown mode {name!r} (modes: {', '.join(m.name for m in MODES)})")


def mode_of_store(store: Store) -> Mode:
    """The one mode of a store's science exposures (an error if they mix EXP_TYPEs)."""
    types = sorted({r.exp_type for r in store.list_exposures() if r.role == "science"})
    if not types:
        raise Spec3cError(f"{store.path}: no science exposures")
    if len(types) > 1:
        raise Spec3cError(f"{store.path}: the association mixes EXP_TYPEs {', '.join(types)}")
    return mode_for(types[0], where=str(store.path))


def is_ifu_extended(exp_type: str, source_type: str | None) -> bool:
    """A background spectrum of an IFU mode whose BACKGROUND column is its surface brightness."""
    return exp_type == "MIR_MRS" or (exp_type == "NRS_IFU" and source_type == "EXTENDED")
