"""The store interface: one ABC, several backends (TileDB, HDF5, in-memory).

A store holds, for one association:

* an **exposures** table — one :class:`ExposureRecord` per ingested file;
* **cutouts** — one :class:`Cutout` per (source, exposure, slit) with the
  science planes and the per-pixel coordinates evaluated once at ingest;
* each cutout's input **gwcs** as ASDF bytes;
* **images** — full-frame planes per exposure (IFU / SOSS modes);
* **results** — whatever ``process`` produces, keyed by (source, key).

Atomicity contract: :meth:`Store.commit_exposure` is all-or-nothing as seen by
readers.  Cutouts of an exposure whose record was never committed are
invisible and are overwritten when the exposure is ingested again.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..errors import StoreError

if TYPE_CHECKING:
    from .source import SourceStack

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
        EXP_TYPE of the exposure (e.g. ``NRS_MSASPEC``).
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
        return tuple(self.planes["sci"].shape)  # type: ignore[return-value]

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


@dataclass(frozen=True)
class CutoutInfo:
    """A cutout's identity, shape and metadata, without its arrays."""

    source: str
    exposure: str
    slit: str
    shape: tuple[int, int]
    meta: dict[str, Any]


class Store(ABC):
    """Abstract store.  Backends implement the ``_``-prefixed primitives.

    Subclasses set :attr:`backend` and the capability flags.  Use
    :func:`spec3c.store.open_store` / :func:`spec3c.store.create_store`
    rather than instantiating backends directly.
    """

    backend: ClassVar[str]
    #: full-frame images (IFU / SOSS) are supported
    supports_images: ClassVar[bool] = True
    #: several processes may write results concurrently
    supports_concurrent_writes: ClassVar[bool] = True

    def __init__(self, path: str | Path | None) -> None:
        self.path = None if path is None else Path(path)

    # -- lifecycle --------------------------------------------------------
    def close(self) -> None:  # noqa: B027 - optional hook
        """Release handles (backends with open handles override)."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    @abstractmethod
    def schema_version(self) -> int:
        """Schema version the store was written with."""

    # -- exposures --------------------------------------------------------
    @abstractmethod
    def list_exposures(self) -> list[ExposureRecord]:
        """Committed exposures, sorted by name."""

    def get_exposure(self, name: str) -> ExposureRecord | None:
        for rec in self.list_exposures():
            if rec.name == name:
                return rec
        return None

    def commit_exposure(
        self,
        record: ExposureRecord,
        cutouts: Sequence[Cutout] = (),
        images: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """Write an exposure's cutouts, images and record, atomically.

        An exposure of the same name is replaced (callers decide whether
        replacing is allowed).
        """
        for c in cutouts:
            c.validate()
            if c.exposure != record.name:
                raise StoreError(f"cutout {c.key} does not belong to exposure {record.name!r}")
        if len({c.key for c in cutouts}) != len(cutouts):
            raise StoreError(f"exposure {record.name!r}: duplicate (source, slit) cutouts")
        self._commit_exposure(record, [_normalised(c) for c in cutouts], images or {})

    @abstractmethod
    def _commit_exposure(
        self, record: ExposureRecord, cutouts: list[Cutout], images: Mapping[str, np.ndarray]
    ) -> None: ...

    @abstractmethod
    def delete_exposure(self, name: str) -> None:
        """Remove an exposure, its cutouts and images (no-op if absent)."""

    # -- cutouts ----------------------------------------------------------
    @abstractmethod
    def list_cutouts(self, source: str | None = None) -> list[CutoutInfo]:
        """Cutouts of committed exposures (of one source if given), sorted."""

    @abstractmethod
    def read_cutouts(self, source: str, planes: Iterable[str] | None = None) -> list[Cutout]:
        """All cutouts of ``source`` (committed exposures only), sorted by
        (exposure, slit), with the requested planes (default: all stored)."""

    def source(self, source: str | int, planes: Iterable[str] | None = None) -> SourceStack:
        """That source's cutouts stacked across exposures, with their coordinates."""
        from .source import SourceStack

        key = str(source)
        cutouts = self.read_cutouts(key, planes)
        if not cutouts:
            raise KeyError(f"no source {key!r} in store {self.path}; `spec3c ls` lists them")
        return SourceStack(key, cutouts)

    def sources(self) -> list[str]:
        """Source keys in first-appearance order of (exposure, slit)."""
        seen: dict[str, None] = {}
        for info in sorted(self.list_cutouts(), key=lambda i: (i.exposure, i.slit)):
            seen.setdefault(info.source, None)
        return list(seen)

    # -- images -----------------------------------------------------------
    @abstractmethod
    def read_image(self, exposure: str, plane: str) -> np.ndarray:
        """A full-frame plane of a committed exposure (KeyError if absent)."""

    def read_images(self, exposure: str) -> dict[str, np.ndarray]:
        """Every image plane of a committed exposure (backends read them in one go)."""
        return {plane: self.read_image(exposure, plane) for plane in self.list_images(exposure)}

    @abstractmethod
    def list_images(self, exposure: str) -> list[str]:
        """Names of the full-frame planes stored for an exposure."""

    # -- results ----------------------------------------------------------
    @abstractmethod
    def put_result(
        self, source: str, key: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
    ) -> None:
        """Store (replace) one result of ``process`` for a source."""

    @abstractmethod
    def get_result(self, source: str, key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays and metadata of a result (KeyError if absent)."""

    @abstractmethod
    def list_results(self, source: str | None = None) -> list[tuple[str, str]]:
        """(source, key) pairs of stored results, sorted."""

    def delete_result(self, source: str, key: str) -> None:
        """Remove one result if it exists."""
        if (source, key) in self.list_results(source):
            self._delete_result(source, key)

    def delete_results(self, source: str) -> None:
        """Remove every result of a source (``process --force``)."""
        for src, key in self.list_results(source):
            self._delete_result(src, key)

    @abstractmethod
    def _delete_result(self, source: str, key: str) -> None: ...

    # -- maintenance ------------------------------------------------------
    def consolidate(self) -> None:  # noqa: B027 - optional hook
        """Compact the store after bulk writes (backends override)."""

    def nbytes_on_disk(self) -> int:
        """Total size of the store's files in bytes (0 for in-memory)."""
        if self.path is None or not self.path.exists():
            return 0
        if self.path.is_file():
            return self.path.stat().st_size
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())


def _normalised(c: Cutout) -> Cutout:
    """Copy of ``c`` with planes in the stored dtype, little-endian, C order."""
    planes = {
        name: np.ascontiguousarray(arr, dtype=ALL_PLANES[name]) for name, arr in c.planes.items()
    }
    return Cutout(c.source, c.exposure, c.slit, dict(c.meta), planes, bytes(c.wcs_asdf))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, bytes):
        return obj.decode("latin-1")
    return str(obj)


def dumps_meta(meta: Mapping[str, Any]) -> str:
    """JSON text of a metadata mapping (numpy scalars allowed)."""
    return json.dumps(dict(meta), sort_keys=True, default=_json_default)


def loads_meta(text: str | bytes) -> dict[str, Any]:
    if isinstance(text, bytes):
        text = text.decode()
    return json.loads(text) if text else {}


def pack_arrays(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Serialise named arrays into one uncompressed ``.npz`` blob."""
    import io

    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def unpack_arrays(blob: bytes) -> dict[str, np.ndarray]:
    """Inverse of :func:`pack_arrays`."""
    import io

    if not blob:
        return {}
    with np.load(io.BytesIO(bytes(blob)), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}
