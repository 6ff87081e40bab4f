"""The records a store holds: exposures, cutouts and a source's stacked cutouts.

One module for the store's value types, so the ABC (:mod:`.base`), the backends
and every reader share one definition.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np

from ..errors import StoreError

SCHEMA_VERSION = 1

#: Planes every slit cutout carries, with their stored dtype.
CUTOUT_PLANES: dict[str, np.dtype] = {
    "sci": np.dtype("<f4"),
    "err": np.dtype("<f4"),
    "dq": np.dtype("<u4"),
    "var_poisson": np.dtype("<f4"),
    "var_rnoise": np.dtype("<f4"),
    "var_flat": np.dtype("<f4"),
    # coordinates, evaluated from the input gwcs at ingest (NaN off the slit)
    "wavelength": np.dtype("<f8"),  # micron
    "ra": np.dtype("<f8"),  # degree
    "dec": np.dtype("<f8"),  # degree
    "slit_y": np.dtype("<f8"),  # slit-frame cross-dispersion coordinate
}

#: Planes stored when the input has them (master background scaling etc.).
OPTIONAL_PLANES: dict[str, np.dtype] = {
    "pathloss_point": np.dtype("<f4"),
    "pathloss_uniform": np.dtype("<f4"),
    "flatfield_point": np.dtype("<f4"),
    "flatfield_uniform": np.dtype("<f4"),
    "photom_point": np.dtype("<f4"),
    "photom_uniform": np.dtype("<f4"),
}

ALL_PLANES: dict[str, np.dtype] = {**CUTOUT_PLANES, **OPTIONAL_PLANES}
COORDINATE_PLANES = ("wavelength", "ra", "dec", "slit_y")
ROLES = ("science", "background")


@dataclass(frozen=True)
class ExposureRecord:
    """One ingested input file.

    Attributes
    ----------
    name : str
        Unique exposure name: the input basename without ``.fits``.
    filename : str
        Absolute path the file was read from.
    sha256 : str
        Hex digest of the file's bytes; re-ingesting the same bytes is a no-op.
    role : str
        ASN member role, ``"science"`` or ``"background"``.
    exp_type : str
        EXP_TYPE of the exposure (the key of its mode, ``spec3c.modes.registry``).
    model_type : str
        stdatamodels class name of the input (e.g. ``MultiSlitModel``).
    meta : dict
        JSON-serialisable flat metadata of the input model (no WCS).
    """

    name: str
    filename: str
    sha256: str
    role: str
    exp_type: str
    model_type: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"exposure {self.name!r}: role must be one of {ROLES}, not {self.role!r}")

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True, default=_json_default)

    @classmethod
    def from_json(cls, text: str) -> ExposureRecord:
        return cls(**json.loads(text))


@dataclass
class Cutout:
    """One (source, exposure, slit) cutout.

    Attributes
    ----------
    source : str
        Source key as the reference's exp_to_source builds it: the slit's
        ``source_name`` when it is not blank (NIRSpec MOS), else ``source_id``.
    exposure : str
        :attr:`ExposureRecord.name` of the exposure it comes from.
    slit : str
        Slit name (``S200A1``, MOS slitlet id, ...).
    meta : dict
        Slit attributes (source_id, source_type, xstart, ystart, bunit ...),
        JSON-serialisable.
    planes : dict of str to ndarray
        2-D arrays of one shape ``(ny, nx)``; names and dtypes from
        :data:`ALL_PLANES`.
    wcs_asdf : bytes
        The slit's input gwcs serialised as an ASDF file.
    """

    source: str
    exposure: str
    slit: str
    meta: dict[str, Any]
    planes: dict[str, np.ndarray]
    wcs_asdf: bytes = b""

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.planes["sci"].shape)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.source, self.exposure, self.slit)

    def validate(self) -> None:
        """Raise :class:`StoreError` unless planes are complete and consistent."""
        missing = [p for p in CUTOUT_PLANES if p not in self.planes]
        if missing:
            raise StoreError(f"cutout {self.key}: missing planes {missing}")
        unknown = [p for p in self.planes if p not in ALL_PLANES]
        if unknown:
            raise StoreError(f"cutout {self.key}: unknown planes {unknown}")
        shapes = {name: a.shape for name, a in self.planes.items()}
        if len(set(shapes.values())) != 1 or len(self.shape) != 2:
            raise StoreError(f"cutout {self.key}: planes differ in shape or are not 2-D: {shapes}")


class LazyCutouts(Sequence[Cutout]):
    """Cutouts of one exposure loaded one at a time (from a staging file, say), their keys known
    without loading them: a store commits such an exposure holding one cutout at a time."""

    def __init__(self, keys: Sequence[tuple[str, str, str]]) -> None:
        self.keys = list(keys)

    def __len__(self) -> int:
        return len(self.keys)

    def load(self, index: int) -> Cutout:
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> Cutout: ...

    @overload
    def __getitem__(self, index: slice) -> list[Cutout]: ...

    def __getitem__(self, index: int | slice) -> Cutout | list[Cutout]:
        if isinstance(index, slice):
            return [self.load(i) for i in range(len(self))[index]]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return self.load(index % len(self))


def cutout_keys(cutouts: Sequence[Cutout]) -> list[tuple[str, str, str]]:
    """The (source, exposure, slit) of each of ``cutouts``, not loading lazy ones."""
    return list(cutouts.keys) if isinstance(cutouts, LazyCutouts) else [c.key for c in cutouts]


@dataclass(frozen=True)
class WrittenFrames:
    """An exposure's full frames already written into a store's dense array by the process that
    read them (an ingest worker), not yet part of the store: committing the exposure with them
    makes them so (:meth:`~spec3c.store.base.Store.commit_exposures`).

    ``planes``: plane name -> (attribute of the array, shape, dtype string)."""

    folder: str
    planes: dict[str, tuple[str, tuple[int, ...], str]]


@dataclass(frozen=True)
class CutoutInfo:
    """A cutout's identity, shape and metadata, without its arrays."""

    source: str
    exposure: str
    slit: str
    shape: tuple[int, int]
    meta: dict[str, Any]


@dataclass
class SourceStack:
    """All cutouts of one source, in (exposure, slit) order.

    ``stack[plane]`` (or :meth:`stacked`) returns an ``(n, ny, nx)`` array;
    cutouts smaller than the largest are padded (NaN for floats, 0 for DQ) at
    the top/right, so index ``k`` of the stack is ``cutouts[k]``.
    """

    source: str
    cutouts: list[Cutout]

    def __len__(self) -> int:
        return len(self.cutouts)

    @property
    def exposures(self) -> list[str]:
        return [c.exposure for c in self.cutouts]

    @property
    def slits(self) -> list[str]:
        return [c.slit for c in self.cutouts]

    @property
    def shapes(self) -> list[tuple[int, int]]:
        return [c.shape for c in self.cutouts]

    @property
    def planes(self) -> list[str]:
        return sorted(set.intersection(*(set(c.planes) for c in self.cutouts))) if self.cutouts else []

    def stacked(self, plane: str) -> np.ndarray:
        """``(n, ny_max, nx_max)`` array of ``plane`` across the cutouts."""
        if not self.cutouts:
            raise KeyError(f"source {self.source!r} has no cutouts")
        first = self.cutouts[0].planes[plane]
        ny = max(s[0] for s in self.shapes)
        nx = max(s[1] for s in self.shapes)
        fill = np.nan if first.dtype.kind == "f" else 0
        out = np.full((len(self), ny, nx), fill, dtype=first.dtype)
        for k, c in enumerate(self.cutouts):
            arr = c.planes[plane]
            out[k, : arr.shape[0], : arr.shape[1]] = arr
        return out

    def __getitem__(self, plane: str) -> np.ndarray:
        return self.stacked(plane)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, bytes):
        return obj.decode("latin-1")
    return str(obj)
