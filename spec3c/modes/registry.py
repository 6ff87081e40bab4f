"""The registry: which mode serves which EXP_TYPE.

Adding a mode is a folder in ``spec3c/modes/`` defining a :class:`~.base.Mode`
and one line in :data:`MODES`.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import Spec3cError
from ..store import Store
from .base import Mode
from .ifu import MIRI_MRS, NIRSPEC_IFU
from .lrs import MIRI_LRS_FS
from .slit import NIRSPEC_FS, NIRSPEC_MOS, SLIT_MODEL, SLIT_MODEL_MODES
from .slitless import MIRI_LRS_SLITLESS
from .soss import NIRISS_SOSS
from .wfss import NIRCAM_WFSS, NIRISS_WFSS

#: every mode spec3c serves, one line each
MODES: tuple[Mode, ...] = (
    NIRSPEC_FS,
    NIRSPEC_MOS,
    MIRI_LRS_FS,
    MIRI_LRS_SLITLESS,
    MIRI_MRS,
    NIRSPEC_IFU,
    NIRISS_WFSS,
    NIRCAM_WFSS,
    NIRISS_SOSS,
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


#: (EXP_TYPE, datamodel class) -> the mode serving those inputs instead of the EXP_TYPE's own
#: (NIRSpec FS/MOS as SlitModel files: one source per association, as the reference)
BY_MODEL_TYPE: dict[tuple[str, str], Mode] = {
    (exp_type, SLIT_MODEL): mode for mode in SLIT_MODEL_MODES for exp_type in mode.exp_types
}


def mode_for(exp_type: str, *, where: str = "", model_type: str | None = None) -> Mode:
    """The mode serving ``exp_type`` (given as ``model_type`` files, when that decides); a
    :class:`Spec3cError` naming ``where`` if none does."""
    key = str(exp_type or "").strip().upper()
    if (key, model_type) in BY_MODEL_TYPE:
        return BY_MODEL_TYPE[(key, str(model_type))]
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
    """The one mode of a store's science exposures (an error if they mix EXP_TYPEs, or files
    whose datamodel class chooses another mode)."""
    science = [r for r in store.list_exposures() if r.role == "science"]
    types = sorted({r.exp_type for r in science})
    if not types:
        raise Spec3cError(f"{store.path}: no science exposures")
    if len(types) > 1:
        raise Spec3cError(f"{store.path}: the association mixes EXP_TYPEs {', '.join(types)}")
    modes = {mode_for(types[0], where=str(store.path), model_type=r.model_type) for r in science}
    if len(modes) > 1:
        models = sorted({r.model_type for r in science})
        raise Spec3cError(f"{store.path}: the association mixes {' and '.join(models)} files of EXP_TYPE "
                          f"{types[0]}, which the reference processes differently")
    return modes.pop()


def is_ifu_extended(exp_type: str, source_type: str | None) -> bool:
    """A background spectrum of an IFU mode whose BACKGROUND column is its surface brightness."""
    return exp_type == "MIR_MRS" or (exp_type == "NRS_IFU" and source_type == "EXTENDED")
